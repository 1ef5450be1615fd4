//! Backends this child process has seen refuse, until one of its requests sees them accept.
//!
//! A request for a backend known to be down probes and waits before handing the request to
//! mod_proxy_fcgi, instead of letting it fail a connect first: during an outage the error
//! log gets mod_proxy's connect errors once per process, not once per request, and no time
//! goes into connects that cannot succeed. While no backend is down, checking costs one
//! atomic load.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

pub struct KnownDown {
    count: AtomicUsize,
    backends: Mutex<Option<HashSet<String>>>,
}

impl KnownDown {
    pub const fn new() -> Self {
        KnownDown { count: AtomicUsize::new(0), backends: Mutex::new(None) }
    }

    pub fn any(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    pub fn contains(&self, backend: &str) -> bool {
        self.any() && self.with_set(|set| set.contains(backend))
    }

    pub fn mark_down(&self, backend: &str) {
        self.with_set(|set| {
            if set.insert(backend.to_string()) {
                self.count.fetch_add(1, Ordering::AcqRel);
            }
        })
    }

    pub fn mark_up(&self, backend: &str) {
        if self.any() {
            self.with_set(|set| {
                if set.remove(backend) {
                    self.count.fetch_sub(1, Ordering::AcqRel);
                }
            })
        }
    }

    fn with_set<R>(&self, f: impl FnOnce(&mut HashSet<String>) -> R) -> R {
        // A panic while holding the lock leaves a usable set behind: recover it.
        let mut guard = self.backends.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(guard.get_or_insert_with(HashSet::new))
    }
}

impl Default for KnownDown {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_until_marked_up() {
        let known = KnownDown::new();
        assert!(!known.any());
        known.mark_down("unix:/run/php/a.sock");
        known.mark_down("unix:/run/php/a.sock");
        assert!(known.contains("unix:/run/php/a.sock"));
        assert!(!known.contains("127.0.0.1:9000"));
        known.mark_up("unix:/run/php/a.sock");
        assert!(!known.any());
        assert!(!known.contains("unix:/run/php/a.sock"));
    }

    #[test]
    fn backends_are_tracked_separately() {
        let known = KnownDown::new();
        known.mark_down("a");
        known.mark_down("b");
        known.mark_up("a");
        assert!(known.any());
        assert!(known.contains("b"));
        known.mark_up("a");
        known.mark_up("b");
        assert!(!known.any());
    }
}
