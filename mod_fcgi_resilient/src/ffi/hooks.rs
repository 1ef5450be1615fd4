//! Hook registration and the process-wide hooks: checking the running httpd (`compat`) and joining mod_proxy's chain at pre_config,
//! learning the MPM's MaxRequestWorkers (and mod_http2's workers) and attaching the shared counters at post_config,
//! serving the status page, and adding a section to mod_status's page.

use super::log::{self, mark};
use super::{compat, guard::guard, pause_watch, proxy, scheme_handler, server_status, status_handler, suspend, sys};
use crate::ffi::status_code::Status;
use crate::settings;
use crate::waiting_table::{http2_workers_per_child, WaiterRecords};
use std::ffi::c_int;
use std::ptr::null;
use std::sync::atomic::{AtomicU32, Ordering};

struct HookOrder([*const std::ffi::c_char; 2]);
// SAFETY: immutable pointers to static strings.
unsafe impl Sync for HookOrder {}

/// Successors are matched against the registering module's name: "run before mod_proxy".
static BEFORE_MOD_PROXY: HookOrder = HookOrder([c"mod_proxy.c".as_ptr(), std::ptr::null()]);

/// Event MPM's default MaxRequestWorkers and ThreadsPerChild, until post_config asks the MPM.
static THREADS_THAT_CAN_WAIT: AtomicU32 = AtomicU32::new(400);
static THREADS_PER_CHILD: AtomicU32 = AtomicU32::new(25);

pub fn threads_per_child() -> u32 {
    THREADS_PER_CHILD.load(Ordering::Relaxed)
}

/// The cap on waiting requests a section gets unless FcgiResilientMaxWaiting sets one. Where
/// requests wait in a thread, a share of the threads that can wait (MaxRequestWorkers, plus
/// mod_http2's workers when it is loaded). Under the event MPM most waiting requests hold no
/// thread (`suspend`); those that do are held to their child's thread limit all the same, so
/// the server-wide count is bounded by the waiting table alone.
pub fn default_max_waiting() -> u32 {
    if suspend::can_suspend() {
        WaiterRecords::CAPACITY as u32
    } else {
        settings::default_max_waiting(THREADS_THAT_CAN_WAIT.load(Ordering::Relaxed))
    }
}

pub unsafe extern "C" fn register(_pool: *mut sys::apr_pool_t) {
    guard("register_hooks", (), || {
        let order = sys::APR_HOOK_MIDDLE as c_int;
        // SAFETY: registering this module's hook functions, as register_hooks is meant to.
        unsafe {
            sys::ap_hook_pre_config(Some(pre_config), null(), null(), order);
            sys::ap_hook_post_config(Some(post_config), null(), null(), order);
            sys::ap_hook_handler(Some(status_handler::handle), null(), null(), order);
            // Before mod_proxy's handler (APR_HOOK_FIRST too), which does its bookkeeping
            // for a request as soon as it runs.
            sys::ap_hook_handler(
                Some(suspend::handle),
                null(),
                BEFORE_MOD_PROXY.0.as_ptr(),
                sys::APR_HOOK_FIRST as c_int,
            );
            sys::ap_hook_suspend_connection(Some(suspend::hand_over), null(), null(), order);
        }
        compat::hook_child_stopping(suspend::child_stopping, order);
        server_status::register();
        pause_watch::register_hooks();
    })
}

unsafe extern "C" fn pre_config(
    _pconf: *mut sys::apr_pool_t,
    _plog: *mut sys::apr_pool_t,
    _ptemp: *mut sys::apr_pool_t,
) -> c_int {
    guard("pre_config", Status::INTERNAL_SERVER_ERROR, || {
        match compat::check().and_then(|()| proxy::register_ahead_of_mod_proxy_fcgi(scheme_handler::handle)) {
            Ok(()) => Status::OK,
            Err(message) => {
                let level = (sys::APLOG_EMERG | sys::APLOG_STARTUP) as c_int;
                log::for_server(None, level, mark!(), &message);
                Status::INTERNAL_SERVER_ERROR
            }
        }
    })
    .raw()
}

unsafe extern "C" fn post_config(
    _pconf: *mut sys::apr_pool_t,
    _plog: *mut sys::apr_pool_t,
    _ptemp: *mut sys::apr_pool_t,
    server: *mut sys::server_rec,
) -> c_int {
    guard("post_config", Status::OK, || {
        // SAFETY: the server record httpd passes to post_config.
        unsafe { status_handler::attach_shared_table(server) };
        // SAFETY: the main server record httpd passes to post_config, live for the process.
        let server = unsafe { server.as_ref() };
        suspend::learn_mpm();
        // SAFETY: a plain query of httpd's state.
        if unsafe { sys::ap_state_query(sys::AP_SQ_MAIN_STATE as c_int) } == sys::AP_SQ_MS_CREATE_CONFIG as c_int {
            compat::log_verdict(server);
            log::for_server(server, sys::APLOG_NOTICE as c_int, mark!(), suspend::mode_line());
        }
        pause_watch::prepare_directory(server);
        if let Some((daemons, threads)) = query_mpm_limits() {
            let h2_workers = if http2_is_loaded() { http2_workers_per_child(threads) } else { 0 };
            THREADS_THAT_CAN_WAIT.store(daemons.saturating_mul(threads + h2_workers), Ordering::Relaxed);
            THREADS_PER_CHILD.store(threads, Ordering::Relaxed);
        }
        Status::OK
    })
    .raw()
}

fn http2_is_loaded() -> bool {
    // SAFETY: looks a module up by its source file name; the name is NUL-terminated.
    !unsafe { sys::ap_find_linked_module(c"mod_http2.c".as_ptr()) }.is_null()
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
