//! Waiting without a worker thread, under the event MPM.
//!
//! Why: a request that blocks in the scheme handler holds an MPM worker for the whole outage,
//! and with more clients than threads the waiting cap fills in milliseconds. httpd 2.4 lets a
//! handler return SUSPENDED: the event MPM then frees the worker and forgets the connection
//! until something finishes it. What 2.4 lacks (trunk's ap_mpm_resume_suspended) is a way to
//! hand the connection back to the MPM, so a resumed request is served and its connection
//! closed here (`Connection: close`): the client opens a new one for its next request.
//!
//! How, in order:
//! 1. `handle`, a handler ordered before mod_proxy's, takes only a top-level HTTP/1.x request
//!    (not a subrequest, redirect or HTTP/2 stream) for a single FastCGI backend. If this child
//!    has seen that backend refuse and it still refuses, the request is suspended before
//!    mod_proxy runs at all. Otherwise `handle` runs mod_proxy's handler itself; when the
//!    connect is refused (or PHP-FPM drops a request that may be repeated), the scheme
//!    handler answers at once with a note naming the backend instead of waiting in the thread,
//!    and `handle` suspends the request once mod_proxy has done its bookkeeping. Either way it
//!    reads the request body first (as a waiting request always does, `request_body`), takes
//!    a place among the waiting requests and returns SUSPENDED.
//! 2. The event MPM, once the worker has left every httpd frame of that request, runs the
//!    suspend_connection hook: `hand_over` passes the request to this child's waiting thread.
//! 3. The waiting thread (`suspended::SuspendedWaits`) probes each backend once per backoff
//!    step, watches the clients and the deadlines, and for each wait that ends registers a
//!    timed callback due now: the MPM runs `resume` on a worker.
//! 4. `resume` runs the handler phase again (mod_proxy, then mod_fcgi_resilient's scheme
//!    handler with what is left of the request's budget), or answers 503, or nothing for a
//!    client that left; finishes the request as ap_process_async_request does, closes the
//!    connection and destroys its pool, which runs the MPM's own clean-ups (its connection and
//!    suspended counts).
//!
//! This leans on the event MPM's handling of CONN_STATE_SUSPENDED (server/mpm/event/event.c,
//! process_socket and decrement_connection_count): re-check it with every httpd update.

use super::log::{self, mark};
use super::request::Request;
use super::scheme_handler::{give_up_message, KNOWN_DOWN};
use super::{dir_config, guard::guard, hooks, pause_watch, request_body, status_handler, sys};
use crate::backoff::BackoffBounds;
use crate::probe::{proxy_fcgi_target, BackendAddress, ClientWatch, ProbeOutcome, Prober};
use crate::retry::{GiveUpReason, PAUSE_AFTER_A_DROP};
use crate::settings::Policy;
use crate::shared_budget::{self, DEADLINE_NOTE};
use crate::stats::unix_millis_now;
use crate::suspended::{Ended, Resolution, SuspendedWaits, SETTLE};
use crate::waiters::WaiterPlace;
use crate::waiting::{Cap, Refusal};
use std::collections::HashMap;
use std::ffi::{c_int, c_void, CStr};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

const DECLINED: c_int = sys::DECLINED as c_int;
const SERVICE_UNAVAILABLE: c_int = sys::HTTP_SERVICE_UNAVAILABLE as c_int;
const INTERNAL_SERVER_ERROR: c_int = sys::HTTP_INTERNAL_SERVER_ERROR as c_int;
const CLIENT_GONE: c_int = sys::HTTP_BAD_REQUEST as c_int;
const RESUMED_NOTE: &CStr = c"fcgi_resilient-resumed";
/// Set while this module runs mod_proxy for a request it may suspend: its scheme handler then
/// answers a refused connect at once with `SUSPEND_NOTE` rather than wait in the thread.
pub const MAY_SUSPEND_NOTE: &CStr = c"fcgi_resilient-may-suspend";
/// Set by the scheme handler to the backend (as `BackendAddress` displays it) it refused for.
pub const SUSPEND_NOTE: &CStr = c"fcgi_resilient-suspend";
/// Set with `SUSPEND_NOTE` when the backend dropped the request rather than refused it.
pub const AFTER_A_DROP_NOTE: &CStr = c"fcgi_resilient-after-a-drop";

/// How often the waiting thread looks at its waits; probes follow the backoff.
const TICK: Duration = Duration::from_millis(5);
/// Requests resumed per tick at most: each takes a worker, and the MPM gives timed callbacks
/// to workers before the connections it has queued.
const RESUMED_PER_TICK: usize = 32;

/// Whether the MPM can suspend: the event MPM (AP_MPMQ_IS_ASYNC), asked at post_config.
static ASYNC_MPM: AtomicBool = AtomicBool::new(false);
/// Set by the child_stopping hook when the child stops at once: waits end now (served if the
/// backend accepts, else 503).
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Requests suspended by `handle` whose worker has not yet left them, by connection.
static SUSPENDING: Mutex<Option<HashMap<usize, Handover>>> = Mutex::new(None);
/// This child's waiting thread, started with the first suspended request.
static WAITING_THREAD: OnceLock<Mutex<Sender<Handover>>> = OnceLock::new();

/// A request in the middle of being suspended or resumed: only the thread holding it uses it.
struct RequestPointer(*mut sys::request_rec);
// SAFETY: a suspended request is used by one thread at a time, in turn: the worker that
// suspends it, the waiting thread (which only holds the pointer), the worker that resumes it.
unsafe impl Send for RequestPointer {}

/// What the waiting thread needs of a suspended request.
struct Handover {
    request: RequestPointer,
    address: BackendAddress,
    deadline: Instant,
    /// Left alone until then.
    not_before: Instant,
    client: Option<OwnedFd>,
    place: WaiterPlace<'static>,
    policy: Policy,
    suspended_at: Instant,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// At post_config: whether requests may be suspended under this MPM.
pub fn learn_mpm() {
    let mut async_mpm: c_int = 0;
    // SAFETY: ap_mpm_query writes one int; prefork and worker answer APR_ENOTIMPL for this code.
    let status = unsafe { sys::ap_mpm_query(sys::AP_MPMQ_IS_ASYNC as c_int, &mut async_mpm) };
    ASYNC_MPM.store(status == sys::APR_SUCCESS as c_int && async_mpm != 0, Ordering::Relaxed);
}

pub fn can_suspend() -> bool {
    ASYNC_MPM.load(Ordering::Relaxed)
}

pub fn mode_line() -> &'static str {
    if ASYNC_MPM.load(Ordering::Relaxed) {
        "waiting requests: top-level HTTP/1.x requests (plain and TLS) are suspended while they wait, \
         no worker thread held; HTTP/2 streams, subrequests, internal redirects and balancer members \
         wait in their thread"
    } else {
        "waiting requests: this MPM cannot suspend requests; every waiting request holds its thread"
    }
}

/// The handler hook, ordered before mod_proxy's.
pub unsafe extern "C" fn handle(r: *mut sys::request_rec) -> c_int {
    // SAFETY: httpd calls handlers with a live request.
    guard("the suspending handler", DECLINED, || unsafe { suspend_if_waiting(r) })
}

unsafe fn suspend_if_waiting(r: *mut sys::request_rec) -> c_int {
    if !ASYNC_MPM.load(Ordering::Relaxed) || STOPPING.load(Ordering::Relaxed) {
        return DECLINED;
    }
    // SAFETY: a live request, used by this thread for the rest of this call.
    let request = unsafe { Request::from_raw(r) };
    if !request.is_initial_http1() || request.note(RESUMED_NOTE).is_some() || !is_proxy_fcgi(&request) {
        return DECLINED; // static files and the like: a few comparisons
    }
    // SAFETY: a live request inside the handler phase.
    let settings = unsafe { dir_config::for_request(r) };
    if !settings.is_enabled() {
        return DECLINED;
    }
    let policy = settings.resolve(hooks::default_max_waiting());
    if KNOWN_DOWN.any() {
        if let Some(address) = proxy_backend(&request).filter(|address| still_refusing(address, &policy)) {
            // Before mod_proxy runs at all: nothing of its bookkeeping has happened.
            return suspend(&request, address, &policy, BodyRead::NotYet).unwrap_or(DECLINED);
        }
    }
    // mod_proxy runs from here, so that a request whose connect is refused comes back here
    // (mod_fcgi_resilient's scheme handler returns it at once, its body read) to be suspended
    // once mod_proxy has done its bookkeeping, instead of waiting in this thread.
    request.set_note(MAY_SUSPEND_NOTE, c"1");
    // SAFETY: inside the handler hook, for the request it was given.
    let status = unsafe { run_handlers_after_ours(r) };
    let Some(Some(address)) = suspension_asked(&request) else { return status };
    match suspend(&request, address.clone(), &policy, BodyRead::Already) {
        Ok(suspended) => suspended,
        Err(refusal) => {
            request.set_retry_after(policy.retry_after_secs);
            let budget = policy.budget;
            request.log(log::ERROR, mark!(), || {
                give_up_message(
                    GiveUpReason::TooManyWaiting(refusal),
                    &address.to_string(),
                    (1, 0),
                    (Duration::ZERO, budget),
                    None,
                    &policy,
                )
            });
            SERVICE_UNAVAILABLE
        }
    }
}

/// Whether a backend this child has seen refuse refuses now too, and is not one the breaker
/// answers at once (the usual path says so).
fn still_refusing(address: &BackendAddress, policy: &Policy) -> bool {
    let text = address.to_string();
    if !KNOWN_DOWN.contains(&text, Instant::now()) {
        return false;
    }
    if Prober::new(address.clone()).probe(Duration::from_millis(50)) == ProbeOutcome::Accepting {
        return false;
    }
    let table = status_handler::shared_table();
    let breaker_open = table
        .and_then(|table| table.backend(&text))
        .is_some_and(|slot| slot.refusals().is_open(unix_millis_now(), policy.budget));
    !breaker_open
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyRead {
    NotYet,
    Already,
}

/// Takes a waiting place, reads the body if need be and leaves the request to the
/// suspend_connection hook. `Err`: the cap refused it.
fn suspend(request: &Request, address: BackendAddress, policy: &Policy, body: BodyRead) -> Result<c_int, Refusal> {
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
    let handover = handover(request, address, place, policy);
    // SAFETY: a live request has a live connection.
    let connection = unsafe { (*request.raw()).connection } as usize;
    lock(&SUSPENDING).get_or_insert_with(HashMap::new).insert(connection, handover);
    Ok(sys::SUSPENDED)
}

/// A place among the waiting requests, for a request of backend `address`.
fn take_place(address: &str, policy: &Policy) -> Result<WaiterPlace<'static>, Refusal> {
    let table = status_handler::shared_table().ok_or(Refusal { cap: Cap::ServerWide, waiting: 0, limit: 0 })?;
    table.waiters().try_enter(policy.max_waiting, policy.budget, table.backend_index(address))
}

/// What the waiting thread needs of a request about to be suspended.
fn handover(request: &Request, address: BackendAddress, place: WaiterPlace<'static>, policy: &Policy) -> Handover {
    request.set_note(RESUMED_NOTE, c"1");
    if request.note(DEADLINE_NOTE).is_none() {
        request.set_note_text(DEADLINE_NOTE, &shared_budget::deadline_note(SystemTime::now(), policy.budget));
    }
    let left = shared_budget::remaining(request.note(DEADLINE_NOTE), policy.budget, SystemTime::now);
    request.close_connection_after();
    let now = Instant::now();
    // A backend that dropped the request is going down: PHP-FPM's exiting children must be
    // gone before it is asked again (retry::PAUSE_AFTER_A_DROP).
    let not_before = if request.note(AFTER_A_DROP_NOTE).is_some() { now + PAUSE_AFTER_A_DROP } else { now + SETTLE };
    request.unset_note(AFTER_A_DROP_NOTE);
    request.log(log::DEBUG, mark!(), || format!("backend {address} refuses: the request waits suspended"));
    Handover {
        request: RequestPointer(request.raw()),
        address,
        deadline: now + left,
        not_before,
        client: request.client_socket(),
        place,
        policy: *policy,
        suspended_at: now,
    }
}

/// The backend the scheme handler asked this request to be suspended for, if it did.
fn suspension_asked(request: &Request) -> Option<Option<BackendAddress>> {
    let backend = request.note(SUSPEND_NOTE)?;
    let address = BackendAddress::parse_display(&String::from_utf8_lossy(backend));
    request.unset_note(SUSPEND_NOTE);
    Some(address)
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
unsafe fn run_handlers_after_ours(r: *mut sys::request_rec) -> c_int {
    // SAFETY: httpd's handler hook array, sorted and fixed once requests are served.
    let hooks = unsafe { sys::ap_hook_get_handler() };
    if hooks.is_null() {
        return DECLINED;
    }
    // SAFETY: the array holds `nelts` ap_LINK_handler_t entries.
    let entries =
        unsafe { std::slice::from_raw_parts((*hooks).elts as *const sys::ap_LINK_handler_t, (*hooks).nelts as usize) };
    let ours = handle as unsafe extern "C" fn(*mut sys::request_rec) -> c_int;
    let Some(position) = entries.iter().position(|entry| entry.pFunc.map(|f| f as usize) == Some(ours as usize)) else {
        return DECLINED;
    };
    for entry in &entries[position + 1..] {
        let Some(handler) = entry.pFunc else { continue };
        // SAFETY: the request httpd passed to the hook, as its runner would pass it.
        let status = unsafe { handler(r) };
        if status != DECLINED {
            return status;
        }
    }
    DECLINED
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

/// The suspend_connection hook: the worker has left the request, which now belongs to the
/// waiting thread.
pub unsafe extern "C" fn hand_over(c: *mut sys::conn_rec, _r: *mut sys::request_rec) {
    guard("suspend_connection", (), || {
        let Some(handover) = lock(&SUSPENDING).as_mut().and_then(|pending| pending.remove(&(c as usize))) else {
            return;
        };
        to_waiting_thread(handover);
    })
}

fn to_waiting_thread(handover: Handover) {
    let sender = WAITING_THREAD.get_or_init(|| Mutex::new(start_waiting_thread()));
    if let Err(returned) = lock(sender).send(handover) {
        // No waiting thread: answer at once rather than leave the connection behind.
        let ended = Ended { request: returned.0, resolution: Resolution::Stopping, probes: 0, last_errno: None };
        resume_soon(ended);
    }
}

/// The child_stopping hook. A graceful restart or stop lets a child finish its requests, and
/// the MPM keeps it running while suspended connections remain, so their waits go on to their
/// end (served when the backend returns); a child told to stop at once ends them now: served if
/// the backend accepts, else 503.
pub unsafe extern "C" fn child_stopping(_pchild: *mut sys::apr_pool_t, graceful: c_int) {
    if graceful == 0 {
        STOPPING.store(true, Ordering::Relaxed);
    }
}

fn start_waiting_thread() -> Sender<Handover> {
    let (sender, receiver) = channel();
    let spawned = std::thread::Builder::new()
        .name("fcgi-resilient-waits".into())
        .spawn(move || guard("the waiting thread", (), || keep_waits(&receiver)));
    if let Err(error) = spawned {
        log::server_error(&format!("could not start the thread for suspended requests: {error}"));
    }
    sender
}

fn keep_waits(arrivals: &Receiver<Handover>) {
    let mut waits: SuspendedWaits<Handover> = SuspendedWaits::new(BackoffBounds::DEFAULT);
    loop {
        let patience = if waits.is_empty() { Duration::from_secs(1) } else { TICK };
        match arrivals.recv_timeout(patience) {
            Ok(handover) => take(&mut waits, handover),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while let Ok(handover) = arrivals.try_recv() {
            take(&mut waits, handover);
        }
        let paused =
            |address: &BackendAddress| pause_watch::any() && pause_watch::paused_until(&address.to_string()).is_some();
        for ended in waits.tick_holding(Instant::now(), STOPPING.load(Ordering::Relaxed), RESUMED_PER_TICK, paused) {
            resume_soon(ended);
        }
        for (address, accepted) in waits.take_probed() {
            note_probe(&address, accepted);
        }
    }
}

/// The waiting thread's probes keep the child's memory of the backend and the breaker's
/// chain of refusals (`breaker`) as current as a waiting request's own probes would.
fn note_probe(address: &BackendAddress, accepted: bool) {
    let text = address.to_string();
    let refusals = status_handler::shared_table().and_then(|table| table.backend(&text)).map(|slot| slot.refusals());
    if accepted {
        KNOWN_DOWN.mark_up(&text);
        if let Some(refusals) = refusals {
            refusals.accepted();
        }
    } else {
        KNOWN_DOWN.mark_down(&text, Instant::now());
        if let Some(refusals) = refusals {
            refusals.refused(unix_millis_now());
        }
    }
}

fn take(waits: &mut SuspendedWaits<Handover>, mut handover: Handover) {
    let client = handover.client.take().map(ClientWatch::new);
    let (address, deadline, not_before) = (handover.address.clone(), handover.deadline, handover.not_before);
    waits.add_not_before(address, handover, deadline, client, not_before);
}

/// Asks the MPM to run `resume` on a worker now.
fn resume_soon(resumption: Ended<Handover>) {
    let baton = Box::into_raw(Box::new(resumption));
    // SAFETY: `resume` takes the box back exactly once; the event MPM's timed callbacks run
    // on a worker of this child, and registering from any thread takes the MPM's timer lock.
    let status = unsafe { sys::ap_mpm_register_timed_callback(0, Some(resume), baton.cast()) };
    if status != sys::APR_SUCCESS as c_int {
        // SAFETY: the MPM did not take the baton; it is still ours.
        drop(unsafe { Box::from_raw(baton) });
        log::server_error("the MPM refused a timed callback: a suspended connection is left as it is");
    }
}

unsafe extern "C" fn resume(baton: *mut c_void) {
    // SAFETY: `resume_soon` registered a Box<Ended<Handover>> as the baton, for this one call.
    let resumption = unsafe { Box::from_raw(baton.cast::<Ended<Handover>>()) };
    let r = resumption.request.request.0;
    // SAFETY: the suspended request and its connection live until `finish` destroys them.
    guard("resuming a suspended request", (), || unsafe { finish(r, *resumption) })
}

/// Serves or answers the request, then ends its connection as the MPM would.
unsafe fn finish(r: *mut sys::request_rec, ended: Ended<Handover>) {
    let Ended { request: handover, resolution, probes, last_errno } = ended;
    drop(handover.place);
    let waited = handover.suspended_at.elapsed();
    // SAFETY: the request stays live until ap_process_request_after_handler below.
    let request = unsafe { Request::from_raw(r) };
    let address = handover.address.to_string();
    let counters = status_handler::shared_table().and_then(|table| table.backend(&address));
    // SAFETY: r->invoke_mtx is the request's own mutex (made by ap_process_async_request and
    // unlocked when the request was suspended), in its pool; null without threads.
    let mutex = unsafe { (*r).invoke_mtx };
    if !mutex.is_null() {
        // SAFETY: as above.
        unsafe { sys::apr_thread_mutex_lock(mutex) };
    }
    let status = match resolution {
        Resolution::Accepting => {
            // SAFETY: the handler phase of a live request, as ap_invoke_handler would run it
            // (its filters were inserted before the request was suspended).
            let status = match unsafe { sys::ap_run_handler(r) } {
                DECLINED => INTERNAL_SERVER_ERROR,
                status => status,
            };
            // Refused or dropped again (PHP-FPM still going down): it waits on, suspended.
            if let Some(Some(address)) = suspension_asked(&request) {
                let policy = handover.policy;
                if let Ok(place) = take_place(&address.to_string(), &policy) {
                    let again = self::handover(&request, address, place, &policy);
                    if !mutex.is_null() {
                        // SAFETY: locked above by this thread; the request is left to the waiting thread.
                        unsafe { sys::apr_thread_mutex_unlock(mutex) };
                    }
                    to_waiting_thread(again);
                    return;
                }
            }
            if let Some(counters) = counters.filter(|_| status == sys::OK as c_int) {
                counters.recovered(waited.as_millis() as u64);
            }
            request.log(log::INFO, mark!(), || {
                format!(
                    "backend {address} answered after {} ms of waiting, suspended (no thread held)",
                    waited.as_millis()
                )
            });
            status
        }
        Resolution::ClientGone => {
            if let Some(counters) = counters {
                counters.client_left(waited.as_millis() as u64);
            }
            request.mark_client_gone();
            request.log(log::INFO, mark!(), || {
                format!(
                    "the client closed its connection after {} ms of waiting for backend {address}; \
                     the request was not sent to the backend",
                    waited.as_millis()
                )
            });
            CLIENT_GONE
        }
        Resolution::BudgetSpent | Resolution::Stopping => {
            if let Some(counters) = counters {
                counters.gave_up(waited.as_millis() as u64);
            }
            let policy = handover.policy;
            request.set_retry_after(policy.retry_after_secs);
            // The probe that found it refusing before it was suspended counts too.
            let probes = probes + 1;
            let stopping = resolution == Resolution::Stopping;
            request.log(log::ERROR, mark!(), || {
                let message = give_up_message(
                    GiveUpReason::BudgetSpent,
                    &address,
                    (0, probes),
                    (waited, policy.budget),
                    last_errno,
                    &policy,
                );
                if stopping {
                    format!("{message}; answered early: this child process is stopping")
                } else {
                    message
                }
            });
            SERVICE_UNAVAILABLE
        }
    };
    if !mutex.is_null() {
        // SAFETY: locked above by this thread.
        unsafe { sys::apr_thread_mutex_unlock(mutex) };
    }
    // SAFETY: what ap_process_async_request does after a handler returns: the answer (or the
    // error page), then the end-of-request bucket that logs the request and frees its pool.
    unsafe {
        let connection = (*r).connection;
        sys::ap_die(status, r);
        sys::ap_process_request_after_handler(r);
        close(connection);
    }
}

/// Flushes and closes the connection, then destroys its pool: the event MPM's clean-ups on it
/// count the connection out (as suspended, the state it left it in) and tell the modules.
unsafe fn close(c: *mut sys::conn_rec) {
    // SAFETY: the connection of a request just finished; nothing else uses it.
    unsafe {
        if !(*c).cs.is_null() {
            (*(*c).cs).state = sys::conn_state_e_CONN_STATE_SUSPENDED;
        }
        sys::ap_lingering_close(c);
        sys::apr_pool_destroy((*c).pool);
    }
}
