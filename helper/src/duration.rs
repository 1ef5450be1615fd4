//! Human durations for `--timeout`: `10s`, `500ms`, `2m`, or a plain number of seconds.

use std::time::Duration;

pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("invalid duration `{text}`: expected e.g. 10s, 500ms, 2m or 30"));
    }
    let value: f64 = num.parse().map_err(|_| format!("invalid duration `{text}`: `{num}` is not a number"))?;
    let factor = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("invalid duration `{text}`: unknown unit `{other}` (use ms, s, m or h)")),
    };
    let secs = value * factor;
    // Bounded so that Instant arithmetic can never overflow on silly input.
    if !secs.is_finite() || secs > 7.0 * 86400.0 {
        return Err(format!("invalid duration `{text}`: too large (at most 7 days)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("2m").unwrap(), Duration::from_secs(120));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "s", "10x", "-1", "1e999", "99999999h", "1.2.3"] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
    }
}
