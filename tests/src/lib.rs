//! The harness the integration tests and the benchmark share: a private work directory, a
//! real php-fpm pool, a real Apache (Debian's apache2) configured from a template, a small
//! HTTP/1.1 client, a bounded closed-loop load, a hostile client and CPU contention. Everything
//! listens on 127.0.0.1 or on a Unix socket inside the work directory, and every process
//! started is killed when its handle is dropped, also when a test panics.

pub mod apache;
pub mod contention;
pub mod daemon;
pub mod hostile;
pub mod http;
pub mod load;
pub mod nspawn;
pub mod php_fpm;
pub mod sites;
pub mod status;
pub mod transport;
pub mod uploads;
pub mod workdir;

pub use apache::{Apache, ApacheConfig};
pub use daemon::{free_port, wait_until, Daemon};
pub use php_fpm::{Listen, PhpFpm};
pub use workdir::WorkDir;
