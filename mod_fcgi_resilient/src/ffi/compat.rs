//! The load-time check of the running httpd: its version, the version of the headers the
//! module was built against and its MPM, judged by `crate::httpd_version::decide`. pre_config
//! refuses an httpd the module cannot run in (so `apachectl configtest` fails too: it runs
//! pre_config, not post_config); `suspension_allowed` says whether requests may be suspended.
//!
//! `ap_hook_child_stopping` (2.4.49) is looked up rather than linked, as mod_proxy's functions
//! are (`proxy`): an older httpd then loads the module and pre_config names the versions,
//! instead of dlopen failing with "undefined symbol".

use super::log::{self, mark};
use super::sys;
use crate::httpd_version::{self, Verdict, Version};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set at pre_config; false until then, so nothing is suspended before the check has run.
static SUSPENSION_ALLOWED: AtomicBool = AtomicBool::new(false);

/// The headers the bindings were generated from (ap_release.h).
fn headers() -> Version {
    Version::new(
        sys::AP_SERVER_MAJORVERSION_NUMBER,
        sys::AP_SERVER_MINORVERSION_NUMBER,
        sys::AP_SERVER_PATCHLEVEL_NUMBER,
    )
}

fn running() -> Version {
    let mut version = sys::ap_version_t::default();
    // SAFETY: ap_get_server_revision (httpd 2.1 and later) fills in the struct it is given.
    unsafe { sys::ap_get_server_revision(&mut version) };
    let number = |n: c_int| u32::try_from(n).unwrap_or(0);
    Version::new(number(version.major), number(version.minor), number(version.patch))
}

fn mpm() -> String {
    // SAFETY: ap_show_mpm returns the MPM's static name, or "" when none is loaded yet.
    let name = unsafe { sys::ap_show_mpm() };
    if name.is_null() {
        return String::new();
    }
    // SAFETY: a NUL-terminated string owned by the MPM module, alive while it is loaded.
    unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned()
}

fn verdict() -> Verdict {
    httpd_version::decide(running(), headers(), &mpm())
}

/// At pre_config (every LoadModule has run, the MPM among them): the message for the error
/// log when the module must not run in this httpd. Also decides `suspension_allowed`.
pub fn check() -> Result<(), String> {
    let verdict = verdict();
    SUSPENSION_ALLOWED.store(verdict == Verdict::Ok, Ordering::Relaxed);
    match verdict {
        Verdict::Refuse(message) => Err(message),
        Verdict::NoSuspension(_) | Verdict::Ok => Ok(()),
    }
}

/// Whether requests may be suspended: true only under httpd's event MPM in a version whose
/// event.c was checked (`httpd_version::MINIMUM` to `NEWEST_CHECKED`), as found at the last
/// pre_config. False under any other MPM, in an unchecked version, and before pre_config.
pub fn suspension_allowed() -> bool {
    SUSPENSION_ALLOWED.load(Ordering::Relaxed)
}

/// At post_config, once per configuration: what the check found, at NOTICE when requests
/// will not be suspended although the MPM could suspend them, else at INFO.
pub fn log_verdict(server: Option<&sys::server_rec>) {
    let (running, headers, mpm) = (running(), headers(), mpm());
    match httpd_version::decide(running, headers, &mpm) {
        Verdict::NoSuspension(Some(message)) => log::for_server(server, sys::APLOG_NOTICE as c_int, mark!(), &message),
        verdict => {
            let suspension = if verdict == Verdict::Ok { "requests may be suspended" } else { "no suspension" };
            let message = format!(
                "httpd {running}, built against the headers of httpd {headers}, {mpm} MPM: {suspension} \
                 (event MPM checked from {} to {})",
                httpd_version::MINIMUM,
                httpd_version::NEWEST_CHECKED
            );
            log::for_server(server, log::INFO, mark!(), &message);
        }
    }
}

type ChildStopping = unsafe extern "C" fn(pchild: *mut sys::apr_pool_t, graceful: c_int);
/// `AP_DECLARE_HOOK(void, child_stopping, (apr_pool_t *pchild, int graceful))`'s registrar.
type HookChildStopping = unsafe extern "C" fn(Option<ChildStopping>, *const *const c_char, *const *const c_char, c_int);

/// Registers `hook` for child_stopping when this httpd has that hook (2.4.49 and later); an
/// older one is refused at pre_config.
pub fn hook_child_stopping(hook: ChildStopping, order: c_int) {
    // SAFETY: dlsym with RTLD_DEFAULT searches httpd's own exported symbols.
    let register = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"ap_hook_child_stopping".as_ptr()) };
    if register.is_null() {
        return;
    }
    // SAFETY: httpd's exported ap_hook_child_stopping has this signature (AP_DECLARE_HOOK);
    // called from register_hooks, where httpd expects hooks to be registered.
    unsafe {
        let register = std::mem::transmute::<*mut c_void, HookChildStopping>(register);
        register(Some(hook), std::ptr::null(), std::ptr::null(), order);
    }
}
