//! A safe view of APR bucket brigades and of a temporary file, both living in a request's
//! pool: the one place the request-body code touches a brigade, so `request_body` reads like
//! what it does.
//!
//! APR's brigade accessors are C macros bindgen cannot emit. The read-only ones needed
//! (APR_BRIGADE_LAST, APR_BRIGADE_SENTINEL, APR_BUCKET_IS_EOS) are written here over the
//! struct layout; every change to a brigade goes through exported functions (ap_save_brigade
//! sets buckets aside and appends them, apr_brigade_split_ex moves a bucket and what follows
//! it, apr_brigade_insert_file adds a file), so no bucket ring is ever relinked by hand.
//!
//! Every value here holds a pointer into a request's pool and so borrows the request for
//! `'r`: `Request::from_raw`'s contract (a live request, used by this thread only) is what
//! makes each call below sound.

use super::request::Request;
use super::status_code::Status;
use super::sys;
use std::ffi::{c_char, CStr, CString};
use std::marker::PhantomData;
use std::mem::offset_of;
use std::ptr;

/// An APR status other than APR_SUCCESS.
pub type AprStatus = sys::apr_status_t;

const SUCCESS: sys::apr_status_t = sys::APR_SUCCESS as sys::apr_status_t;

fn checked(rv: sys::apr_status_t) -> Result<(), AprStatus> {
    if rv == SUCCESS {
        Ok(())
    } else {
        Err(rv)
    }
}

/// The status httpd answers a failed read of a request body with (ap_map_http_request_error:
/// 408 for a timeout, 413 for a body over its limit, ...), `otherwise` for other errors.
pub fn http_status_of_read_error(rv: AprStatus, otherwise: Status) -> Status {
    // SAFETY: a pure mapping of two numbers; it reads no request.
    Status::from_raw(unsafe { sys::ap_map_http_request_error(rv, otherwise.raw()) })
}

/// A brigade in a request's pool, with the connection's bucket allocator.
pub struct Brigade<'r> {
    raw: *mut sys::apr_bucket_brigade,
    _in_pool_of: PhantomData<&'r sys::request_rec>,
}

/// How a read through the input filters asks for data (ap_input_mode_t, apr_read_type_e).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// AP_MODE_READBYTES, APR_BLOCK_READ: up to the given bytes, waiting for the client.
    BlockingBytes,
}

impl<'r> Brigade<'r> {
    /// A new, empty brigade in the request's pool.
    pub fn new(request: &Request<'r>) -> Brigade<'r> {
        // SAFETY: the live request's pool and its connection's allocator, both outliving 'r.
        let raw = unsafe { sys::apr_brigade_create(request.pool(), request.bucket_alloc()) };
        Brigade { raw, _in_pool_of: PhantomData }
    }

    /// The brigade kept in the request pool's userdata under `key`, made and registered there
    /// (without a clean-up, as mod_proxy_fcgi registers its own) when there is none yet.
    pub fn in_userdata(request: &Request<'r>, key: &'static CStr) -> Brigade<'r> {
        if let Some(kept) = Brigade::find_in_userdata(request, key) {
            return kept;
        }
        let pool = request.pool();
        let made = Brigade::new(request);
        // SAFETY: the key is static and the brigade lives in the same pool, so both outlive the entry.
        unsafe { sys::apr_pool_userdata_setn(made.raw.cast_const().cast(), key.as_ptr(), None, pool) };
        made
    }

    /// The brigade kept in the request pool's userdata under `key`, if there is one.
    pub fn find_in_userdata(request: &Request<'r>, key: &'static CStr) -> Option<Brigade<'r>> {
        let mut data: *mut std::ffi::c_void = ptr::null_mut();
        // SAFETY: a live pool and a NUL-terminated key; whatever is kept under this key is a
        // brigade of the same pool (mod_proxy_fcgi's "proxy-fcgi-input" or one made here).
        unsafe { sys::apr_pool_userdata_get(&mut data, key.as_ptr(), request.pool()) };
        (!data.is_null()).then(|| Brigade { raw: data.cast(), _in_pool_of: PhantomData })
    }

    /// The length of the whole brigade; buckets of unknown length are read (read_all = 1).
    pub fn length(&self) -> Result<u64, AprStatus> {
        let mut length: sys::apr_off_t = 0;
        // SAFETY: a live brigade of the request's pool.
        let rv = unsafe { sys::apr_brigade_length(self.raw, 1, &mut length) };
        checked(rv)?;
        u64::try_from(length).map_err(|_| rv)
    }

    /// One read through the request's input filters, appended to this brigade.
    pub fn read_input(&self, request: &Request<'r>, how: Read, bytes: u64) -> Result<(), AprStatus> {
        let (mode, block) = match how {
            Read::BlockingBytes => (sys::ap_input_mode_t_AP_MODE_READBYTES, sys::apr_read_type_e_APR_BLOCK_READ),
        };
        let bytes = sys::apr_off_t::try_from(bytes).unwrap_or(sys::apr_off_t::MAX);
        // SAFETY: the live request's input filter chain and a brigade of its pool.
        checked(unsafe { sys::ap_get_brigade(request.input_filters(), self.raw, mode, block, bytes) })
    }

    /// Whether the last bucket is an EOS (the end of the body).
    pub fn ends_with_eos(&self) -> bool {
        self.final_eos().is_some()
    }

    /// Moves a final EOS, if there is one, to the empty brigade `end`; says whether it did.
    pub fn move_eos_to(&self, end: &Brigade<'r>) -> bool {
        let Some(eos) = self.final_eos() else { return false };
        // SAFETY: `eos` is a bucket of this live brigade; `end` is another brigade of the same pool.
        unsafe { sys::apr_brigade_split_ex(self.raw, eos, end.raw) };
        true
    }

    /// The last bucket if it is an EOS. APR_BUCKET_IS_EOS: buckets are typed by the address
    /// of their type record.
    fn final_eos(&self) -> Option<*mut sys::apr_bucket> {
        let last = self.last_bucket()?;
        // SAFETY: a bucket of this live brigade; apr_bucket_type_eos is libaprutil's exported
        // type record.
        unsafe { ptr::eq((*last).type_, &raw const sys::apr_bucket_type_eos) }.then_some(last)
    }

    /// ap_save_brigade: sets every bucket of `from` aside into the request's pool (socket
    /// reads can be transient) and moves them to the end of this brigade.
    pub fn append_saved(&mut self, request: &Request<'r>, from: &mut Brigade<'r>) -> Result<(), AprStatus> {
        // SAFETY: both brigades live in the request pool; `self.raw` is not null, so no filter
        // is needed and ap_save_brigade appends to it without replacing either pointer.
        checked(unsafe { sys::ap_save_brigade(ptr::null_mut(), &mut self.raw, &mut from.raw, request.pool()) })
    }

    /// apr_brigade_flatten into `buffer`: the number of bytes copied.
    pub fn flatten_into(&self, buffer: &mut [u8]) -> Result<usize, AprStatus> {
        let mut length = buffer.len() as sys::apr_size_t;
        // SAFETY: a live brigade; `buffer` holds `length` writable bytes.
        checked(unsafe { sys::apr_brigade_flatten(self.raw, buffer.as_mut_ptr().cast(), &mut length) })?;
        Ok(length as usize)
    }

    /// Destroys every bucket, leaving the brigade empty and usable.
    pub fn clear(&self) {
        // SAFETY: a live brigade; apr_brigade_cleanup only empties it.
        unsafe { sys::apr_brigade_cleanup(self.raw.cast()) };
    }

    /// Appends a bucket of `length` bytes of `file` from `offset`.
    pub fn append_file(&self, request: &Request<'r>, file: &TempFile<'r>, offset: u64, length: u64) {
        let offset = sys::apr_off_t::try_from(offset).unwrap_or(sys::apr_off_t::MAX);
        let length = sys::apr_off_t::try_from(length).unwrap_or(sys::apr_off_t::MAX);
        // SAFETY: a live brigade and a file open in the same request pool.
        unsafe { sys::apr_brigade_insert_file(self.raw, file.handle, offset, length, request.pool()) };
    }

    /// APR_BRIGADE_LAST, or `None` for an empty brigade (APR_BRIGADE_EMPTY).
    fn last_bucket(&self) -> Option<*mut sys::apr_bucket> {
        // SAFETY: a live brigade's ring: its head's `prev` is the last bucket or the sentinel.
        let last = unsafe { (*self.raw).list.prev };
        (last != self.sentinel()).then_some(last)
    }

    /// APR_BRIGADE_SENTINEL: the ring's head seen as a bucket. Only ever compared, never read.
    fn sentinel(&self) -> *mut sys::apr_bucket {
        // wrapping_sub: the result may point before the brigade; it is an address to compare with.
        self.raw
            .cast::<u8>()
            .wrapping_add(offset_of!(sys::apr_bucket_brigade, list))
            .wrapping_sub(offset_of!(sys::apr_bucket, link))
            .cast()
    }
}

/// A temporary file in a request's pool, removed when the pool closes it (apr_file_mktemp's
/// default flags include APR_FOPEN_DELONCLOSE).
pub struct TempFile<'r> {
    handle: *mut sys::apr_file_t,
    _in_pool_of: PhantomData<&'r sys::request_rec>,
}

/// APR's temporary directory (apr_temp_dir_get).
pub fn temp_dir(request: &Request) -> Result<String, AprStatus> {
    let mut directory: *const c_char = ptr::null();
    // SAFETY: a live pool; on success `directory` is a NUL-terminated path in it.
    checked(unsafe { sys::apr_temp_dir_get(&mut directory, request.pool()) })?;
    // SAFETY: set just above, on success, to a NUL-terminated string.
    Ok(unsafe { CStr::from_ptr(directory) }.to_string_lossy().into_owned())
}

impl<'r> TempFile<'r> {
    /// A new file `<directory>/<prefix>XXXXXX` (apr_file_mktemp).
    pub fn create(request: &Request<'r>, directory: &str, prefix: &str) -> Result<TempFile<'r>, AprStatus> {
        let template = CString::new(format!("{directory}/{prefix}XXXXXX")).unwrap_or_default();
        let pool = request.pool();
        let mut handle: *mut sys::apr_file_t = ptr::null_mut();
        // SAFETY: a live pool; apr_file_mktemp rewrites the template, so it is a pool copy.
        checked(unsafe { sys::apr_file_mktemp(&mut handle, sys::apr_pstrdup(pool, template.as_ptr()), 0, pool) })?;
        Ok(TempFile { handle, _in_pool_of: PhantomData })
    }

    /// apr_file_write_full: all of `data`, at the file's current position.
    pub fn write_all(&self, data: &[u8]) -> Result<(), AprStatus> {
        let mut written: sys::apr_size_t = 0;
        // SAFETY: a file open in a live pool; `data` is readable for its length.
        checked(unsafe {
            sys::apr_file_write_full(self.handle, data.as_ptr().cast(), data.len() as sys::apr_size_t, &mut written)
        })
    }
}
