//! Durations on the command line, in httpd's syntax through the parser the module uses for
//! `FcgiResilientTimeout`: `500ms`, `10s`, `2mi`, `1h`, or a whole number of seconds. So a
//! value can be copied between the helper and Apache's configuration and mean the same.
//!
//! One exception, for scripts: earlier helpers read `2m` (and `2min`) as two minutes, and
//! the man page showed `2m`. httpd refuses `2m`; the helper still reads it as minutes, but
//! says so on stderr, naming `2mi`, instead of silently differing from Apache.

use std::time::Duration;

use fcgi_resilient_common::duration::parse_duration;

/// Bounded so that `Instant` arithmetic can never overflow on a silly value.
const LONGEST: Duration = Duration::from_secs(7 * 24 * 3600);

pub fn parse(text: &str) -> Result<Duration, String> {
    let duration = match parse_duration(text.trim()) {
        Ok(duration) => duration,
        Err(error) => match legacy_minutes(text.trim()) {
            Some((minutes, duration)) => {
                eprintln!(
                    "fcgi-resilient-helper: warning: `{}` read as {minutes} minute(s) as before; httpd's syntax, \
                     which FcgiResilientTimeout and this helper take, writes it `{minutes}mi`",
                    text.trim()
                );
                duration
            }
            None if text.contains('.') => {
                return Err(format!("{error}; no fractions: write 1500ms rather than 1.5s"));
            }
            None => return Err(error.to_string()),
        },
    };
    if duration > LONGEST {
        return Err(format!("`{text}` is too long a duration (at most 7 days)"));
    }
    Ok(duration)
}

/// `2m` or `2min`: minutes as earlier helpers read them.
fn legacy_minutes(text: &str) -> Option<(u64, Duration)> {
    let digits = text.strip_suffix("min").or_else(|| text.strip_suffix('m'))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let minutes: u64 = digits.parse().ok()?;
    Some((minutes, Duration::from_secs(minutes.checked_mul(60)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn httpd_syntax() {
        assert_eq!(parse("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse("2mi").unwrap(), Duration::from_secs(120));
        assert_eq!(parse("1h").unwrap(), Duration::from_secs(3600));
    }

    #[test]
    fn minutes_as_earlier_helpers_wrote_them_still_mean_minutes() {
        assert_eq!(parse("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse("2min").unwrap(), Duration::from_secs(120));
    }

    #[test]
    fn rejects_garbage_naming_the_forms() {
        for bad in ["", "s", "10x", "-1", "1e999", "99999999h", "1.2.3", "m", "8d"] {
            let error = parse(bad).unwrap_err();
            assert!(error.contains("2mi") || error.contains("7 days"), "{bad}: {error}");
        }
        assert!(parse("1.5").unwrap_err().contains("1500ms"));
    }
}
