//! What mod_fcgi_resilient and fcgi-resilient-helper must agree on, defined once: how a
//! FastCGI backend is written and named, the pause file one writes and the other reads,
//! durations in httpd's syntax, and the wall clock both stamp pauses with.
//!
//! Plain std and no httpd: the helper links it without Apache's headers, and the module's
//! unit tests run it without a server.

pub mod backend_address;
pub mod clock;
pub mod duration;
pub mod pause_file;

pub use backend_address::{AddressError, BackendAddress};
