//! The scheme handler that sits ahead of mod_proxy_fcgi's: for fcgi:// requests where
//! `FcgiResilient On` applies, it runs mod_proxy_fcgi's handler itself under the retry policy.
//!
//! Why this design: httpd 2.4 has no pre-connect hook, and mod_proxy_fcgi makes exactly one
//! connect attempt. Its handler is built to be called again for the same request (the
//! balancer does so): the request body it prefetched is kept in the request pool and reused,
//! and a failed connect has consumed nothing else. So running the handler again after a
//! failed connect is safe, and whether the connect failed is learned from mod_proxy's own
//! reports during the call (`observe`), never guessed from the status code.

use super::log::{self, mark};
use super::proxy::{self, SchemeCall};
use super::{dir_config, guard::guard, hooks, status_handler, sys, worker};
use crate::duration::format_duration;
use crate::known_down::KnownDown;
use crate::observe::{self, classify_attempt};
use crate::probe::{BackendAddress, ProbeOutcome, Prober, WaitEnd};
use crate::retry::{self, Attempt, Backend, GiveUpReason, Outcome, RetryLimits, Start};
use crate::settings::{default_max_waiting, Policy};
use crate::stats::{unix_millis_now, BackendSlot, StatsTable};
use crate::waiters::{per_child_limit, ServerWideGate};
use crate::waiting::WaitingCount;
use nix::errno::Errno;
use std::ffi::{c_char, c_int, CStr, CString};
use std::time::{Duration, Instant};

const DECLINED: c_int = sys::DECLINED as c_int;
const SERVICE_UNAVAILABLE: c_int = sys::HTTP_SERVICE_UNAVAILABLE as c_int;

/// Requests of this child process that are waiting for a backend right now: at most three
/// quarters of its threads may wait (see `per_child_limit`), and the whole cap is per child
/// only when the server-wide table could not be made.
static WAITING: WaitingCount = WaitingCount::new();

/// Backends this child process has seen refuse and not yet seen accept again.
static KNOWN_DOWN: KnownDown = KnownDown::new();

pub unsafe extern "C" fn handle(
    r: *mut sys::request_rec,
    worker: *mut sys::proxy_worker,
    conf: *mut sys::proxy_server_conf,
    url: *mut c_char,
    proxyname: *const c_char,
    proxyport: sys::apr_port_t,
) -> c_int {
    let call = SchemeCall { r, worker, conf, url, proxyname, proxyport };
    // SAFETY: called by mod_proxy's scheme_handler hook runner with live arguments.
    guard("the proxy scheme handler", sys::HTTP_INTERNAL_SERVER_ERROR as c_int, || unsafe { serve(call) })
}

unsafe fn serve(call: SchemeCall) -> c_int {
    // SAFETY: mod_proxy passes a NUL-terminated URL.
    let url = unsafe { CStr::from_ptr(call.url) }.to_bytes();
    if !url.get(..5).is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"fcgi:")) {
        return DECLINED;
    }
    // SAFETY: a live request inside the handler phase.
    let settings = unsafe { dir_config::for_request(call.r) };
    if !settings.is_enabled() {
        return DECLINED;
    }
    let policy = settings.resolve(default_max_waiting(hooks::max_request_workers()));
    let mut backend = HttpdBackend::new(call);
    let limits = RetryLimits {
        budget: policy.budget,
        backoff: policy.backoff,
        max_waiting: policy.max_waiting,
        retry_dropped: policy.retry_idempotent,
    };
    let start = if KNOWN_DOWN.any() && KNOWN_DOWN.contains(&backend.address_text()) {
        Start::WaitForBackend
    } else {
        Start::RunHandler
    };
    let seed = crate::backoff::seed_from_environment;
    let outcome = match status_handler::shared_table() {
        Some(table) => {
            let gate = ServerWideGate {
                records: table.waiters(),
                budget: policy.budget,
                // SAFETY: the call's arguments stay live for the whole handler call.
                backend_slot: || unsafe { backend_slot(table, &call) },
                per_child: per_child_limit(hooks::threads_per_child()).map(|limit| (&WAITING, limit)),
            };
            retry::serve(&mut backend, start, &limits, &gate, seed)
        }
        None => retry::serve(&mut backend, start, &limits, &WAITING, seed),
    };
    backend.conclude(outcome, &policy)
}

/// The counters slot of the request's backend, which its waiter record names.
unsafe fn backend_slot(table: &StatsTable, call: &SchemeCall) -> Option<usize> {
    // SAFETY: the caller's guarantee.
    let address = unsafe { backend_address(call) }.unwrap_or(BackendAddress::Unix(Default::default()));
    table.backend_index(&address.to_string())
}

/// One request's view of its backend, as the retry loop needs it.
struct HttpdBackend {
    call: SchemeCall,
    started: Instant,
    prober: Option<Prober>,
    /// The last probe found the backend accepting: a balancer member left in error state by
    /// the outage must be usable again before the handler runs.
    backend_accepting: bool,
    handler_runs: u32,
    probes: u32,
    /// Shared counters, looked up only once the backend has failed this request.
    counters: Option<&'static BackendSlot>,
    counted_connect_failure: bool,
}

impl HttpdBackend {
    fn new(call: SchemeCall) -> Self {
        HttpdBackend {
            call,
            started: Instant::now(),
            prober: None,
            backend_accepting: false,
            handler_runs: 0,
            probes: 0,
            counters: None,
            counted_connect_failure: false,
        }
    }

    fn counters(&mut self) -> Option<&'static BackendSlot> {
        if self.counters.is_none() {
            let address = self.address_text();
            self.counters = status_handler::shared_table().and_then(|table| table.backend(&address));
        }
        self.counters
    }

    fn count_connect_failure(&mut self, errno: Option<i32>) {
        self.counted_connect_failure = true;
        if let Some(counters) = self.counters() {
            counters.connect_failed(errno.unwrap_or(0), unix_millis_now());
        }
    }

    fn prober(&mut self) -> &mut Prober {
        let call = &self.call;
        self.prober.get_or_insert_with(|| {
            // SAFETY: worker, request and URL are live for the whole handler call.
            let address = unsafe { backend_address(call) };
            Prober::new(address.unwrap_or(BackendAddress::Unix(Default::default())))
        })
    }

    fn address_text(&mut self) -> String {
        self.prober().address().to_string()
    }

    /// Nothing of the response may have reached the client before a handler run is repeated.
    fn response_started(&self) -> bool {
        // SAFETY: a live request and its connection.
        unsafe {
            let r = &*self.call.r;
            r.sent_bodyct != 0 || r.bytes_sent != 0 || (*r.connection).aborted != 0
        }
    }

    fn is_safe_without_body(&self) -> bool {
        // SAFETY: a live request; method and header tables stay valid for its lifetime.
        unsafe {
            let r = &*self.call.r;
            let method = CStr::from_ptr(r.method).to_bytes();
            let header = |name: &CStr| {
                let value = sys::apr_table_get(r.headers_in, name.as_ptr());
                (!value.is_null()).then(|| CStr::from_ptr(value).to_bytes().to_vec())
            };
            matches!(method, b"GET" | b"HEAD" | b"OPTIONS")
                && header(c"Transfer-Encoding").is_none()
                && header(c"Content-Length").is_none_or(|length| length == b"0")
        }
    }

    fn conclude(mut self, outcome: Outcome, policy: &Policy) -> c_int {
        let r = self.call.r;
        let waited = self.started.elapsed();
        match outcome {
            Outcome::Served { status, waited: false, .. } => status,
            Outcome::Served { status, retries, waited: true } => {
                if let Some(counters) = self.counters() {
                    counters.recovered(waited.as_millis() as u64);
                }
                let address = self.address_text();
                // SAFETY: a live request.
                unsafe {
                    log::for_request(r, log::INFO, mark!(), || {
                        format!(
                            "backend {address} answered after {} ms of waiting and {retries} retr{}",
                            waited.as_millis(),
                            if retries == 1 { "y" } else { "ies" }
                        )
                    })
                };
                status
            }
            Outcome::GaveUp { reason, attempts, last_errno } => {
                if let Some(counters) = self.counters() {
                    counters.gave_up(waited.as_millis() as u64);
                }
                let (address, probes) = (self.address_text(), self.probes);
                // SAFETY: a live request.
                unsafe {
                    set_retry_after(r, policy.retry_after_secs);
                    log::for_request(r, log::ERROR, mark!(), || {
                        give_up_message(reason, &address, (attempts, probes), waited, last_errno, policy)
                    });
                }
                SERVICE_UNAVAILABLE
            }
        }
    }
}

impl Backend for HttpdBackend {
    fn run_handler(&mut self) -> Attempt {
        if std::mem::take(&mut self.backend_accepting) {
            // SAFETY: the worker mod_proxy chose for this request.
            unsafe { make_worker_usable(self.call.worker) };
        }
        self.handler_runs += 1;
        if self.handler_runs > 1 {
            if let Some(counters) = self.counters() {
                counters.retried();
            }
        }
        let call = &self.call;
        // SAFETY: inside the scheme_handler hook with its own arguments.
        let (status, report) = observe::observe(|| unsafe { proxy::run_handlers_after(handle, call) });
        if report.worker_disabled {
            // Our own refused connect put a balancer member in error state; while this request
            // waits the outage out, others must still reach this handler rather than fail at once.
            // SAFETY: as above.
            unsafe { make_worker_usable(self.call.worker) };
        }
        if report.connect_failed || report.worker_refused {
            KNOWN_DOWN.mark_down(&self.address_text());
        }
        if report.script_never_started() {
            self.count_connect_failure(report.connect_errno);
            let r = self.call.r;
            let errno = report.connect_errno.map(Errno::from_raw);
            // SAFETY: a live request.
            unsafe {
                log::for_request(r, log::DEBUG, mark!(), || match errno {
                    Some(errno) => format!("connect to the backend failed ({}); waiting for it", errno.desc()),
                    None => "the backend was not reached; waiting for it".to_string(),
                })
            };
        }
        // SAFETY: the worker mod_proxy chose for this request.
        if report.worker_refused && unsafe { worker_disabled_on_purpose(self.call.worker) } {
            return Attempt::Finished(status);
        }
        classify_attempt(status, &report, self.response_started(), self.is_safe_without_body())
    }

    fn probe(&mut self, patience: Duration) -> ProbeOutcome {
        self.probes += 1;
        let outcome = self.prober().probe(patience);
        if let ProbeOutcome::NotYet { recreated: true, .. } = outcome {
            let (r, address) = (self.call.r, self.address_text());
            // SAFETY: a live request.
            unsafe { log::for_request(r, log::DEBUG, mark!(), || format!("socket {address} was recreated")) };
        }
        if let ProbeOutcome::NotYet { errno, .. } = outcome {
            if !self.counted_connect_failure {
                // A request that skipped its first connect (the backend is known down) has
                // met a refusal all the same, and now waits like the others.
                self.count_connect_failure(Some(errno as i32));
            }
        }
        self.backend_accepting = outcome == ProbeOutcome::Accepting;
        if self.backend_accepting && KNOWN_DOWN.any() {
            KNOWN_DOWN.mark_up(&self.address_text());
        }
        let (r, elapsed) = (self.call.r, self.started.elapsed());
        // SAFETY: a live request.
        unsafe {
            log::for_request(r, log::TRACE1, mark!(), || format!("probe at {} us: {outcome:?}", elapsed.as_micros()))
        };
        outcome
    }

    fn wait(&mut self, delay: Duration) -> WaitEnd {
        let end = self.prober().wait(delay);
        let (r, elapsed) = (self.call.r, self.started.elapsed());
        // SAFETY: a live request.
        unsafe {
            log::for_request(r, log::TRACE1, mark!(), || {
                format!("wait of {} us ended at {} us: {end:?}", delay.as_micros(), elapsed.as_micros())
            })
        };
        end
    }

    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

fn give_up_message(
    reason: GiveUpReason,
    address: &str,
    (attempts, probes): (u32, u32),
    waited: Duration,
    last_errno: Option<Errno>,
    policy: &Policy,
) -> String {
    let last_error = last_errno.map(|e| format!("{} (errno {})", e.desc(), e as i32)).unwrap_or_else(|| "none".into());
    match reason {
        GiveUpReason::BudgetSpent => format!(
            "gave up on backend {address} after {attempts} attempt{} and {probes} probe{} over {:.2}s \
             (FcgiResilientTimeout {}); last error: {last_error}",
            if attempts == 1 { "" } else { "s" },
            if probes == 1 { "" } else { "s" },
            waited.as_secs_f64(),
            format_duration(policy.budget)
        ),
        GiveUpReason::BackendUnusable => format!(
            "backend {address} cannot be reached and waiting will not help: {last_error}; \
             check the socket path and its permissions"
        ),
        GiveUpReason::TooManyWaiting => format!(
            "backend {address} is not accepting and {} requests already wait for a backend \
             server-wide (FcgiResilientMaxWaiting), or three quarters of this child's threads do; \
             answering 503 at once",
            policy.max_waiting
        ),
    }
}

/// Where mod_proxy_fcgi will connect: the worker's Unix socket, the one the request's
/// `proxy:unix:` handler named (r->notes "uds_path"), else the host and port of the URL.
unsafe fn backend_address(call: &SchemeCall) -> Option<BackendAddress> {
    // SAFETY: the worker and its shared record are live for the request.
    let worker_socket = unsafe { CStr::from_ptr((*(*call.worker).s).uds_path.as_ptr()) };
    if !worker_socket.is_empty() {
        return Some(BackendAddress::Unix(worker_socket.to_string_lossy().into_owned().into()));
    }
    // SAFETY: a live request's notes table.
    let noted = unsafe { sys::apr_table_get((*call.r).notes, c"uds_path".as_ptr()) };
    if !noted.is_null() {
        // SAFETY: table values are NUL-terminated strings in the request pool.
        let path = unsafe { CStr::from_ptr(noted) }.to_string_lossy().into_owned();
        return Some(BackendAddress::Unix(path.into()));
    }
    // SAFETY: mod_proxy passes a NUL-terminated URL.
    BackendAddress::from_fcgi_url(&unsafe { CStr::from_ptr(call.url) }.to_string_lossy())
}

/// Clears the error state a refused connect put on a balancer member (see `worker`).
unsafe fn make_worker_usable(w: *mut sys::proxy_worker) {
    // SAFETY: the caller passes the worker mod_proxy chose for this request.
    unsafe { worker::clear_in_error(w) }
}

/// A worker an admin or a health check took out of service (not merely in error after a
/// refused connect) stays out: waiting for it would only delay the 503.
unsafe fn worker_disabled_on_purpose(worker: *mut sys::proxy_worker) -> bool {
    let on_purpose = (sys::PROXY_WORKER_DISABLED
        | sys::PROXY_WORKER_STOPPED
        | sys::PROXY_WORKER_HC_FAIL
        | sys::PROXY_WORKER_IN_SHUTDOWN) as std::ffi::c_uint;
    // SAFETY: the worker's shared record, live for the request.
    unsafe { worker::status(worker) & on_purpose != 0 }
}

unsafe fn set_retry_after(r: *mut sys::request_rec, seconds: u32) {
    if seconds == 0 {
        return;
    }
    let value = CString::new(seconds.to_string()).unwrap_or_default();
    // SAFETY: copies into the request pool, so the table entry outlives this call.
    unsafe {
        let pooled = sys::apr_pstrdup((*r).pool, value.as_ptr());
        sys::apr_table_setn((*r).err_headers_out, c"Retry-After".as_ptr(), pooled);
    }
}
