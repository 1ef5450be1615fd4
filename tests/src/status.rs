//! The module's status page, `?auto` form, read the way a monitoring script would.

use std::collections::BTreeMap;
use std::net::SocketAddr;

/// A Location that serves the status page to local clients, as the shipped conf does.
pub const STATUS_LOCATION: &str =
    "<Location /fcgi-resilient-status>\n    SetHandler fcgi-resilient-status\n    Require local\n</Location>\n";

/// The `Total*` lines (and `Backends`) of the page, as numbers.
pub fn totals(target: SocketAddr) -> BTreeMap<String, u64> {
    let response = crate::http::get(target, "/fcgi-resilient-status?auto").expect("status page request");
    assert_eq!(response.status, 200, "status page: {}", response.text());
    response
        .text()
        .lines()
        .take_while(|line| !line.starts_with("Backend:"))
        .filter_map(|line| line.split_once(": "))
        .filter_map(|(key, value)| Some((key.to_string(), value.trim().parse().ok()?)))
        .collect()
}

/// One total; 0 when the page does not show it.
pub fn total(target: SocketAddr, key: &str) -> u64 {
    totals(target).get(key).copied().unwrap_or(0)
}

/// Waits until `key` reaches `value` (e.g. every request of a test is waiting).
pub fn wait_for_total(target: SocketAddr, key: &str, value: u64) {
    crate::wait_until(&format!("status page {key}: {value}"), std::time::Duration::from_secs(30), || {
        (total(target, key) == value).then_some(())
    });
}

/// Loads mod_status and serves `/server-status` (its counts of connections, `?auto`).
pub fn serve_server_status(config: &mut crate::ApacheConfig) {
    if !config.modules.contains(&"status") {
        config.modules.push("status");
    }
    config.site += "<Location /server-status>\n    SetHandler server-status\n</Location>\n";
}

/// mod_status's count of this server's connections (the asking one included); needs
/// [`serve_server_status`].
pub fn connections(target: SocketAddr) -> u64 {
    let page = crate::http::get(target, "/server-status?auto").expect("server-status").text();
    page.lines().find_map(|line| line.strip_prefix("ConnsTotal: ")?.trim().parse().ok()).unwrap_or(u64::MAX)
}

/// The error log's lines saying that a child died of a signal (AH00052 … exit signal …).
pub fn crashes(error_log: &str) -> Vec<&str> {
    error_log.lines().filter(|line| line.contains("exit signal")).collect()
}

/// No child crashed, then no request waits and no connection is open but the asking one.
pub fn assert_nothing_left(target: SocketAddr, apache: &crate::Apache) {
    let no_crash = || {
        let log = apache.error_log();
        let crashes = crashes(&log);
        assert!(crashes.is_empty(), "{} children crashed:\n{}\n{log}", crashes.len(), crashes.join("\n"));
    };
    no_crash();
    crate::wait_until("no request waiting", std::time::Duration::from_secs(30), || {
        (total(target, "TotalWaiting") == 0).then_some(())
    });
    crate::wait_until("only the asking connection open", std::time::Duration::from_secs(30), || {
        (connections(target) <= 1).then_some(())
    });
    no_crash();
}
