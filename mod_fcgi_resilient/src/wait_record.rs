//! What one request carries across its handler runs, suspensions, resumptions and redirects,
//! whichever driver waits for it (its worker thread, or the waiting thread while it is
//! suspended): its deadline, the handler runs, drops and probes that its give-up line reports
//! and its repeat limit counts, and what the scheme handler and the suspending handler tell each
//! other. Typed and kept with the initial request (`ffi/request.rs`), not in notes parsed back.

use crate::probe::BackendAddress;
use std::time::SystemTime;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WaitRecord {
    /// When its budget ends, set by its first wait: its later runs (ErrorDocument, redirects,
    /// the next balancer member, a resumed run) wait at most until then (`shared_budget`).
    pub deadline: Option<SystemTime>,
    /// The backend a run asked this request be suspended for; taken by the suspending side.
    pub suspend_for: Option<BackendAddress>,
    /// That run ended with a drop: the backend is given `retry::DELAY_AFTER_A_DROP` first.
    pub after_a_drop: bool,
    /// It has been suspended: when resumed, its handler phase runs without suspending it anew.
    pub resumed: bool,
    /// Runs of mod_proxy_fcgi's handler for this request.
    pub attempts: u32,
    /// Runs the backend dropped before any response (PHP-FPM going down, or a crashing script).
    pub drops: u32,
    /// Probes of the backend while this request waited.
    pub probes: u32,
}
