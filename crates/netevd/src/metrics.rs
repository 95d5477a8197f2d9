//! `--metrics`: the counters `netev status` shows, as OpenMetrics text
//! (what Prometheus scrapes) at `http://ADDR:PORT/metrics`
//! (docs/operations.md, "Metrics").
//!
//! A thread of its own with a one-thread runtime: a scrape never waits on
//! capture, and capture never waits on a scrape. It serves the status the
//! daemon's loop hands it (the same snapshot, taken at the same moment, as
//! the status file and GetStatus), so a scrape and `netev status` agree.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use netev_event::display::escape_label_value;
use netev_event::status::Status;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::sync::{watch, Semaphore};
use tracing::{info, warn};

/// Most connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16;
/// Longest a connection is kept (a slow or idle client is cut off).
const CONNECTION_LIFE: Duration = Duration::from_secs(10);

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The endpoint, serving until the daemon exits.
pub struct Metrics {
    status: watch::Sender<Status>,
}

impl Metrics {
    /// Listens on `addr` now (so a port in use fails the start, with the
    /// address named) and serves from a thread of its own.
    pub fn start(addr: SocketAddr, status: Status) -> Result<Metrics> {
        let listener = std::net::TcpListener::bind(addr).with_context(|| {
            format!(
                "--metrics {addr}: cannot listen there (a port in use, or an address this \
                 machine does not have); choose another or leave metrics off"
            )
        })?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let (tx, rx) = watch::channel(status);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .context("the metrics thread's runtime")?;
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || runtime.block_on(serve(listener, rx)))
            .context("starting the metrics thread")?;
        if !local.ip().is_loopback() {
            warn!(
                listen = %local,
                "metrics are served beyond loopback: anyone who reaches this address reads the counters"
            );
        }
        info!(listen = %local, "metrics at http://{local}/metrics");
        Ok(Metrics { status: tx })
    }

    /// What the next scrapes show.
    pub fn set_status(&self, status: Status) {
        self.status.send_replace(status);
    }
}

async fn serve(listener: std::net::TcpListener, status: watch::Receiver<Status>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn!("metrics not served: {e}");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // out of descriptors, typically: wait rather than spin
                warn!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let status = status.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let reply = respond(&req, &status.borrow());
                async move { Ok::<_, Infallible>(reply) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFE, conn).await;
            drop(slot);
        });
    }
}

fn respond(req: &Request<Incoming>, status: &Status) -> Response<Full<Bytes>> {
    let reply = |code: StatusCode, kind: &str, body: String| {
        Response::builder()
            .status(code)
            .header("content-type", kind)
            .body(Full::new(Bytes::from(body)))
            .expect("a response from constant parts")
    };
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "netevd serves /metrics only\n".into(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET /metrics\n".into(),
        );
    }
    match render(status) {
        Ok(text) => reply(StatusCode::OK, CONTENT_TYPE, text),
        Err(_) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "the metrics could not be written\n".into(),
        ),
    }
}

/// The status as OpenMetrics text.
pub fn render(status: &Status) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("netev");
    registry.register_collector(Box::new(StatusMetrics(status.clone())));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// One status, as metrics.
#[derive(Debug)]
struct StatusMetrics(Status);

impl Collector for StatusMetrics {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let c = &s.counters;
        // (name without `_total`, help, value): in `netev status`'s order
        let counters: [(&str, &str, u64); 11] = [
            (
                "records_seen",
                "Records the kernel emitted or tried to (network events, exec and exit)",
                c.seen,
            ),
            (
                "records_delivered",
                "Records read by the daemon",
                c.delivered,
            ),
            (
                "records_dropped",
                "Records lost because the ring buffer was full (raise --ringbuf-size)",
                c.dropped,
            ),
            ("calls", "Network calls hooked", c.calls),
            (
                "calls_coalesced",
                "Calls folded into another event's count",
                c.coalesced,
            ),
            ("events", "Network events produced", c.events),
            (
                "bus_events_dropped",
                "Events not published on D-Bus because subscribers were too slow",
                c.bus_dropped,
            ),
            (
                "store_events_stored",
                "Events written to the event store",
                c.stored,
            ),
            (
                "store_events_lost",
                "Events the store could not take (recorded in its gaps table)",
                c.store_lost,
            ),
            (
                "export_events_exported",
                "Events the --export receivers have",
                c.exported,
            ),
            (
                "export_events_lost",
                "Events an export could keep neither in its queue nor its spool (sent on as gap records)",
                c.export_lost,
            ),
        ];
        for (name, help, value) in counters {
            let m = ConstCounter::new(value);
            m.encode(e.encode_descriptor(name, help, None, m.metric_type())?)?;
        }
        let gauges: [(&str, &str, i64); 3] = [
            (
                "uptime_seconds",
                "Seconds since netevd started",
                s.uptime_secs as i64,
            ),
            (
                "start_time_seconds",
                "When netevd started, seconds since the Unix epoch",
                chrono::DateTime::parse_from_rfc3339(&s.started)
                    .map(|t| t.timestamp())
                    .unwrap_or(0),
            ),
            (
                "export_events_spooled",
                "Events waiting in the exports' disk spools for their receivers",
                c.export_spooled as i64,
            ),
        ];
        for (name, help, value) in gauges {
            let m = ConstGauge::new(value);
            m.encode(e.encode_descriptor(name, help, None, m.metric_type())?)?;
        }
        // Labels are text others may choose (a cgroup's path): escaped.
        let label = |k: &'static str, v: &str| (k, escape_label_value(v));
        let daemon = vec![
            label("version", &s.version),
            label("backend", &s.backend),
            label("cgroup", &s.cgroup),
            label("coalesce", if s.coalesce { "on" } else { "off" }),
        ];
        let mut m = e.encode_descriptor(
            "daemon",
            "The running netevd: version, capture backend, cgroup, coalescing",
            None,
            prometheus_client::metrics::MetricType::Info,
        )?;
        m.encode_info(&daemon)?;
        let mut hooks = e.encode_descriptor(
            "hook",
            "The hooks attached (1 each): the op reported, the attach point, enforce or observe",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for h in &s.hooks {
            let labels = vec![
                label("op", &h.op),
                label("attach", &h.attach),
                label("mode", &h.mode),
            ];
            ConstGauge::new(1i64).encode(hooks.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netev_event::status::{Counters, Hook};

    fn status() -> Status {
        Status {
            version: "0.1.0".into(),
            pid: 7,
            started: "2026-12-03T10:00:00Z".into(),
            uptime_secs: 42,
            backend: "cgroup+tracepoints".into(),
            cgroup: "/sys/fs/cgroup/unified/a\"} 1\nnetev_events_total 999".into(),
            coalesce: true,
            hooks: vec![Hook {
                op: "connect".into(),
                attach: "cgroup/connect4".into(),
                mode: "enforce".into(),
            }],
            notes: vec![],
            counters: Counters {
                seen: 10,
                delivered: 9,
                dropped: 1,
                calls: 8,
                coalesced: 2,
                events: 6,
                bus_dropped: 3,
                stored: 5,
                store_lost: 4,
                exported: 11,
                export_lost: 12,
                export_spooled: 13,
            },
        }
    }

    #[test]
    fn every_counter_is_there_once_by_prometheus_names() {
        let text = render(&status()).unwrap();
        for line in [
            "netev_records_seen_total 10",
            "netev_records_delivered_total 9",
            "netev_records_dropped_total 1",
            "netev_calls_total 8",
            "netev_calls_coalesced_total 2",
            "netev_events_total 6",
            "netev_bus_events_dropped_total 3",
            "netev_store_events_stored_total 5",
            "netev_store_events_lost_total 4",
            "netev_export_events_exported_total 11",
            "netev_export_events_lost_total 12",
            "netev_export_events_spooled 13",
            "netev_uptime_seconds 42",
            "netev_start_time_seconds 1796292000",
            "# TYPE netev_records_seen counter",
            r#"netev_hook{op="connect",attach="cgroup/connect4",mode="enforce"} 1"#,
        ] {
            assert_eq!(
                text.lines().filter(|l| *l == line).count(),
                1,
                "{line:?} in:\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn a_hostile_label_cannot_forge_a_sample() {
        let text = render(&status()).unwrap();
        let forged = text
            .lines()
            .filter(|l| l.starts_with("netev_events_total"))
            .count();
        assert_eq!(forged, 1, "{text}");
        let info = text
            .lines()
            .find(|l| l.starts_with("netev_daemon_info{"))
            .unwrap_or_else(|| panic!("no info line in:\n{text}"));
        assert!(
            info.contains(r#"cgroup="/sys/fs/cgroup/unified/a\"} 1\nnetev_events_total 999""#),
            "{info}"
        );
    }

    #[test]
    fn the_address_grammar() {
        use crate::settings::MetricsAddr;
        let parse = |s: &str| s.parse::<MetricsAddr>();
        assert_eq!(parse("off"), Ok(MetricsAddr(None)));
        assert_eq!(
            parse("9477").unwrap().0,
            Some("127.0.0.1:9477".parse().unwrap())
        );
        assert_eq!(
            parse("[::1]:9477").unwrap().0,
            Some("[::1]:9477".parse().unwrap())
        );
        assert!(parse("localhost:9477").unwrap_err().contains("ADDR:PORT"));
        assert!(parse("70000").is_err());
        assert_eq!(parse("10.0.0.1:80").unwrap().to_string(), "10.0.0.1:80");
    }
}
