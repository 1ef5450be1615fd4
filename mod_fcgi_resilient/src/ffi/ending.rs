//! How a request that waited ends, written once for both ways of waiting (in its thread:
//! `scheme_handler`; suspended: `suspend::resume`): its counters on the status page, its
//! Retry-After, its log line and its status.

use super::log::{self, mark};
use super::request::Request;
use crate::ffi::status_code::Status;
use crate::give_up::give_up_message;
use crate::retry::GiveUpReason;
use crate::settings::Policy;
use crate::stats::BackendSlot;
use nix::errno::Errno;
use std::ffi::CStr;
use std::time::Duration;

/// Set when this module added Retry-After, so that a balancer's next member, served in the
/// same request, does not send it with its answer.
pub const RETRY_AFTER_NOTE: &CStr = c"fcgi_resilient-retry-after";

/// A request that waited for `address` for `waited`.
pub struct Ending<'a, 'r> {
    pub request: &'a Request<'r>,
    pub address: &'a str,
    pub counters: Option<&'static BackendSlot>,
    pub waited: Duration,
}

impl Ending<'_, '_> {
    fn waited_ms(&self) -> u64 {
        self.waited.as_millis() as u64
    }

    /// The backend answered after the wait; `how` says how it waited.
    pub fn served(&self, status: Status, how: &str) -> Status {
        if let Some(counters) = self.counters.filter(|_| status == Status::OK) {
            counters.recovered(self.waited_ms());
        }
        let (address, waited_ms) = (self.address, self.waited_ms());
        self.request
            .log(log::INFO, mark!(), || format!("backend {address} answered after {waited_ms} ms of waiting{how}"));
        status
    }

    /// The client left while the request waited: nothing was sent to the backend, nothing is
    /// written to the client.
    pub fn client_gone(&self) -> Status {
        if let Some(counters) = self.counters {
            counters.client_left(self.waited_ms());
        }
        self.request.mark_client_gone();
        let (address, waited_ms) = (self.address, self.waited_ms());
        self.request.log(log::INFO, mark!(), || {
            format!(
                "the client closed its connection after {waited_ms} ms of waiting for backend {address}; \
                 the request was not sent to the backend"
            )
        });
        Status::CLIENT_GONE
    }

    /// 503 with Retry-After, counted as given up, one error line; `suffix` is added to it.
    pub fn gave_up(
        &self,
        reason: GiveUpReason,
        budget: Duration,
        last_errno: Option<Errno>,
        policy: &Policy,
        suffix: &str,
    ) -> Status {
        if let Some(counters) = self.counters {
            counters.gave_up(self.waited_ms());
        }
        set_retry_after(self.request, policy);
        let (attempts, probes) = self.request.with_wait_record(|record| (record.wait.attempts, record.wait.probes));
        self.request.log(log::ERROR, mark!(), || {
            let message =
                give_up_message(reason, self.address, (attempts, probes), (self.waited, budget), last_errno, policy);
            format!("{message}{suffix}")
        });
        Status::SERVICE_UNAVAILABLE
    }
}

pub fn set_retry_after(request: &Request, policy: &Policy) {
    if policy.retry_after_secs > 0 {
        request.set_retry_after(policy.retry_after_secs);
        request.set_note(RETRY_AFTER_NOTE, c"1");
    }
}
