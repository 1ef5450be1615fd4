//! Running the rest of an httpd hook chain from inside one of its hooks, as httpd's own hook
//! runner would: the functions sorted after ours, each in turn until one does not decline.
//! mod_fcgi_resilient does this twice — its handler runs mod_proxy's handler, its proxy scheme
//! handler runs mod_proxy_fcgi's — over two hook arrays of the same shape.

use super::sys;
use crate::ffi::status_code::Status;

/// Calls `call` with each hook function sorted after `ours` in `hooks` (an APR hook array of
/// `Link` entries, whose function is `function(entry)`) until one does not decline; DECLINED if
/// none ran or ours is not in the array. The array is read now: httpd sorts it after start-up.
///
/// # Safety
/// `hooks` must be null or a live APR array whose elements are `Link`s.
pub unsafe fn run_after<Link, Function: Copy>(
    hooks: *const sys::apr_array_header_t,
    ours: usize,
    function: impl Fn(&Link) -> Option<Function>,
    address: impl Fn(Function) -> usize,
    mut call: impl FnMut(Function) -> Status,
) -> Status {
    if hooks.is_null() {
        return Status::DECLINED;
    }
    // SAFETY: the caller's live array of `nelts` Link entries.
    let entries = unsafe { std::slice::from_raw_parts((*hooks).elts as *const Link, (*hooks).nelts as usize) };
    let Some(position) = entries.iter().position(|entry| function(entry).map(&address) == Some(ours)) else {
        return Status::DECLINED;
    };
    for hook in entries[position + 1..].iter().filter_map(&function) {
        let status = call(hook);
        if status != Status::DECLINED {
            return status;
        }
    }
    Status::DECLINED
}
