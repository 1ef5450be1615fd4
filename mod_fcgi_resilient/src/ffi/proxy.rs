//! Joining mod_proxy's scheme-handler chain, ahead of mod_proxy_fcgi.
//!
//! mod_proxy's hook functions are looked up at pre_config time rather than linked: LoadModule
//! runs a module's register_hooks immediately, and Debian loads mods-enabled/*.load in
//! alphabetical order, so `fcgi_resilient.load` comes before `proxy.load`. By pre_config every
//! LoadModule has run, and httpd sorts all hooks again after the configuration is processed,
//! so registering then works whatever the load order — and a missing mod_proxy becomes a
//! clear start-up error instead of dlopen's "undefined symbol".

use super::status_code::Status;
use super::{hook_chain, module_record::MODULE_NAME, sys};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicPtr, Ordering};

type RegisterSchemeHandler =
    unsafe extern "C" fn(sys::proxy_HOOK_scheme_handler_t, *const *const c_char, *const *const c_char, c_int);
type GetSchemeHandlers = unsafe extern "C" fn() -> *mut sys::apr_array_header_t;
pub type SchemeHandler = unsafe extern "C" fn(
    *mut sys::request_rec,
    *mut sys::proxy_worker,
    *mut sys::proxy_server_conf,
    *mut c_char,
    *const c_char,
    sys::apr_port_t,
) -> c_int;

static GET_SCHEME_HANDLERS: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

struct HookOrder([*const c_char; 2]);
// SAFETY: immutable pointers to static strings.
unsafe impl Sync for HookOrder {}

/// Successors are matched against the registering module's name: "run before mod_proxy_fcgi".
static BEFORE_MOD_PROXY_FCGI: HookOrder = HookOrder([c"mod_proxy_fcgi.c".as_ptr(), std::ptr::null()]);

fn lookup_symbol(name: &CStr) -> *mut c_void {
    // SAFETY: dlsym with RTLD_DEFAULT searches the objects loaded RTLD_GLOBAL, as httpd loads modules.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

pub fn register_ahead_of_mod_proxy_fcgi(handler: SchemeHandler) -> Result<(), String> {
    let register = lookup_symbol(c"proxy_hook_scheme_handler");
    let get_handlers = lookup_symbol(c"proxy_hook_get_scheme_handler");
    if register.is_null() || get_handlers.is_null() {
        return Err("mod_fcgi_resilient needs mod_proxy and mod_proxy_fcgi, and mod_proxy is not loaded: \
                    enable them (Debian: a2enmod proxy_fcgi; elsewhere: LoadModule proxy_module and \
                    LoadModule proxy_fcgi_module)"
            .to_string());
    }
    // SAFETY: looks a module up by name in httpd's list of loaded modules.
    if unsafe { sys::ap_find_linked_module(c"mod_proxy_fcgi.c".as_ptr()) }.is_null() {
        return Err("mod_fcgi_resilient needs mod_proxy_fcgi, which is not loaded: enable it \
                    (Debian: a2enmod proxy_fcgi; elsewhere: LoadModule proxy_fcgi_module)"
            .to_string());
    }
    GET_SCHEME_HANDLERS.store(get_handlers, Ordering::Release);
    // SAFETY: `register` is mod_proxy's proxy_hook_scheme_handler (looked up by its exported
    // name, so it has this signature). apr_hook_debug_current names the registering module in
    // the hook entry; httpd sets it around register_hooks, we set it the same way here.
    unsafe {
        let register: RegisterSchemeHandler = std::mem::transmute(register);
        let previous = sys::apr_hook_debug_current;
        sys::apr_hook_debug_current = MODULE_NAME.as_ptr();
        register(Some(handler), std::ptr::null(), BEFORE_MOD_PROXY_FCGI.0.as_ptr(), sys::APR_HOOK_FIRST as c_int);
        sys::apr_hook_debug_current = previous;
    }
    Ok(())
}

/// The arguments mod_proxy passed to the scheme handlers, to pass on unchanged.
#[derive(Clone, Copy)]
pub struct SchemeCall {
    pub r: *mut sys::request_rec,
    pub worker: *mut sys::proxy_worker,
    pub conf: *mut sys::proxy_server_conf,
    pub url: *mut c_char,
    pub proxyname: *const c_char,
    pub proxyport: sys::apr_port_t,
}

/// Runs the scheme handlers sorted after `ours` the way mod_proxy's hook runner would: each in
/// turn until one does not decline. Reads the hook array now, not at registration, because
/// httpd replaces it with a sorted copy after configuration.
///
/// # Safety
/// Must be called from within mod_proxy's scheme_handler hook with that hook's arguments.
pub unsafe fn run_handlers_after(ours: SchemeHandler, call: &SchemeCall) -> Status {
    let get_handlers = GET_SCHEME_HANDLERS.load(Ordering::Acquire);
    if get_handlers.is_null() {
        return Status::DECLINED;
    }
    // SAFETY: stored from the exported proxy_hook_get_scheme_handler, whose signature this is.
    let handlers = unsafe { std::mem::transmute::<*mut c_void, GetSchemeHandlers>(get_handlers)() };
    let function = |entry: &sys::proxy_LINK_scheme_handler_t| entry.pFunc;
    let run = |handler: SchemeHandler| {
        // A fresh copy per call: a handler may rewrite the URL it is given.
        // SAFETY: r->pool outlives the request; url is NUL-terminated.
        let url = unsafe { sys::apr_pstrdup((*call.r).pool, call.url) };
        // SAFETY: the same arguments mod_proxy passed to the hook, as its runner would pass them.
        Status::from_raw(unsafe { handler(call.r, call.worker, call.conf, url, call.proxyname, call.proxyport) })
    };
    // SAFETY: mod_proxy's scheme_handler hook array, of proxy_LINK_scheme_handler_t entries.
    unsafe { hook_chain::run_after(handlers, ours as usize, function, |handler| handler as usize, run) }
}
