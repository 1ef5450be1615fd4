//! Backends this child process has seen refuse recently.
//!
//! A request for a backend known to be down probes it before handing the request to
//! mod_proxy_fcgi, instead of letting it fail a connect first: during an outage the error log
//! gets mod_proxy's connect errors once in a while per process, not once per request. While
//! no backend is down, checking costs one atomic load.
//!
//! Being known down is a guess from earlier requests, so it can never keep a healthy backend
//! failing: the request probes the backend itself before it waits (`policy`, `Start::WaitForBackend`), and a mark
//! lasts `KNOWN_DOWN_FOR` after the last refusal, whatever became of the requests that waited
//! (a probe can disagree with mod_proxy's own connect, a client can leave before any probe).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Long enough to spare mod_proxy's connect errors through a restart, short enough that a
/// wrong guess costs at most this long.
pub const KNOWN_DOWN_FOR: Duration = Duration::from_secs(1);

pub struct KnownDown {
    count: AtomicUsize,
    /// When each backend last refused a connect.
    backends: Mutex<Option<HashMap<String, Instant>>>,
}

impl KnownDown {
    pub const fn new() -> Self {
        KnownDown { count: AtomicUsize::new(0), backends: Mutex::new(None) }
    }

    pub fn any(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// True while `backend` refused less than `KNOWN_DOWN_FOR` before `now`.
    pub fn contains(&self, backend: &str, now: Instant) -> bool {
        self.any()
            && self.with_map(|map| match map.get(backend) {
                Some(refused_at) if now.saturating_duration_since(*refused_at) < KNOWN_DOWN_FOR => true,
                Some(_) => {
                    self.forget(map, backend);
                    false
                }
                None => false,
            })
    }

    pub fn mark_down(&self, backend: &str, now: Instant) {
        self.with_map(|map| {
            if map.insert(backend.to_string(), now).is_none() {
                self.count.fetch_add(1, Ordering::AcqRel);
            }
        })
    }

    pub fn mark_up(&self, backend: &str) {
        if self.any() {
            self.with_map(|map| self.forget(map, backend))
        }
    }

    fn forget(&self, map: &mut HashMap<String, Instant>, backend: &str) {
        if map.remove(backend).is_some() {
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn with_map<R>(&self, f: impl FnOnce(&mut HashMap<String, Instant>) -> R) -> R {
        // A panic while holding the lock leaves a usable map behind: recover it.
        let mut guard = self.backends.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(guard.get_or_insert_with(HashMap::new))
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
        let now = Instant::now();
        assert!(!known.any());
        known.mark_down("unix:/run/php/a.sock", now);
        known.mark_down("unix:/run/php/a.sock", now);
        assert!(known.contains("unix:/run/php/a.sock", now));
        assert!(!known.contains("127.0.0.1:9000", now));
        known.mark_up("unix:/run/php/a.sock");
        assert!(!known.any());
        assert!(!known.contains("unix:/run/php/a.sock", now));
    }

    #[test]
    fn backends_are_tracked_separately() {
        let known = KnownDown::new();
        let now = Instant::now();
        known.mark_down("a", now);
        known.mark_down("b", now);
        known.mark_up("a");
        assert!(known.any());
        assert!(known.contains("b", now));
        known.mark_up("a");
        known.mark_up("b");
        assert!(!known.any());
    }

    /// Nothing marks a backend up when every request that saw it down gave up before a probe
    /// (an HTTP/2 client-gone check that fired at once did exactly that): the mark must end.
    #[test]
    fn a_mark_nobody_clears_expires() {
        let known = KnownDown::new();
        let refused_at = Instant::now();
        known.mark_down("a", refused_at);
        assert!(known.contains("a", refused_at + KNOWN_DOWN_FOR / 2));
        assert!(!known.contains("a", refused_at + KNOWN_DOWN_FOR));
        assert!(!known.any(), "an expired mark costs the happy path nothing");
    }

    #[test]
    fn a_new_refusal_renews_the_mark() {
        let known = KnownDown::new();
        let first = Instant::now();
        known.mark_down("a", first);
        known.mark_down("a", first + KNOWN_DOWN_FOR / 2);
        assert!(known.contains("a", first + KNOWN_DOWN_FOR));
    }
}
