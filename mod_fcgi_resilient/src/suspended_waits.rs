//! Requests that wait without a worker thread (event MPM): one thread per child process keeps
//! their waits and says, for each, when and how it ends. Free of Apache: `ffi/suspend.rs`
//! suspends the requests and resumes them on a worker when their wait ends here.
//!
//! The requests waiting for one backend share one probe schedule: a thousand suspended
//! requests cost one connect per backoff step, not a thousand.

use crate::backoff::{Backoff, BackoffBounds};
use crate::probe::{BackendAddress, ClientWatch, Prober};
use crate::retry::{ProbeChain, Verdict};
use nix::errno::Errno;
use std::time::{Duration, Instant};

/// How a suspended request's wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resolution {
    /// The backend accepts: run the handler.
    Accepting,
    /// The request's budget is spent: 503.
    BudgetSpent,
    /// Its client left: nothing is run, nothing answered.
    ClientGone,
    /// The backend meets an error waiting will not mend (its socket's permissions): 503 now,
    /// as a request waiting in its thread gets (`retry::UNUSABLE_PROBES_BEFORE_GIVING_UP`).
    BackendUnusable,
    /// The child process stops at once (`end_all`): answered 503 now rather than kept until
    /// the budget ends.
    Stopping,
}

/// A wait that ended, and what its backend's probes found while it lasted.
#[derive(Debug, PartialEq, Eq)]
pub struct Ended<T> {
    pub request: T,
    pub resolution: Resolution,
    /// Probes of its backend while this request waited.
    pub probes: u32,
    /// What the last probe that was refused met.
    pub last_errno: Option<Errno>,
}

/// A TCP probe of the waiting thread holds up every other wait: it may take this long at most.
const PROBE_PATIENCE: Duration = Duration::from_millis(50);

pub struct SuspendedWaits<T> {
    backends: Vec<BackendWaits<T>>,
    backoff: BackoffBounds,
    /// What the probes since the last `take_probed` found, per backend: whether it accepted.
    probed: Vec<(BackendAddress, bool)>,
}

struct BackendWaits<T> {
    prober: Prober,
    /// The section's `FcgiResilientBackoff`: requests of sections with other bounds have a
    /// schedule of their own.
    bounds: BackoffBounds,
    backoff: Backoff,
    /// What its probes met (`retry::ProbeChain`, the same rules as a wait in a thread).
    chain: ProbeChain,
    next_probe: Instant,
    probes: u32,
    requests: Vec<Suspended<T>>,
}

struct Suspended<T> {
    request: T,
    deadline: Instant,
    not_before: Instant,
    client: Option<ClientWatch>,
    /// The backend's probe count when this request began to wait.
    probes_before: u32,
}

impl<T> SuspendedWaits<T> {
    pub fn new(backoff: BackoffBounds) -> Self {
        SuspendedWaits { backends: Vec::new(), backoff, probed: Vec::new() }
    }

    /// The backends probed since the last call, and whether each accepted: the breaker's
    /// chain of refusals (`breaker`) follows them.
    pub fn take_probed(&mut self) -> Vec<(BackendAddress, bool)> {
        std::mem::take(&mut self.probed)
    }

    pub fn len(&self) -> usize {
        self.backends.iter().map(|backend| backend.requests.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// Keeps `request` waiting for `address` until `deadline`, watching its client.
    pub fn add(
        &mut self,
        address: BackendAddress,
        request: T,
        deadline: Instant,
        client: Option<ClientWatch>,
        now: Instant,
    ) {
        self.add_not_before(address, self.backoff, request, deadline, client, now);
    }

    /// Like `add`, leaving the request alone until `not_before` (e.g. a pause after its
    /// backend dropped it, so that PHP-FPM's exiting children are gone before it is retried).
    pub fn add_not_before(
        &mut self,
        address: BackendAddress,
        bounds: BackoffBounds,
        request: T,
        deadline: Instant,
        client: Option<ClientWatch>,
        not_before: Instant,
    ) {
        let now = not_before;
        let mut suspended = Suspended { request, deadline, not_before, client, probes_before: 0 };
        let same = |backend: &&mut BackendWaits<T>| *backend.prober.address() == address && backend.bounds == bounds;
        if let Some(backend) = self.backends.iter_mut().find(same) {
            suspended.probes_before = backend.probes;
            backend.requests.push(suspended);
            return;
        }
        let seed = self.backends.len() as u64 + 1;
        self.backends.push(BackendWaits {
            prober: Prober::new(address),
            bounds,
            backoff: Backoff::new(bounds, seed),
            chain: ProbeChain::default(),
            next_probe: now,
            probes: 0,
            requests: vec![suspended],
        });
    }

    /// Ends every wait now with `resolution` (a child that stops at once answers them all).
    pub fn end_all(&mut self, resolution: Resolution) -> Vec<Ended<T>> {
        let mut ended = Vec::new();
        for backend in self.backends.drain(..) {
            for suspended in backend.requests {
                let probes = backend.probes - suspended.probes_before;
                ended.push(Ended {
                    request: suspended.request,
                    resolution,
                    probes,
                    last_errno: backend.chain.last_errno,
                });
            }
        }
        ended
    }

    /// Ends the waits that are over at `now`, at most `most` of them (the rest next time):
    /// each resumed request takes a worker thread, and a flood of them would hold back the
    /// connections the MPM has queued.
    pub fn tick(&mut self, now: Instant, most: usize) -> Vec<Ended<T>> {
        self.tick_holding(now, most, |_| false)
    }

    /// Like `tick`; a backend for which `paused` says so is held as if it refused, without
    /// being asked (a deliberate pause, `pause`).
    pub fn tick_holding(
        &mut self,
        now: Instant,
        most: usize,
        paused: impl Fn(&BackendAddress) -> bool,
    ) -> Vec<Ended<T>> {
        let mut ended = Vec::new();
        for backend in &mut self.backends {
            let probes_before = backend.probes;
            let held = paused(backend.prober.address());
            backend.end_waits(now, held, most.saturating_sub(ended.len()), &mut ended);
            if backend.probes != probes_before {
                self.probed.push((backend.prober.address().clone(), backend.chain.last_errno.is_none()));
            }
        }
        self.backends.retain(|backend| !backend.requests.is_empty());
        ended
    }
}

impl<T> BackendWaits<T> {
    fn end_waits(&mut self, now: Instant, held: bool, most: usize, ended: &mut Vec<Ended<T>>) {
        let mut accepting = None;
        let mut index = 0;
        while index < self.requests.len() && ended.len() < most {
            let request = &self.requests[index];
            if now < request.not_before {
                index += 1;
                continue;
            }
            let resolution = if request.client.as_ref().is_some_and(ClientWatch::has_left) {
                Some(Resolution::ClientGone)
            } else if now >= request.deadline {
                Some(Resolution::BudgetSpent)
            } else {
                let accepts = !held && *accepting.get_or_insert_with(|| self.probe_if_due(now));
                if accepts {
                    Some(Resolution::Accepting)
                } else if self.chain.waiting_will_not_mend() {
                    Some(Resolution::BackendUnusable)
                } else {
                    None
                }
            };
            match resolution {
                Some(resolution) => {
                    let suspended = self.requests.swap_remove(index);
                    let probes = self.probes - suspended.probes_before;
                    ended.push(Ended {
                        request: suspended.request,
                        resolution,
                        probes,
                        last_errno: self.chain.last_errno,
                    });
                }
                None => index += 1,
            }
        }
    }

    /// The backoff decides when to ask again.
    fn probe_if_due(&mut self, now: Instant) -> bool {
        if now < self.next_probe {
            return false;
        }
        self.probes += 1;
        match self.chain.note(self.prober.probe(PROBE_PATIENCE)) {
            Verdict::Accepting => {
                self.backoff.reset();
                true
            }
            verdict => {
                if verdict == (Verdict::NotYet { reset_backoff: true }) {
                    self.backoff.reset();
                }
                self.next_probe = now + self.backoff.next_delay();
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::UNUSABLE_PROBES_BEFORE_GIVING_UP;
    use crate::test_dir::TempDir;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::{UnixListener, UnixStream};

    fn temp_dir(name: &str) -> TempDir {
        TempDir::new(&format!("suspended-{name}"))
    }

    fn waits() -> SuspendedWaits<u32> {
        SuspendedWaits::new(BackoffBounds::new(Duration::from_millis(2), Duration::from_millis(20)).unwrap())
    }

    const LONG: Duration = Duration::from_secs(60);

    fn resolutions(ended: Vec<Ended<u32>>) -> Vec<(u32, Resolution)> {
        resolutions_of(&ended)
    }

    fn resolutions_of(ended: &[Ended<u32>]) -> Vec<(u32, Resolution)> {
        ended.iter().map(|end| (end.request, end.resolution)).collect()
    }

    #[test]
    fn requests_wait_while_the_backend_refuses_and_all_resume_when_it_accepts() {
        let dir = temp_dir("accepts");
        let socket = dir.join("php.sock");
        let mut waits = waits();
        let now = Instant::now();
        for request in 0..3 {
            waits.add(BackendAddress::Unix(socket.clone()), request, now + LONG, None, now);
        }
        assert_eq!(waits.len(), 3);
        assert!(waits.tick(now, 100).is_empty(), "no socket yet");
        let _listener = UnixListener::bind(&socket).unwrap();
        let later = now + Duration::from_millis(100);
        let mut ended = resolutions(waits.tick(later, 100));
        ended.sort();
        assert_eq!(ended, vec![(0, Resolution::Accepting), (1, Resolution::Accepting), (2, Resolution::Accepting)]);
        assert!(waits.is_empty());
    }

    #[test]
    fn a_stopping_child_ends_every_wait_at_once() {
        let dir = temp_dir("end-all");
        let mut waits = waits();
        let now = Instant::now();
        waits.add(BackendAddress::Unix(dir.join("php.sock")), 1, now + LONG, None, now);
        waits.add(BackendAddress::Unix(dir.join("other.sock")), 2, now + LONG, None, now);
        let mut ended = resolutions(waits.end_all(Resolution::Stopping));
        ended.sort();
        assert_eq!(ended, vec![(1, Resolution::Stopping), (2, Resolution::Stopping)]);
        assert!(waits.is_empty());
    }

    #[test]
    fn a_spent_budget_and_a_departed_client_end_their_own_waits_only() {
        let dir = temp_dir("ends");
        let address = BackendAddress::Unix(dir.join("php.sock"));
        let (client, server_side) = UnixStream::pair().unwrap();
        let mut waits = waits();
        let now = Instant::now();
        waits.add(address.clone(), 1, now + Duration::from_millis(10), None, now);
        waits.add(address.clone(), 2, now + LONG, Some(ClientWatch::new(OwnedFd::from(server_side))), now);
        waits.add(address, 3, now + LONG, None, now);
        drop(client);
        let mut ended = resolutions(waits.tick(now + Duration::from_millis(20), 100));
        ended.sort();
        assert_eq!(ended, vec![(1, Resolution::BudgetSpent), (2, Resolution::ClientGone)]);
        assert_eq!(waits.len(), 1, "request 3 still waits");
    }

    #[test]
    fn at_most_so_many_resume_at_once() {
        let dir = temp_dir("most");
        let socket = dir.join("php.sock");
        let _listener = UnixListener::bind(&socket).unwrap();
        let mut waits = waits();
        let now = Instant::now();
        for request in 0..5 {
            waits.add(BackendAddress::Unix(socket.clone()), request, now + LONG, None, now);
        }
        assert_eq!(waits.tick(now, 2).len(), 2);
        assert_eq!(waits.tick(now, 2).len(), 2);
        assert_eq!(waits.tick(now, 2).len(), 1);
    }

    #[test]
    fn a_paused_backend_holds_its_waits_though_it_accepts() {
        let dir = temp_dir("paused");
        let socket = dir.join("php.sock");
        let _listener = UnixListener::bind(&socket).unwrap();
        let mut waits = waits();
        let now = Instant::now();
        waits.add(BackendAddress::Unix(socket), 1, now + LONG, None, now);
        assert!(waits.tick_holding(now, 100, |_| true).is_empty());
        assert_eq!(resolutions(waits.tick_holding(now, 100, |_| false)), vec![(1, Resolution::Accepting)]);
    }

    #[test]
    fn probes_are_reported_for_the_breaker() {
        let dir = temp_dir("probed");
        let socket = dir.join("php.sock");
        let address = BackendAddress::Unix(socket.clone());
        let mut waits = waits();
        let now = Instant::now();
        waits.add(address.clone(), 1, now + LONG, None, now);
        waits.add(address.clone(), 2, now + LONG, None, now);
        waits.tick(now, 100);
        assert_eq!(waits.take_probed(), vec![(address.clone(), false)], "one probe for both, refused");
        assert!(waits.take_probed().is_empty());
        let _listener = UnixListener::bind(&socket).unwrap();
        waits.tick(now + Duration::from_millis(100), 100);
        assert_eq!(waits.take_probed(), vec![(address, true)]);
    }

    #[test]
    fn a_backend_waiting_will_not_mend_ends_its_waits_after_a_few_probes() {
        let dir = temp_dir("unusable");
        let path = dir.join("php.sock");
        std::fs::write(&path, b"not a socket").unwrap();
        let mut waits = waits();
        let now = Instant::now();
        waits.add(BackendAddress::Unix(path), 1, now + LONG, None, now);
        let mut ended = Vec::new();
        for step in 0..UNUSABLE_PROBES_BEFORE_GIVING_UP {
            ended = waits.tick(now + Duration::from_secs(step as u64), 100);
        }
        assert_eq!(resolutions_of(&ended), vec![(1, Resolution::BackendUnusable)]);
        assert_eq!((ended[0].probes, ended[0].last_errno), (UNUSABLE_PROBES_BEFORE_GIVING_UP, Some(Errno::ENOTSOCK)));
    }

    #[test]
    fn each_request_waits_on_its_own_sections_backoff() {
        let dir = temp_dir("bounds");
        let address = BackendAddress::Unix(dir.join("php.sock"));
        let slow = BackoffBounds::new(Duration::from_millis(500), Duration::from_millis(500)).unwrap();
        let mut waits = waits();
        let now = Instant::now();
        waits.add_not_before(address.clone(), slow, 1, now + LONG, None, now);
        waits.tick(now, 100);
        waits.tick(now + Duration::from_millis(100), 100);
        waits.tick(now + Duration::from_millis(400), 100);
        let ended = waits.end_all(Resolution::Stopping);
        assert_eq!(ended[0].probes, 1, "asked once in 400 ms with a 500 ms backoff, not every 2 to 20 ms");
        waits.add(address.clone(), 2, now + LONG, None, now);
        waits.add_not_before(address, slow, 3, now + LONG, None, now);
        assert_eq!(waits.backends.len(), 2, "sections with other bounds keep a schedule of their own");
    }

    #[test]
    fn waits_for_one_backend_share_its_probes() {
        let dir = temp_dir("shared");
        let mut waits = waits();
        let now = Instant::now();
        for request in 0..100 {
            waits.add(BackendAddress::Unix(dir.join("php.sock")), request, now + LONG, None, now);
        }
        waits.add(BackendAddress::Unix(dir.join("other.sock")), 100, now + LONG, None, now);
        assert_eq!(waits.backends.len(), 2);
    }
}
