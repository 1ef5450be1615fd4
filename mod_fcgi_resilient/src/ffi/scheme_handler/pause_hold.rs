//! A request for a paused backend is held: it is not sent, the backend is not asked (no probe,
//! no refusal counted), and it waits under the same budget, cap and client watch as any
//! waiting request, and goes on when the
//! pause ends (waiting on as usual if the backend then refuses). While nothing is paused this
//! costs one atomic load per handler run.

use super::HttpdBackend;
use crate::ffi::log::{self, mark};
use crate::ffi::pause_watch;
use crate::probe::ProbeOutcome;
use crate::retry::Attempt;

impl HttpdBackend<'_> {
    /// Instead of running mod_proxy_fcgi's handler for a paused backend: the request waits (its
    /// body read first, as before any wait).
    pub(super) fn held_by_pause(&mut self) -> Option<Attempt> {
        let until = self.paused_until()?;
        let address = self.address_text();
        self.request.log(log::INFO, mark!(), || {
            format!("backend {address} is paused until {} (Unix ms): the request waits", until)
        });
        Some(Attempt::NotRun)
    }

    /// A paused backend is not asked: the request is held, as a suspended one is, without a
    /// probe or a refusal counted.
    pub(super) fn probe_held_by_pause(&mut self) -> Option<ProbeOutcome> {
        self.paused_until()?;
        Some(ProbeOutcome::Held)
    }

    fn paused_until(&mut self) -> Option<u64> {
        if !pause_watch::any() {
            return None;
        }
        pause_watch::paused_until(&self.address_text())
    }
}
