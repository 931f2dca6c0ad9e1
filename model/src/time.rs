//! Event and processing time: millisecond timestamps and durations, as in Spark and Flink.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A point in time: milliseconds since the Unix epoch (may be negative).
pub type Timestamp = i64;

/// The smallest timestamp; elements without an event time carry it (Beam's `TIMESTAMP_MIN_VALUE`).
pub const MIN_TIMESTAMP: Timestamp = i64::MIN / 2;
/// The largest timestamp; a watermark at this value means "no more data" (end of input).
pub const MAX_TIMESTAMP: Timestamp = i64::MAX / 2;

/// A span of time in milliseconds.
///
/// Serialized as a whole number of milliseconds; parsed from text as `500ms`, `10s`, `1m`,
/// `2h`, `1d` or a plain number of seconds (Beam YAML's convention).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Duration(pub i64);

impl Duration {
    /// Zero length.
    pub const ZERO: Duration = Duration(0);

    /// A duration of `ms` milliseconds.
    pub const fn from_millis(ms: i64) -> Self {
        Duration(ms)
    }
    /// A duration of `s` seconds.
    pub const fn from_secs(s: i64) -> Self {
        Duration(s * 1000)
    }
    /// A duration of `m` minutes.
    pub const fn from_mins(m: i64) -> Self {
        Duration(m * 60_000)
    }
    /// The length in milliseconds.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Parses `500ms`, `10s`, `1.5s`, `1m`, `2h`, `1d`, or a plain number of seconds.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let (num, unit_ms) = if let Some(n) = t.strip_suffix("ms") {
            (n, 1.0)
        } else if let Some(n) = t.strip_suffix('s') {
            (n, 1000.0)
        } else if let Some(n) = t.strip_suffix('m') {
            (n, 60_000.0)
        } else if let Some(n) = t.strip_suffix('h') {
            (n, 3_600_000.0)
        } else if let Some(n) = t.strip_suffix('d') {
            (n, 86_400_000.0)
        } else {
            (t, 1000.0)
        };
        let value: f64 = num.trim().parse().map_err(|_| {
            format!("`{text}` is not a duration (use e.g. `500ms`, `10s`, `1m`, `2h` or a number of seconds)")
        })?;
        if !value.is_finite() || value < 0.0 {
            return Err(format!(
                "`{text}` is not a duration: it must be a non-negative number"
            ));
        }
        let ms = value * unit_ms;
        if ms.fract() != 0.0 {
            return Err(format!("`{text}` is not a whole number of milliseconds"));
        }
        Ok(Duration(ms as i64))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms != 0 && ms % 86_400_000 == 0 {
            write!(f, "{}d", ms / 86_400_000)
        } else if ms != 0 && ms % 3_600_000 == 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms != 0 && ms % 60_000 == 0 {
            write!(f, "{}m", ms / 60_000)
        } else if ms % 1000 == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_beam_yaml_durations() {
        assert_eq!(Duration::parse("500ms").unwrap(), Duration(500));
        assert_eq!(Duration::parse("10s").unwrap(), Duration(10_000));
        assert_eq!(Duration::parse("1m").unwrap(), Duration(60_000));
        assert_eq!(Duration::parse("2h").unwrap(), Duration(7_200_000));
        assert_eq!(Duration::parse("30").unwrap(), Duration(30_000));
        assert_eq!(Duration::parse("1.5s").unwrap(), Duration(1_500));
        assert!(Duration::parse("ten seconds").is_err());
        assert!(Duration::parse("-1s").is_err());
    }

    #[test]
    fn displays_in_the_largest_whole_unit() {
        assert_eq!(Duration(60_000).to_string(), "1m");
        assert_eq!(Duration(1_500).to_string(), "1500ms");
        assert_eq!(Duration(0).to_string(), "0s");
    }
}
