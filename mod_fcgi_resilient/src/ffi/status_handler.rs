//! `SetHandler fcgi-resilient-status`: the counters of all child processes, like mod_status.
//! Access is left to the usual Require directives of the section that sets the handler.

use super::{guard::guard, sys};
use crate::stats::StatsTable;
use crate::status_page::{render_auto, render_html, wants_machine_format};
use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicPtr, Ordering};

const HANDLER_NAME: &[u8] = b"fcgi-resilient-status";
const DECLINED: c_int = sys::DECLINED as c_int;
const OK: c_int = sys::OK as c_int;

static SHARED_TABLE: AtomicPtr<StatsTable> = AtomicPtr::new(std::ptr::null_mut());

/// Key of the mapping in the process pool, which outlives the module across restarts.
const TABLE_KEY: &CStr = c"mod_fcgi_resilient shared counters";

pub fn shared_table() -> Option<&'static StatsTable> {
    // SAFETY: the pointer is null or a mapping that is never unmapped.
    unsafe { SHARED_TABLE.load(Ordering::Acquire).as_ref() }
}

/// Finds the table made at the first start-up, or makes it: httpd unloads and reloads the
/// module on every restart, but the parent process (and so the mapping) stays.
///
/// # Safety
/// `server` must be the server record httpd passes to post_config.
pub unsafe fn attach_shared_table(server: *mut sys::server_rec) {
    // SAFETY: the process record and its pool live as long as httpd's parent process.
    unsafe {
        let pool = (*(*server).process).pool;
        let mut existing: *mut c_void = std::ptr::null_mut();
        sys::apr_pool_userdata_get(&mut existing, TABLE_KEY.as_ptr(), pool);
        if existing.is_null() {
            let Some(table) = StatsTable::new_shared() else { return };
            existing = table as *const StatsTable as *mut c_void;
            // apr_pool_cleanup_null: no cleanup code from a module that may be unloaded.
            sys::apr_pool_userdata_set(existing, TABLE_KEY.as_ptr(), Some(sys::apr_pool_cleanup_null), pool);
        }
        SHARED_TABLE.store(existing.cast(), Ordering::Release);
    }
}

pub unsafe extern "C" fn handle(r: *mut sys::request_rec) -> c_int {
    // SAFETY: httpd calls handlers with a live request.
    guard("the status handler", sys::HTTP_INTERNAL_SERVER_ERROR as c_int, || unsafe { serve(r) })
}

unsafe fn serve(r: *mut sys::request_rec) -> c_int {
    // SAFETY: httpd hands handlers a live request.
    let request = unsafe { &*r };
    if request.handler.is_null() {
        return DECLINED;
    }
    // SAFETY: checked non-null above; httpd's handler names are NUL-terminated.
    if unsafe { CStr::from_ptr(request.handler) }.to_bytes() != HANDLER_NAME {
        return DECLINED;
    }
    if request.method_number != sys::M_GET as c_int {
        return DECLINED;
    }
    // SAFETY: a non-null args is the request's NUL-terminated query string.
    let query =
        (!request.args.is_null()).then(|| unsafe { CStr::from_ptr(request.args) }.to_string_lossy().into_owned());
    let (backends, untracked) = shared_table().map(|t| (t.snapshot(), t.untracked_events())).unwrap_or_default();
    let (content_type, body) = if wants_machine_format(query.as_deref()) {
        (c"text/plain; charset=utf-8", render_auto(&backends, untracked))
    } else {
        (c"text/html; charset=utf-8", render_html(&backends, untracked))
    };
    // SAFETY: static content type; ap_rwrite copies `body` before returning.
    unsafe {
        sys::ap_set_content_type(r, content_type.as_ptr());
        if request.header_only == 0 {
            sys::ap_rwrite(body.as_ptr().cast(), body.len() as c_int, r);
        }
    }
    OK
}
