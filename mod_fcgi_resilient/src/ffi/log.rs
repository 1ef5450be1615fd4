//! Logging through httpd's error log with this module's own index, so that
//! `LogLevel fcgi_resilient:debug` works. The level is checked before a message is formatted,
//! and the message always goes through a constant "%s" format.

use super::{module_record::module_index, sys};
use std::ffi::{c_char, c_int, CString};

pub const ERROR: c_int = sys::APLOG_ERR as c_int;
pub const INFO: c_int = sys::APLOG_INFO as c_int;
pub const DEBUG: c_int = sys::APLOG_DEBUG as c_int;
pub const TRACE1: c_int = sys::APLOG_TRACE1 as c_int;

/// What the APLOG_MARK macro gives C callers.
pub struct Mark {
    pub file: &'static str,
    pub line: u32,
}

macro_rules! mark {
    () => {
        $crate::ffi::log::Mark { file: concat!(file!(), "\0"), line: line!() }
    };
}
pub(crate) use mark;

fn module_level(conf: &sys::ap_logconf, index: c_int) -> c_int {
    if index >= 0 && !conf.module_levels.is_null() {
        // SAFETY: module_levels has one entry per loaded module when it is set.
        let level = unsafe { *conf.module_levels.offset(index as isize) } as c_int;
        if level >= 0 {
            return level;
        }
    }
    conf.level
}

/// httpd's ap_get_request_module_loglevel, which is a macro in C.
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn request_level(r: *const sys::request_rec, index: c_int) -> c_int {
    // SAFETY: request, connection and server records stay valid for the request's lifetime.
    unsafe {
        if let Some(conf) = (*r).log.as_ref() {
            return module_level(conf, index);
        }
        let connection = (*r).connection;
        if let Some(conf) = (*connection).log.as_ref() {
            return module_level(conf, index);
        }
        module_level(&(*(*connection).base_server).log, index)
    }
}

fn c_message(message: String) -> CString {
    CString::new(message.replace('\0', "")).unwrap_or_default()
}

/// Logs `message()` for request `r` if this module's level for the request allows `level`.
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn for_request(r: *mut sys::request_rec, level: c_int, mark: Mark, message: impl FnOnce() -> String) {
    let index = module_index();
    // SAFETY: the caller guarantees `r` is live.
    if unsafe { request_level(r, index) } < level {
        return;
    }
    let text = c_message(message());
    // SAFETY: constant "%s" format with one NUL-terminated argument; mark.file ends in NUL.
    unsafe {
        sys::ap_log_rerror_(
            mark.file.as_ptr() as *const c_char,
            mark.line as c_int,
            index,
            level,
            0,
            r,
            c"%s".as_ptr(),
            text.as_ptr(),
        )
    };
}

/// Logs for server `s`, or to stderr during start-up when there is none.
pub fn for_server(s: Option<&sys::server_rec>, level: c_int, mark: Mark, message: &str) {
    let s = s.map_or(std::ptr::null(), |s| s as *const sys::server_rec);
    let text = c_message(message.to_string());
    // SAFETY: constant "%s" format with one NUL-terminated argument; a null server is how
    // httpd's own modules report start-up errors to stderr.
    unsafe {
        sys::ap_log_error_(
            mark.file.as_ptr() as *const c_char,
            mark.line as c_int,
            module_index(),
            level,
            0,
            s,
            c"%s".as_ptr(),
            text.as_ptr(),
        )
    };
}

/// For the panic guard, which may run where no request or server is at hand.
pub fn server_error(message: &str) {
    for_server(main_server(), ERROR, mark!(), message);
}

/// httpd's main server record, once httpd has set it.
pub fn main_server() -> Option<&'static sys::server_rec> {
    // SAFETY: ap_server_conf is httpd's main server record, set before any module code runs
    // and live until the process exits (or null before then).
    unsafe { sys::ap_server_conf.as_ref() }
}
