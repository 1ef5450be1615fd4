//! The status page's `?format=prometheus`: Prometheus text exposition format 0.0.4.
//!
//! Per backend (label `backend`, the address the status page shows): counters of what the
//! module did since the shared table was made (they survive `apachectl graceful`, so a
//! scrape sees no reset there), and gauges of what waits now. Server-wide: the waiting
//! requests of every backend (also those the table has no room for) and the caps on them.
//! Time is in seconds, as Prometheus' conventions ask.

use crate::stats::{BackendSnapshot, TableReport};
use std::fmt::Write;

pub const CONTENT_TYPE: &std::ffi::CStr = c"text/plain; version=0.0.4; charset=utf-8";

enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A number as the format writes it: integers exactly, durations with a fraction.
enum Value {
    Count(u64),
    Seconds { ms: u64 },
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Count(count) => write!(f, "{count}"),
            Value::Seconds { ms } => write!(f, "{}.{:03}", ms / 1000, ms % 1000),
        }
    }
}

/// One metric family: its name, type and help, and how to read its value from a backend's
/// row (per-backend families) or from the whole report (server-wide ones).
struct Family<Source> {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    value: fn(&Source) -> Value,
}

const fn counter<Source>(name: &'static str, help: &'static str, value: fn(&Source) -> Value) -> Family<Source> {
    Family { name, kind: Kind::Counter, help, value }
}

const fn gauge<Source>(name: &'static str, help: &'static str, value: fn(&Source) -> Value) -> Family<Source> {
    Family { name, kind: Kind::Gauge, help, value }
}

const BACKEND_METRICS: &[Family<BackendSnapshot>] = &[
    counter(
        "fcgi_resilient_connect_failures_total",
        "Connections to the backend that failed (refused, or its socket missing).",
        |b| Value::Count(b.connect_failures),
    ),
    counter(
        "fcgi_resilient_retries_total",
        "Handler runs repeated after the backend refused or dropped a request.",
        |b| Value::Count(b.retries),
    ),
    counter("fcgi_resilient_recovered_total", "Requests served after waiting for the backend.", |b| {
        Value::Count(b.recovered)
    }),
    counter(
        "fcgi_resilient_gave_up_total",
        "Requests answered 503 after all (wait budget spent, or too many waiting).",
        |b| Value::Count(b.gave_up),
    ),
    counter("fcgi_resilient_client_gone_total", "Requests whose client left while they waited.", |b| {
        Value::Count(b.client_gone)
    }),
    counter(
        "fcgi_resilient_cut_by_backend_total",
        "Requests the backend dropped after accepting them (what the module cannot save).",
        |b| Value::Count(b.cut_by_backend),
    ),
    counter(
        "fcgi_resilient_answered_at_once_total",
        "Requests answered 503 without waiting: the backend had refused for longer than their budget.",
        |b| Value::Count(b.answered_at_once),
    ),
    gauge(
        "fcgi_resilient_refusing_seconds",
        "How long the backend has refused without a break; 0 when it is not refusing.",
        |b| Value::Seconds { ms: refusing_ms(b) },
    ),
    gauge("fcgi_resilient_waiting_requests", "Requests waiting for the backend now.", |b| Value::Count(b.waiting)),
    gauge(
        "fcgi_resilient_oldest_waiting_seconds",
        "How long the request that waits longest for the backend has waited so far; 0 when none waits.",
        |b| Value::Seconds { ms: b.oldest_waiting_ms },
    ),
    gauge(
        "fcgi_resilient_longest_wait_seconds",
        "Longest wait of a request that has finished waiting, since the table was made.",
        |b| Value::Seconds { ms: b.longest_wait_ms },
    ),
    gauge(
        "fcgi_resilient_last_failure_timestamp_seconds",
        "When a connection to the backend last failed (Unix time).",
        |b| Value::Seconds { ms: b.last_failure_unix_ms },
    ),
];

const SERVER_METRICS: &[Family<TableReport>] = &[
    gauge(
        "fcgi_resilient_server_waiting_requests",
        "Requests waiting for any backend now, server-wide (also backends not in the table).",
        |r| Value::Count(r.waiting),
    ),
    gauge(
        "fcgi_resilient_server_oldest_waiting_seconds",
        "How long the request that waits longest, server-wide, has waited so far; 0 when none waits.",
        |r| Value::Seconds { ms: r.oldest_waiting_ms },
    ),
    gauge(
        "fcgi_resilient_waiting_limit",
        "Cap on waiting requests, server-wide, where FcgiResilientMaxWaiting sets none (3/4 of MaxRequestWorkers).",
        |r| Value::Count(u64::from(r.default_max_waiting)),
    ),
    gauge(
        "fcgi_resilient_waiting_capacity",
        "Most requests that can wait at once, whatever the caps say (waiter records).",
        |r| Value::Count(r.waiting_capacity as u64),
    ),
    gauge("fcgi_resilient_backends", "Backends in the table (those that refused a connection once).", |r| {
        Value::Count(r.backends.len() as u64)
    }),
    gauge("fcgi_resilient_backend_capacity", "Backends the table has room for.", |r| {
        Value::Count(r.backend_capacity as u64)
    }),
    counter(
        "fcgi_resilient_untracked_events_total",
        "Events of backends the full table could not count (their requests still waited).",
        |r| Value::Count(r.untracked_events),
    ),
];

pub fn render_prometheus(report: &TableReport) -> String {
    let mut page = String::new();
    for metric in BACKEND_METRICS {
        write_family_header(&mut page, metric.name, &metric.kind, metric.help);
        for backend in &report.backends {
            let label = escape_label_value(&backend.backend);
            let _ = writeln!(page, "{}{{backend=\"{label}\"}} {}", metric.name, (metric.value)(backend));
        }
    }
    for metric in SERVER_METRICS {
        write_family_header(&mut page, metric.name, &metric.kind, metric.help);
        let _ = writeln!(page, "{} {}", metric.name, (metric.value)(report));
    }
    page
}

fn write_family_header(page: &mut String, name: &str, kind: &Kind, help: &str) {
    let _ = writeln!(page, "# HELP {name} {help}");
    let _ = writeln!(page, "# TYPE {name} {}", kind.name());
}

/// A label value as the format requires: backslash, double quote and line feed escaped. A
/// backend's address comes from the admin's config and may hold any of them.
fn refusing_ms(backend: &BackendSnapshot) -> u64 {
    match backend.refusing_since_unix_ms {
        0 => 0,
        since => crate::stats::unix_millis_now().saturating_sub(since),
    }
}

pub fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(name: &str) -> BackendSnapshot {
        BackendSnapshot {
            backend: name.into(),
            connect_failures: 3,
            retries: 7,
            recovered: 2,
            gave_up: 1,
            client_gone: 4,
            cut_by_backend: 5,
            waiting: 2,
            oldest_waiting_ms: 1_250,
            longest_wait_ms: 2_011,
            last_failure_errno: 111,
            last_failure_unix_ms: 1_764_000_000_123,
            answered_at_once: 6,
            refusing_since_unix_ms: 0,
        }
    }

    fn report(backends: Vec<BackendSnapshot>) -> TableReport {
        TableReport {
            backends,
            backend_capacity: 4096,
            untracked_events: 0,
            first_untracked_unix_ms: 0,
            waiting: 3,
            oldest_waiting_ms: 40_005,
            waiting_capacity: 8192,
            default_max_waiting: 300,
        }
    }

    fn has_line(page: &str, line: &str) -> bool {
        page.lines().any(|l| l == line)
    }

    #[test]
    fn label_values_escape_backslash_quote_and_line_feed() {
        assert_eq!(escape_label_value("unix:/run/php/fpm.sock"), "unix:/run/php/fpm.sock");
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("line\nfeed"), r"line\nfeed");
        assert_eq!(escape_label_value("\\n"), r"\\n", "a backslash before n is not a line feed");
    }

    #[test]
    fn every_backend_counter_has_help_type_and_an_escaped_sample() {
        let page = render_prometheus(&report(vec![backend("unix:/run/php/fpm.sock"), backend("odd\"name\\\n")]));
        for (name, value) in [
            ("connect_failures", 3),
            ("retries", 7),
            ("recovered", 2),
            ("gave_up", 1),
            ("client_gone", 4),
            ("cut_by_backend", 5),
            ("answered_at_once", 6),
        ] {
            let family = format!("fcgi_resilient_{name}_total");
            assert!(has_line(&page, &format!("# TYPE {family} counter")), "{family} in\n{page}");
            assert!(page.lines().any(|l| l.starts_with(&format!("# HELP {family} "))), "{family}");
            let sample = format!("{family}{{backend=\"unix:/run/php/fpm.sock\"}} {value}");
            assert!(has_line(&page, &sample), "{sample} in\n{page}");
            let escaped = format!("{family}{{backend=\"odd\\\"name\\\\\\n\"}} {value}");
            assert!(has_line(&page, &escaped), "{escaped} in\n{page}");
        }
    }

    #[test]
    fn gauges_say_what_waits_now_per_backend_and_server_wide() {
        let page = render_prometheus(&report(vec![backend("b")]));
        for line in [
            "# TYPE fcgi_resilient_waiting_requests gauge",
            "fcgi_resilient_waiting_requests{backend=\"b\"} 2",
            "fcgi_resilient_oldest_waiting_seconds{backend=\"b\"} 1.250",
            "fcgi_resilient_longest_wait_seconds{backend=\"b\"} 2.011",
            "fcgi_resilient_last_failure_timestamp_seconds{backend=\"b\"} 1764000000.123",
            "# TYPE fcgi_resilient_server_waiting_requests gauge",
            "fcgi_resilient_server_waiting_requests 3",
            "fcgi_resilient_server_oldest_waiting_seconds 40.005",
            "fcgi_resilient_waiting_limit 300",
            "fcgi_resilient_waiting_capacity 8192",
            "fcgi_resilient_backends 1",
            "# TYPE fcgi_resilient_untracked_events_total counter",
            "fcgi_resilient_untracked_events_total 0",
        ] {
            assert!(has_line(&page, line), "missing {line:?} in\n{page}");
        }
    }

    #[test]
    fn each_family_is_declared_once_before_its_samples() {
        let page = render_prometheus(&report(vec![backend("a"), backend("b")]));
        let mut declared: Vec<&str> = Vec::new();
        for line in page.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(!declared.contains(&name), "{name} declared twice");
                declared.push(name);
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(declared.last(), Some(&name), "{line:?} outside its family");
            }
        }
        assert_eq!(declared.len(), BACKEND_METRICS.len() + SERVER_METRICS.len());
    }

    #[test]
    fn no_backend_yet_still_declares_every_family() {
        let page = render_prometheus(&report(Vec::new()));
        assert!(has_line(&page, "# TYPE fcgi_resilient_gave_up_total counter"), "{page}");
        assert!(!page.contains("backend=\""), "{page}");
        assert!(has_line(&page, "fcgi_resilient_backends 0"), "{page}");
    }

    #[test]
    fn help_texts_need_no_escaping() {
        let helps = BACKEND_METRICS.iter().map(|m| m.help).chain(SERVER_METRICS.iter().map(|m| m.help));
        for help in helps {
            assert!(!help.contains(['\\', '\n']), "{help:?}");
        }
    }
}
