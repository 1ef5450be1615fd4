//! The `fcgi-resilient-status` page: a table for people, with `?auto` the key: value lines
//! mod_status uses for scripts, and with `?format=prometheus` the metrics (`prometheus`).
//! Also the module's section of mod_status's own /server-status page.

use crate::stats::{BackendSnapshot, TableReport};
use std::fmt::Write;

/// What the query string of a status request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageFormat {
    Html,
    /// `?auto`, as mod_status spells it.
    Auto,
    /// `?format=prometheus`: the text exposition format.
    Prometheus,
}

impl PageFormat {
    pub fn from_query(query: Option<&str>) -> PageFormat {
        let asks = |wanted: &str| query.is_some_and(|q| q.split('&').any(|part| part == wanted));
        if asks("format=prometheus") {
            PageFormat::Prometheus
        } else if asks("auto") {
            PageFormat::Auto
        } else {
            PageFormat::Html
        }
    }
}

/// The server-wide lines of the `?auto` pages, in order. mod_status's page shows the same
/// names with the `FcgiResilient` prefix.
pub fn server_totals(report: &TableReport) -> Vec<(&'static str, u64)> {
    let backends = &report.backends;
    let total = |pick: fn(&BackendSnapshot) -> u64| backends.iter().map(pick).sum::<u64>();
    vec![
        ("Backends", backends.len() as u64),
        ("BackendCapacity", report.backend_capacity as u64),
        ("TotalConnectFailures", total(|b| b.connect_failures)),
        ("TotalRetries", total(|b| b.retries)),
        ("TotalRecovered", total(|b| b.recovered)),
        ("TotalGaveUp", total(|b| b.gave_up)),
        ("TotalClientGone", total(|b| b.client_gone)),
        ("TotalCutByBackend", total(|b| b.cut_by_backend)),
        ("TotalAnsweredAtOnce", total(|b| b.answered_at_once)),
        // All waiting requests, also those of a backend the table had no room for.
        ("TotalWaiting", report.waiting),
        ("OldestWaitingMs", report.oldest_waiting_ms),
        ("WaitingCapacity", report.waiting_capacity as u64),
        ("DefaultMaxWaiting", u64::from(report.default_max_waiting)),
        ("UntrackedEvents", report.untracked_events),
        ("TableFullSince", report.first_untracked_unix_ms / 1000),
    ]
}

pub fn render_auto(report: &TableReport) -> String {
    let mut page = String::new();
    for (name, value) in server_totals(report) {
        let _ = writeln!(page, "{name}: {value}");
    }
    for backend in &report.backends {
        let _ = writeln!(page, "Backend: {}", backend.backend);
        let _ = writeln!(page, "ConnectFailures: {}", backend.connect_failures);
        let _ = writeln!(page, "Retries: {}", backend.retries);
        let _ = writeln!(page, "Recovered: {}", backend.recovered);
        let _ = writeln!(page, "GaveUp: {}", backend.gave_up);
        let _ = writeln!(page, "ClientGone: {}", backend.client_gone);
        let _ = writeln!(page, "CutByBackend: {}", backend.cut_by_backend);
        let _ = writeln!(page, "AnsweredAtOnce: {}", backend.answered_at_once);
        let _ = writeln!(page, "RefusingSince: {}", backend.refusing_since_unix_ms / 1000);
        let _ = writeln!(page, "Waiting: {}", backend.waiting);
        let _ = writeln!(page, "OldestWaitingMs: {}", backend.oldest_waiting_ms);
        let _ = writeln!(page, "LongestWaitMs: {}", backend.longest_wait_ms);
        let _ = writeln!(page, "LastFailureErrno: {}", backend.last_failure_errno);
        let _ = writeln!(page, "LastFailureTime: {}", backend.last_failure_unix_ms / 1000);
    }
    page
}

pub fn render_html(report: &TableReport) -> String {
    let backends = &report.backends;
    let mut page = String::from(
        "<!DOCTYPE html>\n<html><head><title>mod_fcgi_resilient status</title></head><body>\n\
         <h1>mod_fcgi_resilient status</h1>\n",
    );
    let _ = writeln!(
        page,
        "<p>Waiting for a backend now: {} (server-wide; at most {} unless FcgiResilientMaxWaiting says \
         otherwise, and never more than {}).</p>",
        report.waiting, report.default_max_waiting, report.waiting_capacity
    );
    if backends.is_empty() {
        page.push_str("<p>No backend has refused a connection since Apache started.</p>\n");
    } else {
        page.push_str(
            "<table border=\"1\">\n<tr><th>Backend</th><th>Connect failures</th><th>Retries</th>\
             <th>Recovered</th><th>Gave up (503)</th><th>Client left while waiting</th>\
             <th>Cut by backend</th><th>Waiting now</th><th>Longest wait</th><th>Last failure</th></tr>\n",
        );
        for b in backends {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ms</td><td>{}</td></tr>",
                escape_html(&b.backend),
                b.connect_failures,
                b.retries,
                b.recovered,
                b.gave_up,
                b.client_gone,
                b.cut_by_backend,
                b.waiting,
                b.longest_wait_ms,
                describe_failure(b)
            );
        }
        page.push_str("</table>\n");
    }
    let _ = writeln!(page, "<p>Backends counted: {} of at most {}.</p>", backends.len(), report.backend_capacity);
    if report.untracked_events > 0 {
        let _ = writeln!(
            page,
            "<p>The table is full since {} (Unix time): {} events of further backends were not counted \
             (those requests were still retried).</p>",
            report.first_untracked_unix_ms / 1000,
            report.untracked_events
        );
    }
    page.push_str("</body></html>\n");
    page
}

/// The module's section of mod_status's /server-status: the server-wide counters, as
/// `FcgiResilient<Name>: value` lines for `?auto` (`short`), else a few lines of HTML that
/// point to the module's own page for the per-backend table.
pub fn render_server_status_section(report: &TableReport, short: bool) -> String {
    let mut section = String::new();
    if short {
        for (name, value) in server_totals(report) {
            let _ = writeln!(section, "FcgiResilient{name}: {value}");
        }
        return section;
    }
    let total = |pick: fn(&BackendSnapshot) -> u64| report.backends.iter().map(pick).sum::<u64>();
    section.push_str("<hr />\n<h2>mod_fcgi_resilient</h2>\n<dl>\n");
    let oldest = match report.waiting {
        0 => String::new(),
        _ => format!(" (the longest for {} ms)", report.oldest_waiting_ms),
    };
    let _ = writeln!(
        section,
        "<dt>Waiting for a backend now: {}{oldest}; at most {} unless FcgiResilientMaxWaiting says otherwise</dt>",
        report.waiting, report.default_max_waiting
    );
    let _ = writeln!(
        section,
        "<dt>Since Apache started: {} recovered, {} gave up (503), {} clients left while waiting, {} cut by \
         backend; {} connect failures, {} retries</dt>",
        total(|b| b.recovered),
        total(|b| b.gave_up),
        total(|b| b.client_gone),
        total(|b| b.cut_by_backend),
        total(|b| b.connect_failures),
        total(|b| b.retries)
    );
    let _ = writeln!(
        section,
        "<dt>Backends that refused a connection: {} (per backend: SetHandler fcgi-resilient-status)</dt>",
        report.backends.len()
    );
    if report.untracked_events > 0 {
        let _ = writeln!(section, "<dt>Events of backends not counted (table full): {}</dt>", report.untracked_events);
    }
    section.push_str("</dl>\n");
    section
}

fn describe_failure(backend: &BackendSnapshot) -> String {
    if backend.last_failure_unix_ms == 0 {
        return "none".to_string();
    }
    let errno = nix::errno::Errno::from_raw(backend.last_failure_errno);
    format!(
        "{} (errno {}) at {} (Unix time)",
        errno.desc(),
        backend.last_failure_errno,
        backend.last_failure_unix_ms / 1000
    )
}

pub fn escape_html(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            other => other.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TableReport {
        TableReport {
            backends: sample_backends(),
            backend_capacity: 4096,
            untracked_events: 0,
            first_untracked_unix_ms: 0,
            waiting: 2,
            oldest_waiting_ms: 1500,
            waiting_capacity: 8192,
            default_max_waiting: 6,
        }
    }

    fn sample_backends() -> Vec<BackendSnapshot> {
        vec![BackendSnapshot {
            backend: "unix:/run/php/<x>.sock".into(),
            connect_failures: 3,
            retries: 7,
            recovered: 3,
            gave_up: 1,
            client_gone: 4,
            cut_by_backend: 5,
            waiting: 2,
            oldest_waiting_ms: 1500,
            longest_wait_ms: 2011,
            last_failure_errno: 2,
            last_failure_unix_ms: 1_764_000_000_000,
            answered_at_once: 6,
            refusing_since_unix_ms: 1_764_000_100_000,
        }]
    }

    #[test]
    fn auto_format_is_key_value_lines() {
        let page = render_auto(&sample());
        for line in [
            "Backends: 1",
            "TotalRetries: 7",
            "Backend: unix:/run/php/<x>.sock",
            "GaveUp: 1",
            "ClientGone: 4",
            "CutByBackend: 5",
            "TotalClientGone: 4",
            "LongestWaitMs: 2011",
            "LastFailureErrno: 2",
            "LastFailureTime: 1764000000",
            "TotalWaiting: 2",
            "BackendCapacity: 4096",
            "DefaultMaxWaiting: 6",
            "UntrackedEvents: 0",
            "OldestWaitingMs: 1500",
            "TotalAnsweredAtOnce: 6",
            "AnsweredAtOnce: 6",
            "RefusingSince: 1764000100",
        ] {
            assert!(page.lines().any(|l| l == line), "missing {line:?} in\n{page}");
        }
    }

    #[test]
    fn html_escapes_backend_names() {
        let page = render_html(&sample());
        assert!(page.contains("unix:/run/php/&lt;x&gt;.sock"));
        assert!(page.contains("No such file or directory"));
    }

    #[test]
    fn a_full_table_is_said_on_both_pages() {
        let full = TableReport { untracked_events: 12, first_untracked_unix_ms: 1_764_000_000_000, ..sample() };
        let html = render_html(&full);
        assert!(html.contains("full since 1764000000") && html.contains("12 events"), "{html}");
        assert!(!render_html(&sample()).contains("full since"));
        let auto = render_auto(&full);
        assert!(auto.lines().any(|l| l == "TableFullSince: 1764000000"), "{auto}");
    }

    #[test]
    fn formats_are_recognised_among_other_arguments() {
        assert_eq!(PageFormat::from_query(Some("auto")), PageFormat::Auto);
        assert_eq!(PageFormat::from_query(Some("refresh=5&auto")), PageFormat::Auto);
        assert_eq!(PageFormat::from_query(Some("automatic")), PageFormat::Html);
        assert_eq!(PageFormat::from_query(None), PageFormat::Html);
        assert_eq!(PageFormat::from_query(Some("format=prometheus")), PageFormat::Prometheus);
        assert_eq!(PageFormat::from_query(Some("auto&format=prometheus")), PageFormat::Prometheus);
        assert_eq!(PageFormat::from_query(Some("format=prometheusx")), PageFormat::Html);
    }

    #[test]
    fn the_server_status_section_carries_the_totals_of_the_auto_page_with_a_prefix() {
        let report = sample();
        let section = render_server_status_section(&report, true);
        let auto = render_auto(&report);
        let totals: Vec<&str> = auto.lines().take_while(|l| !l.starts_with("Backend: ")).collect();
        let prefixed: Vec<String> = totals.iter().map(|l| format!("FcgiResilient{l}")).collect();
        assert_eq!(section.lines().collect::<Vec<_>>(), prefixed);
        for line in ["FcgiResilientTotalRecovered: 3", "FcgiResilientTotalWaiting: 2", "FcgiResilientTotalGaveUp: 1"] {
            assert!(section.lines().any(|l| l == line), "missing {line:?} in\n{section}");
        }
        assert!(!section.contains('<'), "no HTML in the short form: {section}");
    }

    #[test]
    fn the_server_status_section_in_html_names_the_module_and_its_counts() {
        let html = render_server_status_section(&sample(), false);
        assert!(html.starts_with("<hr />\n<h2>mod_fcgi_resilient</h2>"), "{html}");
        assert!(html.contains("Waiting for a backend now: 2 (the longest for 1500 ms)"), "{html}");
        assert!(
            html.contains("3 recovered, 1 gave up (503), 4 clients left while waiting, 5 cut by backend"),
            "{html}"
        );
        assert!(!html.contains("not counted"), "{html}");
        let idle = render_server_status_section(&TableReport { waiting: 0, oldest_waiting_ms: 0, ..sample() }, false);
        assert!(idle.contains("Waiting for a backend now: 0; at most 6"), "{idle}");
    }
}
