//! What one request carries across its handler runs, suspensions, resumptions and redirects,
//! whichever driver waits for it (its worker thread, or the waiting thread while it is
//! suspended): its deadline, its policy state (`policy::Wait`: the handler runs, drops and
//! probes that its give-up line reports and its repeat limit counts), and what the scheme
//! handler and the suspending handler tell each other. Typed and kept with the initial request
//! (`ffi/request.rs`), not in notes parsed back.

use crate::policy::Wait;
use crate::probe::BackendAddress;
use std::time::SystemTime;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WaitRecord {
    /// When its budget ends, set by its first wait: its later runs (ErrorDocument, redirects,
    /// the next balancer member, a resumed run) wait at most until then (`shared_budget`).
    pub deadline: Option<SystemTime>,
    /// The backend a run asked this request be suspended for; taken by the suspending side.
    pub suspend_for: Option<BackendAddress>,
    /// It has been suspended: when resumed, its handler phase runs without suspending it anew.
    pub resumed: bool,
    /// Where the retry policy stands for this request, handed from driver to driver.
    pub wait: Wait,
}
