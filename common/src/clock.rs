//! The wall clock as both sides stamp it: pause files, the status page and the shared
//! counters hold Unix time, read by processes that share no `Instant`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; 0 for a clock set before 1970 rather than a panic
/// inside httpd.
pub fn unix_millis_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_millis() as u64).unwrap_or_default()
}

/// Whole seconds since the Unix epoch, in the width the shared waiting table stores.
pub fn unix_seconds_now() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_secs() as u32).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_millis_tell_the_same_time() {
        let millis = unix_millis_now();
        let seconds = unix_seconds_now() as u64;
        assert!(millis > 1_700_000_000_000, "a clock before 2023: {millis}");
        assert!(seconds.abs_diff(millis / 1000) <= 1);
    }
}
