//! The directive table and its one callback per arity: each directive is declared once, with
//! the descriptor of what it stores (its `Setting`), which httpd hands the callback in
//! `cmd->info` (copied from `command_rec.cmd_data`) as it does for its own `ap_set_*_slot`.
//! The callback parses the arguments with `settings` and stores the result in the section's
//! config; errors name the directive and the value, and httpd prefixes them with the file and
//! line.

use super::{guard::guard, pause_watch, sys};
use crate::settings::{self, SectionSettings};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr::{null, null_mut};

/// Server config, virtual host and <Directory>/<Location>/<Files>, but not .htaccess.
const SECTION_CONTEXTS: c_int = (sys::RSRC_CONF | sys::ACCESS_CONF) as c_int;

/// What one directive does with its arguments: parses them (the directive's name first, for
/// the messages) and stores the result.
pub enum Setting {
    /// Into the section's settings: server config, virtual host, directory.
    Section(fn(&str, &[&str], &mut SectionSettings) -> Result<(), String>),
    /// One value for the whole server, read by every child: the main server config only.
    Server(fn(&str, &[&str]) -> Result<(), String>),
}

/// How many arguments a directive takes, and so which callback httpd calls it with.
#[derive(Clone, Copy)]
enum Arity {
    Take1,
    Take2,
    /// One, or two.
    Take12,
}

const fn directive(
    name: &'static CStr,
    arity: Arity,
    setting: &'static Setting,
    usage: &'static CStr,
) -> sys::command_rec {
    let (func, args_how) = match arity {
        Arity::Take1 => (sys::cmd_func { take1: Some(take1) }, sys::cmd_how_TAKE1),
        Arity::Take2 => (sys::cmd_func { take2: Some(take2) }, sys::cmd_how_TAKE2),
        Arity::Take12 => (sys::cmd_func { take2: Some(take2) }, sys::cmd_how_TAKE12),
    };
    let req_override = match setting {
        Setting::Section(_) => SECTION_CONTEXTS,
        Setting::Server(_) => sys::RSRC_CONF as c_int,
    };
    sys::command_rec {
        name: name.as_ptr(),
        func,
        cmd_data: setting as *const Setting as *mut c_void,
        req_override,
        args_how,
        errmsg: usage.as_ptr(),
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

pub struct CommandTable([sys::command_rec; 10]);

// SAFETY: the table is immutable and only holds pointers to static strings, descriptors and
// functions.
unsafe impl Sync for CommandTable {}

impl CommandTable {
    pub const fn first(&'static self) -> *const sys::command_rec {
        self.0.as_ptr()
    }
}

use Arity::{Take1, Take12, Take2};

pub static TABLE: CommandTable = CommandTable([
    directive(
        c"FcgiResilient",
        Take1,
        &Setting::Section(|name, v, s| settings::parse_on_off(name, v[0]).map(|value| s.enabled = Some(value))),
        c"On|Off: wait for the FastCGI backend instead of answering 503",
    ),
    directive(
        c"FcgiResilientTimeout",
        Take1,
        &Setting::Section(|name, v, s| settings::parse_budget(name, v[0]).map(|value| s.budget = Some(value))),
        c"total time a request may wait for the backend (e.g. 10, 10s, 500ms)",
    ),
    directive(
        c"FcgiResilientBackoff",
        Take2,
        &Setting::Section(|name, v, s| settings::parse_backoff(name, v[0], v[1]).map(|value| s.backoff = Some(value))),
        c"shortest and longest pause between probes (e.g. 2ms 20ms)",
    ),
    directive(
        c"FcgiResilientMaxWaiting",
        Take1,
        &Setting::Section(|name, v, s| {
            settings::parse_max_waiting(name, v[0]).map(|value| s.max_waiting = Some(value))
        }),
        c"how many requests of one child process may wait at once",
    ),
    directive(
        c"FcgiResilientRetryIdempotent",
        Take1,
        &Setting::Section(|name, v, s| {
            settings::parse_on_off(name, v[0]).map(|value| s.retry_idempotent = Some(value))
        }),
        c"On|Off: repeat GET/HEAD/OPTIONS without a body when the backend dropped them before responding",
    ),
    directive(
        c"FcgiResilientRetryAfter",
        Take1,
        &Setting::Section(|name, v, s| {
            settings::parse_retry_after(name, v[0]).map(|value| s.retry_after_secs = Some(value))
        }),
        c"seconds for the Retry-After header of a final 503, or Off",
    ),
    directive(
        c"FcgiResilientMaxBodySpool",
        Take1,
        &Setting::Section(|name, v, s| {
            settings::parse_body_spool(name, v[0]).map(|value| s.max_body_spool = Some(value))
        }),
        c"request-body bytes the waiting requests of one child process may hold (e.g. 1G, 256M)",
    ),
    directive(
        c"FcgiResilientSpoolChunkedBody",
        Take1,
        &Setting::Section(|name, v, s| {
            settings::parse_on_off(name, v[0]).map(|value| s.spool_chunked_body = Some(value))
        }),
        c"On|Off: read a request body without Content-Length whole before connecting and give PHP its Content-Length",
    ),
    directive(
        c"FcgiResilientPauseDir",
        Take12,
        &Setting::Server(pause_watch::set_pause_dir),
        c"directory of pause files (fcgi-resilient-helper pause), and the user besides root who may pause",
    ),
    END_OF_TABLE,
]);

/// The callback of every TAKE1 directive of `TABLE`.
unsafe extern "C" fn take1(cmd: *mut sys::cmd_parms, config: *mut c_void, value: *const c_char) -> *const c_char {
    // SAFETY: httpd calls a TAKE1 directive's callback with its cmd_parms, this module's
    // section config and one argument.
    unsafe { apply(cmd, config, &[value]) }
}

/// The callback of every TAKE2 and TAKE12 directive of `TABLE` (for TAKE12, `second` is null
/// when absent).
unsafe extern "C" fn take2(
    cmd: *mut sys::cmd_parms,
    config: *mut c_void,
    first: *const c_char,
    second: *const c_char,
) -> *const c_char {
    // SAFETY: httpd calls a TAKE2 or TAKE12 directive's callback with its cmd_parms, this
    // module's section config and its arguments, a TAKE12's second null when absent.
    unsafe {
        if second.is_null() {
            apply(cmd, config, &[first])
        } else {
            apply(cmd, config, &[first, second])
        }
    }
}

/// Runs the directive's `Setting` on its arguments, reporting failures the way httpd expects
/// (a string in cmd->pool, or null).
///
/// # Safety
/// `cmd`, `config` and `args` must be what httpd passes the callback of a directive of `TABLE`:
/// its cmd_parms (whose `info` is the directive's `Setting`), this module's per-directory
/// config for the section being read, and as many NUL-terminated arguments as it takes.
unsafe fn apply(cmd: *mut sys::cmd_parms, config: *mut c_void, args: &[*const c_char]) -> *const c_char {
    // SAFETY: httpd's cmd_parms for this directive, live for the call.
    let cmd = unsafe { &*cmd };
    // SAFETY: cmd->cmd is the directive's entry in TABLE, whose name is a static string.
    let directive = unsafe { CStr::from_ptr((*cmd.cmd).name) }.to_string_lossy().into_owned();
    // SAFETY: cmd->info is the directive's cmd_data: a static `Setting` of TABLE.
    let setting = unsafe { &*(cmd.info as *const Setting) };
    let values: Vec<String> = args
        .iter()
        // SAFETY: httpd passes NUL-terminated argument strings that outlive this call.
        .map(|arg| unsafe { CStr::from_ptr(*arg) }.to_string_lossy().into_owned())
        .collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    // SAFETY: cmd->server is the server record whose config is being read.
    let in_virtual_host = unsafe { (*cmd.server).is_virtual != 0 };
    let store = || match setting {
        // SAFETY: `config` is this module's per-directory config for the section being read.
        Setting::Section(store) => store(&directive, &values, unsafe { &mut *(config as *mut SectionSettings) }),
        Setting::Server(_) if in_virtual_host => {
            Err(format!("{directive}: only in the main server config, not inside <VirtualHost>"))
        }
        Setting::Server(store) => store(&directive, &values),
    };
    let fallback = Err(format!("{directive}: internal error"));
    match guard("a directive", fallback, store) {
        Ok(()) => null(),
        // SAFETY: cmd->pool lives at least as long as httpd needs the message.
        Err(message) => unsafe { pool_string(cmd.pool, &message) },
    }
}

/// `text` copied into `pool`, as httpd wants a directive's error message.
///
/// # Safety
/// `pool` must be a live pool.
pub(super) unsafe fn pool_string(pool: *mut sys::apr_pool_t, text: &str) -> *const c_char {
    let text = CString::new(text.replace('\0', "")).unwrap_or_default();
    // SAFETY: apr_pstrdup copies the NUL-terminated string into `pool`.
    unsafe { sys::apr_pstrdup(pool, text.as_ptr()) }
}
