//! A safe view of the `request_rec` a handler is given: the one place that dereferences it, so
//! the glue above reads like the policy it implements.

use super::log::{self, Mark};
use super::sys;
use crate::probe::ClientWatch;
use crate::wait_record::WaitRecord;
use std::ffi::{c_int, CStr, CString};
use std::marker::PhantomData;
use std::os::fd::{BorrowedFd, OwnedFd};

/// A live request, borrowed for the duration of one hook call by the thread serving it.
#[derive(Clone, Copy)]
pub struct Request<'r> {
    raw: *mut sys::request_rec,
    _lives_for: PhantomData<&'r sys::request_rec>,
}

/// What the response looks like before mod_proxy_fcgi runs; any change afterwards means it
/// parsed the backend's response headers into the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseState {
    status: c_int,
    status_line: *const std::ffi::c_char,
    content_type: *const std::ffi::c_char,
    headers_out: i32,
    err_headers_out: i32,
}

impl<'r> Request<'r> {
    /// # Safety
    /// `raw` must be a live request that stays valid, and is used by this thread only, for `'r`.
    pub unsafe fn from_raw(raw: *mut sys::request_rec) -> Request<'r> {
        Request { raw, _lives_for: PhantomData }
    }

    fn rec(&self) -> &sys::request_rec {
        // SAFETY: `from_raw`'s contract: a live request for 'r.
        unsafe { &*self.raw }
    }

    fn connection(&self) -> &sys::conn_rec {
        // SAFETY: a live request's connection outlives the request.
        unsafe { &*self.rec().connection }
    }

    pub fn method(&self) -> &[u8] {
        // SAFETY: httpd sets a NUL-terminated method before any handler runs.
        unsafe { CStr::from_ptr(self.rec().method) }.to_bytes()
    }

    pub fn header_in(&self, name: &CStr) -> Option<&'r [u8]> {
        // SAFETY: the live request's own table.
        unsafe { table_get(self.rec().headers_in, name) }
    }

    pub fn note(&self, name: &CStr) -> Option<&'r [u8]> {
        // SAFETY: the live request's own table.
        unsafe { table_get(self.rec().notes, name) }
    }

    pub fn set_note(&self, name: &'static CStr, value: &'static CStr) {
        // SAFETY: static key and value outlive the table.
        unsafe { sys::apr_table_setn(self.rec().notes, name.as_ptr(), value.as_ptr()) };
    }

    /// The request this one was made for: internal redirects (an ErrorDocument among them)
    /// lead back through `prev`, subrequests through `main`.
    pub fn initial(&self) -> Request<'r> {
        let mut raw = self.raw;
        loop {
            // SAFETY: a live request's `prev` and `main` are null or requests that outlive it.
            let rec = unsafe { &*raw };
            let earlier = if !rec.prev.is_null() { rec.prev } else { rec.main };
            if earlier.is_null() {
                return Request { raw, _lives_for: PhantomData };
            }
            raw = earlier;
        }
    }

    pub fn raw(&self) -> *mut sys::request_rec {
        self.raw
    }

    pub fn has_env(&self, name: &CStr) -> bool {
        // SAFETY: the live request's own table.
        unsafe { table_get(self.rec().subprocess_env, name) }.is_some()
    }

    pub fn unset_env(&self, name: &CStr) {
        // SAFETY: the request's own table; apr_table_unset copies nothing.
        unsafe { sys::apr_table_unset(self.rec().subprocess_env, name.as_ptr()) };
    }

    /// Sets a header that goes out with an error response too.
    pub fn set_err_header(&self, name: &'static CStr, value: &str) {
        // SAFETY: the live request's own table.
        unsafe { self.set_pooled(self.rec().err_headers_out, name, value) };
    }

    /// `Retry-After` on the answer, unless `secs` is 0 (FcgiResilientRetryAfter Off).
    pub fn set_retry_after(&self, secs: u32) {
        if secs > 0 {
            self.set_err_header(c"Retry-After", &secs.to_string());
        }
    }

    /// # Safety
    /// `table` must be one of this request's tables.
    unsafe fn set_pooled(&self, table: *mut sys::apr_table_t, name: &'static CStr, value: &str) {
        let value = CString::new(value.replace('\0', "")).unwrap_or_default();
        // SAFETY: one of this request's tables; the value is copied into the request pool, so
        // the entry outlives this call.
        unsafe {
            let pooled = sys::apr_pstrdup(self.rec().pool, value.as_ptr());
            sys::apr_table_setn(table, name.as_ptr(), pooled);
        }
    }

    pub fn unset_err_header(&self, name: &CStr) {
        // SAFETY: the request's own table.
        unsafe { sys::apr_table_unset(self.rec().err_headers_out, name.as_ptr()) };
    }

    /// A byte of the response went to the client, or writing to it failed.
    pub fn response_started(&self) -> bool {
        let r = self.rec();
        r.sent_bodyct != 0 || r.bytes_sent != 0 || self.connection().aborted != 0
    }

    pub fn response_state(&self) -> ResponseState {
        let r = self.rec();
        ResponseState {
            status: r.status,
            status_line: r.status_line,
            content_type: r.content_type,
            // SAFETY: the live request's own tables.
            headers_out: unsafe { table_len(r.headers_out) },
            // SAFETY: as above.
            err_headers_out: unsafe { table_len(r.err_headers_out) },
        }
    }

    /// Nothing more may be written to this client, and its connection is not kept alive.
    pub fn mark_client_gone(&self) {
        // SAFETY: this thread serves the connection; httpd reads these fields only later, on
        // the same thread, when it writes the response and decides on keep-alive.
        unsafe {
            let connection = self.rec().connection;
            (*connection).aborted = 1;
            (*connection).keepalive = sys::ap_conn_keepalive_e_AP_CONN_CLOSE;
        }
    }

    /// This request's record of its waits (`wait_record`), kept in the initial request's
    /// `request_config` (as httpd's modules keep per-request state) so that its ErrorDocument,
    /// redirects and resumed runs share it; made when first asked for.
    pub fn with_wait_record<T>(&self, use_it: impl FnOnce(&mut WaitRecord) -> T) -> T {
        let initial = self.initial();
        let slot = initial.wait_record_slot();
        // SAFETY: this module's entry of the initial request's request_config vector.
        let mut record = unsafe { *slot };
        if record.is_null() {
            record = Box::into_raw(Box::<WaitRecord>::default()).cast();
            // SAFETY: the entry is this module's; the request pool's clean-up frees the box (and
            // the vector lives in that pool, so nothing reads the entry after).
            unsafe {
                *slot = record;
                sys::apr_pool_cleanup_register(
                    initial.rec().pool,
                    record,
                    Some(drop_wait_record),
                    Some(sys::apr_pool_cleanup_null),
                );
            }
        }
        // SAFETY: the box set above or by an earlier call, alive as long as the initial request;
        // only the thread serving the request uses it, and not across this call.
        use_it(unsafe { &mut *record.cast::<WaitRecord>() })
    }

    /// Like `with_wait_record` for a request that has one, without making one: the happy path
    /// (a request that never waited) allocates nothing and reads one pointer.
    pub fn with_existing_wait_record<T>(&self, use_it: impl FnOnce(&mut WaitRecord) -> T) -> Option<T> {
        // SAFETY: this module's entry of the initial request's request_config vector.
        let record = unsafe { *self.initial().wait_record_slot() };
        // SAFETY: as in `with_wait_record`.
        (!record.is_null()).then(|| use_it(unsafe { &mut *record.cast::<WaitRecord>() }))
    }

    /// This module's entry in the request's `request_config` (zeroed by httpd when the request
    /// is made, one entry per loaded module: what ap_get_module_config reads).
    fn wait_record_slot(&self) -> *mut *mut std::ffi::c_void {
        let index = super::module_record::module_index() as usize;
        (self.rec().request_config as *mut *mut std::ffi::c_void).wrapping_add(index)
    }

    /// A GET, HEAD or OPTIONS without a body: safe to repeat, nothing to keep while it waits.
    pub fn is_safe_without_body(&self) -> bool {
        matches!(self.method(), b"GET" | b"HEAD" | b"OPTIONS")
            && self.header_in(c"Transfer-Encoding").is_none()
            && self.header_in(c"Content-Length").is_none_or(|length| length == b"0")
    }

    /// Where mod_rewrite's per-directory rules send this request by an internal redirect (its
    /// handler "redirect-handler", its filename "redirect:URI"), as a NUL-terminated URI.
    pub fn internal_redirect_target(&self) -> Option<CString> {
        match self.handler_and_filename() {
            (Some(b"redirect-handler"), Some(filename)) => CString::new(filename.strip_prefix(b"redirect:")?).ok(),
            _ => None,
        }
    }

    /// Looks `uri` up as a subrequest of this one (translation, access checks, fixups: no
    /// handler runs) and gives the subrequest to `inspect`; the subrequest is destroyed after.
    pub fn with_lookup<T>(&self, uri: &CStr, inspect: impl FnOnce(Option<&Request>) -> T) -> T {
        // SAFETY: a live request; the subrequest lives until ap_destroy_sub_req below.
        let sub = unsafe { sys::ap_sub_req_lookup_uri(uri.as_ptr(), self.raw, std::ptr::null_mut()) };
        if sub.is_null() {
            return inspect(None);
        }
        // SAFETY: the subrequest just made, used by this thread only until it is destroyed.
        let lookup = unsafe { Request::from_raw(sub) };
        let found = inspect((lookup.rec().status == sys::HTTP_OK as c_int).then_some(&lookup));
        // SAFETY: made above, destroyed once.
        unsafe { sys::ap_destroy_sub_req(sub) };
        found
    }

    /// Whether a write to the client has failed already (httpd sets `c->aborted` then).
    pub fn client_aborted(&self) -> bool {
        self.connection().aborted != 0
    }

    /// The connection's address: a key for what is kept of it while the MPM holds it.
    pub fn connection_key(&self) -> usize {
        self.rec().connection as usize
    }

    /// Runs `cleanup(data)` when the request's pool is destroyed, however the request ends.
    pub fn on_cleanup(
        &self,
        cleanup: unsafe extern "C" fn(*mut std::ffi::c_void) -> sys::apr_status_t,
        data: *mut std::ffi::c_void,
    ) {
        // SAFETY: registers a clean-up on the live request's pool; `cleanup` takes only `data`.
        unsafe {
            sys::apr_pool_cleanup_register(self.rec().pool, data, Some(cleanup), Some(sys::apr_pool_cleanup_null))
        };
    }

    /// The request of an HTTP/2 stream, on a secondary connection of mod_http2's.
    pub fn is_http2_stream(&self) -> bool {
        !self.connection().master.is_null()
    }

    /// A watch for noticing that the client left while the request waits.
    pub fn client_watch(&self) -> Option<ClientWatch> {
        if self.is_http2_stream() {
            return Some(self.stream_watch());
        }
        self.client_socket().map(ClientWatch::new)
    }

    /// A descriptor of the client's socket of its own (a duplicate), for watching it.
    pub fn client_socket(&self) -> Option<OwnedFd> {
        // SAFETY: the connection's socket lives as long as the connection.
        let socket = unsafe { sys::ap_get_conn_socket(self.rec().connection) };
        if socket.is_null() {
            return None;
        }
        let mut fd: sys::apr_os_sock_t = -1;
        // SAFETY: writes the socket's descriptor into `fd`.
        if unsafe { sys::apr_os_sock_get(&mut fd, socket) } != sys::APR_SUCCESS as c_int || fd < 0 {
            return None;
        }
        // SAFETY: `fd` is the connection's open socket for at least this call; it is only
        // duplicated here, so the caller owns a descriptor of its own.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        borrowed.try_clone_to_owned().ok()
    }

    /// The top-level request of an HTTP/1.x connection: neither a subrequest nor an internal
    /// redirect nor an HTTP/2 stream.
    pub fn is_initial_http1(&self) -> bool {
        let rec = self.rec();
        rec.main.is_null() && rec.prev.is_null() && !self.is_http2_stream() && !self.connection().cs.is_null()
    }

    /// r->handler and r->filename, where set.
    pub fn handler_and_filename(&self) -> (Option<&'r [u8]>, Option<&'r [u8]>) {
        let text = |pointer: *const std::ffi::c_char| {
            // SAFETY: httpd's NUL-terminated strings in the request pool, or null.
            (!pointer.is_null()).then(|| unsafe { CStr::from_ptr(pointer) }.to_bytes())
        };
        (text(self.rec().handler), text(self.rec().filename))
    }

    /// The answer will end the connection ("Connection: close"), whatever keep-alive says.
    pub fn close_connection_after(&self) {
        // SAFETY: this thread serves the connection; httpd reads keepalive when it writes the
        // response, on the thread that does.
        unsafe { (*self.rec().connection).keepalive = sys::ap_conn_keepalive_e_AP_CONN_CLOSE };
    }

    /// An HTTP/2 stream runs on a secondary connection whose socket is an unconnected
    /// placeholder (mod_http2's h2_c2), so polling it says nothing about the client. mod_http2
    /// sets the secondary connection's `aborted` when the client resets the stream or closes
    /// its connection while the stream's request runs (h2_mplx.c, m_stream_cleanup), and the
    /// primary's when writing to the client fails.
    fn stream_watch(&self) -> ClientWatch {
        let stream = self.rec().connection as *const sys::conn_rec;
        let primary = self.connection().master as *const sys::conn_rec;
        ClientWatch::from_flag(move || {
            // SAFETY: both connections outlive the request whose wait holds this watch (the
            // primary outlives its secondaries); mod_http2's session thread writes `aborted`
            // concurrently, so it is read as volatile, one word that is only ever set to 1.
            unsafe {
                std::ptr::addr_of!((*stream).aborted).read_volatile() != 0
                    || std::ptr::addr_of!((*primary).aborted).read_volatile() != 0
            }
        })
    }

    pub fn log(&self, level: c_int, mark: Mark, message: impl FnOnce() -> String) {
        // SAFETY: a live request.
        unsafe { log::for_request(self.raw, level, mark, message) }
    }
}

/// # Safety
/// `table` must be a live table whose values live for `'t` (a request's, in its pool).
unsafe fn table_get<'t>(table: *mut sys::apr_table_t, name: &CStr) -> Option<&'t [u8]> {
    // SAFETY: a live request's table; values are NUL-terminated strings in the request pool.
    unsafe {
        let value = sys::apr_table_get(table, name.as_ptr());
        (!value.is_null()).then(|| CStr::from_ptr(value).to_bytes())
    }
}

/// apr_table_elts() is a cast in C: a table starts with its array header.
///
/// # Safety
/// `table` must be null or a live table.
unsafe fn table_len(table: *mut sys::apr_table_t) -> i32 {
    if table.is_null() {
        return 0;
    }
    // SAFETY: apr_tables.h documents apr_table_t as beginning with an apr_array_header_t.
    unsafe { (*(table as *const sys::apr_array_header_t)).nelts }
}

unsafe extern "C" fn drop_wait_record(data: *mut std::ffi::c_void) -> sys::apr_status_t {
    // SAFETY: the Box<WaitRecord> `with_wait_record` gave the pool, freed once with it.
    drop(unsafe { Box::from_raw(data.cast::<WaitRecord>()) });
    sys::APR_SUCCESS as sys::apr_status_t
}

/// What the request-body and status-page glue needs of a request (`brigade`, `request_body`,
/// `status_handler`).
impl<'r> Request<'r> {
    /// The request's pool, for the `brigade` view to allocate in; it outlives 'r.
    pub(super) fn pool(&self) -> *mut sys::apr_pool_t {
        self.rec().pool
    }

    /// The connection's bucket allocator, which the request's brigades use.
    pub(super) fn bucket_alloc(&self) -> *mut sys::apr_bucket_alloc_t {
        self.connection().bucket_alloc
    }

    /// The head of the request's input filter chain.
    pub(super) fn input_filters(&self) -> *mut sys::ap_filter_t {
        self.rec().input_filters
    }

    /// Sets a request header, its value copied into the request pool.
    pub fn set_header_in(&self, name: &'static CStr, value: &str) {
        let value = CString::new(value.replace('\0', "")).unwrap_or_default();
        // SAFETY: the request's own table; the value is copied into the request pool, so the
        // entry outlives this call.
        unsafe {
            let pooled = sys::apr_pstrdup(self.rec().pool, value.as_ptr());
            sys::apr_table_setn(self.rec().headers_in, name.as_ptr(), pooled);
        }
    }

    pub fn unset_header_in(&self, name: &CStr) {
        // SAFETY: the request's own table.
        unsafe { sys::apr_table_unset(self.rec().headers_in, name.as_ptr()) };
    }

    /// The client sent `Expect: 100-continue` and has not been answered `100 Continue` yet.
    pub fn expecting_100(&self) -> bool {
        self.rec().expecting_100 != 0
    }

    /// LimitRequestBody for this request, 0 for none.
    pub fn limit_req_body(&self) -> u64 {
        // SAFETY: a live request; ap_get_limit_req_body only reads its core per-dir config.
        let limit = unsafe { sys::ap_get_limit_req_body(self.raw) };
        u64::try_from(limit).unwrap_or(0)
    }

    /// Runs `read` with the request marked as reverse-proxied, as mod_proxy's handler marks a
    /// `SetHandler proxy:...` request before mod_proxy_fcgi reads its body. httpd's HTTP_IN
    /// filter fixes its body limit at its first read and applies LimitRequestBody only to a
    /// request that is not proxied (http_filters.c, ap_http_filter): a body first read before
    /// mod_proxy ran would meet a limit the same body read by mod_proxy_fcgi never meets.
    /// Nothing else on the input side looks at `proxyreq`; it is restored before mod_proxy runs.
    pub fn reading_as_proxied<T>(&self, read: impl FnOnce() -> T) -> T {
        struct Restore(*mut sys::request_rec);
        impl Drop for Restore {
            fn drop(&mut self) {
                // SAFETY: the live request of `reading_as_proxied`, on the thread serving it.
                unsafe { (*self.0).proxyreq = sys::PROXYREQ_NONE as c_int };
            }
        }
        if self.rec().proxyreq != sys::PROXYREQ_NONE as c_int {
            return read();
        }
        // SAFETY: this thread serves the request; only its input filters, run by `read` on
        // this thread, read the field before it is restored.
        unsafe { (*self.raw).proxyreq = sys::PROXYREQ_REVERSE as c_int };
        let _restore = Restore(self.raw);
        read()
    }

    /// r->method_number (M_GET for HEAD too).
    pub fn method_number(&self) -> c_int {
        self.rec().method_number
    }

    /// The query string, where there is one.
    pub fn args(&self) -> Option<&'r [u8]> {
        let args = self.rec().args;
        // SAFETY: a non-null args is the request's NUL-terminated query string, in its pool.
        (!args.is_null()).then(|| unsafe { CStr::from_ptr(args) }.to_bytes())
    }

    pub fn set_content_type(&self, content_type: &'static CStr) {
        // SAFETY: a live request; the static string outlives it.
        unsafe { sys::ap_set_content_type(self.raw, content_type.as_ptr()) };
    }

    /// Sends `body` to the client (ap_rwrite), unless the request is a HEAD.
    pub fn write_body(&self, body: &str) {
        if self.rec().header_only != 0 {
            return;
        }
        // SAFETY: a live request answered by this thread; ap_rwrite copies `body` before returning.
        unsafe { sys::ap_rwrite(body.as_ptr().cast(), body.len() as c_int, self.raw) };
    }

    /// Hands `value` to the request's pool, which drops it when it is destroyed, however the
    /// request ends; meanwhile it is shared for 'r.
    pub fn keep_in_pool<T: 'static>(&self, value: T) -> &'r T {
        unsafe extern "C" fn drop_kept<T>(data: *mut std::ffi::c_void) -> sys::apr_status_t {
            // SAFETY: the Box<T> `keep_in_pool` gave the pool, dropped once with it.
            drop(unsafe { Box::from_raw(data.cast::<T>()) });
            sys::APR_SUCCESS as sys::apr_status_t
        }
        let kept = Box::into_raw(Box::new(value));
        self.on_cleanup(drop_kept::<T>, kept.cast());
        // SAFETY: the pool owns the box until it is destroyed, after 'r; only shared
        // references are handed out.
        unsafe { &*kept }
    }
}
