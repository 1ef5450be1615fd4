//! The status values httpd's hooks and handlers return, declared once for the whole FFI layer.

use super::sys;
use std::ffi::c_int;

pub const OK: c_int = sys::OK as c_int;
pub const DECLINED: c_int = sys::DECLINED as c_int;
pub const SUSPENDED: c_int = sys::SUSPENDED;
pub const BAD_REQUEST: c_int = sys::HTTP_BAD_REQUEST as c_int;
pub const INTERNAL_SERVER_ERROR: c_int = sys::HTTP_INTERNAL_SERVER_ERROR as c_int;
pub const SERVICE_UNAVAILABLE: c_int = sys::HTTP_SERVICE_UNAVAILABLE as c_int;
pub const PAYLOAD_TOO_LARGE: c_int = sys::HTTP_REQUEST_ENTITY_TOO_LARGE as c_int;
/// What httpd's own proxy answers when the client vanished while its request was read; the
/// connection is marked aborted, so nothing is written.
pub const CLIENT_GONE: c_int = BAD_REQUEST;
