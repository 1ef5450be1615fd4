//! The `fcgi-resilient-status` page: a table for people, and with `?auto` the key: value
//! lines mod_status uses for scripts.

use crate::stats::{BackendSnapshot, TableReport};
use std::fmt::Write;

pub fn wants_machine_format(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|part| part == "auto"))
}

pub fn render_auto(report: &TableReport) -> String {
    let mut page = String::new();
    let backends = &report.backends;
    let total = |pick: fn(&BackendSnapshot) -> u64| backends.iter().map(pick).sum::<u64>();
    let _ = writeln!(page, "Backends: {}", backends.len());
    let _ = writeln!(page, "BackendCapacity: {}", report.backend_capacity);
    let _ = writeln!(page, "TotalConnectFailures: {}", total(|b| b.connect_failures));
    let _ = writeln!(page, "TotalRetries: {}", total(|b| b.retries));
    let _ = writeln!(page, "TotalRecovered: {}", total(|b| b.recovered));
    let _ = writeln!(page, "TotalGaveUp: {}", total(|b| b.gave_up));
    let _ = writeln!(page, "TotalClientGone: {}", total(|b| b.client_gone));
    let _ = writeln!(page, "TotalCutByBackend: {}", total(|b| b.cut_by_backend));
    // All waiting requests, also those of a backend the table had no room for.
    let _ = writeln!(page, "TotalWaiting: {}", report.waiting);
    let _ = writeln!(page, "WaitingCapacity: {}", report.waiting_capacity);
    let _ = writeln!(page, "DefaultMaxWaiting: {}", report.default_max_waiting);
    let _ = writeln!(page, "UntrackedEvents: {}", report.untracked_events);
    let _ = writeln!(page, "TableFullSince: {}", report.first_untracked_unix_ms / 1000);
    for backend in backends {
        let _ = writeln!(page, "Backend: {}", backend.backend);
        let _ = writeln!(page, "ConnectFailures: {}", backend.connect_failures);
        let _ = writeln!(page, "Retries: {}", backend.retries);
        let _ = writeln!(page, "Recovered: {}", backend.recovered);
        let _ = writeln!(page, "GaveUp: {}", backend.gave_up);
        let _ = writeln!(page, "ClientGone: {}", backend.client_gone);
        let _ = writeln!(page, "CutByBackend: {}", backend.cut_by_backend);
        let _ = writeln!(page, "Waiting: {}", backend.waiting);
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

fn escape_html(text: &str) -> String {
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
            longest_wait_ms: 2011,
            last_failure_errno: 2,
            last_failure_unix_ms: 1_764_000_000_000,
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
    fn auto_is_recognised_among_other_arguments() {
        assert!(wants_machine_format(Some("auto")));
        assert!(wants_machine_format(Some("refresh=5&auto")));
        assert!(!wants_machine_format(Some("automatic")));
        assert!(!wants_machine_format(None));
    }
}
