//! The status values httpd's hooks and handlers return, as one type declared once for the whole
//! FFI layer: a hook's `int` becomes a `Status` where httpd hands it over, and goes back to an
//! `int` (`raw`) only where this module's `extern "C"` functions return to httpd.

use super::sys;
use std::ffi::c_int;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub struct Status(c_int);

impl Status {
    pub const OK: Status = Status(sys::OK as c_int);
    pub const DECLINED: Status = Status(sys::DECLINED as c_int);
    pub const SUSPENDED: Status = Status(sys::SUSPENDED);
    pub const BAD_REQUEST: Status = Status(sys::HTTP_BAD_REQUEST as c_int);
    pub const INTERNAL_SERVER_ERROR: Status = Status(sys::HTTP_INTERNAL_SERVER_ERROR as c_int);
    pub const SERVICE_UNAVAILABLE: Status = Status(sys::HTTP_SERVICE_UNAVAILABLE as c_int);
    pub const PAYLOAD_TOO_LARGE: Status = Status(sys::HTTP_REQUEST_ENTITY_TOO_LARGE as c_int);
    /// What httpd's own proxy answers when the client vanished while its request was read; the
    /// connection is marked aborted, so nothing is written.
    pub const CLIENT_GONE: Status = Status::BAD_REQUEST;

    /// A status httpd returned (a hook, a handler, a filter's HTTP status).
    pub const fn from_raw(status: c_int) -> Status {
        Status(status)
    }

    /// For httpd: what an `extern "C"` hook or handler of this module returns.
    pub const fn raw(self) -> c_int {
        self.0
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
