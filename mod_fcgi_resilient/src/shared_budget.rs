//! One waiting budget per request, whatever httpd makes of it afterwards.
//!
//! A request that waited and was answered 503 can come back to the module as another request:
//! an `ErrorDocument 503` that is itself a PHP page, an internal redirect, a subrequest, the
//! next member of a balancer. Each would start a budget of its own and double the wait (a 1 s
//! budget answered after 2 s). The first wait writes its deadline into the request's record
//! (`wait_record`, kept with the initial request); every later run waits at most until then.

use std::time::{Duration, SystemTime};

/// The budget a run may use: its own, cut to what the first wait left. `now` is asked only
/// when there was a first wait, so the happy path reads no clock for it.
pub fn remaining(deadline: Option<SystemTime>, budget: Duration, now: impl FnOnce() -> SystemTime) -> Duration {
    let Some(deadline) = deadline else { return budget };
    budget.min(deadline.duration_since(now()).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_request_that_never_waited_has_its_whole_budget() {
        assert_eq!(remaining(None, 10 * SECOND, SystemTime::now), 10 * SECOND);
    }

    #[test]
    fn a_later_run_gets_what_the_first_wait_left() {
        let started = UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let deadline = Some(started + 3 * SECOND);
        assert_eq!(remaining(deadline, 10 * SECOND, || started + SECOND), 2 * SECOND);
        assert_eq!(remaining(deadline, SECOND, || started + SECOND), SECOND, "never more than its own");
    }

    #[test]
    fn an_error_page_after_a_spent_budget_waits_not_at_all() {
        let started = UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let deadline = Some(started + SECOND);
        assert_eq!(remaining(deadline, SECOND, || started + SECOND), Duration::ZERO);
        assert_eq!(remaining(deadline, SECOND, || started + 5 * SECOND), Duration::ZERO);
    }
}
