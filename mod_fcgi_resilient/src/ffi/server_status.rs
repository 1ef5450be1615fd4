//! The module's section of mod_status's /server-status, through mod_status's optional hook
//! `status_hook` (what `APR_OPTIONAL_HOOK(ap, status_hook, ...)` does in C).
//!
//! An optional hook is a name in APR's table, not a symbol of mod_status: adding to it needs
//! no mod_status, works whichever of the two modules loads first (mod_status looks the name
//! up each time it serves a page), and without mod_status nothing ever calls the function.

use super::{guard::guard, status_handler, sys};
use crate::ffi::status_code::Status;
use crate::status_page::render_server_status_section;
use std::ffi::{c_int, CStr};
use std::ptr::null;

/// APR keeps this pointer as the key of its table until the next restart clears the table.
const STATUS_HOOK: &CStr = c"status_hook";

/// mod_status's `ap_HOOK_status_hook_t`: `int (request_rec *r, int flags)`.
type StatusHook = unsafe extern "C" fn(*mut sys::request_rec, c_int) -> c_int;

/// Called from register_hooks, as every module adds its hooks.
pub fn register() {
    let hook: StatusHook = add_section;
    // SAFETY: APR stores the function as `void (*)(void)` and mod_status calls it back through
    // its own `ap_HOOK_status_hook_t`, which is `StatusHook`; the name is static.
    unsafe {
        let stored = std::mem::transmute::<StatusHook, unsafe extern "C" fn()>(hook);
        sys::apr_optional_hook_add(STATUS_HOOK.as_ptr(), Some(stored), null(), null(), sys::APR_HOOK_MIDDLE as c_int);
    }
}

unsafe extern "C" fn add_section(r: *mut sys::request_rec, flags: c_int) -> c_int {
    // mod_status writes its own page whatever a hook returns: a failure only loses our section.
    guard("the server-status section", Status::OK, || {
        let short = flags & sys::AP_STATUS_SHORT as c_int != 0;
        let section = render_server_status_section(&status_handler::current_report(), short);
        // SAFETY: mod_status calls its hooks with the live request it is answering.
        unsafe { status_handler::write_body(r, &section) };
        Status::OK
    })
    .raw()
}
