//! The proxy worker mod_proxy chose for a request, and the balancer it belongs to.
//!
//! A worker's shared record lives in memory every child process writes (mod_proxy's slotmem),
//! so its status word is read and changed only through an atomic view of it, never through
//! a Rust reference that would claim it cannot change underneath.

use super::sys;
use crate::balancer::status_bits;
use crate::probe::BackendAddress;
use std::ffi::CStr;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

// The plain-Rust policy names the header's bits itself; they must agree.
const _: () = assert!(status_bits::INITIALIZED == sys::PROXY_WORKER_INITIALIZED);
const _: () = assert!(status_bits::IGNORE_ERRORS == sys::PROXY_WORKER_IGNORE_ERRORS);
const _: () = assert!(status_bits::DRAIN == sys::PROXY_WORKER_DRAIN);
const _: () = assert!(status_bits::IN_SHUTDOWN == sys::PROXY_WORKER_IN_SHUTDOWN);
const _: () = assert!(status_bits::DISABLED == sys::PROXY_WORKER_DISABLED);
const _: () = assert!(status_bits::STOPPED == sys::PROXY_WORKER_STOPPED);
const _: () = assert!(status_bits::IN_ERROR == sys::PROXY_WORKER_IN_ERROR);
const _: () = assert!(status_bits::HC_FAIL == sys::PROXY_WORKER_HC_FAIL);

/// A worker from mod_proxy's configuration; workers live as long as the configuration.
#[derive(Clone, Copy)]
pub struct Worker {
    raw: *mut sys::proxy_worker,
}

impl Worker {
    /// # Safety
    /// `raw` must be a configured worker with its shared record attached.
    pub unsafe fn from_raw(raw: *mut sys::proxy_worker) -> Worker {
        Worker { raw }
    }

    fn status_word(&self) -> &AtomicU32 {
        // SAFETY: `status` is an aligned `unsigned int` in the worker's shared record, which
        // outlives every request; other processes change it, so it is only touched atomically.
        unsafe { AtomicU32::from_ptr(std::ptr::addr_of_mut!((*(*self.raw).s).status)) }
    }

    pub fn status(&self) -> u32 {
        self.status_word().load(Ordering::Acquire)
    }

    /// Clears only the error bit (and its time), keeping every other state bit as it is:
    /// other processes may be changing them at this moment.
    pub fn clear_error(&self) {
        let before = self.status_word().fetch_and(!status_bits::IN_ERROR, Ordering::AcqRel);
        if before & status_bits::IN_ERROR != 0 {
            // SAFETY: the record's apr_time_t (i64, 8-aligned in the struct), only accessed
            // atomically here, as `status` is.
            let error_time = unsafe { AtomicI64::from_ptr(std::ptr::addr_of_mut!((*(*self.raw).s).error_time)) };
            error_time.store(0, Ordering::Release);
        }
    }

    /// The worker's Unix socket, if its URL named one (`unix:/path|fcgi://...`).
    pub fn unix_socket(&self) -> Option<String> {
        // SAFETY: `uds_path` is a NUL-terminated array inside the shared record.
        let path = unsafe { CStr::from_ptr((*(*self.raw).s).uds_path.as_ptr()) };
        (!path.is_empty()).then(|| path.to_string_lossy().into_owned())
    }

    /// Where the worker's backend listens, from its own configuration.
    pub fn address(&self) -> Option<BackendAddress> {
        if let Some(path) = self.unix_socket() {
            return Some(BackendAddress::Unix(path.into()));
        }
        // SAFETY: `name_ex` is the worker's NUL-terminated URL inside the shared record.
        let url = unsafe { CStr::from_ptr((*(*self.raw).s).name_ex.as_ptr()) };
        BackendAddress::from_fcgi_url(&url.to_string_lossy())
    }

    /// The balancer this worker is a member of, among those `conf` defines.
    ///
    /// # Safety
    /// `conf` must be null or mod_proxy's live server config (the scheme handler's argument).
    pub unsafe fn balancer(&self, conf: *mut sys::proxy_server_conf) -> Option<Balancer> {
        if conf.is_null() {
            return None;
        }
        // SAFETY: `conf->balancers` is an array of `nelts` proxy_balancer records.
        let balancers = unsafe { array_slice::<sys::proxy_balancer>((*conf).balancers) };
        balancers
            .iter()
            .find(|balancer| Balancer::members_of(balancer).any(|member| member.raw == self.raw))
            .map(|balancer| Balancer { raw: balancer as *const sys::proxy_balancer })
    }
}

pub struct Balancer {
    raw: *const sys::proxy_balancer,
}

impl Balancer {
    fn members_of(balancer: &sys::proxy_balancer) -> impl Iterator<Item = Worker> + '_ {
        // SAFETY: `workers` is an array of `nelts` pointers to configured workers.
        let members = unsafe { array_slice::<*mut sys::proxy_worker>(balancer.workers) };
        members.iter().filter(|raw| !raw.is_null()).map(|&raw| Worker { raw })
    }

    /// Every member but `this` one.
    pub fn other_members(&self, this: &Worker) -> Vec<Worker> {
        // SAFETY: balancers live as long as the configuration.
        let balancer = unsafe { &*self.raw };
        Self::members_of(balancer).filter(|member| member.raw != this.raw).collect()
    }

    /// `forcerecovery`: whether the admin lets a balancer whose members are all in error try
    /// them again at once (On by default).
    pub fn force_recovery(&self) -> bool {
        // SAFETY: balancers live as long as the configuration; `s` is their shared record.
        unsafe { (*(*self.raw).s).forcerecovery() != 0 }
    }
}

/// # Safety
/// `array` is null or an APR array of `nelts` elements of type `T`, alive for the caller.
unsafe fn array_slice<'a, T>(array: *const sys::apr_array_header_t) -> &'a [T] {
    // SAFETY: the caller's contract.
    unsafe {
        if array.is_null() || (*array).nelts <= 0 || (*array).elts.is_null() {
            return &[];
        }
        std::slice::from_raw_parts((*array).elts as *const T, (*array).nelts as usize)
    }
}
