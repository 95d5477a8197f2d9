//! How netev's users write a length of time and a size, in one place.
//!
//! A length is a whole number and a unit: `500ms`, `90s`, `5m`, `12h`,
//! `30d`, `1w`. A size is a whole number of bytes, or one with a `K` or `M`
//! suffix (binary: `64K` = 65536). Every place that reads one (rule
//! durations, store ages, `netev run --timeout`, `--store-max-age`,
//! `--ringbuf-size`) parses it here, so they all accept the same spellings;
//! each adds only its own limits (an age has no milliseconds, a ring
//! buffer is a power of two) and its own wording of an error.
#![deny(missing_docs)]

use std::time::Duration;

/// A unit of a length of time, as written after the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    /// `ms`
    Millisecond,
    /// `s`
    Second,
    /// `m`
    Minute,
    /// `h`
    Hour,
    /// `d`
    Day,
    /// `w`: seven days.
    Week,
}

impl TimeUnit {
    /// Every unit, shortest first.
    pub const ALL: [TimeUnit; 6] = [
        TimeUnit::Millisecond,
        TimeUnit::Second,
        TimeUnit::Minute,
        TimeUnit::Hour,
        TimeUnit::Day,
        TimeUnit::Week,
    ];

    /// The unit as written: `ms`, `s`, `m`, `h`, `d`, `w`.
    pub fn suffix(self) -> &'static str {
        match self {
            TimeUnit::Millisecond => "ms",
            TimeUnit::Second => "s",
            TimeUnit::Minute => "m",
            TimeUnit::Hour => "h",
            TimeUnit::Day => "d",
            TimeUnit::Week => "w",
        }
    }

    /// How many milliseconds one of it is.
    pub fn millis(self) -> u64 {
        match self {
            TimeUnit::Millisecond => 1,
            TimeUnit::Second => 1000,
            TimeUnit::Minute => 60_000,
            TimeUnit::Hour => 3_600_000,
            TimeUnit::Day => 86_400_000,
            TimeUnit::Week => 7 * 86_400_000,
        }
    }
}

/// A length of time as written: `count` of `unit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Length {
    /// The number.
    pub count: u64,
    /// Its unit.
    pub unit: TimeUnit,
}

impl Length {
    /// How long it is; `None` when that does not fit a [`Duration`] of
    /// whole milliseconds counted in a `u64`.
    pub fn duration(self) -> Option<Duration> {
        self.count
            .checked_mul(self.unit.millis())
            .map(Duration::from_millis)
    }
}

/// Why a text is not a [`Length`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LengthError {
    /// It does not start with a digit (or is empty).
    #[error("not a number and a unit")]
    NotANumber,
    /// A number alone: some readers take it in a unit of their own.
    #[error("{0} has no unit")]
    NoUnit(u64),
    /// A number, then something that is not a unit.
    #[error("{0:?} is not a unit")]
    UnknownUnit(String),
    /// More digits than a `u64` holds.
    #[error("too long")]
    TooLong,
}

/// Parses a length: ASCII digits, then a unit right after them (no space,
/// no sign). The units are those of [`TimeUnit`].
pub fn parse_length(s: &str) -> Result<Length, LengthError> {
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(digits_end);
    if digits.is_empty() {
        return Err(LengthError::NotANumber);
    }
    // only digits are left, so the one way to fail is too many of them
    let count: u64 = digits.parse().map_err(|_| LengthError::TooLong)?;
    if unit.is_empty() {
        return Err(LengthError::NoUnit(count));
    }
    TimeUnit::ALL
        .into_iter()
        .find(|u| u.suffix() == unit)
        .map(|unit| Length { count, unit })
        .ok_or_else(|| LengthError::UnknownUnit(unit.to_string()))
}

/// Why a text is not a size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// Not digits with an optional `K`, `M` or `G`.
    #[error("not a size")]
    NotASize,
    /// More bytes than a `u64` holds.
    #[error("too large")]
    TooLarge,
}

/// Parses a size in bytes: ASCII digits, optionally followed by `K` (2^10),
/// `M` (2^20) or `G` (2^30), in either case.
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let (digits, shift) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SizeError::NotASize);
    }
    let n: u64 = digits.parse().map_err(|_| SizeError::TooLarge)?;
    n.checked_mul(1 << shift).ok_or(SizeError::TooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len(s: &str) -> Result<Option<Duration>, LengthError> {
        parse_length(s).map(Length::duration)
    }

    #[test]
    fn lengths_in_every_unit() {
        let secs = |n| Ok(Some(Duration::from_secs(n)));
        assert_eq!(len("250ms"), Ok(Some(Duration::from_millis(250))));
        assert_eq!(len("90s"), secs(90));
        assert_eq!(len("5m"), secs(300));
        assert_eq!(len("12h"), secs(12 * 3600));
        assert_eq!(len("30d"), secs(30 * 86_400));
        assert_eq!(len("1w"), secs(7 * 86_400));
        assert_eq!(len("0s"), secs(0));
        assert_eq!(
            parse_length("2d").unwrap(),
            Length {
                count: 2,
                unit: TimeUnit::Day
            }
        );
    }

    #[test]
    fn what_is_not_a_length_says_why() {
        assert_eq!(parse_length("7"), Err(LengthError::NoUnit(7)));
        assert_eq!(parse_length(""), Err(LengthError::NotANumber));
        assert_eq!(parse_length("soon"), Err(LengthError::NotANumber));
        assert_eq!(parse_length("-5m"), Err(LengthError::NotANumber));
        assert_eq!(parse_length("+5m"), Err(LengthError::NotANumber));
        assert_eq!(parse_length(" 5m"), Err(LengthError::NotANumber));
        assert_eq!(
            parse_length("5 minutes"),
            Err(LengthError::UnknownUnit(" minutes".into()))
        );
        assert_eq!(
            parse_length("5y"),
            Err(LengthError::UnknownUnit("y".into()))
        );
        assert_eq!(
            parse_length("99999999999999999999s"),
            Err(LengthError::TooLong)
        );
        // fits the count, not the milliseconds
        assert_eq!(len("99999999999999999d"), Ok(None));
    }

    #[test]
    fn sizes_with_and_without_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert_eq!(parse_size("8m"), Ok(8 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        for bad in ["", "K", "lots", "-1", "+1K", "1.5M", "1T", " 1K"] {
            assert_eq!(parse_size(bad), Err(SizeError::NotASize), "{bad:?}");
        }
        assert_eq!(
            parse_size("18446744073709551615M"),
            Err(SizeError::TooLarge)
        );
        assert_eq!(parse_size("99999999999999999999"), Err(SizeError::TooLarge));
    }
}
