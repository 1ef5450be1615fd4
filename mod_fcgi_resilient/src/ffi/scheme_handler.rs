//! The scheme handler that sits ahead of mod_proxy_fcgi's: for fcgi:// requests where
//! `FcgiResilient On` applies, it runs mod_proxy_fcgi's handler itself under the retry policy.
//!
//! Why this design: httpd 2.4 has no pre-connect hook, and mod_proxy_fcgi makes exactly one
//! connect attempt. Its handler is built to be called again for the same request (the
//! balancer does so): the request body it prefetched is kept in the request pool and reused,
//! and a failed connect has consumed nothing else. Whether a call may be repeated is read from
//! the request itself after the call (`attempt`), never from log lines or the status alone.

use super::ending::{set_retry_after, Ending, RETRY_AFTER_NOTE};
use super::log::{self, mark};
use super::proxy::{self, SchemeCall};
use super::request::Request;
use super::worker::Worker;
use super::{dir_config, guard::guard, hooks, request_body, status_handler, suspend, sys};
use crate::attempt::{self, AttemptEvidence};
use crate::balancer::{self, OnRefusal};
use crate::duration::format_duration;
use crate::ffi::status_code::Status;
use crate::known_down::KnownDown;
use crate::policy::Wait;
use crate::probe::{BackendAddress, ProbeOutcome, Prober, WaitEnd};
use crate::retry::{self, Attempt, Backend, GiveUpReason, Outcome, Start};
use crate::settings::Policy;
use crate::shared_budget;
use crate::stats::{unix_millis_now, BackendSlot};
use crate::waiting_cap::{Cap, WaitingCount};
use crate::waiting_table::{per_child_limit, ServerWideGate, ThreadCap};
use std::ffi::{c_char, c_int, CStr};
use std::time::{Duration, Instant, SystemTime};

mod pause_hold;

/// mod_proxy_fcgi sets it while building the CGI environment: see `attempt`.
const ENVIRONMENT_MARKER: &CStr = c"GATEWAY_INTERFACE";
const RETRY_AFTER: &CStr = c"Retry-After";

/// How often a waiting balancer member looks whether another member accepts again.
const MEMBER_CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// A member's TCP connect that takes longer than this does not count as accepting.
const MEMBER_PROBE_PATIENCE: Duration = Duration::from_millis(100);

/// Requests of this child process that are waiting for a backend right now: at most three
/// quarters of its threads may wait (see `per_child_limit`), and the whole cap is per child
/// only when the server-wide table could not be made.
static WAITING: WaitingCount = WaitingCount::new();

/// Backends this child process has seen refuse and not yet seen accept again.
pub(super) static KNOWN_DOWN: KnownDown = KnownDown::new();

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
    guard("the proxy scheme handler", Status::INTERNAL_SERVER_ERROR, || unsafe { serve(call) }).raw()
}

unsafe fn serve(call: SchemeCall) -> Status {
    // SAFETY: mod_proxy passes a NUL-terminated URL.
    let url: &CStr = unsafe { CStr::from_ptr(call.url) };
    if !url.to_bytes().get(..5).is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"fcgi:")) {
        return Status::DECLINED;
    }
    // SAFETY: a live request inside the handler phase.
    let settings = unsafe { dir_config::for_request(call.r) };
    if !settings.is_enabled() {
        return Status::DECLINED;
    }
    // FcgiResilientSpoolChunkedBody On: a chunked body is read whole before the first connect,
    // so that it reaches PHP with a Content-Length whether the request waits or not.
    // SAFETY: a live request inside the handler phase, before mod_proxy_fcgi runs for this call.
    if let Err(status) = unsafe { request_body::spool_before_connect(call.r, settings.spools_chunked_body()) } {
        return status;
    }
    // SAFETY: the hook's request and worker, live for this call and used by this thread.
    let (request, worker) = unsafe { (Request::from_raw(call.r), Worker::from_raw(call.worker)) };
    forget_retry_after_of_an_earlier_member(&request);
    let policy = settings.resolve(hooks::default_max_waiting());
    let deadline = request.with_existing_wait_record(|record| record.deadline).flatten();
    let budget = shared_budget::remaining(deadline, policy.budget, SystemTime::now);
    let limits = policy.limits(budget);
    // A run after a wait of the same request (resumed, its ErrorDocument, a redirect) goes on
    // with that request's counts; the happy path reads one pointer here.
    let mut wait = request.with_existing_wait_record(|record| Wait::continued(record.wait)).unwrap_or_default();
    let mut backend = HttpdBackend::new(call, url, request, worker, budget);
    // Only a request that meets a backend known to be down pays for naming it.
    let start = if KNOWN_DOWN.any() && KNOWN_DOWN.contains(&backend.address_text(), Instant::now()) {
        Start::WaitForBackend
    } else {
        Start::RunHandler
    };
    let seed = crate::backoff::seed_from_environment;
    let outcome = match status_handler::shared_table() {
        Some(table) => {
            let gate = ServerWideGate {
                records: table.waiters(),
                budget,
                // Called only when the request starts to wait: the happy path names nothing.
                backend_slot: || table.backend_index(&backend_address(&worker, &request, url).to_string()),
                per_child: thread_cap(&request),
            };
            retry::serve_continuing(&mut backend, &mut wait, start, &limits, &gate, seed)
        }
        None => retry::serve_continuing(&mut backend, &mut wait, start, &limits, &WAITING, seed),
    };
    backend.keep_record(&outcome, wait, deadline);
    backend.conclude(outcome, &policy)
}

/// The per-child count a request waits in. An HTTP/2 stream holds one of mod_http2's
/// workers, not an MPM thread, and a stream that finds every worker of its child busy is
/// queued by mod_http2, not refused: refusing it here would fail a request the server has room
/// to hold, so streams count only server-wide. Where the MPM suspends waiting requests, the
/// few that wait in their thread are those it was already serving when the backend went away
/// (and one a second per child that meets the outage first): refusing them frees no thread a
/// new request could use sooner than their wait does, and fails a request for nothing.
fn thread_cap(request: &Request) -> Option<ThreadCap<'static>> {
    if request.is_http2_stream() || suspend::can_suspend() {
        return None;
    }
    let limit = per_child_limit(hooks::threads_per_child())?;
    Some(ThreadCap { waiting: &WAITING, limit, cap: Cap::ChildThreads })
}

fn forget_retry_after_of_an_earlier_member(request: &Request) {
    if request.note(RETRY_AFTER_NOTE).is_some() {
        request.unset_err_header(RETRY_AFTER);
    }
}

/// One request's view of its backend, as the retry loop needs it.
struct HttpdBackend<'r> {
    call: SchemeCall,
    /// The URL mod_proxy passed the handler: live for the whole call.
    url: &'r CStr,
    request: Request<'r>,
    worker: Worker,
    started: Instant,
    /// FcgiResilientTimeout, or less where an earlier wait of the same request used some.
    budget: Duration,
    prober: Option<Prober>,
    /// The last probe found the backend accepting: a balancer member left in error state by
    /// the outage must be usable again before the handler runs.
    backend_accepting: bool,
    /// A refused attempt: it is counted with the errno the next probe sees, if there is one.
    uncounted_refusal: bool,
    client_watched: bool,
    last_member_check: Option<Instant>,
    handler_runs: u32,
    /// The rest of the body was read before this request waited (`read_body_before_waiting`).
    body_read: bool,
    /// Shared counters, looked up only once the backend has failed this request.
    counters: Option<&'static BackendSlot>,
    counted_refusal: bool,
}

impl<'r> HttpdBackend<'r> {
    fn new(call: SchemeCall, url: &'r CStr, request: Request<'r>, worker: Worker, budget: Duration) -> Self {
        HttpdBackend {
            call,
            url,
            request,
            worker,
            started: Instant::now(),
            budget,
            prober: None,
            backend_accepting: false,
            uncounted_refusal: false,
            client_watched: false,
            last_member_check: None,
            handler_runs: 0,
            body_read: false,
            counters: None,
            counted_refusal: false,
        }
    }

    fn counters(&mut self) -> Option<&'static BackendSlot> {
        if self.counters.is_none() {
            let address = self.address_text();
            self.counters = status_handler::shared_table().and_then(|table| table.backend(&address));
        }
        self.counters
    }

    fn count_refusal(&mut self, errno: i32) {
        self.uncounted_refusal = false;
        self.counted_refusal = true;
        if let Some(counters) = self.counters() {
            counters.connect_failed(errno, unix_millis_now());
        }
    }

    /// Every refusal keeps the backend's chain of refusals going (see `breaker`).
    fn note_refusal(&mut self) {
        if let Some(counters) = self.counters() {
            counters.refusals().refused(unix_millis_now());
        }
    }

    fn prober(&mut self) -> &mut Prober {
        let (worker, request, url) = (&self.worker, &self.request, self.url);
        self.prober.get_or_insert_with(|| Prober::new(backend_address(worker, request, url)))
    }

    fn address_text(&mut self) -> String {
        self.prober().address().to_string()
    }

    /// For a balancer member that refused: hand the request back to mod_proxy's fail-over
    /// when another member accepts (clearing the stale error state that member may carry),
    /// and wait only when none does.
    fn should_fail_over(&self) -> bool {
        let status = self.worker.status();
        if !balancer::is_balancer_member(status) {
            return false;
        }
        // SAFETY: the scheme handler's own mod_proxy config, live for the call.
        let Some(balancer) = (unsafe { self.worker.balancer(self.call.conf) }) else { return false };
        let others = balancer.other_members(&self.worker);
        let statuses: Vec<u32> = others.iter().map(Worker::status).collect();
        let target = balancer::fail_over_target(&statuses, |index| member_accepts(&others[index]));
        if let Some(index) = target {
            others[index].clear_error();
        }
        balancer::on_refusal(status, target, balancer.force_recovery()) == OnRefusal::FailOver
    }

    /// Looks at the other members at most every `MEMBER_CHECK_INTERVAL` while waiting.
    fn another_member_took_over(&mut self) -> bool {
        if self.last_member_check.is_some_and(|at| at.elapsed() < MEMBER_CHECK_INTERVAL) {
            return false;
        }
        self.last_member_check = Some(Instant::now());
        self.should_fail_over()
    }

    /// Runs mod_proxy_fcgi's handler once and gathers the evidence `attempt` decides on.
    fn delegate(&mut self) -> AttemptEvidence {
        self.request.unset_env(ENVIRONMENT_MARKER);
        let before = self.request.response_state();
        // SAFETY: inside the scheme_handler hook with its own arguments.
        let status = unsafe { proxy::run_handlers_after(handle, &self.call) };
        AttemptEvidence {
            status: status.raw(),
            response_started: self.request.response_started(),
            response_headers_parsed: self.request.response_state() != before,
            environment_built: self.request.has_env(ENVIRONMENT_MARKER),
            safe_without_body: self.request.is_safe_without_body(),
        }
    }

    /// The request's record keeps its wait for its later runs and its give-up line, and the
    /// deadline its first wait set; a request served without waiting makes none.
    fn keep_record(&mut self, outcome: &Outcome, wait: Wait, deadline: Option<SystemTime>) {
        let happy = matches!(outcome, Outcome::Served { waited: false, .. });
        if happy {
            // A resumed run, or a later run of a request that waited, keeps its counts current.
            self.request.with_existing_wait_record(|record| record.wait = wait);
            return;
        }
        let started_at = SystemTime::now() - self.started.elapsed();
        let budget = self.budget;
        let suspend_for = matches!(outcome, Outcome::GaveUp { reason: GiveUpReason::WaitsSuspended, .. })
            .then(|| self.prober().address().clone());
        self.request.with_wait_record(|record| {
            record.wait = wait;
            record.deadline = deadline.or(Some(started_at + budget));
            // The backend is named here: a ProxyPass worker's socket is in the worker, not in
            // the request. Its body was read when the connect failed (`run_handler`).
            if suspend_for.is_some() {
                record.suspend_for = suspend_for;
            }
        });
    }

    fn conclude(mut self, outcome: Outcome, policy: &Policy) -> Status {
        let waited = self.started.elapsed();
        if self.uncounted_refusal && !self.counted_refusal {
            self.count_refusal(0);
        }
        if let Outcome::Served { status, waited: false, .. } = outcome {
            return Status::from_raw(status);
        }
        let (address, counters) = (self.address_text(), self.counters());
        let ending = Ending { request: &self.request, address: &address, counters, waited };
        match outcome {
            Outcome::Served { status, retries, .. } => {
                let how = format!(" and {retries} retr{}", if retries == 1 { "y" } else { "ies" });
                ending.served(Status::from_raw(status), &how)
            }
            Outcome::GaveUp { reason: GiveUpReason::ClientGone, .. } => ending.client_gone(),
            Outcome::GaveUp { reason: GiveUpReason::StillRefusing, .. } => self.still_refusing(policy),
            Outcome::GaveUp { reason: GiveUpReason::WaitsSuspended, .. } => {
                KNOWN_DOWN.mark_down(&address, Instant::now());
                Status::SERVICE_UNAVAILABLE
            }
            Outcome::GaveUp { reason: GiveUpReason::FailOver, .. } => {
                self.request.log(log::DEBUG, mark!(), || {
                    format!("another balancer member can serve: {address} fails over after {} ms", waited.as_millis())
                });
                Status::SERVICE_UNAVAILABLE
            }
            Outcome::GaveUp { reason, attempts: _, last_errno } => {
                ending.gave_up(reason, self.budget, last_errno, policy, "")
            }
        }
    }

    /// The breaker is open: 503 with Retry-After at once, one error line per outage.
    fn still_refusing(mut self, policy: &Policy) -> Status {
        let Some(counters) = self.counters() else { return Status::SERVICE_UNAVAILABLE };
        counters.answered_at_once();
        set_retry_after(&self.request, policy);
        let refusals = counters.refusals();
        let refusing = refusals.refusing_for(unix_millis_now()).unwrap_or_default();
        let level = if refusals.first_report() { log::ERROR } else { log::DEBUG };
        let (address, budget) = (self.address_text(), self.budget);
        self.request.log(level, mark!(), || {
            format!(
                "backend {address} has refused every connection for {:.1}s, longer than this request may \
                 wait ({}); answering 503 at once until it accepts again (counted as AnsweredAtOnce)",
                refusing.as_secs_f64(),
                format_duration(budget)
            )
        });
        Status::SERVICE_UNAVAILABLE
    }
}

impl Backend for HttpdBackend<'_> {
    fn run_handler(&mut self) -> Attempt {
        if let Some(held) = self.held_by_pause() {
            return held;
        }
        if std::mem::take(&mut self.backend_accepting) && balancer::may_recover(self.worker.status()) {
            // The error state our own refused connect left on a balancer member (which
            // mod_proxy would otherwise keep for `retry=` seconds) ends as its socket accepts.
            self.worker.clear_error();
        }
        self.handler_runs += 1;
        if self.handler_runs > 1 {
            if let Some(counters) = self.counters() {
                counters.retried();
            }
        }
        let evidence = self.delegate();
        if evidence.cut_by_backend() {
            if let Some(counters) = self.counters() {
                counters.cut();
            }
        }
        let attempt = attempt::classify(&evidence);
        if let Attempt::NotConnected(status) = attempt {
            KNOWN_DOWN.mark_down(&self.address_text(), Instant::now());
            self.note_refusal();
            self.uncounted_refusal = true;
            if self.should_fail_over() {
                return Attempt::Finished(status);
            }
            if balancer::is_balancer_member(self.worker.status()) {
                // No member can take over: this request waits for this member. The error state
                // mod_proxy just set on it (AH00959) would otherwise send a request of another
                // child straight to mod_proxy_balancer's 503 ("All workers are in error state",
                // AH01170) without reaching this module: that request waits here too instead.
                self.worker.clear_error();
            }
        }
        attempt
    }

    /// The body must not wait with the request: see request_body.rs. A failed read ends the
    /// request, before the backend received anything. The time the client takes to send it is
    /// not the backend's: the budget is for waiting on the backend (a slow client is bounded by
    /// Timeout and mod_reqtimeout), so it starts again once the body is in, and a request whose
    /// body has arrived asks the backend at least once.
    fn read_body_before_waiting(&mut self) -> Result<(), i32> {
        if std::mem::replace(&mut self.body_read, true) {
            return Ok(());
        }
        let reading = Instant::now();
        // SAFETY: a live request in the handler phase, before or between runs of mod_proxy_fcgi.
        let read = unsafe { request_body::read_before_waiting(self.call.r) };
        self.started += reading.elapsed();
        read.map_err(Status::raw)
    }

    fn probe(&mut self, patience: Duration) -> ProbeOutcome {
        if let Some(held) = self.probe_held_by_pause() {
            return held;
        }
        let outcome = self.prober().probe(patience);
        let (request, address) = (&self.request, self.prober.as_ref().map(|p| p.address().to_string()));
        let address = address.unwrap_or_default();
        match outcome {
            ProbeOutcome::NotYet { errno, .. } | ProbeOutcome::Unusable { errno } if !self.counted_refusal => {
                // A request that skipped its first connect (the backend is known down) has met
                // a refusal all the same, and now waits like the others.
                request.log(log::DEBUG, mark!(), || {
                    format!("backend {address} refused ({}); waiting for it", errno.desc())
                });
                self.count_refusal(errno as i32);
            }
            ProbeOutcome::NotYet { recreated: true, .. } => {
                request.log(log::DEBUG, mark!(), || format!("socket {address} was recreated"));
            }
            _ => {}
        }
        self.backend_accepting = outcome == ProbeOutcome::Accepting;
        if self.backend_accepting {
            if KNOWN_DOWN.any() {
                KNOWN_DOWN.mark_up(&address);
            }
            if let Some(counters) = self.counters() {
                counters.refusals().accepted();
            }
        } else {
            self.note_refusal();
        }
        let elapsed = self.started.elapsed();
        self.request.log(log::TRACE1, mark!(), || format!("probe at {} us: {outcome:?}", elapsed.as_micros()));
        outcome
    }

    fn wait(&mut self, delay: Duration) -> WaitEnd {
        let end = self.prober().wait(delay);
        let elapsed = self.started.elapsed();
        self.request.log(log::TRACE1, mark!(), || {
            format!("wait of {} us ended at {} us: {end:?}", delay.as_micros(), elapsed.as_micros())
        });
        end
    }

    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn may_wait_without_a_thread(&mut self) -> bool {
        suspend::may_suspend_now()
            && self.request.is_initial_http1()
            && !balancer::is_balancer_member(self.worker.status())
    }

    fn has_refused_for_a_whole_budget(&mut self) -> bool {
        let budget = self.budget;
        self.counters().is_some_and(|counters| counters.refusals().is_open(unix_millis_now(), budget))
    }

    fn reason_to_stop(&mut self) -> Option<GiveUpReason> {
        if !self.client_watched {
            self.client_watched = true;
            if let Some(watch) = self.request.client_watch() {
                self.prober().watch_client(watch);
            }
        }
        if self.prober().client_gone() {
            return Some(GiveUpReason::ClientGone);
        }
        self.another_member_took_over().then_some(GiveUpReason::FailOver)
    }
}

fn member_accepts(member: &Worker) -> bool {
    member.address().is_some_and(|address| Prober::new(address).probe(MEMBER_PROBE_PATIENCE) == ProbeOutcome::Accepting)
}

/// Where mod_proxy_fcgi will connect: the worker's Unix socket, the one the request's
/// `proxy:unix:` handler named (r->notes "uds_path"), else the host and port of `url`, the
/// NUL-terminated URL mod_proxy passed the handler.
fn backend_address(worker: &Worker, request: &Request, url: &CStr) -> BackendAddress {
    if let Some(path) = worker.unix_socket() {
        return BackendAddress::Unix(path.into());
    }
    if let Some(path) = request.note(c"uds_path") {
        return BackendAddress::Unix(String::from_utf8_lossy(path).into_owned().into());
    }
    let url = url.to_string_lossy();
    BackendAddress::from_fcgi_url(&url).unwrap_or(BackendAddress::Unix(Default::default()))
}
