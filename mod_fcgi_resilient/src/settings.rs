//! The module's directives as plain data: parsing of each argument, the per-directory merge
//! Apache users expect (an inner section overrides what it sets and inherits the rest), and
//! the resolved policy a request runs with.

use crate::backoff::BackoffBounds;
use crate::duration::{format_duration, parse_duration};
use std::time::Duration;

pub const DEFAULT_BUDGET: Duration = Duration::from_secs(10);
pub const DEFAULT_RETRY_AFTER_SECS: u32 = 5;

/// One configuration section's settings; `None` means "not set here, inherit".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SectionSettings {
    pub enabled: Option<bool>,
    pub budget: Option<Duration>,
    pub backoff: Option<BackoffBounds>,
    pub max_waiting: Option<u32>,
    pub retry_idempotent: Option<bool>,
    /// `Some(0)` is "FcgiResilientRetryAfter off".
    pub retry_after_secs: Option<u32>,
    pub max_body_spool: Option<u64>,
    /// FcgiResilientSpoolChunkedBody: read a body without a Content-Length whole before the
    /// first connect and give PHP its Content-Length (`body_framing`).
    pub spool_chunked_body: Option<bool>,
}

impl SectionSettings {
    pub fn merged_with(self, inner: SectionSettings) -> SectionSettings {
        SectionSettings {
            enabled: inner.enabled.or(self.enabled),
            budget: inner.budget.or(self.budget),
            backoff: inner.backoff.or(self.backoff),
            max_waiting: inner.max_waiting.or(self.max_waiting),
            retry_idempotent: inner.retry_idempotent.or(self.retry_idempotent),
            retry_after_secs: inner.retry_after_secs.or(self.retry_after_secs),
            max_body_spool: inner.max_body_spool.or(self.max_body_spool),
            spool_chunked_body: inner.spool_chunked_body.or(self.spool_chunked_body),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(false)
    }

    /// FcgiResilientSpoolChunkedBody, Off unless set.
    pub fn spools_chunked_body(&self) -> bool {
        self.spool_chunked_body.unwrap_or(false)
    }

    pub fn resolve(&self, default_max_waiting: u32) -> Policy {
        Policy {
            budget: self.budget.unwrap_or(DEFAULT_BUDGET),
            backoff: self.backoff.unwrap_or(BackoffBounds::DEFAULT),
            max_waiting: self.max_waiting.unwrap_or(default_max_waiting),
            retry_idempotent: self.retry_idempotent.unwrap_or(false),
            retry_after_secs: self.retry_after_secs.unwrap_or(DEFAULT_RETRY_AFTER_SECS),
            max_body_spool: self.max_body_spool.unwrap_or(crate::body_spool::DEFAULT_CHILD_LIMIT),
        }
    }
}

/// What one request runs with once every section has been merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub budget: Duration,
    pub backoff: BackoffBounds,
    pub max_waiting: u32,
    pub retry_idempotent: bool,
    pub retry_after_secs: u32,
    /// Bytes of request bodies the waiting requests of one child may hold.
    pub max_body_spool: u64,
}

impl Policy {
    /// What the retry policy needs of these settings, for a request with `budget` left.
    pub fn limits(&self, budget: Duration) -> crate::retry::RetryLimits {
        crate::retry::RetryLimits {
            budget,
            backoff: self.backoff,
            max_waiting: self.max_waiting,
            retry_dropped: self.retry_idempotent,
        }
    }
}

/// Leaves a quarter of the server's threads that a waiting request can hold (MaxRequestWorkers,
/// plus mod_http2's workers where it is loaded) free for static files during a long outage;
/// the cap counts waiting requests of all child processes together.
pub fn default_max_waiting(threads_that_can_wait: u32) -> u32 {
    (threads_that_can_wait.saturating_mul(3) / 4).max(1)
}

/// A directive's name and the message Apache shows after "Syntax error on line N of FILE:".
fn directive_error(directive: &str, problem: impl std::fmt::Display) -> String {
    format!("{directive}: {problem}")
}

pub fn parse_on_off(directive: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(directive_error(directive, format!("'{value}' must be On or Off"))),
    }
}

pub fn parse_budget(directive: &str, value: &str) -> Result<Duration, String> {
    let budget = parse_duration(value).map_err(|e| directive_error(directive, e))?;
    if budget.is_zero() {
        return Err(directive_error(directive, format!("'{value}' must be longer than zero")));
    }
    if budget > Duration::from_secs(3600) {
        return Err(directive_error(directive, format!("'{value}' is longer than 1h")));
    }
    Ok(budget)
}

pub fn parse_backoff(directive: &str, min: &str, max: &str) -> Result<BackoffBounds, String> {
    let min_delay = parse_duration(min).map_err(|e| directive_error(directive, e))?;
    let max_delay = parse_duration(max).map_err(|e| directive_error(directive, e))?;
    BackoffBounds::new(min_delay, max_delay)
        .map_err(|problem| directive_error(directive, format!("'{min} {max}': {problem}")))
}

pub fn parse_max_waiting(directive: &str, value: &str) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
        _ => Err(directive_error(directive, format!("'{value}' must be a whole number from 1 to 100000"))),
    }
}

pub fn parse_retry_after(directive: &str, value: &str) -> Result<u32, String> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(0);
    }
    match value.parse::<u32>() {
        Ok(n) if (1..=86_400).contains(&n) => Ok(n),
        _ => Err(directive_error(directive, format!("'{value}' must be a number of seconds from 1 to 86400, or Off"))),
    }
}

/// A size in bytes, with an optional K, M or G (powers of 1024), as httpd's own size
/// directives read them.
pub fn parse_body_spool(directive: &str, value: &str) -> Result<u64, String> {
    let (digits, unit) = match value.char_indices().last() {
        Some((at, unit)) if unit.is_ascii_alphabetic() => (&value[..at], unit.to_ascii_uppercase()),
        _ => (value, 'B'),
    };
    let factor: u64 = match unit {
        'B' => 1,
        'K' => 1 << 10,
        'M' => 1 << 20,
        'G' => 1 << 30,
        _ => return Err(directive_error(directive, format!("'{value}': the unit must be K, M or G"))),
    };
    match digits.parse::<u64>().ok().and_then(|n| n.checked_mul(factor)) {
        Some(bytes) if bytes >= 64 << 10 => Ok(bytes),
        _ => Err(directive_error(directive, format!("'{value}' must be a size of at least 64K (e.g. 256M, 1G)"))),
    }
}

impl Policy {
    pub fn describe(&self) -> String {
        format!(
            "budget {}, backoff {}..{}, at most {} waiting server-wide",
            format_duration(self.budget),
            format_duration(self.backoff.min),
            format_duration(self.backoff.max),
            self.max_waiting
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_spool_sizes() {
        assert_eq!(parse_body_spool("D", "1G"), Ok(1 << 30));
        assert_eq!(parse_body_spool("D", "256m"), Ok(256 << 20));
        assert_eq!(parse_body_spool("D", "65536"), Ok(65536));
        assert_eq!(
            parse_body_spool("FcgiResilientMaxBodySpool", "1T"),
            Err("FcgiResilientMaxBodySpool: '1T': the unit must be K, M or G".to_string())
        );
        assert!(parse_body_spool("D", "10K").is_err(), "less than one body's memory share");
        assert!(parse_body_spool("D", "lots").is_err());
    }

    #[test]
    fn inner_section_overrides_only_what_it_sets() {
        let server =
            SectionSettings { enabled: Some(true), budget: Some(Duration::from_secs(30)), ..Default::default() };
        let directory = SectionSettings { enabled: Some(false), ..Default::default() };
        let merged = server.merged_with(directory);
        assert_eq!(merged.enabled, Some(false));
        assert_eq!(merged.budget, Some(Duration::from_secs(30)));
        let spooling = SectionSettings { spool_chunked_body: Some(true), ..Default::default() };
        assert!(server.merged_with(spooling).spools_chunked_body(), "a <Location> turns spooling on");
        assert!(spooling.merged_with(directory).spools_chunked_body(), "and an inner section inherits it");
    }

    #[test]
    fn unset_everywhere_means_off_with_defaults() {
        let merged = SectionSettings::default().merged_with(SectionSettings::default());
        assert!(!merged.is_enabled());
        assert!(!merged.spools_chunked_body(), "stock framing of chunked bodies unless asked");
        let policy = merged.resolve(18);
        assert_eq!(policy.budget, DEFAULT_BUDGET);
        assert_eq!(policy.backoff, BackoffBounds::DEFAULT);
        assert_eq!(policy.max_waiting, 18);
        assert!(!policy.retry_idempotent);
        assert_eq!(policy.retry_after_secs, DEFAULT_RETRY_AFTER_SECS);
    }

    /// The commented directives of the shipped configurations are the real defaults: an admin
    /// who uncomments one changes nothing.
    #[test]
    fn the_shipped_configurations_state_the_real_defaults() {
        let shipped = [
            include_str!("../../httpd-conf/debian/fcgi_resilient.conf"),
            include_str!("../../httpd-conf/rhel/10-fcgi_resilient.conf"),
        ];
        for text in shipped {
            let mut seen = 0;
            for line in text.lines().map(str::trim).filter_map(|line| line.strip_prefix("#FcgiResilient")) {
                let words: Vec<&str> = line.split_whitespace().collect();
                let directive = format!("FcgiResilient{}", words[0]);
                let default = SectionSettings::default().resolve(8192);
                match words[0] {
                    "Timeout" => assert_eq!(parse_budget(&directive, words[1]), Ok(default.budget)),
                    "Backoff" => assert_eq!(parse_backoff(&directive, words[1], words[2]), Ok(default.backoff)),
                    "MaxWaiting" => assert_eq!(parse_max_waiting(&directive, words[1]), Ok(default.max_waiting)),
                    "RetryIdempotent" => {
                        assert_eq!(parse_on_off(&directive, words[1]), Ok(default.retry_idempotent))
                    }
                    "RetryAfter" => assert_eq!(parse_retry_after(&directive, words[1]), Ok(default.retry_after_secs)),
                    "MaxBodySpool" => assert_eq!(parse_body_spool(&directive, words[1]), Ok(default.max_body_spool)),
                    "SpoolChunkedBody" => assert_eq!(
                        parse_on_off(&directive, words[1]),
                        Ok(SectionSettings::default().spools_chunked_body())
                    ),
                    other => panic!("a shipped directive this test does not know: {other}"),
                }
                seen += 1;
            }
            assert_eq!(seen, 7, "every tunable directive is shown");
        }
    }

    #[test]
    fn default_cap_leaves_threads_free() {
        assert_eq!(default_max_waiting(400), 300, "event's default MaxRequestWorkers");
        assert_eq!(default_max_waiting(8), 6, "prefork with MaxRequestWorkers 8: two children stay free");
        assert_eq!(default_max_waiting(64), 48);
        assert_eq!(default_max_waiting(1), 1);
        assert_eq!(default_max_waiting(0), 1);
    }

    #[test]
    fn on_off_is_case_insensitive_and_names_bad_values() {
        assert_eq!(parse_on_off("FcgiResilient", "ON"), Ok(true));
        assert_eq!(parse_on_off("FcgiResilient", "off"), Ok(false));
        let error = parse_on_off("FcgiResilient", "maybe").unwrap_err();
        assert!(error.contains("FcgiResilient") && error.contains("'maybe'"), "{error}");
    }

    #[test]
    fn budget_errors_name_directive_and_value() {
        let error = parse_budget("FcgiResilientTimeout", "10x").unwrap_err();
        assert!(error.starts_with("FcgiResilientTimeout:") && error.contains("'10x'"), "{error}");
        assert!(parse_budget("FcgiResilientTimeout", "0").is_err());
        assert_eq!(parse_budget("FcgiResilientTimeout", "1500ms"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn backoff_rejects_min_above_max() {
        let error = parse_backoff("FcgiResilientBackoff", "50ms", "10ms").unwrap_err();
        assert!(error.contains("'50ms 10ms'"), "{error}");
        assert!(parse_backoff("FcgiResilientBackoff", "5ms", "1s").is_ok());
    }

    #[test]
    fn max_waiting_must_be_positive() {
        for bad in ["-1", "0", "many", "1e3"] {
            let error = parse_max_waiting("FcgiResilientMaxWaiting", bad).unwrap_err();
            assert!(error.contains(&format!("'{bad}'")), "{error}");
        }
        assert_eq!(parse_max_waiting("FcgiResilientMaxWaiting", "12"), Ok(12));
    }

    #[test]
    fn retry_after_accepts_off() {
        assert_eq!(parse_retry_after("FcgiResilientRetryAfter", "Off"), Ok(0));
        assert_eq!(parse_retry_after("FcgiResilientRetryAfter", "30"), Ok(30));
        assert!(parse_retry_after("FcgiResilientRetryAfter", "0").is_err());
    }
}
