//! Hook registration and the process-wide hooks: joining mod_proxy's chain at pre_config,
//! learning the MPM's MaxRequestWorkers and attaching the shared counters at post_config,
//! serving the status page, and adding a section to mod_status's page.

use super::log::{self, mark};
use super::{guard::guard, pause_watch, proxy, scheme_handler, server_status, status_handler, sys};
use std::ffi::c_int;
use std::ptr::null;
use std::sync::atomic::{AtomicU32, Ordering};

const OK: c_int = sys::OK as c_int;

/// Event MPM's default MaxRequestWorkers and ThreadsPerChild, until post_config asks the MPM.
static MAX_REQUEST_WORKERS: AtomicU32 = AtomicU32::new(400);
static THREADS_PER_CHILD: AtomicU32 = AtomicU32::new(25);

pub fn threads_per_child() -> u32 {
    THREADS_PER_CHILD.load(Ordering::Relaxed)
}

/// How many requests the whole server serves at once: the default cap on waiting requests
/// is a share of it, whatever the MPM (prefork has one thread per child).
pub fn max_request_workers() -> u32 {
    MAX_REQUEST_WORKERS.load(Ordering::Relaxed)
}

pub unsafe extern "C" fn register(_pool: *mut sys::apr_pool_t) {
    guard("register_hooks", (), || {
        let order = sys::APR_HOOK_MIDDLE as c_int;
        // SAFETY: registering this module's hook functions, as register_hooks is meant to.
        unsafe {
            sys::ap_hook_pre_config(Some(pre_config), null(), null(), order);
            sys::ap_hook_post_config(Some(post_config), null(), null(), order);
            sys::ap_hook_handler(Some(status_handler::handle), null(), null(), order);
        }
        server_status::register();
        pause_watch::register_hooks();
    })
}

unsafe extern "C" fn pre_config(
    _pconf: *mut sys::apr_pool_t,
    _plog: *mut sys::apr_pool_t,
    _ptemp: *mut sys::apr_pool_t,
) -> c_int {
    guard("pre_config", sys::HTTP_INTERNAL_SERVER_ERROR as c_int, || {
        match proxy::register_ahead_of_mod_proxy_fcgi(scheme_handler::handle) {
            Ok(()) => OK,
            Err(message) => {
                let level = (sys::APLOG_EMERG | sys::APLOG_STARTUP) as c_int;
                log::for_server(std::ptr::null(), level, mark!(), &message);
                sys::HTTP_INTERNAL_SERVER_ERROR as c_int
            }
        }
    })
}

unsafe extern "C" fn post_config(
    _pconf: *mut sys::apr_pool_t,
    _plog: *mut sys::apr_pool_t,
    _ptemp: *mut sys::apr_pool_t,
    server: *mut sys::server_rec,
) -> c_int {
    guard("post_config", OK, || {
        // SAFETY: the server record httpd passes to post_config.
        unsafe { status_handler::attach_shared_table(server) };
        pause_watch::prepare_directory(server);
        if let Some((daemons, threads)) = query_mpm_limits() {
            MAX_REQUEST_WORKERS.store(daemons.saturating_mul(threads), Ordering::Relaxed);
            THREADS_PER_CHILD.store(threads, Ordering::Relaxed);
        }
        OK
    })
}

/// The MPM's daemon limit and threads per child. httpd 2.4 has no AP_MPMQ_MAX_REQUEST_WORKERS:
/// MaxRequestWorkers is their product (prefork: MaxRequestWorkers x 1; worker and event:
/// MaxRequestWorkers / ThreadsPerChild x ThreadsPerChild).
fn query_mpm_limits() -> Option<(u32, u32)> {
    let query = |code: u32| {
        let mut value: c_int = 0;
        // SAFETY: ap_mpm_query writes one int for these codes.
        let status = unsafe { sys::ap_mpm_query(code as c_int, &mut value) };
        (status == sys::APR_SUCCESS as c_int && value > 0).then_some(value as u32)
    };
    let daemons = query(sys::AP_MPMQ_MAX_DAEMONS)?;
    let threads = query(sys::AP_MPMQ_MAX_THREADS)?;
    Some((daemons, threads))
}
