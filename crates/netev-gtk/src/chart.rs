//! The console's small chart: events per second by verdict over the last
//! minute, as stacked bars (allow green, deny red, observe grey).

use std::cell::RefCell;
use std::rc::Rc;

use gtk::prelude::*;

use crate::events_model::{RateChart, VERDICTS};

/// Bar colours per verdict (allow, deny, observe), RGB.
const COLOURS: [(f64, f64, f64); 3] = [(0.20, 0.60, 0.30), (0.80, 0.20, 0.20), (0.55, 0.55, 0.55)];

/// A drawing area over a shared [`RateChart`].
pub fn chart_area(chart: Rc<RefCell<RateChart>>) -> gtk::DrawingArea {
    let area = gtk::DrawingArea::builder()
        .content_height(90)
        .hexpand(true)
        .build();
    area.set_draw_func(move |_, cr, w, h| {
        let now = chrono::Utc::now().timestamp();
        let series = chart.borrow().series(now);
        draw(cr, w as f64, h as f64, &series);
    });
    area
}

fn draw(cr: &gtk::cairo::Context, w: f64, h: f64, series: &[[u64; 3]]) {
    let legend_h = 16.0;
    let plot_h = (h - legend_h).max(1.0);
    cr.set_source_rgb(0.97, 0.97, 0.97);
    cr.rectangle(0.0, 0.0, w, plot_h);
    let _ = cr.fill();
    let peak = RateChart::peak(series) as f64;
    let bar_w = w / series.len().max(1) as f64;
    for (i, counts) in series.iter().enumerate() {
        let mut y = plot_h;
        for (v, n) in counts.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            let bh = (*n as f64 / peak) * (plot_h - 4.0);
            let (r, g, b) = COLOURS[v];
            cr.set_source_rgb(r, g, b);
            cr.rectangle(i as f64 * bar_w + 1.0, y - bh, (bar_w - 2.0).max(1.0), bh);
            let _ = cr.fill();
            y -= bh;
        }
    }
    cr.set_source_rgb(0.2, 0.2, 0.2);
    cr.set_font_size(11.0);
    cr.move_to(4.0, 12.0);
    let _ = cr.show_text(&format!("peak {peak} calls/s, last 60 s"));
    let mut x = 4.0;
    for (v, name) in VERDICTS.iter().enumerate() {
        let (r, g, b) = COLOURS[v];
        cr.set_source_rgb(r, g, b);
        cr.rectangle(x, h - 12.0, 10.0, 10.0);
        let _ = cr.fill();
        cr.set_source_rgb(0.2, 0.2, 0.2);
        cr.move_to(x + 14.0, h - 3.0);
        let _ = cr.show_text(name);
        x += 80.0;
    }
}
