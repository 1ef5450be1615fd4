//! A backend that has refused for longer than a request's budget is answered at once.
//!
//! A misconfigured site (its pool's socket never exists) or a pool that is down for good
//! would otherwise have each of its requests wait out the whole budget, filling the waiting
//! room that the server's other backends need through their own restarts. Once a backend has
//! refused without a break for longer than the budget of the request now looking at it, that
//! request gets its 503 and Retry-After at once — after its own connect attempt or probe was
//! refused, so the backend itself is asked every time, and the first request it accepts ends
//! the breaker.
//!
//! "Without a break" is all the module can know: requests that succeed leave no trace (the
//! happy path writes nothing shared), so a refusal more than `CHAIN_GAP` after the previous
//! one starts a new chain. A fresh outage is therefore always waited out; only a chain that
//! waiting requests or breaker probes kept observing, at least every `CHAIN_GAP`, opens it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Waiting requests probe far more often (the backoff's longest pause is 20 ms by default);
/// a refusal this long after the previous one cannot be taken as the same outage.
pub const CHAIN_GAP: Duration = Duration::from_secs(1);

/// When the current chain of refusals began and when it was last seen, in Unix ms (0: none).
/// Shared by every process: each field is an atomic and no process waits for another.
#[repr(C)]
#[derive(Default)]
pub struct RefusalChain {
    since_ms: AtomicU64,
    last_ms: AtomicU64,
    /// The chain whose opening was reported, so the error log says it once per chain.
    reported_since_ms: AtomicU64,
}

impl RefusalChain {
    pub fn refused(&self, now_ms: u64) {
        let last = self.last_ms.swap(now_ms, Ordering::AcqRel);
        let broken = last == 0 || now_ms.saturating_sub(last) > CHAIN_GAP.as_millis() as u64;
        if broken {
            self.since_ms.store(now_ms, Ordering::Release);
        } else {
            // Two processes may both see a broken chain; the earliest start stands.
            let _ = self.since_ms.compare_exchange(0, now_ms, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    pub fn accepted(&self) {
        if self.last_ms.swap(0, Ordering::AcqRel) != 0 {
            self.since_ms.store(0, Ordering::Release);
        }
    }

    /// How long the backend has refused without a break, if it still does as of `now_ms`.
    pub fn refusing_for(&self, now_ms: u64) -> Option<Duration> {
        let (since, last) = (self.since_ms.load(Ordering::Acquire), self.last_ms.load(Ordering::Acquire));
        let current = since != 0 && last != 0 && now_ms.saturating_sub(last) <= CHAIN_GAP.as_millis() as u64;
        current.then(|| Duration::from_millis(now_ms.saturating_sub(since)))
    }

    /// Whether a request with `budget` is answered at once.
    pub fn is_open(&self, now_ms: u64, budget: Duration) -> bool {
        self.refusing_for(now_ms).is_some_and(|refusing| refusing >= budget)
    }

    /// True for the first caller of each chain: the one that logs it.
    pub fn first_report(&self) -> bool {
        let since = self.since_ms.load(Ordering::Acquire);
        since != 0 && self.reported_since_ms.swap(since, Ordering::AcqRel) != since
    }

    pub fn since_ms(&self) -> u64 {
        self.since_ms.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_secs(10);

    /// Refusals every `step_ms` from `from_ms` to `to_ms`, as waiting requests probe.
    fn refusing(chain: &RefusalChain, from_ms: u64, to_ms: u64, step_ms: usize) {
        for now in (from_ms..=to_ms).step_by(step_ms) {
            chain.refused(now);
        }
    }

    #[test]
    fn a_fresh_outage_is_waited_out() {
        let chain = RefusalChain::default();
        chain.refused(1_000_000);
        assert!(!chain.is_open(1_000_000, BUDGET));
        assert_eq!(chain.refusing_for(1_000_000), Some(Duration::ZERO));
    }

    #[test]
    fn refusing_without_a_break_for_a_budget_opens_it() {
        let chain = RefusalChain::default();
        refusing(&chain, 1_000_000, 1_010_000, 20);
        assert!(chain.is_open(1_010_000, BUDGET));
        assert!(!chain.is_open(1_010_000, BUDGET * 2), "a request with a longer budget still waits");
    }

    #[test]
    fn an_accepting_backend_closes_it_at_once() {
        let chain = RefusalChain::default();
        refusing(&chain, 1_000_000, 1_010_000, 20);
        chain.accepted();
        assert!(!chain.is_open(1_010_001, BUDGET));
        chain.refused(1_010_002);
        assert!(!chain.is_open(1_010_002, BUDGET), "the next outage starts a new chain");
    }

    /// Served requests leave no trace: an outage of yesterday must not make today's look old.
    #[test]
    fn a_gap_between_refusals_starts_a_new_chain() {
        let chain = RefusalChain::default();
        refusing(&chain, 1_000_000, 1_010_000, 20);
        let later = 1_010_000 + CHAIN_GAP.as_millis() as u64 + 1;
        assert!(!chain.is_open(later, BUDGET), "nobody has seen it refuse lately");
        chain.refused(later);
        assert!(!chain.is_open(later, BUDGET));
        assert_eq!(chain.refusing_for(later), Some(Duration::ZERO));
    }

    #[test]
    fn each_chain_is_reported_once() {
        let chain = RefusalChain::default();
        refusing(&chain, 1_000_000, 1_010_000, 20);
        assert!(chain.first_report());
        assert!(!chain.first_report());
        chain.accepted();
        refusing(&chain, 2_000_000, 2_010_000, 20);
        assert!(chain.first_report());
    }
}
