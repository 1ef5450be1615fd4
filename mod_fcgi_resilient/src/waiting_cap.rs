//! The cap on requests that wait for a backend at the same time, so a long outage cannot tie
//! up every worker and static files keep being served. The retry loop sees it as a
//! [`WaitingGate`]; the module uses the server-wide one (`waiting_table`), and this per-process
//! count only when the shared table could not be made.

use std::sync::atomic::{AtomicU32, Ordering};

/// Where a request takes its place among the waiting ones.
pub trait WaitingGate {
    /// Held while the request waits; dropping it gives the place back.
    type Place<'a>
    where
        Self: 'a;

    /// A place, if fewer than `limit` requests wait (this one included) and no narrower cap
    /// refuses; else which cap refused, with its real count.
    fn try_enter(&self, limit: u32) -> Result<Self::Place<'_>, Refusal>;
}

/// The caps on waiting requests, so that a refusal can say which one it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// FcgiResilientMaxWaiting, counted over all child processes.
    ServerWide,
    /// FcgiResilientMaxWaiting counted in this child alone: the shared table could not be made.
    ThisChild,
    /// One backend's share of a room filling up (see `waiters::backend_may_wait`).
    BackendShare,
    /// Three quarters of this child's threads (see `waiters::per_child_limit`).
    ChildThreads,
}

/// A request that may not wait: the cap that refused it, how many requests that cap counted
/// waiting, and the cap's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub cap: Cap,
    pub waiting: u32,
    pub limit: u32,
}

pub struct WaitingCount {
    waiting: AtomicU32,
}

/// Holds one place among the waiting requests until dropped.
pub struct WaitingPlace<'a> {
    count: &'a WaitingCount,
}

impl WaitingCount {
    pub const fn new() -> Self {
        WaitingCount { waiting: AtomicU32::new(0) }
    }

    pub fn try_enter(&self, limit: u32) -> Option<WaitingPlace<'_>> {
        self.waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| (now < limit).then_some(now + 1))
            .ok()
            .map(|_| WaitingPlace { count: self })
    }

    pub fn current(&self) -> u32 {
        self.waiting.load(Ordering::Acquire)
    }
}

impl WaitingGate for WaitingCount {
    type Place<'a> = WaitingPlace<'a>;

    fn try_enter(&self, limit: u32) -> Result<WaitingPlace<'_>, Refusal> {
        WaitingCount::try_enter(self, limit).ok_or(Refusal { cap: Cap::ThisChild, waiting: self.current(), limit })
    }
}

impl Default for WaitingCount {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for WaitingPlace<'_> {
    fn drop(&mut self) {
        self.count.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_and_frees_on_drop() {
        let count = WaitingCount::new();
        let first = count.try_enter(2).expect("first place");
        let second = count.try_enter(2).expect("second place");
        assert!(count.try_enter(2).is_none());
        assert_eq!(count.current(), 2);
        drop(first);
        assert!(count.try_enter(2).is_some());
        drop(second);
        assert_eq!(count.current(), 0);
    }

    #[test]
    fn concurrent_entries_never_exceed_the_limit() {
        let count = std::sync::Arc::new(WaitingCount::new());
        let peak = std::sync::Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (count, peak) = (count.clone(), peak.clone());
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        if let Some(_place) = count.try_enter(3) {
                            peak.fetch_max(count.current(), Ordering::AcqRel);
                        }
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert!(peak.load(Ordering::Acquire) <= 3);
        assert_eq!(count.current(), 0);
    }
}
