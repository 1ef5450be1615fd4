//! `SetHandler fcgi-resilient-status`: the counters of all child processes, like mod_status.
//! Access is left to the usual Require directives of the section that sets the handler.

use super::log::{self, mark};
use super::{guard::guard, hooks, request::Request, sys};
use crate::ffi::status_code::Status;
use crate::stats::{StatsTable, TableReport, TABLE_KEY};
use crate::status_page::{render_auto, render_html, PageFormat};
use crate::{pause, prometheus, socket_keepers};
use std::ffi::{c_int, c_void, CStr};
use std::path::Path;
use std::sync::atomic::{AtomicPtr, Ordering};

const HANDLER_NAME: &[u8] = b"fcgi-resilient-status";

static SHARED_TABLE: AtomicPtr<StatsTable> = AtomicPtr::new(std::ptr::null_mut());

pub fn shared_table() -> Option<&'static StatsTable> {
    // SAFETY: the pointer is null or a mapping that is never unmapped.
    unsafe { SHARED_TABLE.load(Ordering::Acquire).as_ref() }
}

/// The counters of all children now; empty before post_config made the table.
pub fn current_report() -> TableReport {
    let report = shared_table().map(|t| t.report(hooks::default_max_waiting()));
    report.unwrap_or_default()
}

/// Sends `body` to the client, unless the request is a HEAD.
///
/// # Safety
/// `r` must be a live request that a handler (or mod_status's hook) is answering.
pub unsafe fn write_body(r: *mut sys::request_rec, body: &str) {
    // SAFETY: the caller guarantees a live request, answered by this thread for this call.
    unsafe { Request::from_raw(r) }.write_body(body);
}

/// Finds the table made at the first start-up, or makes it: httpd unloads and reloads the
/// module on every restart, but the parent process (and so the mapping) stays.
///
/// # Safety
/// `server` must be the server record httpd passes to post_config.
pub unsafe fn attach_shared_table(server: *mut sys::server_rec) {
    // SAFETY: the process record and its pool live as long as httpd's parent process.
    let pool = unsafe { (*(*server).process).pool };
    // The key names the layout, so after an upgrade and a graceful restart new code never
    // finds a table of another layout under it: it makes a fresh one (the old one stays for
    // the old generation's children). The header check guards against a forgotten bump.
    let key = TABLE_KEY;
    let mut existing: *mut c_void = std::ptr::null_mut();
    // SAFETY: a live pool and a NUL-terminated key.
    unsafe { sys::apr_pool_userdata_get(&mut existing, key.as_ptr(), pool) };
    // SAFETY: whatever is stored under this key is a mapping made by `new_shared`.
    let found = (!existing.is_null()).then(|| unsafe { StatsTable::from_shared(existing) });
    if let Some(Err(mismatch)) = found {
        let message = format!("{mismatch}; counting in a fresh table");
        // SAFETY: the caller's live server record.
        log::for_server(unsafe { server.as_ref() }, sys::APLOG_NOTICE as c_int, mark!(), &message);
    }
    // SAFETY: the process pool, read above.
    let Some(table) = found.and_then(Result::ok).or_else(|| unsafe { new_table_under(key, pool) }) else { return };
    SHARED_TABLE.store(table as *const StatsTable as *mut StatsTable, Ordering::Release);
}

/// # Safety
/// `pool` must be the live process pool.
unsafe fn new_table_under(key: &CStr, pool: *mut sys::apr_pool_t) -> Option<&'static StatsTable> {
    let table = StatsTable::new_shared()?;
    let memory = table as *const StatsTable as *mut c_void;
    // apr_pool_cleanup_null: no cleanup code from a module that may be unloaded.
    // SAFETY: a live pool; the key is static, so it outlives the pool.
    unsafe { sys::apr_pool_userdata_set(memory, key.as_ptr(), Some(sys::apr_pool_cleanup_null), pool) };
    Some(table)
}

pub unsafe extern "C" fn handle(r: *mut sys::request_rec) -> c_int {
    guard("the status handler", Status::INTERNAL_SERVER_ERROR, || {
        // SAFETY: httpd calls handlers with a live request, served by this thread for the call.
        serve(unsafe { Request::from_raw(r) })
    })
    .raw()
}

fn serve(request: Request) -> Status {
    if request.handler_and_filename().0 != Some(HANDLER_NAME) {
        return Status::DECLINED;
    }
    if request.method_number() != sys::M_GET as c_int {
        return Status::DECLINED;
    }
    let query = request.args().map(|args| String::from_utf8_lossy(args).into_owned());
    let report = current_report();
    let paused = super::pause_watch::paused_backends(&report);
    let (content_type, body) = match PageFormat::from_query(query.as_deref()) {
        PageFormat::Html => (c"text/html; charset=utf-8", pause::add_to_html(render_html(&report), &paused)),
        PageFormat::Auto => (c"text/plain; charset=utf-8", render_auto(&report) + &pause::render_auto(&paused)),
        PageFormat::Prometheus => {
            (prometheus::CONTENT_TYPE, prometheus::render_prometheus(&report) + &pause::render_prometheus(&paused))
        }
    };
    // Backends a socket keeper holds: they never refuse, so the table above never shows them.
    let kept = socket_keepers::kept_backends(Path::new(socket_keepers::UNIT_DIR), Path::new(socket_keepers::RUN_DIR));
    let body = match PageFormat::from_query(query.as_deref()) {
        PageFormat::Html => socket_keepers::add_to_html(body, &kept),
        PageFormat::Auto => body + &socket_keepers::render_auto(&kept),
        PageFormat::Prometheus => body + &socket_keepers::render_prometheus(&kept),
    };
    request.set_content_type(content_type);
    request.write_body(&body);
    Status::OK
}
