//! What one request carries across its handler runs, suspensions and resumptions, whichever
//! driver waits for it (its worker thread, or the waiting thread while it is suspended): the
//! handler runs, the drops and the probes that its give-up line reports and its repeat limit
//! counts. Typed and kept with the initial request (`ffi/request.rs`), not in notes parsed back.

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WaitRecord {
    /// Runs of mod_proxy_fcgi's handler for this request.
    pub attempts: u32,
    /// Runs the backend dropped before any response (PHP-FPM going down, or a crashing script).
    pub drops: u32,
    /// Probes of the backend while this request waited.
    pub probes: u32,
}
