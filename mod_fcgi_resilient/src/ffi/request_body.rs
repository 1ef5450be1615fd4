//! Before a request waits for its backend, the rest of its body is read into the place
//! mod_proxy_fcgi takes it from, so that neither the client nor mod_reqtimeout waits with it.
//!
//! Why: mod_proxy_fcgi prefetches a body without blocking and reads the rest only while it
//! sends it to the backend. mod_reqtimeout's body timer starts at that prefetch (Debian:
//! `body=10,MinRate=500`), and a client that sent `Expect: 100-continue` has sent nothing yet,
//! because a non-blocking read never answers `100 Continue` (http_filters.c). A request that
//! waits longer than the timer meets 408 at its first read after the wait — when mod_proxy_fcgi
//! has already started PHP, which then runs on an empty body. Blocking reads right when the
//! wait starts answer `100 Continue`, feed the timer while the client sends, and let a failed
//! read end the request before the backend received any part of it.
//!
//! How: mod_proxy_fcgi keeps its prefetch in r->pool userdata "proxy-fcgi-input"; a later run
//! of its handler skips the prefetch, sends that brigade first and reads r->input_filters only
//! once it is empty, and a brigade ending in EOS is the whole body (mod_proxy_fcgi.c,
//! proxy_fcgi_handler and dispatch). So the rest of the body and an EOS are appended there, and
//! Content-Length is set as mod_proxy_fcgi sets it when its prefetch got the whole body.
//!
//! APR's brigade accessors are C macros bindgen cannot emit. The read-only ones needed
//! (APR_BRIGADE_LAST, APR_BRIGADE_SENTINEL, APR_BUCKET_IS_EOS) are written here over the
//! struct layout; every change to a brigade goes through exported functions (ap_save_brigade
//! sets buckets aside and appends them, apr_brigade_split_ex moves the EOS, apr_brigade_insert_file
//! adds the file), so no bucket ring is ever relinked by hand.

use super::log::{self, mark};
use super::sys;
use crate::body_spool::{content_length_for, disk_has_room, ChildSpool, Place, Spool, MEMORY_LIMIT};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::mem::offset_of;
use std::ptr;

/// mod_proxy_fcgi's pool userdata key for the body it prefetched.
const INPUT_KEY: &CStr = c"proxy-fcgi-input";
/// The request bodies this child's waiting requests hold (FcgiResilientMaxBodySpool).
static CHILD_SPOOL: ChildSpool = ChildSpool::new();
const SERVICE_UNAVAILABLE: c_int = sys::HTTP_SERVICE_UNAVAILABLE as c_int;

/// Bytes asked of the input filters per read, as mod_proxy_fcgi asks them.
const READ_SIZE: sys::apr_off_t = sys::AP_IOBUFSIZE as sys::apr_off_t;
const SUCCESS: sys::apr_status_t = sys::APR_SUCCESS as sys::apr_status_t;
const BAD_REQUEST: c_int = sys::HTTP_BAD_REQUEST as c_int;
const INTERNAL_SERVER_ERROR: c_int = sys::HTTP_INTERNAL_SERVER_ERROR as c_int;
/// A blocking read that keeps returning nothing is a broken filter, not a slow client: stop
/// rather than spin.
const EMPTY_READS_BEFORE_GIVING_UP: u32 = 100;

type Brigade = *mut sys::apr_bucket_brigade;

/// What reading the rest of a body did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyRead {
    /// The whole body's length, prefetch included.
    pub total: u64,
    /// Bytes read now (0 when mod_proxy_fcgi's prefetch already held the whole body).
    pub newly_read: u64,
    /// Bytes that went to a temporary file rather than memory.
    pub in_file: u64,
}

impl BodyRead {
    pub fn read_anything(&self) -> bool {
        self.newly_read > 0
    }
}

/// Reads the body's rest before the request waits and logs what it did; `Err` carries the
/// status the request must end with at once, before mod_proxy_fcgi runs again.
///
/// # Safety
/// `r` must be a live request inside the handler phase, between two runs of mod_proxy_fcgi's
/// handler.
pub unsafe fn read_before_waiting(r: *mut sys::request_rec) -> Result<(), c_int> {
    // SAFETY: guaranteed by the caller.
    let read = unsafe { read_rest_of_body(r) }?;
    if read.read_anything() {
        // SAFETY: a live request.
        unsafe {
            log::for_request(r, log::DEBUG, mark!(), || {
                format!(
                    "read the rest of the request body before waiting: {} of {} bytes, {} of them in a temporary file",
                    read.newly_read, read.total, read.in_file
                )
            })
        };
    }
    Ok(())
}

/// Reads whatever of the body is still unread (blocking reads through r->input_filters) and
/// appends it, then an EOS, to mod_proxy_fcgi's "proxy-fcgi-input" brigade; sets
/// Content-Length to the whole body and removes Transfer-Encoding. `Err` is the status the
/// request must end with: the client's read error mapped as httpd maps it (408, 413, 400), or
/// 500 when the body could not be stored.
///
/// # Safety
/// `r` must be a live request inside the handler phase.
pub unsafe fn read_rest_of_body(r: *mut sys::request_rec) -> Result<BodyRead, c_int> {
    // SAFETY: a live request: its pool and connection outlive this call.
    let (pool, alloc) = unsafe { ((*r).pool, (*(*r).connection).bucket_alloc) };
    // SAFETY: as above.
    let mut input = unsafe { prefetched_input(r) };
    // SAFETY: a brigade in the request pool.
    let prefetched = unsafe { brigade_length(r, input) }?;
    // SAFETY: as above.
    if unsafe { ends_with_eos(input) } {
        return Ok(BodyRead { total: prefetched, newly_read: 0, in_file: 0 });
    }
    let mut spool = Spool::new(MEMORY_LIMIT, prefetched);
    // SAFETY: a live request inside the handler phase.
    let limit =
        unsafe { super::dir_config::for_request(r) }.max_body_spool.unwrap_or(crate::body_spool::DEFAULT_CHILD_LIMIT);
    // SAFETY: a live request; the ledger lives in its pool and is settled by its clean-up.
    let ledger = unsafe { Ledger::in_pool_of(r) };
    // SAFETY: new brigades in the request pool, with the connection's allocator as mod_proxy_fcgi's.
    let (mut chunk, mut end) = unsafe { (sys::apr_brigade_create(pool, alloc), sys::apr_brigade_create(pool, alloc)) };
    let mut file: Option<TempFile> = None;
    let mut empty_reads = 0;
    loop {
        // SAFETY: all three brigades are live in the request pool; `end` is still empty.
        let finished = unsafe { read_chunk(r, chunk, end) }?;
        // SAFETY: as above.
        let bytes = unsafe { brigade_length(r, chunk) }?;
        empty_reads = if bytes == 0 { empty_reads + 1 } else { 0 };
        if empty_reads >= EMPTY_READS_BEFORE_GIVING_UP {
            // SAFETY: a live request.
            unsafe { log::for_request(r, log::ERROR, mark!(), || "the request body reads return nothing".into()) };
            return Err(INTERNAL_SERVER_ERROR);
        }
        if let Err(held) = CHILD_SPOOL.reserve(bytes, limit) {
            // SAFETY: a live request.
            unsafe {
                log::for_request(r, log::ERROR, mark!(), || {
                    format!(
                        "request bodies of waiting requests already hold {held} bytes in this child process \
                         (FcgiResilientMaxBodySpool {limit}): answering 503; the backend received nothing"
                    )
                })
            };
            return Err(SERVICE_UNAVAILABLE);
        }
        ledger.held += bytes;
        let place = spool.place_unless(bytes, |bytes| {
            let taken = CHILD_SPOOL.reserve_memory(bytes);
            if taken {
                ledger.in_memory += bytes;
            }
            !taken
        });
        match place {
            // SAFETY: both brigades live in the request pool.
            Place::Memory => unsafe { save_brigade(r, &mut input, &mut chunk) }?,
            Place::File => {
                if file.is_none() {
                    // SAFETY: a live request.
                    file = Some(unsafe { TempFile::create(r) }?);
                }
                if let Some(file) = &mut file {
                    // SAFETY: a live request.
                    unsafe { file.check_room(r, bytes) }?;
                    // SAFETY: a brigade in the request pool, a file open in it.
                    unsafe { file.append(r, chunk, bytes) }?;
                }
            }
        }
        if finished {
            break;
        }
    }
    if let Some(file) = file {
        // SAFETY: the file holds exactly `in_file` bytes from offset 0 and lives in the request pool.
        unsafe { sys::apr_brigade_insert_file(input, file.handle, 0, spool.in_file() as sys::apr_off_t, pool) };
    }
    // SAFETY: `end` holds the EOS the input filters ended the body with: it goes last.
    unsafe { save_brigade(r, &mut input, &mut end) }?;
    // SAFETY: a live request.
    unsafe { set_content_length(r, spool.total()) };
    Ok(BodyRead { total: spool.total(), newly_read: spool.total() - prefetched, in_file: spool.in_file() })
}

/// mod_proxy_fcgi's brigade, created and registered the way it would be when nothing was
/// prefetched yet.
unsafe fn prefetched_input(r: *mut sys::request_rec) -> Brigade {
    let mut data: *mut c_void = ptr::null_mut();
    // SAFETY: a live request pool; the key is a NUL-terminated static.
    unsafe {
        let pool = (*r).pool;
        sys::apr_pool_userdata_get(&mut data, INPUT_KEY.as_ptr(), pool);
        if data.is_null() {
            let created = sys::apr_brigade_create(pool, (*(*r).connection).bucket_alloc);
            sys::apr_pool_userdata_setn(created as *const c_void, INPUT_KEY.as_ptr(), None, pool);
            return created;
        }
    }
    data.cast()
}

/// One blocking read into `chunk`; an EOS that ends it is moved to `end`. Returns whether
/// the body is complete.
unsafe fn read_chunk(r: *mut sys::request_rec, chunk: Brigade, end: Brigade) -> Result<bool, c_int> {
    // SAFETY: the request's input filter chain and a brigade of its pool.
    let rv = unsafe {
        sys::ap_get_brigade(
            (*r).input_filters,
            chunk,
            sys::ap_input_mode_t_AP_MODE_READBYTES,
            sys::apr_read_type_e_APR_BLOCK_READ,
            READ_SIZE,
        )
    };
    if rv != SUCCESS {
        // SAFETY: httpd's own mapping of a client read error to a status; `r` is live.
        let status = unsafe { sys::ap_map_http_request_error(rv, BAD_REQUEST) };
        // SAFETY: a live request.
        unsafe {
            log::for_request(r, log::INFO, mark!(), || {
                format!(
                    "reading the request body before waiting for the backend failed (APR status {rv}): \
                     answering {status}; the backend received nothing"
                )
            })
        };
        return Err(status);
    }
    // SAFETY: a brigade of the request pool, just filled by the input filters.
    unsafe {
        match last_bucket(chunk) {
            Some(last) if is_eos(last) => {
                sys::apr_brigade_split_ex(chunk, last, end);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// ap_save_brigade: sets every bucket of `from` aside into the request pool (socket reads can
/// be transient) and appends them to `to`.
unsafe fn save_brigade(r: *mut sys::request_rec, to: &mut Brigade, from: &mut Brigade) -> Result<(), c_int> {
    // SAFETY: both brigades live in the request pool; `to` is not null, so no filter is needed.
    let rv = unsafe { sys::ap_save_brigade(ptr::null_mut(), to, from, (*r).pool) };
    if rv != SUCCESS {
        // SAFETY: a live request.
        unsafe {
            log::for_request(r, log::ERROR, mark!(), || format!("keeping the request body failed (APR status {rv})"))
        };
        return Err(INTERNAL_SERVER_ERROR);
    }
    Ok(())
}

unsafe fn brigade_length(r: *mut sys::request_rec, brigade: Brigade) -> Result<u64, c_int> {
    let mut length: sys::apr_off_t = 0;
    // SAFETY: a live brigade; read_all = 1 gives buckets of unknown length one.
    let rv = unsafe { sys::apr_brigade_length(brigade, 1, &mut length) };
    if rv != SUCCESS || length < 0 {
        // SAFETY: a live request.
        unsafe {
            log::for_request(r, log::ERROR, mark!(), || format!("reading the request body failed (APR status {rv})"))
        };
        return Err(INTERNAL_SERVER_ERROR);
    }
    Ok(length as u64)
}

/// APR_BRIGADE_SENTINEL: the ring's head seen as a bucket. Only ever compared, never read.
fn sentinel(brigade: Brigade) -> *mut sys::apr_bucket {
    // wrapping_sub: the result may point before the brigade; it is an address to compare with.
    brigade
        .cast::<u8>()
        .wrapping_add(offset_of!(sys::apr_bucket_brigade, list))
        .wrapping_sub(offset_of!(sys::apr_bucket, link))
        .cast()
}

/// APR_BRIGADE_LAST, or `None` for an empty brigade (APR_BRIGADE_EMPTY).
unsafe fn last_bucket(brigade: Brigade) -> Option<*mut sys::apr_bucket> {
    // SAFETY: a live brigade's ring: its head's `prev` is the last bucket or the sentinel.
    let last = unsafe { (*brigade).list.prev };
    (last != sentinel(brigade)).then_some(last)
}

/// APR_BUCKET_IS_EOS: buckets are typed by the address of their type record.
unsafe fn is_eos(bucket: *mut sys::apr_bucket) -> bool {
    // SAFETY: a live bucket; apr_bucket_type_eos is libaprutil's exported type record.
    unsafe { ptr::eq((*bucket).type_, &raw const sys::apr_bucket_type_eos) }
}

unsafe fn ends_with_eos(brigade: Brigade) -> bool {
    // SAFETY: a live brigade and its buckets.
    unsafe { last_bucket(brigade).is_some_and(|last| is_eos(last)) }
}

unsafe fn set_content_length(r: *mut sys::request_rec, total: u64) {
    // SAFETY: a live request; header values are copied into its pool.
    unsafe {
        let headers = (*r).headers_in;
        let announced = !sys::apr_table_get(headers, c"Content-Length".as_ptr()).is_null()
            || !sys::apr_table_get(headers, c"Transfer-Encoding".as_ptr()).is_null();
        if let Some(length) = content_length_for(announced, total) {
            let value = CString::new(length.to_string()).unwrap_or_default();
            sys::apr_table_setn(headers, c"Content-Length".as_ptr(), sys::apr_pstrdup((*r).pool, value.as_ptr()));
            sys::apr_table_unset(headers, c"Transfer-Encoding".as_ptr());
        }
    }
}

/// What one request holds of its child's body share, given back when its pool goes.
#[repr(C)]
struct Ledger {
    held: u64,
    in_memory: u64,
}

impl Ledger {
    /// # Safety
    /// `r` must be a live request.
    unsafe fn in_pool_of<'p>(r: *mut sys::request_rec) -> &'p mut Ledger {
        // SAFETY: apr_palloc returns memory aligned for any type that lives as long as the
        // request pool, whose clean-up settles the ledger before the memory goes.
        unsafe {
            let pool = (*r).pool;
            let ledger = sys::apr_palloc(pool, std::mem::size_of::<Ledger>()) as *mut Ledger;
            ledger.write(Ledger { held: 0, in_memory: 0 });
            sys::apr_pool_cleanup_register(pool, ledger.cast(), Some(settle), Some(sys::apr_pool_cleanup_null));
            &mut *ledger
        }
    }
}

unsafe extern "C" fn settle(ledger: *mut c_void) -> sys::apr_status_t {
    // SAFETY: registered with a Ledger of the pool being cleaned up.
    let ledger = unsafe { &*(ledger as *const Ledger) };
    CHILD_SPOOL.release(ledger.held, ledger.in_memory);
    SUCCESS
}

/// A temporary file in the request pool, removed when the pool closes it
/// (apr_file_mktemp's default flags include APR_FOPEN_DELONCLOSE).
struct TempFile {
    handle: *mut sys::apr_file_t,
    buffer: Vec<u8>,
    directory: String,
}

impl TempFile {
    unsafe fn create(r: *mut sys::request_rec) -> Result<TempFile, c_int> {
        let mut directory: *const c_char = ptr::null();
        let mut handle: *mut sys::apr_file_t = ptr::null_mut();
        // SAFETY: a live request pool; apr_file_mktemp rewrites the template, so it is a pool copy.
        let rv = unsafe {
            let pool = (*r).pool;
            let mut rv = sys::apr_temp_dir_get(&mut directory, pool);
            if rv == SUCCESS {
                let directory = CStr::from_ptr(directory).to_string_lossy();
                let template = CString::new(format!("{directory}/fcgi-resilient-body.XXXXXX")).unwrap_or_default();
                rv = sys::apr_file_mktemp(&mut handle, sys::apr_pstrdup(pool, template.as_ptr()), 0, pool);
            }
            rv
        };
        if rv != SUCCESS {
            // SAFETY: a live request.
            unsafe {
                log::for_request(r, log::ERROR, mark!(), || {
                    format!("creating a temporary file for the request body failed (APR status {rv})")
                })
            };
            return Err(INTERNAL_SERVER_ERROR);
        }
        // SAFETY: apr_temp_dir_get set a NUL-terminated path in the request pool.
        let directory = unsafe { CStr::from_ptr(directory) }.to_string_lossy().into_owned();
        Ok(TempFile { handle, buffer: Vec::new(), directory })
    }

    /// A body is never written where it would fill the disk: the filesystem keeps its last
    /// twentieth free (`body_spool::MIN_FREE_SHARE`).
    unsafe fn check_room(&self, r: *mut sys::request_rec, bytes: u64) -> Result<(), c_int> {
        let Ok(stats) = nix::sys::statvfs::statvfs(self.directory.as_str()) else { return Ok(()) };
        let fragment = stats.fragment_size();
        let (available, total) = (stats.blocks_available() * fragment, stats.blocks() * fragment);
        if disk_has_room(bytes, available, total) {
            return Ok(());
        }
        // SAFETY: a live request.
        unsafe {
            log::for_request(r, log::ERROR, mark!(), || {
                format!(
                    "the temporary directory {} has {available} of {total} bytes free: request bodies of \
                     waiting requests are not written into its last 5 %; answering 503, the backend received nothing",
                    self.directory
                )
            })
        };
        Err(SERVICE_UNAVAILABLE)
    }

    /// Writes the data of `chunk` (`bytes` long) at the end of the file and empties `chunk`.
    unsafe fn append(&mut self, r: *mut sys::request_rec, chunk: Brigade, bytes: u64) -> Result<(), c_int> {
        self.buffer.resize(bytes as usize, 0);
        let mut flattened = bytes as sys::apr_size_t;
        let mut written: sys::apr_size_t = 0;
        // SAFETY: the buffer holds `bytes`; the brigade and the file live in the request pool.
        let rv = unsafe {
            let mut rv = sys::apr_brigade_flatten(chunk, self.buffer.as_mut_ptr().cast(), &mut flattened);
            if rv == SUCCESS {
                rv = sys::apr_file_write_full(self.handle, self.buffer.as_ptr().cast(), flattened, &mut written);
            }
            sys::apr_brigade_cleanup(chunk.cast());
            rv
        };
        if rv != SUCCESS || flattened as u64 != bytes {
            // SAFETY: a live request.
            unsafe {
                log::for_request(r, log::ERROR, mark!(), || {
                    format!("writing the request body to a temporary file failed (APR status {rv})")
                })
            };
            return Err(INTERNAL_SERVER_ERROR);
        }
        Ok(())
    }
}
