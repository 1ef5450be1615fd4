//! This child's rows of httpd's scoreboard: which worker a thread is, what a worker's status
//! is, how many are idle, and giving a resumed request the scoreboard entry of the worker that
//! serves it. The scoreboard is shared memory that lives as long as the server (mapped by the
//! parent before children start, scoreboard.c); every worker writes only its own entry.

use super::sys;
use crate::handoff;
use std::cell::Cell;
use std::ffi::c_int;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// This child's slot in the scoreboard, found once by its process id.
fn child_slot() -> Option<usize> {
    static SLOT: OnceLock<Option<usize>> = OnceLock::new();
    *SLOT.get_or_init(|| {
        // SAFETY: apr_proc_t is plain data; ap_find_child_by_pid only reads its pid.
        let mut process: sys::apr_proc_t = unsafe { std::mem::zeroed() };
        // SAFETY: getpid cannot fail.
        process.pid = unsafe { libc::getpid() };
        // SAFETY: reads the scoreboard's process rows.
        let slot = unsafe { sys::ap_find_child_by_pid(&mut process) };
        usize::try_from(slot).ok()
    })
}

fn image() -> Option<&'static sys::scoreboard> {
    // SAFETY: set by httpd before children start and never freed while they run.
    let image = unsafe { sys::ap_scoreboard_image };
    // SAFETY: non-null: the live scoreboard.
    (!image.is_null()).then(|| unsafe { &*image })
}

/// ThreadLimit: the length of each child's row of workers.
fn thread_limit() -> usize {
    // SAFETY: the global part of the live scoreboard.
    image().map_or(0, |image| unsafe { (*image.global).thread_limit }.max(0) as usize)
}

fn worker(child: usize, thread: usize) -> Option<*mut sys::worker_score> {
    let image = image()?;
    if thread >= thread_limit() {
        return None;
    }
    // SAFETY: `servers` has ServerLimit rows of ThreadLimit entries; `child` is this process's
    // slot (found by ap_find_child_by_pid) and `thread` is below ThreadLimit.
    Some(unsafe { (*image.servers.add(child)).add(thread) })
}

/// The worker this thread is, within this child: found by thread and process id (each worker
/// writes both into its entry when it starts, event.c worker_thread), remembered per thread.
pub fn this_worker() -> Option<usize> {
    thread_local! { static THIS: Cell<Option<usize>> = const { Cell::new(None) }; }
    if let Some(thread) = THIS.with(Cell::get) {
        return Some(thread);
    }
    let child = child_slot()?;
    // SAFETY: neither call can fail.
    let (me, pid) = unsafe { (libc::pthread_self(), libc::getpid()) };
    let found = (0..thread_limit()).find(|&thread| {
        worker(child, thread).is_some_and(|entry| {
            // SAFETY: an entry of the live scoreboard; tid and pid are written once per thread.
            unsafe { (*entry).tid == me && (*entry).pid == pid }
        })
    })?;
    THIS.with(|this| this.set(Some(found)));
    Some(found)
}

/// A worker's status now (scoreboard.h's SERVER_*). Other threads write it: read as volatile.
pub fn status(thread: usize) -> u8 {
    let entry = child_slot().and_then(|child| worker(child, thread));
    // SAFETY: an entry of the live scoreboard; one byte.
    entry.map_or(handoff::status::DEAD, |entry| unsafe { std::ptr::addr_of!((*entry).status).read_volatile() })
}

/// Writes the hand-off mark into this worker's own status (`handoff`).
pub fn mark_leaving(thread: usize) {
    let Some(child) = child_slot() else { return };
    // SAFETY: this worker's own entry, as the MPM itself updates it.
    unsafe {
        sys::ap_update_child_status_from_indexes(
            child as c_int,
            thread as c_int,
            handoff::status::IDLE_KILL.into(),
            std::ptr::null_mut(),
        )
    };
}

/// Workers of this child that are idle now, among its first `threads` entries: READY, or
/// GRACEFUL in a child that is stopping gracefully (its idle workers say so).
pub fn idle_workers(threads: usize) -> usize {
    let idle = |status: u8| status == handoff::status::READY || status == handoff::status::GRACEFUL;
    (0..threads.min(thread_limit())).filter(|&thread| idle(status(thread))).count()
}

/// Gives a resumed request's connection this worker's scoreboard entry, so the request shows in
/// mod_status and counts as busy.
///
/// # Safety
/// `c` must be a live connection that this thread alone uses, `r` its request.
pub unsafe fn serve_on_this_worker(c: *mut sys::conn_rec, r: *mut sys::request_rec) {
    let (Some(child), Some(thread)) = (child_slot(), this_worker()) else { return };
    let mut handle: *mut sys::ap_sb_handle_t = std::ptr::null_mut();
    // SAFETY: the handle is allocated in the connection's pool, which outlives its use here.
    unsafe {
        sys::ap_create_sb_handle(&mut handle, (*c).pool, child as c_int, thread as c_int);
        (*c).sbh = handle.cast();
        sys::ap_update_child_status(handle, handoff::status::BUSY_WRITE.into(), r);
    }
}

/// Knocks run by each worker of this child (`handoff`): a worker that runs one proves it has
/// left every connection it suspended before.
fn knock_counts() -> &'static [AtomicU64] {
    static COUNTS: OnceLock<Box<[AtomicU64]>> = OnceLock::new();
    COUNTS.get_or_init(|| (0..thread_limit()).map(|_| AtomicU64::new(0)).collect())
}

pub fn knocks(thread: usize) -> u64 {
    knock_counts().get(thread).map_or(0, |count| count.load(Ordering::Acquire))
}

/// Counts a knock run by this worker.
pub fn knock_here() {
    if let Some(count) = this_worker().and_then(|thread| knock_counts().get(thread)) {
        count.fetch_add(1, Ordering::AcqRel);
    }
}
