//! One waiting budget per request, whatever httpd makes of it afterwards.
//!
//! A request that waited and was answered 503 can come back to the module as another request:
//! an `ErrorDocument 503` that is itself a PHP page, an internal redirect, a subrequest, the
//! next member of a balancer. Each would start a budget of its own and double the wait (a 1 s
//! budget answered after 2 s). The first wait writes its deadline into the initial request's
//! notes; every later run for that request waits at most until then.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The note, on the initial request, that holds the deadline in microseconds since the epoch.
pub const DEADLINE_NOTE: &std::ffi::CStr = c"fcgi_resilient-deadline";

/// The budget a run may use: its own, cut to what the first wait left. `now` is asked only
/// when there was a first wait, so the happy path reads no clock for it.
pub fn remaining(note: Option<&[u8]>, budget: Duration, now: impl FnOnce() -> SystemTime) -> Duration {
    let Some(deadline) = note.and_then(parse_micros) else { return budget };
    let deadline = UNIX_EPOCH + Duration::from_micros(deadline);
    budget.min(deadline.duration_since(now()).unwrap_or(Duration::ZERO))
}

/// The note's value for a wait that began at `started` with `budget`.
pub fn deadline_note(started: SystemTime, budget: Duration) -> String {
    let deadline = (started + budget).duration_since(UNIX_EPOCH).unwrap_or_default();
    deadline.as_micros().to_string()
}

fn parse_micros(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_request_that_never_waited_has_its_whole_budget() {
        assert_eq!(remaining(None, 10 * SECOND, SystemTime::now), 10 * SECOND);
    }

    #[test]
    fn a_later_run_gets_what_the_first_wait_left() {
        let started = UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let note = deadline_note(started, 3 * SECOND);
        assert_eq!(remaining(Some(note.as_bytes()), 10 * SECOND, || started + SECOND), 2 * SECOND);
        assert_eq!(remaining(Some(note.as_bytes()), SECOND, || started + SECOND), SECOND, "never more than its own");
    }

    #[test]
    fn an_error_page_after_a_spent_budget_waits_not_at_all() {
        let started = UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let note = deadline_note(started, SECOND);
        assert_eq!(remaining(Some(note.as_bytes()), SECOND, || started + SECOND), Duration::ZERO);
        assert_eq!(remaining(Some(note.as_bytes()), SECOND, || started + 5 * SECOND), Duration::ZERO);
    }

    #[test]
    fn a_garbled_note_is_ignored() {
        assert_eq!(remaining(Some(b"soon"), SECOND, SystemTime::now), SECOND);
    }
}
