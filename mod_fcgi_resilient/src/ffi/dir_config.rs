//! Per-directory configuration storage in httpd's pools. Server and virtual-host level
//! directives land in each server's default per-directory config, so this one merge gives
//! Apache's usual inheritance: main server, then virtual host, then <Directory>/<Location>.

use super::{module_record, request::Request, sys};
use crate::settings::SectionSettings;
use std::ffi::{c_char, c_void};

/// Settings contain no heap data and no Drop, so pool memory needs no cleanup.
unsafe fn store(pool: *mut sys::apr_pool_t, settings: SectionSettings) -> *mut c_void {
    // SAFETY: apr_palloc returns memory aligned for any type (APR_ALIGN_DEFAULT, 8 bytes) that
    // lives as long as the pool owning the configuration section.
    let slot = unsafe { sys::apr_palloc(pool, std::mem::size_of::<SectionSettings>()) } as *mut SectionSettings;
    // SAFETY: `slot` is fresh, suitably aligned and large enough for one SectionSettings.
    unsafe { slot.write(settings) };
    slot.cast()
}

pub unsafe extern "C" fn create(pool: *mut sys::apr_pool_t, _dir: *mut c_char) -> *mut c_void {
    // SAFETY: `pool` is the configuration pool httpd passes to create_dir_config.
    super::guard::guard("create_dir_config", std::ptr::null_mut(), || unsafe {
        store(pool, SectionSettings::default())
    })
}

pub unsafe extern "C" fn merge(pool: *mut sys::apr_pool_t, base: *mut c_void, add: *mut c_void) -> *mut c_void {
    super::guard::guard("merge_dir_config", std::ptr::null_mut(), || {
        // SAFETY: httpd passes two configs this module created with `create`.
        let (outer, inner) = unsafe { (*(base as *const SectionSettings), *(add as *const SectionSettings)) };
        // SAFETY: `pool` is the pool httpd wants the merged config to live in.
        unsafe { store(pool, outer.merged_with(inner)) }
    })
}

/// The merged settings that apply to this request.
pub fn of(request: &Request) -> SectionSettings {
    // SAFETY: a live request (`Request`'s contract) in a phase where httpd has set up its
    // per-directory configuration (every hook this module reads settings in).
    unsafe { for_request(request.raw()) }
}

/// The merged settings that apply to this request.
///
/// # Safety
/// `r` must be a live request whose per-directory configuration httpd has set up.
pub unsafe fn for_request(r: *const sys::request_rec) -> SectionSettings {
    let index = module_record::module_index();
    // SAFETY: per_dir_config is an array of one pointer per loaded module, indexed by
    // module_index (what httpd's ap_get_module_config macro does).
    let settings = unsafe { *((*r).per_dir_config as *const *const SectionSettings).offset(index as isize) };
    if settings.is_null() {
        SectionSettings::default()
    } else {
        // SAFETY: non-null entries for this module are always configs made by `store`.
        unsafe { *settings }
    }
}
