//! The shared record of a proxy worker (`worker->s`) lives in memory that other child
//! processes (and mod_proxy_balancer's manager) write at any time. A Rust `&`/`&mut` over
//! it would promise that nobody else does, so its fields are only touched through atomics
//! made over the field's address: the same machine instructions httpd uses, without UB.

use super::sys;
use std::ffi::c_uint;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

/// # Safety
/// `worker` must be a live proxy worker with its shared record (as mod_proxy passes it).
unsafe fn status_field<'a>(worker: *mut sys::proxy_worker) -> &'a AtomicU32 {
    const _: () = assert!(std::mem::size_of::<c_uint>() == std::mem::size_of::<u32>());
    // SAFETY: a live, aligned c_uint field of the shared record; only accessed atomically here.
    unsafe { AtomicU32::from_ptr(std::ptr::addr_of_mut!((*(*worker).s).status)) }
}

/// The worker's status bits (PROXY_WORKER_*), as other processes last set them.
///
/// # Safety
/// `worker` must be a live proxy worker with its shared record.
pub unsafe fn status(worker: *mut sys::proxy_worker) -> u32 {
    // SAFETY: the caller's guarantee.
    unsafe { status_field(worker) }.load(Ordering::Acquire)
}

/// Clears the error state a refused connect put on a balancer member (workers outside a
/// balancer ignore errors and are never put in that state). Other status bits, which other
/// processes may be changing at this moment, are kept: only the one bit is cleared.
///
/// # Safety
/// `worker` must be a live proxy worker with its shared record.
pub unsafe fn clear_in_error(worker: *mut sys::proxy_worker) {
    let in_error = sys::PROXY_WORKER_IN_ERROR;
    let ignores_errors = sys::PROXY_WORKER_IGNORE_ERRORS;
    // SAFETY: the caller's guarantee.
    let field = unsafe { status_field(worker) };
    let status = field.load(Ordering::Acquire);
    if status & in_error == 0 || status & ignores_errors != 0 {
        return;
    }
    field.fetch_and(!in_error, Ordering::AcqRel);
    // SAFETY: the record's apr_time_t (i64, 8-aligned in the struct), accessed atomically.
    let error_time = unsafe { AtomicI64::from_ptr(std::ptr::addr_of_mut!((*(*worker).s).error_time)) };
    error_time.store(0, Ordering::Release);
}
