//! The exported module record httpd's LoadModule looks up as `fcgi_resilient_module`.

use super::{dir_config, directives, hooks, sys};
use std::cell::UnsafeCell;
use std::ffi::{c_int, c_ulong};
use std::ptr::null_mut;

/// Hook predecessor/successor lists and mod_so refer to the module by this name.
pub const MODULE_NAME: &std::ffi::CStr = c"mod_fcgi_resilient.c";

#[repr(transparent)]
pub struct ModuleRecord(UnsafeCell<sys::module>);

// SAFETY: httpd writes module_index, next and dynamic_load_handle while loading the module,
// single-threaded, before any request thread exists; afterwards the record is only read.
unsafe impl Sync for ModuleRecord {}

#[no_mangle]
#[used]
pub static fcgi_resilient_module: ModuleRecord = ModuleRecord(UnsafeCell::new(sys::module {
    version: sys::MODULE_MAGIC_NUMBER_MAJOR as c_int,
    minor_version: sys::MODULE_MAGIC_NUMBER_MINOR as c_int,
    module_index: -1,
    name: MODULE_NAME.as_ptr(),
    dynamic_load_handle: null_mut(),
    next: null_mut(),
    magic: sys::MODULE_MAGIC_COOKIE as c_ulong,
    rewrite_args: None,
    create_dir_config: Some(dir_config::create),
    merge_dir_config: Some(dir_config::merge),
    create_server_config: None,
    merge_server_config: None,
    cmds: directives::TABLE.first(),
    register_hooks: Some(hooks::register),
    flags: 0,
}));

pub fn module_index() -> c_int {
    // SAFETY: a plain read of a field httpd finished writing before any hook could run.
    unsafe { (*fcgi_resilient_module.0.get()).module_index }
}
