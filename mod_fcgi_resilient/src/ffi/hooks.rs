//! Hook registration and the process-wide hooks: joining mod_proxy's chain at pre_config,
//! learning the MPM's threads per child and attaching the shared counters at post_config, and
//! serving the status page.

use super::log::{self, mark};
use super::{guard::guard, proxy, scheme_handler, status_handler, sys};
use std::ffi::c_int;
use std::ptr::null;
use std::sync::atomic::{AtomicU32, Ordering};

const OK: c_int = sys::OK as c_int;

/// Event MPM's default ThreadsPerChild, until post_config asks the MPM.
static THREADS_PER_CHILD: AtomicU32 = AtomicU32::new(25);

pub fn threads_per_child() -> u32 {
    THREADS_PER_CHILD.load(Ordering::Relaxed)
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
        let mut threads: c_int = 0;
        // SAFETY: ap_mpm_query writes one int for AP_MPMQ_MAX_THREADS.
        let status = unsafe { sys::ap_mpm_query(sys::AP_MPMQ_MAX_THREADS as c_int, &mut threads) };
        if status == sys::APR_SUCCESS as c_int && threads > 0 {
            THREADS_PER_CHILD.store(threads as u32, Ordering::Relaxed);
        }
        OK
    })
}
