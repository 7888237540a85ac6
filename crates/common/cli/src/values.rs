//! Go `flag` values and Go formatting the CLIs reproduce.

/// Parses a Go `strconv.ParseBool` value, as Go's `flag` does for `-flag=value`.
pub fn go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("parse error: invalid boolean value {s:?}")),
    }
}

/// Parses a Go integer flag value (decimal, `0x`/`0o`/`0b` prefixes, `_` separators), as
/// `flag.IntVar` does through `strconv.ParseInt(s, 0, …)`.
pub fn go_i64(s: &str) -> Result<i64, String> {
    let bad = || format!("parse error: invalid value {s:?}");
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (radix, digits) = match digits.get(..2) {
        Some("0x" | "0X") => (16, &digits[2..]),
        Some("0o" | "0O") => (8, &digits[2..]),
        Some("0b" | "0B") => (2, &digits[2..]),
        _ if digits.len() > 1 && digits.starts_with('0') => (8, &digits[1..]),
        _ => (10, digits),
    };
    let cleaned: String = digits.chars().filter(|&c| c != '_').collect();
    if cleaned.is_empty() {
        return Err(bad());
    }
    let magnitude = i128::from_str_radix(&cleaned, radix).map_err(|_| bad())?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).map_err(|_| bad())
}

/// [`go_i64`] narrowed to `i32` (Go's `int` flags feed `int32` proto fields).
pub fn go_i32(s: &str) -> Result<i32, String> {
    let v = go_i64(s)?;
    i32::try_from(v).map_err(|_| format!("parse error: value out of range {s:?}"))
}

/// Parses a Go `time.ParseDuration` string (`90s`, `1h30m`, `1.5h`, `-2m`, `0`) into
/// nanoseconds.
pub fn go_duration(s: &str) -> Result<i128, String> {
    let bad = || format!("time: invalid duration {s:?}");
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration {s:?}"))?;
        let (number, tail) = rest.split_at(number_len);
        if number.is_empty() || number == "." {
            return Err(bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            _ => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        total += value * scale;
        rest = tail;
    }
    if total > i64::MAX as f64 {
        return Err(bad());
    }
    #[allow(clippy::cast_possible_truncation)] // bounded above
    let nanos = total.round() as i128;
    Ok(if negative { -nanos } else { nanos })
}

/// `msg` followed by the singular or plural noun, as SPIRE's `Pluralizer`.
pub fn pluralize(count: i64, singular: &str, plural: &str) -> String {
    format!("{count} {}", if count == 1 { singular } else { plural })
}

/// Go's `%q`: a double-quoted string with Go escapes (printable Unicode kept).
pub use spire_id::go_fmt::quote as go_quote;

/// Go's `time.Time.String()` of a UTC instant: `2006-01-02 15:04:05 +0000 UTC`.
pub fn go_utc_time(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} +0000 UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => unix.to_string(),
    }
}

/// Go's `t.UTC().Format(time.RFC3339)` of a Unix time: `2006-01-02T15:04:05Z`.
pub fn go_rfc3339_utc(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => unix.to_string(),
    }
}

/// Go's `time.Duration.String()`: `8.623255ms`, `1.5s`, `2m3.5s`, `0s`.
pub fn go_duration_string(d: std::time::Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    // Below one second Go picks the largest unit that keeps the integer part non-zero.
    let fraction = |value: u128, unit: u128, suffix: &str| {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            return format!("{whole}{suffix}");
        }
        let digits = unit.ilog10() as usize;
        let frac = format!("{rest:0digits$}");
        format!("{whole}.{}{suffix}", frac.trim_end_matches('0'))
    };
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return fraction(nanos, 1_000, "µs");
    }
    if nanos < 1_000_000_000 {
        return fraction(nanos, 1_000_000, "ms");
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = nanos / 60_000_000_000 % 60;
    let seconds = fraction(nanos % 60_000_000_000, 1_000_000_000, "s");
    match (hours, minutes) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_values() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(go_bool(t), Ok(true));
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(go_bool(f), Ok(false));
        }
        assert!(go_bool("yes").is_err());
        assert_eq!(go_i64("600"), Ok(600));
        assert_eq!(go_i64("-5"), Ok(-5));
        assert_eq!(go_i64("0x10"), Ok(16));
        assert!(go_i64("1h").is_err());
        assert!(go_i32("3000000000").is_err());
        assert_eq!(go_duration("90s"), Ok(90_000_000_000));
        assert_eq!(go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(go_duration("0"), Ok(0));
        assert_eq!(go_duration("-2m"), Ok(-120_000_000_000));
        assert_eq!(
            go_duration("10"),
            Err("time: missing unit in duration \"10\"".into())
        );
        assert!(go_duration("5d").is_err());
    }

    #[test]
    fn go_duration_strings() {
        use std::time::Duration;
        assert_eq!(go_duration_string(Duration::ZERO), "0s");
        assert_eq!(go_duration_string(Duration::from_nanos(999)), "999ns");
        assert_eq!(
            go_duration_string(Duration::from_nanos(8_623_255)),
            "8.623255ms"
        );
        assert_eq!(go_duration_string(Duration::from_micros(1_500)), "1.5ms");
        assert_eq!(go_duration_string(Duration::from_nanos(250_000)), "250µs");
        assert_eq!(go_duration_string(Duration::from_millis(1_500)), "1.5s");
        assert_eq!(go_duration_string(Duration::from_millis(123_500)), "2m3.5s");
        assert_eq!(go_duration_string(Duration::from_secs(3_600)), "1h0m0s");
    }

    #[test]
    fn pluralize_picks_the_noun() {
        assert_eq!(pluralize(1, "entry", "entries"), "1 entry");
        assert_eq!(pluralize(0, "entry", "entries"), "0 entries");
    }
}
