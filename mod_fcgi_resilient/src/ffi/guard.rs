//! No panic may unwind into httpd's C frames: each entry point runs inside `guard`, which turns
//! a panic into one error log line and the entry point's fallback value.

use std::panic::{catch_unwind, AssertUnwindSafe};

pub fn guard<R>(entry_point: &'static str, fallback: R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            let detail = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            super::log::server_error(&format!("internal error in {entry_point}: {detail}"));
            fallback
        }
    }
}
