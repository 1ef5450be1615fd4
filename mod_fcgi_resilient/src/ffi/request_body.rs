//! Before a request waits for its backend, the rest of its body is read into the place
//! mod_proxy_fcgi takes it from, so that neither the client nor mod_reqtimeout waits with it;
//! with FcgiResilientSpoolChunkedBody On, a body without a Content-Length is read so before the
//! first connect, and PHP gets its Content-Length.
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
//! proxy_fcgi_handler and dispatch). So the rest of the body and an EOS are appended there.
//! Reading the body must not change how PHP is told about it (`body_framing`): where
//! mod_proxy_fcgi's handler ran first, the headers stay as it set them (a chunked body it
//! streams goes on without a Content-Length); where the module reads first, it sets them as
//! mod_proxy_fcgi would have, since mod_proxy_fcgi decides nothing once it finds its brigade.
//!
//! The brigades, the temporary file and the request are reached through the safe views of
//! `brigade` and `request`; nothing here dereferences a pointer.

use super::brigade::{self, Brigade, Read, TempFile};
use super::log::{self, mark};
use super::request::Request;
use super::sys;
use crate::body_framing::{self, Announced, Framing, ReadWhen};
use crate::body_spool::{disk_has_room, ChildSpool, Place, Spool, MEMORY_LIMIT};
use crate::ffi::status_code::Status;
use std::cell::Cell;
use std::ffi::CStr;

/// mod_proxy_fcgi's pool userdata key for the body it prefetched.
const INPUT_KEY: &CStr = c"proxy-fcgi-input";
/// The request bodies this child's requests hold, read before waiting or before the first
/// connect (FcgiResilientMaxBodySpool).
static CHILD_SPOOL: ChildSpool = ChildSpool::new();

/// Bytes asked of the input filters per read, as mod_proxy_fcgi asks them.
const READ_SIZE: u64 = sys::AP_IOBUFSIZE as u64;
/// A blocking read that keeps returning nothing is a broken filter, not a slow client: stop
/// rather than spin.
const EMPTY_READS_BEFORE_GIVING_UP: u32 = 100;

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
/// handler, served by this thread for the whole call.
pub unsafe fn read_before_waiting(r: *mut sys::request_rec) -> Result<(), Status> {
    // SAFETY: guaranteed by the caller.
    let request = unsafe { Request::from_raw(r) };
    let read = read_rest_of_body(&request, spools_chunked_body(&request))?;
    if read.read_anything() {
        request.log(log::DEBUG, mark!(), || {
            format!(
                "read the rest of the request body before waiting: {} of {} bytes, {} of them in a temporary file",
                read.newly_read, read.total, read.in_file
            )
        });
    }
    Ok(())
}

/// FcgiResilientSpoolChunkedBody On: a body without a Content-Length is read whole before the
/// first connect, so that PHP gets a Content-Length whether the request waits or not. Called
/// before every run of mod_proxy_fcgi's handler; only the flag is looked at while it is Off.
/// `Err` carries the status the request must end with at once (as `read_rest_of_body`).
///
/// # Safety
/// `r` must be a live request inside the handler phase, served by this thread for the call.
pub unsafe fn spool_before_connect(r: *mut sys::request_rec, spool_chunked_body: bool) -> Result<(), Status> {
    if !spool_chunked_body {
        return Ok(());
    }
    // SAFETY: guaranteed by the caller.
    let request = unsafe { Request::from_raw(r) };
    if !body_framing::spool_before_connect(spool_chunked_body, announced(&request)) {
        return Ok(());
    }
    let read = read_rest_of_body(&request, true)?;
    if read.read_anything() {
        request.log(log::DEBUG, mark!(), || {
            format!(
                "read the chunked request body whole before connecting (FcgiResilientSpoolChunkedBody On): \
                 {} bytes, {} of them in a temporary file",
                read.total, read.in_file
            )
        });
    }
    Ok(())
}

fn spools_chunked_body(request: &Request) -> bool {
    super::dir_config::of(request).spools_chunked_body()
}

/// How the client framed the body, from the request before any blocking read (which answers
/// `100 Continue` and clears `expecting_100`).
fn announced(request: &Request) -> Announced {
    Announced {
        content_length: request.header_in(c"Content-Length").is_some(),
        transfer_encoding: request.header_in(c"Transfer-Encoding").is_some(),
        expects_continue: request.expecting_100(),
    }
}

/// Reads whatever of the body is still unread (blocking reads through r->input_filters) and
/// appends it, then an EOS, to mod_proxy_fcgi's "proxy-fcgi-input" brigade, and frames it for
/// PHP as `body_framing` says (`spool_chunked_body`: FcgiResilientSpoolChunkedBody On). `Err`
/// is the status the request must end with: the client's read error mapped as httpd maps it
/// (408, 413, 400), 413 for a spooled chunked body past LimitRequestBody, 503 when the child
/// holds FcgiResilientMaxBodySpool already, or 500 when the body could not be stored. The reads
/// see the request as proxied, as mod_proxy_fcgi's own reads do (`Request::reading_as_proxied`):
/// httpd's input filter then applies no LimitRequestBody, whether or not mod_proxy ran yet.
pub fn read_rest_of_body<'r>(request: &Request<'r>, spool_chunked_body: bool) -> Result<BodyRead, Status> {
    let read = request.reading_as_proxied(|| read_and_frame(request, spool_chunked_body));
    if read.is_err() {
        // Part of the body may be consumed and not kept: this answer is final. mod_proxy's
        // balancer loop would take a 503 or a 500 to another member (putting this one in error
        // state), whose run would send the body with a piece missing; the note ends that loop
        // with the status as it is (mod_proxy.c, proxy_handler).
        request.set_note(c"proxy-error-override", c"1");
    }
    read
}

fn read_and_frame<'r>(request: &Request<'r>, spool_chunked_body: bool) -> Result<BodyRead, Status> {
    // mod_proxy_fcgi's brigade, or one created and registered the way it would be when nothing
    // was prefetched yet.
    let (mut input, when) = match Brigade::find_in_userdata(request, INPUT_KEY) {
        Some(input) => (input, ReadWhen::AfterItsPrefetch),
        None => (Brigade::in_userdata(request, INPUT_KEY), ReadWhen::BeforeItRan),
    };
    let prefetched = length_of(request, &input)?;
    if input.ends_with_eos() {
        return Ok(BodyRead { total: prefetched, newly_read: 0, in_file: 0 });
    }
    let announced = announced(request);
    let limit_req_body = request.limit_req_body();
    let mut spool = Spool::new(MEMORY_LIMIT, prefetched);
    let limit = super::dir_config::of(request).max_body_spool.unwrap_or(crate::body_spool::DEFAULT_CHILD_LIMIT);
    let ledger = request.keep_in_pool(Ledger::default());
    // New brigades in the request pool, with the connection's allocator as mod_proxy_fcgi's.
    let (mut chunk, mut end) = (Brigade::new(request), Brigade::new(request));
    let mut file: Option<BodyFile> = None;
    let mut empty_reads = 0;
    loop {
        let finished = read_chunk(request, &chunk, &end)?;
        let bytes = length_of(request, &chunk)?;
        empty_reads = if bytes == 0 { empty_reads + 1 } else { 0 };
        if empty_reads >= EMPTY_READS_BEFORE_GIVING_UP {
            request.log(log::ERROR, mark!(), || "the request body reads return nothing".into());
            return Err(Status::INTERNAL_SERVER_ERROR);
        }
        if let Err(held) = CHILD_SPOOL.reserve(bytes, limit) {
            request.log(log::ERROR, mark!(), || {
                format!(
                    "request bodies read ahead of the backend already hold {held} bytes in this child \
                     process (FcgiResilientMaxBodySpool {limit}): answering 503; the backend received nothing"
                )
            });
            return Err(Status::SERVICE_UNAVAILABLE);
        }
        ledger.held.set(ledger.held.get() + bytes);
        let place = spool.place_unless(bytes, |bytes| {
            let taken = CHILD_SPOOL.reserve_memory(bytes);
            if taken {
                ledger.in_memory.set(ledger.in_memory.get() + bytes);
            }
            !taken
        });
        if body_framing::exceeds_limit(spool_chunked_body, announced, spool.total(), limit_req_body) {
            request.log(log::INFO, mark!(), || {
                format!(
                    "the chunked request body is longer than LimitRequestBody {limit_req_body} \
                     (FcgiResilientSpoolChunkedBody On): answering 413; the backend received nothing"
                )
            });
            return Err(Status::PAYLOAD_TOO_LARGE);
        }
        match place {
            Place::Memory => save_brigade(request, &mut input, &mut chunk)?,
            Place::File => {
                if file.is_none() {
                    file = Some(BodyFile::create(request)?);
                }
                if let Some(file) = &mut file {
                    file.check_room(request, bytes)?;
                    file.append(request, &chunk, bytes)?;
                }
            }
        }
        if finished {
            break;
        }
    }
    if let Some(file) = file {
        // The file holds exactly `in_file` bytes from offset 0.
        input.append_file(request, &file.file, 0, spool.in_file());
    }
    // `end` holds the EOS the input filters ended the body with: it goes last.
    save_brigade(request, &mut input, &mut end)?;
    let send_length = spool_chunked_body || request.has_env(c"proxy-sendcl");
    frame(request, body_framing::framing(when, announced, spool.total(), send_length));
    Ok(BodyRead { total: spool.total(), newly_read: spool.total() - prefetched, in_file: spool.in_file() })
}

/// One blocking read into `chunk`; an EOS that ends it is moved to `end`, which is empty.
/// Returns whether the body is complete.
fn read_chunk<'r>(request: &Request<'r>, chunk: &Brigade<'r>, end: &Brigade<'r>) -> Result<bool, Status> {
    if let Err(rv) = chunk.read_input(request, Read::BlockingBytes, READ_SIZE) {
        let status = brigade::http_status_of_read_error(rv, Status::BAD_REQUEST);
        request.log(log::INFO, mark!(), || {
            format!(
                "reading the request body before waiting for the backend failed (APR status {rv}): \
                 answering {status}; the backend received nothing"
            )
        });
        return Err(status);
    }
    Ok(chunk.move_eos_to(end))
}

/// Sets every bucket of `from` aside into the request pool and appends them to `to`.
fn save_brigade<'r>(request: &Request<'r>, to: &mut Brigade<'r>, from: &mut Brigade<'r>) -> Result<(), Status> {
    to.append_saved(request, from).map_err(|rv| {
        request.log(log::ERROR, mark!(), || format!("keeping the request body failed (APR status {rv})"));
        Status::INTERNAL_SERVER_ERROR
    })
}

fn length_of(request: &Request, brigade: &Brigade) -> Result<u64, Status> {
    brigade.length().map_err(|rv| {
        request.log(log::ERROR, mark!(), || format!("reading the request body failed (APR status {rv})"));
        Status::INTERNAL_SERVER_ERROR
    })
}

/// Sets the request headers mod_proxy_fcgi builds CONTENT_LENGTH from.
fn frame(request: &Request, framing: Framing) {
    match framing {
        Framing::Unchanged => {}
        Framing::WithoutLength => request.unset_header_in(c"Content-Length"),
        Framing::Length(length) => {
            request.set_header_in(c"Content-Length", &length.to_string());
            request.unset_header_in(c"Transfer-Encoding");
        }
    }
}

/// What one request holds of its child's body share, given back when its pool goes.
#[derive(Default)]
struct Ledger {
    held: Cell<u64>,
    in_memory: Cell<u64>,
}

impl Drop for Ledger {
    fn drop(&mut self) {
        CHILD_SPOOL.release(self.held.get(), self.in_memory.get());
    }
}

/// The temporary file a body goes to once memory is spent, with the directory it is in.
struct BodyFile<'r> {
    file: TempFile<'r>,
    buffer: Vec<u8>,
    directory: String,
}

impl<'r> BodyFile<'r> {
    fn create(request: &Request<'r>) -> Result<BodyFile<'r>, Status> {
        let made = brigade::temp_dir(request).and_then(|directory| {
            let file = TempFile::create(request, &directory, "fcgi-resilient-body.")?;
            Ok(BodyFile { file, buffer: Vec::new(), directory })
        });
        made.map_err(|rv| {
            request.log(log::ERROR, mark!(), || {
                format!("creating a temporary file for the request body failed (APR status {rv})")
            });
            Status::INTERNAL_SERVER_ERROR
        })
    }

    /// A body is never written where it would fill the disk: the filesystem keeps its last
    /// twentieth free (`body_spool::MIN_FREE_SHARE`).
    fn check_room(&self, request: &Request, bytes: u64) -> Result<(), Status> {
        let Ok(stats) = nix::sys::statvfs::statvfs(self.directory.as_str()) else { return Ok(()) };
        let fragment = stats.fragment_size();
        let (available, total) = (stats.blocks_available() * fragment, stats.blocks() * fragment);
        if disk_has_room(bytes, available, total) {
            return Ok(());
        }
        request.log(log::ERROR, mark!(), || {
            format!(
                "the temporary directory {} has {available} of {total} bytes free: request bodies of \
                 waiting requests are not written into its last 5 %; answering 503, the backend received nothing",
                self.directory
            )
        });
        Err(Status::SERVICE_UNAVAILABLE)
    }

    /// Writes the data of `chunk` (`bytes` long) at the end of the file and empties `chunk`.
    fn append(&mut self, request: &Request, chunk: &Brigade, bytes: u64) -> Result<(), Status> {
        self.buffer.resize(bytes as usize, 0);
        let written = chunk.flatten_into(&mut self.buffer).and_then(|flattened| {
            self.file.write_all(&self.buffer[..flattened])?;
            Ok(flattened)
        });
        chunk.clear();
        // A short flatten is a failure too, with APR status 0 (success) in the message.
        let rv = match written {
            Ok(flattened) if flattened as u64 == bytes => return Ok(()),
            Ok(_) => sys::APR_SUCCESS as sys::apr_status_t,
            Err(rv) => rv,
        };
        request.log(log::ERROR, mark!(), || {
            format!("writing the request body to a temporary file failed (APR status {rv})")
        });
        Err(Status::INTERNAL_SERVER_ERROR)
    }
}
