//! Requests that wait without a worker thread (event MPM): one thread per child process keeps
//! their waits and says, for each, when and how it ends. Free of Apache: `ffi/suspend.rs`
//! suspends the requests and resumes them on a worker when their wait ends here.
//!
//! The requests waiting for one backend share one probe schedule: a thousand suspended
//! requests cost one connect per backoff step, not a thousand.

use crate::backoff::Backoff;
use crate::policy::{step, Action, Event, Facts, Wait};
use crate::probe::{BackendAddress, ClientWatch, ProbeOutcome, Prober, WaitEnd};
use crate::retry::{GiveUpReason, Outcome, RetryLimits};
use std::time::{Duration, Instant};

/// How a suspended request's wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The policy asks for a handler run: the request is resumed on a worker.
    Run,
    /// The policy ended the wait (budget spent, the client left, the backend unusable): answered.
    GaveUp(GiveUpReason),
    /// The child process stops at once (`end_all`): answered 503 now rather than kept until
    /// the budget ends.
    Stopping,
    /// The waiting thread failed (a panic it recovered from), or the MPM would not resume the
    /// request: answered 503 now, saying so.
    InternalError,
}

/// A wait that ended, with the request's `Wait` (its counts, its last error) as it ended.
#[derive(Debug, PartialEq, Eq)]
pub struct Ended<T> {
    pub request: T,
    pub resolution: Resolution,
    pub wait: Wait,
}

/// A TCP probe of the waiting thread holds up every other wait: it may take this long at most.
const PROBE_PATIENCE: Duration = Duration::from_millis(50);

pub struct SuspendedWaits<T> {
    backends: Vec<BackendWaits<T>>,
    /// What the probes since the last `take_probed` found, per backend: whether it accepted.
    probed: Vec<(BackendAddress, bool)>,
}

/// The suspended requests of one backend and one section's `FcgiResilientBackoff`: one probe
/// schedule for them all (requests of sections with other bounds have a schedule of their own).
struct BackendWaits<T> {
    prober: Prober,
    limits: RetryLimits,
    backoff: Backoff,
    next_probe: Instant,
    requests: Vec<Suspended<T>>,
}

struct Suspended<T> {
    request: T,
    wait: Wait,
    deadline: Instant,
    /// The delay after a drop (`Action::Sleep`) lasts until then.
    asleep_until: Option<Instant>,
    client: Option<ClientWatch>,
}

/// What a suspended request's wait knows of the world.
struct WhileSuspended<'a> {
    now: Instant,
    deadline: Instant,
    client: Option<&'a ClientWatch>,
}

impl Facts for WhileSuspended<'_> {
    fn remaining(&mut self) -> Duration {
        self.deadline.saturating_duration_since(self.now)
    }
    fn reason_to_stop(&mut self) -> Option<GiveUpReason> {
        self.client.is_some_and(ClientWatch::has_left).then_some(GiveUpReason::ClientGone)
    }
    // Asked only after a handler run, never of a wait in progress.
    fn refused_for_a_whole_budget(&mut self) -> bool {
        false
    }
    fn may_wait_without_a_thread(&mut self) -> bool {
        true
    }
}

impl<T> Default for SuspendedWaits<T> {
    fn default() -> Self {
        SuspendedWaits { backends: Vec::new(), probed: Vec::new() }
    }
}

impl<T> SuspendedWaits<T> {
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

    /// Keeps `request` waiting for `address` until `deadline`, watching its client. `wait` is
    /// its policy state, and `first` what the policy asked for once the request had its place
    /// (`policy::step` on `Event::PlaceTaken`): a delay after a drop, a back-off or a probe.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        address: BackendAddress,
        limits: RetryLimits,
        request: T,
        wait: Wait,
        first: Action,
        deadline: Instant,
        client: Option<ClientWatch>,
        now: Instant,
    ) {
        let asleep_until = match first {
            Action::Sleep(delay) => Some(now + delay),
            _ => None,
        };
        let suspended = Suspended { request, wait, deadline, asleep_until, client };
        let backoff = limits.backoff;
        let same =
            |backend: &&mut BackendWaits<T>| *backend.prober.address() == address && backend.limits.backoff == backoff;
        if let Some(backend) = self.backends.iter_mut().find(same) {
            backend.requests.push(suspended);
            return;
        }
        let seed = self.backends.len() as u64 + 1;
        self.backends.push(BackendWaits {
            prober: Prober::new(address),
            limits,
            backoff: Backoff::new(backoff, seed),
            next_probe: now,
            requests: vec![suspended],
        });
    }

    /// Ends every wait now with `resolution` (a child that stops at once answers them all).
    pub fn end_all(&mut self, resolution: Resolution) -> Vec<Ended<T>> {
        let mut ended = Vec::new();
        for backend in self.backends.drain(..) {
            for suspended in backend.requests {
                ended.push(Ended { request: suspended.request, resolution, wait: suspended.wait });
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

    /// Like `tick`; a backend for which `paused` says so is held without being asked (a
    /// deliberate pause, `pause`): its requests hear of no probe, as `ProbeOutcome::Held`
    /// counts none in a thread.
    pub fn tick_holding(
        &mut self,
        now: Instant,
        most: usize,
        paused: impl Fn(&BackendAddress) -> bool,
    ) -> Vec<Ended<T>> {
        let mut ended = Vec::new();
        for backend in &mut self.backends {
            let held = paused(backend.prober.address());
            if let Some(accepted) = backend.end_waits(now, held, most.saturating_sub(ended.len()), &mut ended) {
                self.probed.push((backend.prober.address().clone(), accepted));
            }
        }
        self.backends.retain(|backend| !backend.requests.is_empty());
        ended
    }
}

impl<T> BackendWaits<T> {
    /// One turn for this backend's requests: each hears that time passed, and of the one probe
    /// made for them all if one was due. Returns whether that probe found the backend accepting.
    fn end_waits(&mut self, now: Instant, held: bool, most: usize, ended: &mut Vec<Ended<T>>) -> Option<bool> {
        let mut probed: Option<Option<ProbeOutcome>> = None;
        let mut restart_backoff = false;
        let mut index = 0;
        while index < self.requests.len() && ended.len() < most {
            let request = &mut self.requests[index];
            let mut facts = WhileSuspended { now, deadline: request.deadline, client: request.client.as_ref() };
            let event = match request.asleep_until {
                Some(until) if now >= until => {
                    request.asleep_until = None;
                    Event::Slept(WaitEnd::DelayPassed)
                }
                _ => Event::Tick,
            };
            let awake = request.asleep_until.is_none();
            let mut action = step(&mut request.wait, event, &mut facts, &self.limits);
            if awake && !held && !matches!(action, Action::Answer(_)) {
                let outcome = *probed.get_or_insert_with(|| self.probe_if_due(now));
                if let Some(outcome) = outcome {
                    let request = &mut self.requests[index];
                    let mut facts = WhileSuspended { now, deadline: request.deadline, client: request.client.as_ref() };
                    action = step(&mut request.wait, Event::Probed(outcome), &mut facts, &self.limits);
                }
            }
            let resolution = match action {
                Action::RunHandler => Resolution::Run,
                Action::Answer(Outcome::GaveUp { reason, .. }) => Resolution::GaveUp(reason),
                Action::BackOff { restart } => {
                    restart_backoff |= restart;
                    index += 1;
                    continue;
                }
                _ => {
                    index += 1;
                    continue;
                }
            };
            let suspended = self.requests.swap_remove(index);
            ended.push(Ended { request: suspended.request, resolution, wait: suspended.wait });
        }
        let outcome = probed.flatten()?;
        let accepted = outcome == ProbeOutcome::Accepting;
        if accepted || restart_backoff {
            self.backoff.reset();
        }
        if !accepted {
            self.next_probe = now + self.backoff.next_delay();
        }
        Some(accepted)
    }

    /// The shared schedule decides when to ask again.
    fn probe_if_due(&mut self, now: Instant) -> Option<ProbeOutcome> {
        (now >= self.next_probe).then(|| self.prober.probe(PROBE_PATIENCE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::BackoffBounds;
    use crate::policy::Facts;
    use crate::retry::{Attempt, Start, UNUSABLE_PROBES_BEFORE_GIVING_UP};
    use crate::test_dir::TempDir;
    use nix::errno::Errno;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::{UnixListener, UnixStream};

    fn temp_dir(name: &str) -> TempDir {
        TempDir::new(&format!("suspended-{name}"))
    }

    const LONG: Duration = Duration::from_secs(60);

    fn limits(min_ms: u64, max_ms: u64) -> RetryLimits {
        RetryLimits {
            budget: LONG,
            backoff: BackoffBounds::new(Duration::from_millis(min_ms), Duration::from_millis(max_ms)).unwrap(),
            max_waiting: 100,
            retry_dropped: true,
        }
    }

    /// The policy's view of a request at the moment it is suspended.
    struct AtSuspension;

    impl Facts for AtSuspension {
        fn remaining(&mut self) -> Duration {
            LONG
        }
        fn reason_to_stop(&mut self) -> Option<GiveUpReason> {
            None
        }
        fn refused_for_a_whole_budget(&mut self) -> bool {
            false
        }
        fn may_wait_without_a_thread(&mut self) -> bool {
            true
        }
    }

    /// A request whose connect was refused (or, with `dropped`, whose run the backend dropped),
    /// as the policy hands it to this driver: its wait, and what it asked for once placed.
    fn suspended(dropped: bool, limits: &RetryLimits) -> (Wait, Action) {
        let mut wait = Wait::default();
        step(&mut wait, Event::Start(Start::RunHandler), &mut AtSuspension, limits);
        let refused = ProbeOutcome::NotYet { errno: Errno::ECONNREFUSED, recreated: false };
        if dropped {
            assert_eq!(
                step(&mut wait, Event::Ran(Attempt::DroppedBeforeResponse(502)), &mut AtSuspension, limits),
                Action::Suspend
            );
        } else {
            step(&mut wait, Event::Ran(Attempt::NotConnected(503)), &mut AtSuspension, limits);
            assert_eq!(step(&mut wait, Event::Probed(refused), &mut AtSuspension, limits), Action::Suspend);
        }
        let first = step(&mut wait, Event::PlaceTaken, &mut AtSuspension, limits);
        (wait, first)
    }

    fn add(
        waits: &mut SuspendedWaits<u32>,
        address: &BackendAddress,
        limits: RetryLimits,
        request: u32,
        deadline: Instant,
        client: Option<ClientWatch>,
        now: Instant,
    ) {
        let (wait, first) = suspended(false, &limits);
        waits.add(address.clone(), limits, request, wait, first, deadline, client, now);
    }

    fn resolutions(ended: Vec<Ended<u32>>) -> Vec<(u32, Resolution)> {
        resolutions_of(&ended)
    }

    fn resolutions_of(ended: &[Ended<u32>]) -> Vec<(u32, Resolution)> {
        let mut resolutions: Vec<_> = ended.iter().map(|end| (end.request, end.resolution)).collect();
        resolutions.sort_by_key(|(request, _)| *request);
        resolutions
    }

    #[test]
    fn requests_wait_while_the_backend_refuses_and_all_resume_when_it_accepts() {
        let dir = temp_dir("accepts");
        let address = BackendAddress::Unix(dir.join("php.sock"));
        let mut waits = SuspendedWaits::default();
        let now = Instant::now();
        for request in 0..3 {
            add(&mut waits, &address, limits(2, 20), request, now + LONG, None, now);
        }
        assert_eq!(waits.len(), 3);
        assert!(waits.tick(now, 100).is_empty(), "no socket yet");
        let _listener = UnixListener::bind(dir.join("php.sock")).unwrap();
        let ended = waits.tick(now + Duration::from_millis(100), 100);
        assert_eq!(resolutions_of(&ended), vec![(0, Resolution::Run), (1, Resolution::Run), (2, Resolution::Run)]);
        assert!(ended.iter().all(|end| end.wait.is_resumed() && end.wait.probes == 3), "each heard both probes");
        assert!(waits.is_empty());
    }

    #[test]
    fn a_stopping_child_ends_every_wait_at_once() {
        let dir = temp_dir("end-all");
        let mut waits = SuspendedWaits::default();
        let now = Instant::now();
        add(&mut waits, &BackendAddress::Unix(dir.join("php.sock")), limits(2, 20), 1, now + LONG, None, now);
        add(&mut waits, &BackendAddress::Unix(dir.join("other.sock")), limits(2, 20), 2, now + LONG, None, now);
        let ended = resolutions(waits.end_all(Resolution::Stopping));
        assert_eq!(ended, vec![(1, Resolution::Stopping), (2, Resolution::Stopping)]);
        assert!(waits.is_empty());
    }

    #[test]
    fn a_spent_budget_and_a_departed_client_end_their_own_waits_only() {
        let dir = temp_dir("ends");
        let address = BackendAddress::Unix(dir.join("php.sock"));
        let (client, server_side) = UnixStream::pair().unwrap();
        let mut waits = SuspendedWaits::default();
        let now = Instant::now();
        add(&mut waits, &address, limits(2, 20), 1, now + Duration::from_millis(10), None, now);
        let watch = Some(ClientWatch::new(OwnedFd::from(server_side)));
        add(&mut waits, &address, limits(2, 20), 2, now + LONG, watch, now);
        add(&mut waits, &address, limits(2, 20), 3, now + LONG, None, now);
        drop(client);
        let ended = resolutions(waits.tick(now + Duration::from_millis(20), 100));
        assert_eq!(
            ended,
            vec![(1, Resolution::GaveUp(GiveUpReason::BudgetSpent)), (2, Resolution::GaveUp(GiveUpReason::ClientGone))]
        );
        assert_eq!(waits.len(), 1, "request 3 still waits");
    }

    #[test]
    fn at_most_so_many_resume_at_once() {
        let dir = temp_dir("most");
        let address = BackendAddress::Unix(dir.join("php.sock"));
        let _listener = UnixListener::bind(dir.join("php.sock")).unwrap();
        let mut waits = SuspendedWaits::default();
        let now = Instant::now();
        for request in 0..5 {
            add(&mut waits, &address, limits(2, 20), request, now + LONG, None, now);
        }
        assert_eq!(waits.tick(now, 2).len(), 2);
        assert_eq!(waits.tick(now, 2).len(), 2);
        assert_eq!(waits.tick(now, 2).len(), 1);
    }

    #[test]
    fn a_paused_backend_holds_its_waits_though_it_accepts() {
        let dir = temp_dir("paused");
        let address = BackendAddress::Unix(dir.join("php.sock"));
        let _listener = UnixListener::bind(dir.join("php.sock")).unwrap();
        let mut waits = SuspendedWaits::default();
        let now = Instant::now();
        add(&mut waits, &address, limits(2, 20), 1, now + LONG, None, now);
        assert!(waits.tick_holding(now, 100, |_| true).is_empty());
        let ended = waits.tick_holding(now, 100, |_| false);
        assert_eq!(resolutions_of(&ended), vec![(1, Resolution::Run)]);
        assert_eq!(ended[0].wait.probes, 2, "the look before suspending and the one that found it back");
    }

    #[test]
    fn probes_are_reported_for_the_breaker() {
        let dir = temp_dir("probed");
        let socket = dir.join("php.sock");
        let address = BackendAddress::Unix(socket.clone());
        let mut waits = SuspendedWaits::default();
        let now = Instant::now();
        add(&mut waits, &address, limits(2, 20), 1, now + LONG, None, now);
        add(&mut waits, &address, limits(2, 20), 2, now + LONG, None, now);
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
        let mut waits = SuspendedWaits::default();
        let now = Instant::now();
        add(&mut waits, &BackendAddress::Unix(path), limits(2, 20), 1, now + LONG, None, now);
        let mut ended = Vec::new();
        for step in 0..UNUSABLE_PROBES_BEFORE_GIVING_UP {
            ended = waits.tick(now + Duration::from_secs(step as u64), 100);
        }
        assert_eq!(resolutions_of(&ended), vec![(1, Resolution::GaveUp(GiveUpReason::BackendUnusable))]);
        assert_eq!(ended[0].wait.last_errno(), Some(Errno::ENOTSOCK));
    }

    #[test]
    fn each_request_waits_on_its_own_sections_backoff() {
        let dir = temp_dir("bounds");
        let address = BackendAddress::Unix(dir.join("php.sock"));
        let mut waits = SuspendedWaits::default();
        let now = Instant::now();
        add(&mut waits, &address, limits(500, 500), 1, now + LONG, None, now);
        waits.tick(now, 100);
        waits.tick(now + Duration::from_millis(100), 100);
        waits.tick(now + Duration::from_millis(400), 100);
        let ended = waits.end_all(Resolution::Stopping);
        assert_eq!(ended[0].wait.probes, 2, "asked once in 400 ms with a 500 ms backoff (after the look before)");
        add(&mut waits, &address, limits(2, 20), 2, now + LONG, None, now);
        add(&mut waits, &address, limits(500, 500), 3, now + LONG, None, now);
        assert_eq!(waits.backends.len(), 2, "sections with other bounds keep a schedule of their own");
    }

    #[test]
    fn a_dropped_request_is_left_alone_for_the_delay_after_a_drop() {
        let dir = temp_dir("dropped");
        let address = BackendAddress::Unix(dir.join("php.sock"));
        let _listener = UnixListener::bind(dir.join("php.sock")).unwrap();
        let mut waits = SuspendedWaits::default();
        let now = Instant::now();
        let (wait, first) = suspended(true, &limits(2, 20));
        assert_eq!(first, Action::Sleep(crate::retry::DELAY_AFTER_A_DROP));
        waits.add(address, limits(2, 20), 1, wait, first, now + LONG, None, now);
        assert!(waits.tick(now, 100).is_empty(), "not asked during the delay");
        let ended = waits.tick(now + crate::retry::DELAY_AFTER_A_DROP, 100);
        assert_eq!(resolutions_of(&ended), vec![(1, Resolution::Run)]);
    }

    #[test]
    fn waits_for_one_backend_share_its_probes() {
        let dir = temp_dir("shared");
        let mut waits = SuspendedWaits::default();
        let now = Instant::now();
        for request in 0..100 {
            add(&mut waits, &BackendAddress::Unix(dir.join("php.sock")), limits(2, 20), request, now + LONG, None, now);
        }
        add(&mut waits, &BackendAddress::Unix(dir.join("other.sock")), limits(2, 20), 100, now + LONG, None, now);
        assert_eq!(waits.backends.len(), 2);
        waits.tick(now, 1000);
        assert_eq!(waits.take_probed().len(), 2, "one probe per backend, not per request");
    }
}
