//! mod_fcgi_resilient: mod_proxy_fcgi waits out a PHP-FPM restart instead of answering 503.
//!
//! Layout: `ffi` is the only place that touches httpd (generated bindings, the module record,
//! hook and directive registration, logging, a safe `Request` over `request_rec`, `Worker` over
//! `proxy_worker`). Everything else is plain Rust that unit-tests without Apache: directive
//! parsing and merging (`settings`), the retry policy (`retry`, `backoff`, `policy`, the one
//! state machine both ways of waiting drive, `waiting_cap`, `known_down`, `shared_budget`,
//! `wait_record`, the record a request keeps across waits, `give_up`, the line a request that
//! gave up logs), what one handler call left behind (`attempt`), when a balancer member should
//! fail over rather than wait (`balancer`), looking at the backend and the client (`probe`),
//! how a request body read before waiting is kept (`body_spool`) and framed for PHP
//! (`body_framing`), and the shared counters
//! behind the status page and the server-wide waiting cap (`stats`, `waiting_table`,
//! `liveness`, `status_page`, and `prometheus` for the metrics), deliberate pauses of a backend
//! (`pause`), and which httpd versions the module runs in and suspends requests in
//! (`httpd_version`).
//!
//! What the helper must read and write alike comes from `fcgi_resilient_common`, under the
//! names the module has always used: `duration` (httpd's syntax), `pause_file`, and the
//! backend address in `probe`.

pub use fcgi_resilient_common::{duration, pause_file};

pub mod attempt;
pub mod backoff;
pub mod balancer;
pub mod body_framing;
pub mod body_spool;
pub mod breaker;
pub mod give_up;
pub mod handoff;
pub mod httpd_version;
pub mod known_down;
pub mod liveness;
pub mod pause;
pub mod policy;
pub mod probe;
pub mod prometheus;
pub mod retry;
pub mod settings;
pub mod shared_budget;
/// Backends whose socket `fcgi-resilient-helper socket-keeper` holds, for the status page.
pub mod socket_keepers;
pub mod stats;
pub mod status_page;
pub mod suspended_waits;
#[cfg(test)]
mod test_dir;
pub mod wait_record;
pub mod waiting_cap;
pub mod waiting_table;

// httpd's symbols exist only inside a running httpd; the FFI layer is covered by the
// integration tests in tests/, which load the module into a real Apache.
#[cfg(not(test))]
mod ffi;
