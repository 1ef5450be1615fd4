//! The directive table and its callbacks: each parses its arguments with `settings` and
//! stores the result in the section's config; errors name the directive and the value, and
//! httpd prefixes them with the file and line.

use super::{guard::guard, pause_watch, sys};
use crate::settings::{self, SectionSettings};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr::{null, null_mut};

type Take1 = unsafe extern "C" fn(*mut sys::cmd_parms, *mut c_void, *const c_char) -> *const c_char;
type Take2 = unsafe extern "C" fn(*mut sys::cmd_parms, *mut c_void, *const c_char, *const c_char) -> *const c_char;

/// Server config, virtual host and <Directory>/<Location>/<Files>, but not .htaccess.
const CONTEXTS: c_int = (sys::RSRC_CONF | sys::ACCESS_CONF) as c_int;

const fn take1(name: &'static CStr, handler: Take1, help: &'static CStr) -> sys::command_rec {
    sys::command_rec {
        name: name.as_ptr(),
        func: sys::cmd_func { take1: Some(handler) },
        cmd_data: null_mut(),
        req_override: CONTEXTS,
        args_how: sys::cmd_how_TAKE1,
        errmsg: help.as_ptr(),
    }
}

const fn take2(name: &'static CStr, handler: Take2, help: &'static CStr) -> sys::command_rec {
    sys::command_rec {
        name: name.as_ptr(),
        func: sys::cmd_func { take2: Some(handler) },
        cmd_data: null_mut(),
        req_override: CONTEXTS,
        args_how: sys::cmd_how_TAKE2,
        errmsg: help.as_ptr(),
    }
}

const END_OF_TABLE: sys::command_rec = sys::command_rec {
    name: null(),
    func: sys::cmd_func { no_args: None },
    cmd_data: null_mut(),
    req_override: 0,
    args_how: 0,
    errmsg: null(),
};

pub struct CommandTable([sys::command_rec; 9]);

// SAFETY: the table is immutable and only holds pointers to static strings and functions.
unsafe impl Sync for CommandTable {}

impl CommandTable {
    pub const fn first(&'static self) -> *const sys::command_rec {
        self.0.as_ptr()
    }
}

pub static TABLE: CommandTable = CommandTable([
    take1(c"FcgiResilient", set_enabled, c"On|Off: wait for the FastCGI backend instead of answering 503"),
    take1(c"FcgiResilientTimeout", set_budget, c"total time a request may wait for the backend (e.g. 10, 10s, 500ms)"),
    take2(c"FcgiResilientBackoff", set_backoff, c"shortest and longest pause between probes (e.g. 2ms 20ms)"),
    take1(c"FcgiResilientMaxWaiting", set_max_waiting, c"how many requests of one child process may wait at once"),
    take1(
        c"FcgiResilientRetryIdempotent",
        set_retry_idempotent,
        c"On|Off: repeat GET/HEAD/OPTIONS without a body when the backend dropped them before responding",
    ),
    take1(c"FcgiResilientRetryAfter", set_retry_after, c"seconds for the Retry-After header of a final 503, or Off"),
    take1(
        c"FcgiResilientMaxBodySpool",
        set_max_body_spool,
        c"request-body bytes the waiting requests of one child process may hold (e.g. 1G, 256M)",
    ),
    pause_watch::PAUSE_DIR_COMMAND,
    END_OF_TABLE,
]);

/// Runs one directive's parser, reporting failures the way httpd expects (a pool string).
unsafe fn apply(
    cmd: *mut sys::cmd_parms,
    config: *mut c_void,
    args: &[*const c_char],
    parse: impl FnOnce(&str, &[&str], &mut SectionSettings) -> Result<(), String>,
) -> *const c_char {
    // SAFETY: httpd passes the directive's cmd_parms, whose `cmd` names the directive.
    let directive = unsafe { CStr::from_ptr((*(*cmd).cmd).name) }.to_string_lossy().into_owned();
    let values: Vec<String> = args
        .iter()
        // SAFETY: httpd passes NUL-terminated argument strings that outlive this call.
        .map(|arg| unsafe { CStr::from_ptr(*arg) }.to_string_lossy().into_owned())
        .collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    // SAFETY: `config` is this module's per-directory config for the section being read.
    let settings = unsafe { &mut *(config as *mut SectionSettings) };
    match guard("a directive", Err(format!("{directive}: internal error")), || parse(&directive, &values, settings)) {
        Ok(()) => null(),
        // SAFETY: cmd->pool lives at least as long as httpd needs the message.
        Err(message) => unsafe { pool_string((*cmd).pool, &message) },
    }
}

pub(super) unsafe fn pool_string(pool: *mut sys::apr_pool_t, text: &str) -> *const c_char {
    let text = CString::new(text.replace('\0', "")).unwrap_or_default();
    // SAFETY: apr_pstrdup copies the NUL-terminated string into `pool`.
    unsafe { sys::apr_pstrdup(pool, text.as_ptr()) }
}

unsafe extern "C" fn set_enabled(cmd: *mut sys::cmd_parms, config: *mut c_void, value: *const c_char) -> *const c_char {
    // SAFETY: arguments are exactly what httpd passes a TAKE1 directive.
    unsafe {
        apply(cmd, config, &[value], |name, v, s| {
            s.enabled = Some(settings::parse_on_off(name, v[0])?);
            Ok(())
        })
    }
}

unsafe extern "C" fn set_budget(cmd: *mut sys::cmd_parms, config: *mut c_void, value: *const c_char) -> *const c_char {
    // SAFETY: arguments are exactly what httpd passes a TAKE1 directive.
    unsafe {
        apply(cmd, config, &[value], |name, v, s| {
            s.budget = Some(settings::parse_budget(name, v[0])?);
            Ok(())
        })
    }
}

unsafe extern "C" fn set_backoff(
    cmd: *mut sys::cmd_parms,
    config: *mut c_void,
    min: *const c_char,
    max: *const c_char,
) -> *const c_char {
    // SAFETY: arguments are exactly what httpd passes a TAKE2 directive.
    unsafe {
        apply(cmd, config, &[min, max], |name, v, s| {
            s.backoff = Some(settings::parse_backoff(name, v[0], v[1])?);
            Ok(())
        })
    }
}

unsafe extern "C" fn set_max_waiting(
    cmd: *mut sys::cmd_parms,
    config: *mut c_void,
    value: *const c_char,
) -> *const c_char {
    // SAFETY: arguments are exactly what httpd passes a TAKE1 directive.
    unsafe {
        apply(cmd, config, &[value], |name, v, s| {
            s.max_waiting = Some(settings::parse_max_waiting(name, v[0])?);
            Ok(())
        })
    }
}

unsafe extern "C" fn set_retry_idempotent(
    cmd: *mut sys::cmd_parms,
    config: *mut c_void,
    value: *const c_char,
) -> *const c_char {
    // SAFETY: arguments are exactly what httpd passes a TAKE1 directive.
    unsafe {
        apply(cmd, config, &[value], |name, v, s| {
            s.retry_idempotent = Some(settings::parse_on_off(name, v[0])?);
            Ok(())
        })
    }
}

unsafe extern "C" fn set_retry_after(
    cmd: *mut sys::cmd_parms,
    config: *mut c_void,
    value: *const c_char,
) -> *const c_char {
    // SAFETY: arguments are exactly what httpd passes a TAKE1 directive.
    unsafe {
        apply(cmd, config, &[value], |name, v, s| {
            s.retry_after_secs = Some(settings::parse_retry_after(name, v[0])?);
            Ok(())
        })
    }
}

unsafe extern "C" fn set_max_body_spool(
    cmd: *mut sys::cmd_parms,
    config: *mut c_void,
    value: *const c_char,
) -> *const c_char {
    // SAFETY: arguments are exactly what httpd passes a TAKE1 directive.
    unsafe {
        apply(cmd, config, &[value], |name, v, s| {
            s.max_body_spool = Some(settings::parse_body_spool(name, v[0])?);
            Ok(())
        })
    }
}
