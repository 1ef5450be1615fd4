//! Durations written the way httpd's own directives take them (`ap_timeout_parameter_parse`):
//! a plain number is seconds, and `ms`, `s`, `mi` and `h` are the accepted suffixes.

use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    pub value: String,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' is not a duration (a whole number of seconds, or with a unit: 500ms, 10s, 2mi, 1h)", self.value)
    }
}

pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let error = || DurationError { value: text.to_string() };
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() {
        return Err(error());
    }
    let amount: u64 = number.parse().map_err(|_| error())?;
    let millis_per_unit: u64 = match unit {
        "" | "s" => 1_000,
        "ms" => 1,
        "mi" => 60_000,
        "h" => 3_600_000,
        _ => return Err(error()),
    };
    amount.checked_mul(millis_per_unit).map(Duration::from_millis).ok_or_else(error)
}

/// Renders a duration the way an admin would write it back into the config.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_number_is_seconds() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
    }

    #[test]
    fn units_match_httpd() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2mi"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn rejects_what_httpd_rejects() {
        for bad in ["", "10x", "ms", "-1", "1.5", " 10", "10 s", "10m", "99999999999999999999"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn error_names_the_value() {
        let message = parse_duration("10x").unwrap_err().to_string();
        assert!(message.contains("'10x'"), "{message}");
    }

    #[test]
    fn formats_back_to_config_syntax() {
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }
}
