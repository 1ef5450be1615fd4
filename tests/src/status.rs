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
