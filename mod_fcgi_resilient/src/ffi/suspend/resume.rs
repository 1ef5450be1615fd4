//! Steps 4 to 6 of the protocol in `suspend`: the claim a timed callback carries, the worker
//! that serves a resumed request, the answers given on the waiting thread when the child stops,
//! and the end of a connection this module owns.

use super::waiting_thread;
use super::{suspension_asked, Handover, RequestPointer};
use crate::ffi::ending::Ending;
use crate::ffi::request::Request;
use crate::ffi::status_code::Status;
use crate::ffi::{guard::guard, scoreboard, status_handler, sys};
use crate::policy::Wait;
use crate::retry::GiveUpReason;
use crate::suspended_waits::{Ended, Resolution};
use std::ffi::{c_int, c_void};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// httpd's own lingering close reads for 2 s at most (SECONDS_TO_LINGER).
const LINGER: Duration = Duration::from_secs(2);
/// Answers written on the waiting thread (a child stopping at once) may not wait on a client
/// that does not read.
const ANSWER_PATIENCE_MICROS: i64 = 100_000;

/// A suspended request this module owns (the MPM has left it). Dropped without being answered,
/// its connection is closed.
pub struct OwnedRequest(RequestPointer);

impl OwnedRequest {
    /// # Safety
    /// The MPM and every other thread must have left the request and its connection.
    pub unsafe fn new(request: RequestPointer) -> OwnedRequest {
        OwnedRequest(request)
    }

    /// Whether a write to its client failed before it was suspended (`c->aborted`).
    pub fn client_aborted(&self) -> bool {
        // SAFETY: owned: nothing else uses the request or its connection.
        unsafe { (*(*(self.0).0).connection).aborted != 0 }
    }

    fn into_raw(self) -> *mut sys::request_rec {
        let raw = (self.0).0;
        std::mem::forget(self);
        raw
    }
}

impl Drop for OwnedRequest {
    fn drop(&mut self) {
        // SAFETY: owned: nothing else uses the request or its connection.
        unsafe {
            let c = (*(self.0).0).connection;
            (*c).aborted = 1;
            close_now(c);
        }
    }
}

/// A suspended request and what its wait needs.
pub struct Suspension {
    pub request: OwnedRequest,
    pub handover: Handover,
}

/// A connection whose answer is written and whose write side is shut: what the client still
/// sends is read and dropped, then it is closed (as httpd's lingering close does).
pub struct Lingering {
    connection: *mut sys::conn_rec,
    socket: OwnedFd,
    until: Instant,
}

// SAFETY: owned by one thread at a time, like every connection this module owns.
unsafe impl Send for Lingering {}

impl Lingering {
    /// Whether it is closed now: the client closed too, an error, or time is up. Reads 64 KB at
    /// most per call, so that a client that keeps sending holds up no other connection.
    pub fn is_done(&mut self, now: Instant) -> bool {
        let mut buffer = [0u8; 4096];
        for _ in 0..16 {
            // SAFETY: reads into a buffer of this length; the descriptor is a duplicate of ours.
            let read = unsafe {
                libc::recv(self.socket.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len(), libc::MSG_DONTWAIT)
            };
            if read > 0 {
                continue;
            }
            let would_block = read < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock;
            return !would_block || now >= self.until;
        }
        now >= self.until
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        // SAFETY: owned: the answer was written and nothing else uses the connection.
        unsafe { close_now(self.connection) };
    }
}

const PENDING: u8 = 0;
const STARTED: u8 = 1;
const RECLAIMED: u8 = 2;

/// A resumption registered with the MPM: the worker that runs the callback starts it, unless a
/// stop at once took it back first (its workers may never run the callback).
pub struct Claim {
    state: AtomicU8,
    ended: Mutex<Option<Ended<Suspension>>>,
}

/// Resumptions registered that no worker has started yet.
static SCHEDULED: AtomicUsize = AtomicUsize::new(0);

pub fn scheduled() -> usize {
    SCHEDULED.load(Ordering::Acquire)
}

impl Claim {
    pub fn is_pending(&self) -> bool {
        self.state.load(Ordering::Acquire) == PENDING
    }

    fn take(&self, to: u8) -> Option<Ended<Suspension>> {
        self.state.compare_exchange(PENDING, to, Ordering::AcqRel, Ordering::Acquire).ok()?;
        SCHEDULED.fetch_sub(1, Ordering::AcqRel);
        super::lock(&self.ended).take()
    }

    pub fn reclaim(&self) -> Option<Ended<Suspension>> {
        self.take(RECLAIMED)
    }
}

/// Asks the MPM to run `resume` on a worker now. The claim is the waiting thread's way back to
/// the request should the callback never run.
pub fn resume_soon(ended: Ended<Suspension>) -> Option<Arc<Claim>> {
    let claim = Arc::new(Claim { state: AtomicU8::new(PENDING), ended: Mutex::new(Some(ended)) });
    SCHEDULED.fetch_add(1, Ordering::AcqRel);
    let baton = Box::into_raw(Box::new(Arc::clone(&claim)));
    // SAFETY: `resume` takes the box back exactly once; the event MPM's timed callbacks run
    // on a worker of this child, and registering from any thread takes the MPM's timer lock.
    let status = unsafe { sys::ap_mpm_register_timed_callback(0, Some(resume), baton.cast()) };
    if status != sys::APR_SUCCESS as c_int {
        // SAFETY: the MPM did not take the baton; it is still ours.
        drop(unsafe { Box::from_raw(baton) });
        if let Some(ended) = claim.reclaim() {
            answer_here(Ended { resolution: Resolution::InternalError, ..ended });
        }
        return None;
    }
    Some(claim)
}

unsafe extern "C" fn resume(baton: *mut c_void) {
    // SAFETY: `resume_soon` registered a Box<Arc<Claim>> as the baton, for this one call.
    let claim = unsafe { Box::from_raw(baton.cast::<Arc<Claim>>()) };
    guard("resuming a suspended request", (), || {
        // Any callback this worker runs proves it has left what it suspended before.
        scoreboard::knock_here();
        if let Some(ended) = claim.take(STARTED) {
            serve_on_this_worker(ended);
        }
    })
}

/// A no-op timed callback whose only effect is that the worker running it is known to have
/// left every connection it suspended before (`handoff`).
pub fn knock_soon() {
    // SAFETY: a callback without a baton, run once by a worker of this child.
    unsafe { sys::ap_mpm_register_timed_callback(0, Some(knock), std::ptr::null_mut()) };
}

unsafe extern "C" fn knock(_baton: *mut c_void) {
    guard("a knock", (), scoreboard::knock_here)
}

/// On a worker: the request is served (or answered) as any other, on this worker's scoreboard
/// entry, and its connection lingers on the waiting thread.
fn serve_on_this_worker(ended: Ended<Suspension>) {
    let Ended { request: Suspension { request, handover }, resolution, wait } = ended;
    let r = request.into_raw();
    // SAFETY: owned (the claim was started here), and this worker alone uses it now.
    unsafe { scoreboard::serve_on_this_worker((*r).connection, r) };
    // Taken while the request is live: its connection lingers on the waiting thread after.
    // SAFETY: as above.
    let socket = unsafe { Request::from_raw(r) }.client_socket();
    // SAFETY: as above.
    let Some(connection) = (unsafe { finish(r, handover, resolution, wait, true) }) else { return };
    // SAFETY: the request is finished; the connection is still owned by this worker.
    unsafe {
        (*connection).sbh = std::ptr::null_mut();
        if sys::ap_start_lingering_close(connection) != 0 {
            close_now(connection);
            return;
        }
    }
    match socket {
        Some(socket) => waiting_thread::linger(Lingering { connection, socket, until: Instant::now() + LINGER }),
        // SAFETY: as above.
        None => unsafe { close_now(connection) },
    }
}

/// On the waiting thread (a child stopping at once, or after a panic): 503, or nothing for a
/// client that left, written without waiting on the client, and the connection closed.
pub fn answer_here(ended: Ended<Suspension>) {
    let Ended { request: Suspension { request, handover }, resolution, wait } = ended;
    let resolution = match resolution {
        Resolution::GaveUp(GiveUpReason::ClientGone) | Resolution::InternalError => resolution,
        _ => Resolution::Stopping,
    };
    let r = request.into_raw();
    guard("answering a suspended request", (), || {
        // SAFETY: owned by this thread; its socket's timeout is ours to set.
        unsafe {
            let socket = sys::ap_get_conn_socket((*r).connection);
            if !socket.is_null() {
                sys::apr_socket_timeout_set(socket, ANSWER_PATIENCE_MICROS);
            }
        }
        // SAFETY: as above.
        if let Some(connection) = unsafe { finish(r, handover, resolution, wait, false) } {
            // SAFETY: the request is finished; the connection is ours.
            unsafe {
                sys::ap_start_lingering_close(connection);
                close_now(connection);
            }
        }
    })
}

/// How a suspended request's wait ends, once and for both places that end it.
enum Conclusion {
    /// The handler ran: its status goes to the client.
    Served(Status),
    ClientGone,
    GaveUp(GiveUpReason),
    /// The child stops at once: 503 now.
    Stopping,
    /// This module could not keep or resume it: 503 now.
    InternalError,
}

/// Serves or answers the request as ap_process_async_request would have, and returns its
/// connection for closing — or `None` when the request waits again (it went back to the
/// waiting thread).
///
/// # Safety
/// `r` must be a suspended request this thread owns; it is freed before this returns.
unsafe fn finish(
    r: *mut sys::request_rec,
    handover: Handover,
    resolution: Resolution,
    wait: Wait,
    on_worker: bool,
) -> Option<*mut sys::conn_rec> {
    let Handover { address, place, policy, suspended_at, .. } = handover;
    drop(place); // given back when the wait ended already, unless it ended by a stop or a panic
    let waited = suspended_at.elapsed();
    // SAFETY: owned until ap_process_request_after_handler below.
    let request = unsafe { Request::from_raw(r) };
    // The resumed run, the give-up line and a later suspension go on from where its wait is.
    request.with_wait_record(|record| record.wait = wait);
    // SAFETY: r->invoke_mtx is the request's own mutex (made by ap_process_async_request and
    // unlocked when the request was suspended), in its pool; null without threads.
    let mutex = unsafe { (*r).invoke_mtx };
    let lock = |locked: bool| {
        if !mutex.is_null() {
            // SAFETY: as above; locked and unlocked by this thread in turn.
            unsafe {
                if locked {
                    sys::apr_thread_mutex_lock(mutex)
                } else {
                    sys::apr_thread_mutex_unlock(mutex)
                }
            };
        }
    };
    lock(true);
    let conclusion = match resolution {
        Resolution::Run if on_worker => {
            // SAFETY: the handler phase of a live request, as ap_invoke_handler would run it
            // (its filters were inserted before the request was suspended).
            let status = match super::running_mod_proxy(|| Status::from_raw(unsafe { sys::ap_run_handler(r) })) {
                Status::DECLINED => Status::INTERNAL_SERVER_ERROR,
                status => status,
            };
            match suspension_asked(&request) {
                // Refused or dropped again (PHP-FPM still going down): it waits on, suspended.
                Some(address) => match super::take_place(&address.to_string(), &policy) {
                    Ok(place) => {
                        let wait = request.with_wait_record(|record| record.wait);
                        let again = super::handover(&request, address, place, &policy, wait);
                        lock(false);
                        // SAFETY: this worker's scoreboard entry must not be written once it
                        // has left the request; the waiting thread owns it from the next line.
                        unsafe { (*(*r).connection).sbh = std::ptr::null_mut() };
                        // SAFETY: owned, and handed over whole.
                        let request = unsafe { OwnedRequest::new(RequestPointer(r)) };
                        waiting_thread::wait_again(Suspension { request, handover: again });
                        return None;
                    }
                    // The waiting cap is full: answered as a request refused a place at first.
                    Err(refusal) => Conclusion::GaveUp(super::refused_a_place(&request, &policy, refusal)),
                },
                None => Conclusion::Served(status),
            }
        }
        Resolution::GaveUp(GiveUpReason::ClientGone) => Conclusion::ClientGone,
        Resolution::GaveUp(reason) => Conclusion::GaveUp(reason),
        Resolution::Run | Resolution::Stopping => Conclusion::Stopping,
        Resolution::InternalError => Conclusion::InternalError,
    };
    let status = answer(&request, conclusion, &address.to_string(), &policy, waited, wait.last_errno());
    lock(false);
    // SAFETY: what ap_process_async_request does after a handler returns: the answer (or the
    // error page), then the end-of-request bucket that logs the request and frees its pool.
    unsafe {
        let connection = (*r).connection;
        sys::ap_die(status.raw(), r);
        sys::ap_process_request_after_handler(r);
        Some(connection)
    }
}

/// The status, counters, Retry-After and log line of a suspended request's end (`ending`).
fn answer(
    request: &Request,
    conclusion: Conclusion,
    address: &str,
    policy: &crate::settings::Policy,
    waited: Duration,
    last_errno: Option<nix::errno::Errno>,
) -> Status {
    let counters = status_handler::shared_table().and_then(|table| table.backend(address));
    let end = Ending { request, address, counters, waited };
    match conclusion {
        Conclusion::Served(status) => end.served(status, ", suspended (no thread held)"),
        Conclusion::ClientGone => end.client_gone(),
        Conclusion::GaveUp(reason) => end.gave_up(reason, policy.budget, last_errno, policy, ""),
        Conclusion::Stopping => end.gave_up(
            GiveUpReason::BudgetSpent,
            policy.budget,
            last_errno,
            policy,
            "; answered early: this child process is stopping",
        ),
        Conclusion::InternalError => end.gave_up(
            GiveUpReason::BudgetSpent,
            policy.budget,
            last_errno,
            policy,
            "; answered early: mod_fcgi_resilient could not keep the request waiting (see the error logged before)",
        ),
    }
}

/// Closes the connection and destroys its pool: the event MPM's clean-ups on it count the
/// connection out (as suspended, the state it left it in) and tell the modules.
///
/// # Safety
/// `c` must be a connection this thread owns; it is freed.
unsafe fn close_now(c: *mut sys::conn_rec) {
    // SAFETY: the caller's connection; ap_process_request_after_handler may have moved its
    // state on, and the MPM's clean-up counts a suspended connection out by this state.
    unsafe {
        if !(*c).cs.is_null() {
            (*(*c).cs).state = sys::conn_state_e_CONN_STATE_SUSPENDED;
        }
        sys::apr_pool_destroy((*c).pool);
    }
}
