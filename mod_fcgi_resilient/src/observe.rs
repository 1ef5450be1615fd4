//! Learning what happened inside one call of mod_proxy_fcgi's handler.
//!
//! A 503 from mod_proxy_fcgi does not say whether the connect failed (safe to repeat) or the
//! request reached PHP first (never safe to repeat). mod_proxy reports each step it fails in
//! its error log with a fixed message number, in the calling thread, before the handler
//! returns: AH01079 is logged exactly when `ap_proxy_connect_backend` failed, AH00940 when the
//! worker was refused before any connect, and AH01073/AH01074 when writing BEGIN_REQUEST or
//! PARAMS failed — PHP-FPM starts a script only after the empty PARAMS record that ends them,
//! and the request body is sent only after it, so none of these can have run the script or
//! consumed the body. While this module runs the handler it records those reports for the
//! current thread; everything else logged passes by untouched.

use crate::retry::Attempt;
use std::cell::RefCell;

const HANDLER_OK: i32 = 0;
const BAD_GATEWAY: i32 = 502;
const SERVICE_UNAVAILABLE: i32 = 503;

/// What mod_proxy reported during one delegated attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptReport {
    /// AH01079: the connect to the backend failed; nothing was sent to it.
    pub connect_failed: bool,
    /// AH00940: the worker was in error state and refused before any connect.
    pub worker_refused: bool,
    /// AH01073/AH01074: writing the request's header records failed (e.g. broken pipe).
    pub request_not_delivered: bool,
    /// AH00959: the connect failure put the (balancer member) worker into error state.
    pub worker_disabled: bool,
    /// The errno of the failed connect (AH02454 Unix socket, AH00957 TCP).
    pub connect_errno: Option<i32>,
}

impl AttemptReport {
    /// True when PHP cannot have started the script: repeating the attempt is always safe.
    pub fn script_never_started(&self) -> bool {
        self.connect_failed || self.worker_refused || self.request_not_delivered
    }

    fn record(&mut self, message_format: &str, status: i32) {
        let number = message_format.get(..7).unwrap_or("");
        match number {
            "AH01079" => self.connect_failed = true,
            "AH00940" => self.worker_refused = true,
            "AH00959" => self.worker_disabled = true,
            "AH01073" | "AH01074" => self.request_not_delivered = true,
            "AH02454" | "AH00957" if status != 0 => self.connect_errno = Some(status),
            _ => {}
        }
    }
}

/// How a handler run ended, for the retry loop. `response_started` is true once any byte
/// went to the client; `safe_without_body` for GET/HEAD/OPTIONS without a request body.
pub fn classify_attempt(
    status: i32,
    report: &AttemptReport,
    response_started: bool,
    safe_without_body: bool,
) -> Attempt {
    if status == HANDLER_OK || response_started {
        Attempt::Finished(status)
    } else if report.script_never_started() {
        Attempt::NotConnected(status)
    } else if safe_without_body && (status == SERVICE_UNAVAILABLE || status == BAD_GATEWAY) {
        Attempt::DroppedBeforeResponse(status)
    } else {
        Attempt::Finished(status)
    }
}

thread_local! {
    static CURRENT_ATTEMPT: RefCell<Option<AttemptReport>> = const { RefCell::new(None) };
}

/// Runs `attempt` and returns what mod_proxy reported from this thread while it ran.
pub fn observe<R>(attempt: impl FnOnce() -> R) -> (R, AttemptReport) {
    CURRENT_ATTEMPT.with(|current| *current.borrow_mut() = Some(AttemptReport::default()));
    let outcome = attempt();
    let report = CURRENT_ATTEMPT.with(|current| current.borrow_mut().take()).unwrap_or_default();
    (outcome, report)
}

/// Called for every error log line; cheap when no attempt is being observed on this thread.
pub fn record_log_line(message_format: &str, status: i32) {
    CURRENT_ATTEMPT.with(|current| {
        if let Ok(mut slot) = current.try_borrow_mut() {
            if let Some(report) = slot.as_mut() {
                report.record(message_format, status);
            }
        }
    });
}

/// True when this thread is inside `observe`: lets the FFI side skip all work otherwise.
pub fn is_observing() -> bool {
    CURRENT_ATTEMPT.with(|current| current.try_borrow().map(|slot| slot.is_some()).unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_failure_is_recognised_with_errno() {
        let ((), report) = observe(|| {
            record_log_line("AH02454: %s: attempt to connect to Unix domain socket %s (%s) failed", 111);
            record_log_line("AH01079: failed to make connection to backend: %s", 0);
        });
        assert!(report.connect_failed);
        assert!(report.script_never_started());
        assert_eq!(report.connect_errno, Some(111));
    }

    #[test]
    fn dispatch_errors_do_not_count_as_connect_failures() {
        let ((), report) = observe(|| {
            record_log_line("AH01075: Error dispatching request to %s: %s%s%s", 104);
        });
        assert!(!report.script_never_started());
    }

    #[test]
    fn disabled_worker_is_reported() {
        let ((), report) = observe(|| {
            record_log_line("AH00940: %s: disabled connection for (%s)", 0);
            record_log_line("AH00959: ap_proxy_connect_backend disabling worker for (%s) for %s", 0);
        });
        assert!(report.worker_refused && report.worker_disabled);
    }

    #[test]
    fn lines_outside_an_attempt_are_ignored() {
        record_log_line("AH01079: failed to make connection to backend: %s", 0);
        assert!(!is_observing());
        let ((), report) = observe(|| assert!(is_observing()));
        assert_eq!(report, AttemptReport::default());
        assert!(!is_observing());
    }

    fn connect_failure() -> AttemptReport {
        AttemptReport { connect_failed: true, connect_errno: Some(111), ..Default::default() }
    }

    #[test]
    fn connect_failure_is_retryable_unless_the_response_started() {
        assert_eq!(classify_attempt(503, &connect_failure(), false, false), Attempt::NotConnected(503));
        assert_eq!(classify_attempt(503, &connect_failure(), true, false), Attempt::Finished(503));
    }

    #[test]
    fn a_503_after_connecting_is_final_for_requests_with_a_body() {
        assert_eq!(classify_attempt(503, &AttemptReport::default(), false, false), Attempt::Finished(503));
        assert_eq!(classify_attempt(503, &AttemptReport::default(), false, true), Attempt::DroppedBeforeResponse(503));
        assert_eq!(classify_attempt(504, &AttemptReport::default(), false, true), Attempt::Finished(504));
    }

    #[test]
    fn success_is_final() {
        assert_eq!(classify_attempt(0, &AttemptReport::default(), true, true), Attempt::Finished(0));
    }

    #[test]
    fn other_threads_do_not_leak_in() {
        let ((), report) = observe(|| {
            std::thread::spawn(|| record_log_line("AH01079: failed", 0)).join().unwrap();
        });
        assert!(!report.connect_failed);
    }
}
