//! Queries as text: the `name = value` pairs that `netev log` options and
//! the D-Bus `QueryEvents` call carry, and the times they name.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use netev_event::{Op, Verdict};

use crate::{Error, Filter, Result};

/// The keys a filter has.
pub const FILTER_KEYS: [&str; 9] = [
    "since", "until", "exe", "op", "verdict", "dest", "port", "host", "limit",
];

/// An age as people write it: a number and a unit, `s`, `m`, `h`, `d` or
/// `w` (`90s`, `15m`, `2d`; netev-units' grammar, without milliseconds);
/// `None` when `s` is not one.
pub fn parse_age(s: &str) -> Option<std::time::Duration> {
    netev_units::parse_length(s)
        .ok()
        .filter(|l| l.unit != netev_units::TimeUnit::Millisecond)?
        .duration()
}

/// A time as people write it: an age (`90s`, `15m`, `1h`, `2d`, `1w`: that
/// long before `now`), an RFC 3339 time (`2026-11-26T10:00:00Z`), or a UTC
/// date and time (`2026-11-26`, `2026-11-26 10:00`, `2026-11-26 10:00:05`).
pub fn parse_time(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let s = s.trim();
    let bad = || {
        Error::Invalid(format!(
            "{s:?} is not a time: write an age such as 15m, 1h, 2d, or a time such as \
             2026-11-26T10:00:00Z or 2026-11-26 10:00 (UTC)"
        ))
    };
    if let Some(age) = parse_age(s) {
        return chrono::Duration::from_std(age)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .ok_or_else(bad);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    Err(bad())
}

impl Filter {
    /// A filter from `name = value` pairs (see [`FILTER_KEYS`]); times are
    /// resolved against `now`. Errors name the key and what was expected.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        now: DateTime<Utc>,
    ) -> Result<Filter> {
        let mut f = Filter::default();
        for (k, v) in pairs {
            let bad = |what: &str| Error::Invalid(format!("{k} = {v:?}: {what}"));
            match k {
                "since" => f.since = Some(parse_time(v, now)?),
                "until" => f.until = Some(parse_time(v, now)?),
                "exe" => {
                    if !v.starts_with('/') {
                        return Err(bad("expected an absolute path such as /usr/bin/curl"));
                    }
                    f.exe = Some(v.to_string())
                }
                "op" => f.op = Some(v.parse::<Op>().map_err(|e| bad(&e))?),
                "verdict" => f.verdict = Some(v.parse::<Verdict>().map_err(|e| bad(&e))?),
                "dest" => {
                    f.dest = Some(
                        v.parse::<ipnet::IpNet>()
                            .or_else(|_| v.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                            .map_err(|_| bad("expected an address or a network such as 10.0.0.0/8 or 2001:db8::/32"))?,
                    )
                }
                "port" => f.port = Some(v.parse().map_err(|_| bad("expected a port, 0-65535"))?),
                "host" => f.host = Some(v.to_string()),
                "limit" => {
                    f.limit = v
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad("expected a number of events, at least 1"))?
                }
                other => {
                    return Err(Error::Invalid(format!(
                        "unknown filter {other:?}; filters are: {}",
                        FILTER_KEYS.join(", ")
                    )))
                }
            }
        }
        if let (Some(a), Some(b)) = (f.since, f.until) {
            if a >= b {
                return Err(Error::Invalid(format!(
                    "since ({a}) is not before until ({b}): nothing can match"
                )));
            }
        }
        Ok(f)
    }

    /// The pairs for this filter, times as RFC 3339 (for D-Bus).
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let time = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        if let Some(t) = self.since {
            out.push(("since", time(t)));
        }
        if let Some(t) = self.until {
            out.push(("until", time(t)));
        }
        if let Some(e) = &self.exe {
            out.push(("exe", e.clone()));
        }
        if let Some(o) = self.op {
            out.push(("op", o.name().to_string()));
        }
        if let Some(v) = self.verdict {
            out.push(("verdict", v.name().to_string()));
        }
        if let Some(d) = &self.dest {
            out.push(("dest", d.to_string()));
        }
        if let Some(p) = self.port {
            out.push(("port", p.to_string()));
        }
        if let Some(h) = &self.host {
            out.push(("host", h.clone()));
        }
        if self.limit > 0 {
            out.push(("limit", self.limit.to_string()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_parse_in_every_documented_form() {
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        assert_eq!(
            parse_time("1h", now).unwrap(),
            now - chrono::Duration::hours(1)
        );
        assert_eq!(
            parse_time("15m", now).unwrap(),
            now - chrono::Duration::minutes(15)
        );
        assert_eq!(
            parse_time("2d", now).unwrap(),
            now - chrono::Duration::days(2)
        );
        assert_eq!(
            parse_time("2026-11-26T10:00:00+02:00", now).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 26, 8, 0, 0).unwrap()
        );
        assert_eq!(
            parse_time("2026-11-26 10:30", now).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 26, 10, 30, 0).unwrap()
        );
        assert_eq!(
            parse_time("2026-11-25", now).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap()
        );
        for bad in ["yesterday", "5y", "", "99999999999999999d"] {
            let e = parse_time(bad, now).unwrap_err().to_string();
            assert!(e.contains("is not a time"), "{bad}: {e}");
        }
    }

    #[test]
    fn ages_count_seconds_to_weeks() {
        let secs = |n| Some(std::time::Duration::from_secs(n));
        assert_eq!(parse_age("90s"), secs(90));
        assert_eq!(parse_age("1w"), secs(7 * 86_400));
        for bad in ["500ms", "5", "5y", "", "soon"] {
            assert_eq!(parse_age(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn filters_round_trip_and_say_what_is_wrong() {
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        let f = Filter::from_pairs(
            [
                ("since", "1h"),
                ("exe", "/usr/bin/curl"),
                ("op", "connect"),
                ("verdict", "deny"),
                ("dest", "10.0.0.0/8"),
                ("port", "443"),
                ("host", "web1"),
                ("limit", "5"),
            ],
            now,
        )
        .unwrap();
        let pairs = f.to_pairs();
        let back = Filter::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())), now).unwrap();
        assert_eq!(back, f);
        let single = Filter::from_pairs([("dest", "192.0.2.1")], now).unwrap();
        assert_eq!(single.dest.unwrap().to_string(), "192.0.2.1/32");
        for (k, v, want) in [
            ("port", "70000", "expected a port"),
            ("op", "dance", "unknown op"),
            ("verdict", "maybe", "unknown verdict"),
            ("exe", "curl", "absolute path"),
            ("dest", "10.0.0.0/33", "network"),
            ("limit", "0", "at least 1"),
            ("colour", "red", "unknown filter"),
        ] {
            let e = Filter::from_pairs([(k, v)], now).unwrap_err().to_string();
            assert!(e.contains(want), "{k}={v}: {e}");
        }
        let e = Filter::from_pairs([("since", "1h"), ("until", "2h")], now).unwrap_err();
        assert!(e.to_string().contains("not before"), "{e}");
    }
}
