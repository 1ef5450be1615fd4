//! Waiting without a worker thread, under the event MPM.
//!
//! Why: a request that blocks in the scheme handler holds an MPM worker for the whole outage,
//! and with more clients than threads the waiting cap fills in milliseconds. httpd 2.4 lets a
//! handler return SUSPENDED: the event MPM then frees the worker and forgets the connection
//! until something finishes it. What 2.4 lacks (trunk's ap_mpm_resume_suspended) is a way to
//! hand the connection back to the MPM, so a resumed request is served and its connection
//! closed here (`Connection: close`): the client opens a new one for its next request.
//!
//! # Who owns a suspended connection
//!
//! At every moment exactly one side may use a suspended request, its connection and their
//! pools (the connection's pool, `ptrans`, holds the MPM's own state of it, `cs`, and
//! `conn_rec`; the request pool is its child). Checked in server/mpm/event/event.c and
//! server/scoreboard.c of httpd 2.4.53 to the 2.4.x branch (2.4.63-dev; Debian 12's 2.4.71
//! was compared with it instruction by instruction); `httpd_version` keeps requests in their
//! thread under any other MPM or version.
//!
//! 1. **The suspending worker W.** `handle` runs on W inside `ap_process_async_request`. It
//!    stages the request (`STAGED`, keyed by connection) and returns SUSPENDED. A client already
//!    gone (`c->aborted`, e.g. its `100 Continue` could not be written) is not suspended at all.
//! 2. **The MPM, on W.** `process_socket` (2.4.63 and later) turns SUSPENDED into a lingering
//!    close when `c->aborted`, and calls `notify_suspend` from its SUSPENDED branch and from
//!    its lingering close alike; `notify_suspend` runs the suspend_connection hooks
//!    (`hand_over`) and then still writes `c->sbh = NULL` and `cs->suspended = 1`. So
//!    `hand_over` takes a staged request only when `c->cs->state` is CONN_STATE_SUSPENDED
//!    (2.4.53 to 2.4.62 leave an aborted one SUSPENDED too: it is taken, and closed unanswered
//!    once owned); otherwise the MPM closes the connection and recycles its pool, and the
//!    staged entry is dropped, by the hook or by the request pool's clean-up, untouched.
//!    When it takes it, the hook writes a mark into W's scoreboard status and passes the
//!    request, *parked*, to this child's waiting thread. The thread may not touch it yet.
//! 3. **Parked: W is leaving.** The waiting thread waits for proof that W has left
//!    `process_socket` (`handoff`): W's status changed from the mark to anything but
//!    GRACEFUL — event.c's worker loop writes READY/GRACEFUL right after `process_socket`
//!    returns and never touches that connection again — or W ran one of this module's knocks
//!    (timed callbacks) since. No delay stands in for that proof.
//! 4. **Owned by the waiting thread.** The MPM keeps no pointer to a suspended connection (no
//!    queue, no pollset; `worker_sockets[]` is cleared when W leaves). The thread probes,
//!    watches the client and the deadline (`suspended_waits::SuspendedWaits`), and to resume one it
//!    registers a timed callback (`resume`), keeping a claim on it so that a stop that keeps
//!    workers from running callbacks can take it back.
//! 5. **A worker X runs `resume`** with the claim: it serves or answers the request on X's own
//!    scoreboard entry, hands a request that must wait again straight back to the thread, or
//!    starts the lingering close (flush, shutdown) and gives the connection back to the thread.
//! 6. **Lingering, then closed by the waiting thread**: it reads what the client still sends
//!    without blocking, then destroys the connection's pool, whose clean-ups (the MPM's
//!    `decrement_connection_count` for a SUSPENDED connection) count it out.
//!
//! A stop at once (`child_stopping`, not graceful) asks the thread to answer every request it
//! owns with 503 and close it before the child's workers are joined; so does the parent's
//! SIGTERM to a child stopping gracefully (a graceful stop past its timeout). A panic inside
//! the waiting thread is caught; the requests it owned are answered 503 and it goes on.
//!
//! Where the event MPM is not there (prefork, worker) or not a version checked above, requests
//! wait in their thread (`can_suspend`).

mod resume;
mod waiting_thread;

use super::ending::Ending;
use super::log::{self, mark};
use super::request::Request;
use super::scheme_handler::KNOWN_DOWN;
use super::{dir_config, guard::guard, hook_chain, hooks, request_body, scoreboard, status_handler, sys};
use crate::ffi::status_code::Status;
use crate::handoff::LeavingWorker;
use crate::policy::{step, Action, Event, Facts, Wait, PATIENCE_BEFORE_SUSPENDING};
use crate::probe::{proxy_fcgi_target, BackendAddress, Prober};
use crate::retry::{GiveUpReason, Outcome, Start};
use crate::settings::Policy;
use crate::shared_budget;
use crate::stats::unix_millis_now;
use crate::waiting_cap::{Cap, Refusal};
use crate::waiting_table::WaiterPlace;
use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// Whether the MPM can suspend: the event MPM (AP_MPMQ_IS_ASYNC) of a checked version, asked
/// at post_config.
static ASYNC_MPM: AtomicBool = AtomicBool::new(false);
/// Set by the child_stopping hook when the child stops at once: no request is suspended any
/// more, and those that are get their answer now.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Requests `handle` returned SUSPENDED for, whose worker has not yet reached `hand_over`
/// (step 1 above), by connection.
static STAGED: Mutex<Option<HashMap<usize, Staged>>> = Mutex::new(None);
/// How many are staged: `hand_over` runs for every connection the MPM parks (keep-alive too)
/// and looks no further when none is.
static STAGED_COUNT: AtomicUsize = AtomicUsize::new(0);

/// A request pointer passed between the threads that own it in turn (see the protocol above).
pub struct RequestPointer(*mut sys::request_rec);
// SAFETY: the protocol above gives a suspended request one owner at a time; the pointer is
// only carried, never used, by a side that does not own it.
unsafe impl Send for RequestPointer {}

/// What the waiting thread needs of a suspended request besides the request itself.
pub struct Handover {
    address: BackendAddress,
    deadline: Instant,
    /// The request's policy state, and what the policy asked for once it had its place (a
    /// delay after a drop, a back-off, a probe): the waiting thread's driver goes on from there.
    wait: Wait,
    first: Action,
    client: Option<OwnedFd>,
    /// Held while the request waits, given back as soon as its wait ends (before a worker
    /// resumes it), as a request waiting in its thread gives it back before its handler runs.
    place: Option<WaiterPlace<'static>>,
    policy: Policy,
    suspended_at: Instant,
}

/// A request between `handle` and `hand_over`.
struct Staged {
    request: RequestPointer,
    handover: Handover,
    /// The suspending worker's scoreboard entry.
    worker: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// At post_config: whether requests may be suspended under this MPM and httpd version.
pub fn learn_mpm() {
    let mut async_mpm: c_int = 0;
    // SAFETY: ap_mpm_query writes one int; prefork and worker answer APR_ENOTIMPL for this code.
    let status = unsafe { sys::ap_mpm_query(sys::AP_MPMQ_IS_ASYNC as c_int, &mut async_mpm) };
    let async_mpm = status == sys::APR_SUCCESS as c_int && async_mpm != 0;
    ASYNC_MPM.store(async_mpm && super::compat::suspension_allowed(), Ordering::Relaxed);
}

pub fn can_suspend() -> bool {
    ASYNC_MPM.load(Ordering::Relaxed)
}

pub fn mode_line() -> &'static str {
    if ASYNC_MPM.load(Ordering::Relaxed) {
        "waiting requests: top-level HTTP/1.x requests (plain and TLS) are suspended while they wait, \
         no worker thread held, and so are bodiless requests a mod_rewrite front controller redirects \
         to PHP (suspended before the redirect); HTTP/2 streams, subrequests, other internal redirects \
         and balancer members wait in their thread (FallbackResource instead of a rewrite lets POSTs \
         to a front controller wait without a thread too)"
    } else {
        "waiting requests: this MPM cannot suspend requests; every waiting request holds its thread"
    }
}

/// The handler hook, ordered before mod_proxy's.
pub unsafe extern "C" fn handle(r: *mut sys::request_rec) -> c_int {
    // SAFETY: httpd calls handlers with a live request.
    guard("the suspending handler", Status::DECLINED, || unsafe { suspend_if_waiting(r) }).raw()
}

unsafe fn suspend_if_waiting(r: *mut sys::request_rec) -> Status {
    if !ASYNC_MPM.load(Ordering::Relaxed) || STOPPING.load(Ordering::Relaxed) {
        return Status::DECLINED;
    }
    // SAFETY: a live request, used by this thread for the rest of this call.
    let request = unsafe { Request::from_raw(r) };
    // A resumed request runs its handler phase again without being suspended anew.
    if !request.is_initial_http1() || request.with_existing_wait_record(|record| record.resumed) == Some(true) {
        return Status::DECLINED;
    }
    if !is_proxy_fcgi(&request) {
        return suspend_before_a_redirect(&request).unwrap_or(Status::DECLINED); // static files: a few comparisons
    }
    // SAFETY: a live request inside the handler phase.
    let settings = unsafe { dir_config::for_request(r) };
    if !settings.is_enabled() {
        return Status::DECLINED;
    }
    let Some(worker) = taker() else { return Status::DECLINED };
    let policy = settings.resolve(hooks::default_max_waiting());
    if KNOWN_DOWN.any() {
        let refusing = |address| known_down_still_refusing(&request, address, &policy);
        if let Some((address, wait)) = proxy_backend(&request).and_then(refusing) {
            // Before mod_proxy runs at all: nothing of its bookkeeping has happened.
            return suspend(&request, worker, address, wait, &policy, BodyRead::NotYet).unwrap_or(Status::DECLINED);
        }
    }
    // mod_proxy runs from here, so that a request whose connect is refused comes back here
    // (mod_fcgi_resilient's scheme handler returns it at once, its body read) to be suspended
    // once mod_proxy has done its bookkeeping, instead of waiting in this thread.
    // SAFETY: inside the handler hook, for the request it was given.
    let status = running_mod_proxy(|| unsafe { run_handlers_after_ours(r) });
    let Some(address) = suspension_asked(&request) else { return status };
    let wait = request.with_wait_record(|record| record.wait);
    match suspend(&request, worker, address.clone(), wait, &policy, BodyRead::Already) {
        Ok(suspended) => suspended,
        Err(refusal) => {
            let reason = refused_a_place(&request, &policy, refusal);
            let text = address.to_string();
            let counters = status_handler::shared_table().and_then(|table| table.backend(&text));
            let ending = Ending { request: &request, address: &text, counters, waited: Duration::ZERO };
            ending.gave_up(reason, policy.budget, None, &policy, "")
        }
    }
}

/// The policy's answer to a request the waiting cap refused a place (`Event::PlaceRefused`),
/// kept in its record for the give-up line.
fn refused_a_place(request: &Request, policy: &Policy, refusal: Refusal) -> GiveUpReason {
    let mut wait = request.with_wait_record(|record| record.wait);
    let mut facts = AtSuspension::new(policy, policy.budget);
    let action = step(&mut wait, Event::PlaceRefused(refusal), &mut facts, &policy.limits(policy.budget));
    request.with_wait_record(|record| record.wait = wait);
    match action {
        Action::Answer(Outcome::GaveUp { reason, .. }) => reason,
        _ => GiveUpReason::TooManyWaiting(refusal),
    }
}

/// What the policy knows of a request at the moment it is suspended.
struct AtSuspension<'a> {
    address: Option<String>,
    policy: &'a Policy,
    remaining: Duration,
}

impl<'a> AtSuspension<'a> {
    fn new(policy: &'a Policy, remaining: Duration) -> Self {
        AtSuspension { address: None, policy, remaining }
    }
}

impl Facts for AtSuspension<'_> {
    fn remaining(&mut self) -> Duration {
        self.remaining
    }
    /// Its client is looked at once it is owned (`c->aborted`) and then by the waiting thread.
    fn reason_to_stop(&mut self) -> Option<GiveUpReason> {
        None
    }
    fn refused_for_a_whole_budget(&mut self) -> bool {
        let Some(address) = &self.address else { return false };
        let table = status_handler::shared_table();
        table
            .and_then(|table| table.backend(address))
            .is_some_and(|slot| slot.refusals().is_open(unix_millis_now(), self.policy.budget))
    }
    fn may_wait_without_a_thread(&mut self) -> bool {
        true
    }
}

/// A front controller (WordPress's, Drupal's, Laravel's `.htaccess`): mod_rewrite sends the
/// request to index.php by an internal redirect, and a request suspended inside an internal
/// redirect cannot be resumed in httpd 2.4 (ap_internal_redirect answers SUSPENDED with a 500).
/// So while a backend is known down, the request is suspended before the redirect, when the
/// redirect would lead to that backend; resumed, it runs the redirect as it would have. Only a
/// request without a body: one with a body waits in its thread.
fn suspend_before_a_redirect(request: &Request) -> Option<Status> {
    if !KNOWN_DOWN.any() || !request.is_safe_without_body() {
        return None;
    }
    let target = request.internal_redirect_target()?;
    let (address, policy) = request.with_lookup(&target, |lookup| {
        let lookup = lookup.filter(|lookup| is_proxy_fcgi(lookup))?;
        // SAFETY: the subrequest is live for this closure.
        let settings = unsafe { dir_config::for_request(lookup.raw()) };
        settings.is_enabled().then(|| (proxy_backend(lookup), settings.resolve(hooks::default_max_waiting())))
    })?;
    let (address, wait) = known_down_still_refusing(request, address?, &policy)?;
    suspend(request, taker()?, address, wait, &policy, BodyRead::NotYet).ok()
}

/// The suspending worker's scoreboard entry, when a suspended request can be taken over: the
/// worker is on the scoreboard (`handoff` needs its status) and a waiting thread runs.
/// Otherwise the request waits in its thread.
fn taker() -> Option<usize> {
    scoreboard::this_worker().filter(|_| waiting_thread::running())
}

thread_local! {
    static RUNNING_MOD_PROXY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is inside the suspending handler's run of mod_proxy (first or resumed)
/// for a request it may suspend: the scheme handler then answers a refused connect at once,
/// naming the backend in the request's record, rather than wait in the thread. A flag of the
/// thread, not of the request: set and cleared around the one call, it costs no allocation.
pub fn may_suspend_now() -> bool {
    RUNNING_MOD_PROXY.with(std::cell::Cell::get)
}

/// Runs `run` (mod_proxy's handler, through the hook chain) with `may_suspend_now` true.
fn running_mod_proxy<T>(run: impl FnOnce() -> T) -> T {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            RUNNING_MOD_PROXY.with(|flag| flag.set(false));
        }
    }
    RUNNING_MOD_PROXY.with(|flag| flag.set(true));
    let _clear = Clear;
    run()
}

/// A backend this child has seen refuse: the policy's first look at it (`Start::WaitForBackend`)
/// says whether this request is suspended before mod_proxy runs, and with what wait. Not when the
/// backend accepts by now, nor when the breaker answers it at once (the usual path says so).
fn known_down_still_refusing(
    request: &Request,
    address: BackendAddress,
    policy: &Policy,
) -> Option<(BackendAddress, Wait)> {
    let text = address.to_string();
    if !KNOWN_DOWN.contains(&text, Instant::now()) {
        return None;
    }
    let deadline = request.with_existing_wait_record(|record| record.deadline).flatten();
    let remaining = shared_budget::remaining(deadline, policy.budget, SystemTime::now);
    let limits = policy.limits(remaining);
    let mut wait = request.with_existing_wait_record(|record| Wait::continued(record.wait)).unwrap_or_default();
    let mut facts = AtSuspension { address: Some(text), policy, remaining };
    let Action::Probe { .. } = step(&mut wait, Event::Start(Start::WaitForBackend), &mut facts, &limits) else {
        return None;
    };
    let outcome = Prober::new(address.clone()).probe(PATIENCE_BEFORE_SUSPENDING);
    match step(&mut wait, Event::Probed(outcome), &mut facts, &limits) {
        Action::Suspend => Some((address, wait)),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyRead {
    NotYet,
    Already,
}

/// Takes a waiting place, reads the body if need be and stages the request for `hand_over`.
/// `Err`: the cap refused it.
fn suspend(
    request: &Request,
    worker: usize,
    address: BackendAddress,
    wait: Wait,
    policy: &Policy,
    body: BodyRead,
) -> Result<Status, Refusal> {
    let text = address.to_string();
    let place = take_place(&text, policy)?;
    let counters = status_handler::shared_table().and_then(|table| table.backend(&text));
    if let Some(counters) = counters.filter(|_| body == BodyRead::NotYet) {
        // A request that ran mod_proxy has counted its refusal there already.
        counters.connect_failed(libc::ECONNREFUSED, unix_millis_now());
        counters.refusals().refused(unix_millis_now());
    }
    if body == BodyRead::NotYet {
        // SAFETY: a live request inside the handler phase, before mod_proxy_fcgi ran.
        if let Err(status) = unsafe { request_body::read_before_waiting(request.raw()) } {
            return Ok(status);
        }
    }
    if request.client_aborted() {
        // Writing to the client failed already (its "100 Continue", say): the MPM closes
        // the connection, so there is nothing to suspend.
        request.mark_client_gone();
        return Ok(Status::CLIENT_GONE);
    }
    let handover = handover(request, address, place, policy, wait);
    stage(request, Staged { request: RequestPointer(request.raw()), handover, worker });
    Ok(Status::SUSPENDED)
}

/// Leaves the request for `hand_over`. Should the MPM close the connection instead, the request
/// pool's clean-up drops the staged entry, so that no entry outlives its connection.
fn stage(request: &Request, staged: Staged) {
    let connection = request.connection_key();
    let previous = lock(&STAGED).get_or_insert_with(HashMap::new).insert(connection, staged);
    if previous.is_none() {
        STAGED_COUNT.fetch_add(1, Ordering::AcqRel);
    }
    request.on_cleanup(unstage_on_cleanup, connection as *mut c_void);
}

fn unstage(connection: usize) -> Option<Staged> {
    if STAGED_COUNT.load(Ordering::Acquire) == 0 {
        return None;
    }
    let staged = lock(&STAGED).as_mut().and_then(|pending| pending.remove(&connection));
    if staged.is_some() {
        STAGED_COUNT.fetch_sub(1, Ordering::AcqRel);
    }
    staged
}

unsafe extern "C" fn unstage_on_cleanup(connection: *mut c_void) -> sys::apr_status_t {
    guard("a request pool clean-up", sys::APR_SUCCESS as sys::apr_status_t, || {
        drop(unstage(connection as usize));
        sys::APR_SUCCESS as sys::apr_status_t
    })
}

/// A place among the waiting requests, for a request of backend `address`.
fn take_place(address: &str, policy: &Policy) -> Result<WaiterPlace<'static>, Refusal> {
    let table = status_handler::shared_table().ok_or(Refusal { cap: Cap::ServerWide, waiting: 0, limit: 0 })?;
    table.waiters().try_enter(policy.max_waiting, policy.budget, table.backend_index(address))
}

/// What the waiting thread needs of a request about to be suspended, its place taken.
fn handover(
    request: &Request,
    address: BackendAddress,
    place: WaiterPlace<'static>,
    policy: &Policy,
    mut wait: Wait,
) -> Handover {
    let deadline = request.with_wait_record(|record| {
        record.resumed = true;
        *record.deadline.get_or_insert_with(|| SystemTime::now() + policy.budget)
    });
    let left = shared_budget::remaining(Some(deadline), policy.budget, SystemTime::now);
    let mut facts = AtSuspension::new(policy, left);
    let first = step(&mut wait, Event::PlaceTaken, &mut facts, &policy.limits(left));
    request.close_connection_after();
    let now = Instant::now();
    request.log(log::DEBUG, mark!(), || format!("backend {address} refuses: the request waits suspended"));
    Handover {
        address,
        deadline: now + left,
        wait,
        first,
        client: request.client_socket(),
        place: Some(place),
        policy: *policy,
        suspended_at: now,
    }
}

/// The backend the scheme handler asked this request to be suspended for, if it did.
fn suspension_asked(request: &Request) -> Option<BackendAddress> {
    request.with_wait_record(|record| record.suspend_for.take())
}

/// A request mod_proxy will send to a FastCGI backend: cheap byte comparisons, no allocation.
fn is_proxy_fcgi(request: &Request) -> bool {
    let (handler, filename) = request.handler_and_filename();
    let target = match handler {
        Some(b"proxy-server") => filename,
        Some(handler) if handler.starts_with(b"proxy:") => Some(handler),
        _ => None,
    };
    target.is_some_and(|target| target.windows(7).any(|window| window.eq_ignore_ascii_case(b"fcgi://")))
}

/// Runs the handler hooks sorted after this module's, as httpd's hook runner would: each in
/// turn until one does not decline. Reads the hook array now: httpd sorts it after start-up.
///
/// # Safety
/// Must be called from within the handler hook, with its request.
unsafe fn run_handlers_after_ours(r: *mut sys::request_rec) -> Status {
    // SAFETY: httpd's handler hook array, sorted and fixed once requests are served.
    let hooks = unsafe { sys::ap_hook_get_handler() };
    let ours = handle as unsafe extern "C" fn(*mut sys::request_rec) -> c_int;
    let function = |entry: &sys::ap_LINK_handler_t| entry.pFunc;
    // SAFETY: the request httpd passed to the hook, as its runner would pass it.
    let run = |handler: unsafe extern "C" fn(*mut sys::request_rec) -> c_int| Status::from_raw(unsafe { handler(r) });
    // SAFETY: the handler hook array holds ap_LINK_handler_t entries.
    unsafe { hook_chain::run_after(hooks, ours as usize, function, |handler| handler as usize, run) }
}

/// The FastCGI backend of a proxy request before mod_proxy's handler: `SetHandler "proxy:…"`
/// or a ProxyPass target in r->filename.
fn proxy_backend(request: &Request) -> Option<BackendAddress> {
    let (handler, filename) = request.handler_and_filename();
    let target = match handler? {
        b"proxy-server" => filename?.strip_prefix(b"proxy:")?,
        handler => handler.strip_prefix(b"proxy:")?,
    };
    let uds_path = request.note(c"uds_path").map(String::from_utf8_lossy);
    proxy_fcgi_target(&String::from_utf8_lossy(target), uds_path.as_deref())
}

/// The suspend_connection hook, run by the MPM on the suspending worker (step 2 above).
pub unsafe extern "C" fn hand_over(c: *mut sys::conn_rec, _r: *mut sys::request_rec) {
    guard("suspend_connection", (), || {
        let Some(staged) = unstage(c as usize) else { return };
        // SAFETY: the MPM runs this hook with its connection, live and used by this thread.
        let state = unsafe { (*(*c).cs).state };
        if state != sys::conn_state_e_CONN_STATE_SUSPENDED {
            // 2.4.63 and later: a client gone meanwhile (c->aborted) turns SUSPENDED into a
            // lingering close; the MPM closes this connection itself and recycles its pool.
            return;
        }
        // SUSPENDED, even with c->aborted (2.4.53 to 2.4.62 leave such a connection suspended):
        // the MPM never touches it again, so it is ours to close once its worker has left.
        scoreboard::mark_leaving(staged.worker);
        let leaving = LeavingWorker { thread_slot: staged.worker, knocks_before: scoreboard::knocks(staged.worker) };
        waiting_thread::park(staged.request, staged.handover, leaving);
    })
}

/// The child_stopping hook. A graceful restart or stop lets a child finish its requests, and
/// the MPM keeps it running while suspended connections remain, so their waits go on to their
/// end (served when the backend returns). A child told to stop at once lets its workers exit
/// without running timed callbacks: the waiting thread answers what it owns now, 503 with
/// Retry-After, before this hook returns and the MPM joins the workers.
///
/// A child stopping gracefully is still told to stop at once when the graceful stop runs out of
/// time (`GracefulShutdownTimeout`) or an immediate stop follows: the parent sends SIGTERM, which
/// the event MPM's child then no longer acts on (its main thread only joins its workers, while
/// the suspended connections keep the listener waiting), and SIGKILL 3 s later. A SIGTERM
/// handler installed here makes the waiting thread answer what it owns then.
pub unsafe extern "C" fn child_stopping(_pchild: *mut sys::apr_pool_t, graceful: c_int) {
    guard("child_stopping", (), || {
        if graceful != 0 {
            waiting_thread::answer_all_on_sigterm();
        } else if !STOPPING.swap(true, Ordering::AcqRel) {
            waiting_thread::answer_all_now();
        }
    })
}
