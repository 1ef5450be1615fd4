//! Jittered exponential backoff between probes of a backend that refused.
//!
//! Jitter spreads the probes of many waiting requests so they do not arrive at a freshly
//! restarted PHP-FPM in lockstep; the cap keeps the added latency after the backend returns
//! bounded by `max` even where nothing can wake a waiter early (TCP backends).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffBounds {
    pub min: Duration,
    pub max: Duration,
}

impl BackoffBounds {
    pub const DEFAULT: BackoffBounds = BackoffBounds { min: Duration::from_millis(2), max: Duration::from_millis(20) };

    pub fn new(min: Duration, max: Duration) -> Result<Self, String> {
        if min.is_zero() {
            return Err("the minimum must be at least 1ms".to_string());
        }
        if min > max {
            return Err("the minimum is larger than the maximum".to_string());
        }
        if max > Duration::from_secs(60) {
            return Err("the maximum must not exceed 60s".to_string());
        }
        Ok(BackoffBounds { min, max })
    }
}

pub struct Backoff {
    bounds: BackoffBounds,
    doublings: u32,
    jitter: Jitter,
}

impl Backoff {
    pub fn new(bounds: BackoffBounds, seed: u64) -> Self {
        Backoff { bounds, doublings: 0, jitter: Jitter::new(seed) }
    }

    /// "Equal jitter": half the current ceiling for sure, the other half at random.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.doublings = self.doublings.saturating_add(1);
        let half = ceiling / 2;
        let spread = (ceiling - half).as_micros() as u64;
        let delay = half + Duration::from_micros(self.jitter.below(spread + 1));
        delay.clamp(self.bounds.min, self.bounds.max)
    }

    /// Something changed at the backend (its socket was recreated): probe quickly again.
    pub fn reset(&mut self) {
        self.doublings = 0;
    }

    fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.doublings.min(20)).unwrap_or(u32::MAX);
        self.bounds.min.saturating_mul(factor).min(self.bounds.max)
    }
}

/// xorshift64*: jitter needs spread, not cryptographic quality, and no dependency.
struct Jitter(u64);

impl Jitter {
    fn new(seed: u64) -> Self {
        Jitter(seed | 1)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound.max(1)
    }
}

/// A seed that differs between the threads and processes that wait at the same moment.
pub fn seed_from_environment() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default(),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delays_stay_within_bounds() {
        let bounds = BackoffBounds::new(ms(5), ms(200)).unwrap();
        let mut backoff = Backoff::new(bounds, 42);
        for _ in 0..1000 {
            let delay = backoff.next_delay();
            assert!(delay >= ms(5) && delay <= ms(200), "{delay:?}");
        }
    }

    #[test]
    fn grows_towards_the_cap() {
        let bounds = BackoffBounds::new(ms(4), ms(400)).unwrap();
        let mut backoff = Backoff::new(bounds, 7);
        let first = backoff.next_delay();
        for _ in 0..10 {
            backoff.next_delay();
        }
        let late = backoff.next_delay();
        assert!(first <= ms(4), "{first:?}");
        assert!(late >= ms(200), "{late:?}");
    }

    #[test]
    fn reset_starts_small_again() {
        let bounds = BackoffBounds::new(ms(2), ms(500)).unwrap();
        let mut backoff = Backoff::new(bounds, 9);
        for _ in 0..12 {
            backoff.next_delay();
        }
        backoff.reset();
        assert!(backoff.next_delay() <= ms(2));
    }

    #[test]
    fn jitter_spreads_waiters() {
        let bounds = BackoffBounds::new(ms(10), ms(10_000)).unwrap();
        let delays: std::collections::HashSet<Duration> = (0..20)
            .map(|seed| {
                let mut backoff = Backoff::new(bounds, seed * 7919 + 1);
                for _ in 0..5 {
                    backoff.next_delay();
                }
                backoff.next_delay()
            })
            .collect();
        assert!(delays.len() > 10, "only {} distinct delays", delays.len());
    }

    #[test]
    fn rejects_inverted_or_zero_bounds() {
        assert!(BackoffBounds::new(ms(50), ms(10)).is_err());
        assert!(BackoffBounds::new(ms(0), ms(10)).is_err());
        assert!(BackoffBounds::new(ms(1), Duration::from_secs(61)).is_err());
    }
}
