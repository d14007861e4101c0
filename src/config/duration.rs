//! Human durations in the cluster file: `"100ms"`, `"1s"`, `"1.5s"`, `"2m"`.

use serde::{Deserialize, Deserializer, de};
use std::time::Duration;

/// A duration written the way operators write it; deserializes from a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text).map(HumanDuration).map_err(de::Error::custom)
    }
}

/// Parses a decimal number followed by a unit: us, ms, s, m or h.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{text}` has no unit: write for example \"100ms\" or \"1s\""))?;
    let (number, unit) = text.split_at(split);
    let nanos_per_unit: u128 = match unit.trim() {
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use us, ms, s, m or h"
            ));
        }
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(format!(
            "`{text}` is not a duration: write for example \"100ms\""
        ));
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole
            .parse()
            .map_err(|_| format!("`{text}` is too large"))?
    };
    let mut nanos = whole
        .checked_mul(nanos_per_unit)
        .ok_or_else(|| format!("`{text}` is too large"))?;
    let mut scale = nanos_per_unit;
    for digit in fraction.bytes() {
        scale /= 10;
        nanos += u128::from(digit - b'0') * scale;
    }
    if scale == 0 && !fraction.is_empty() {
        return Err(format!("`{text}` is more precise than a nanosecond"));
    }
    let nanos = u64::try_from(nanos).map_err(|_| format!("`{text}` is too large"))?;
    Ok(Duration::from_nanos(nanos))
}

/// Formats a duration the way the cluster file writes it.
pub fn format(duration: Duration) -> String {
    let micros = duration.as_micros();
    if micros.is_multiple_of(1_000_000) {
        format!("{}s", micros / 1_000_000)
    } else if micros.is_multiple_of(1_000) {
        format!("{}ms", micros / 1_000)
    } else if micros >= 1_000 {
        format!("{:.3}ms", micros as f64 / 1_000.0)
    } else {
        format!("{micros}us")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_operators_write() {
        assert_eq!(parse("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("0.01s"), Ok(Duration::from_millis(10)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse(" 10 ms "), Ok(Duration::from_millis(10)));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        assert!(parse("100").unwrap_err().contains("no unit"));
        assert!(parse("1 fortnight").unwrap_err().contains("unknown unit"));
        assert!(parse("ms").is_err());
        assert!(parse("1.2.3s").is_err());
        assert!(parse("99999999999999999999999h").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for text in ["100ms", "1s", "40950ms", "10ms", "1.500ms", "250us"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }
}
