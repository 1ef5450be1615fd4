//! The retry policy's terms, free of Apache, and its blocking driver: run the backend's handler;
//! when it failed before the request reached the backend, wait for the backend (probing it, with
//! backoff) and run the handler again, all within the request's time budget. What to do at each
//! point is decided in `policy`, for this driver and the suspended one alike.

use crate::backoff::{Backoff, BackoffBounds};
use crate::policy::{step, Action, Event, Facts, Wait};
use crate::probe::{ProbeOutcome, WaitEnd};
use crate::waiting_cap::{Refusal, WaitingGate};
use nix::errno::Errno;
use std::time::Duration;

/// How one run of the backend's handler ended, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Ended in a way that must reach the client as it is (success, or a failure after the
    /// request may have reached the backend).
    Finished(i32),
    /// Failed before anything was sent to the backend or to the client.
    NotConnected(i32),
    /// The backend dropped the connection before any response header; repeatable only for a
    /// safe method without a body, and only where the admin opted in.
    DroppedBeforeResponse(i32),
    /// Not run: the backend is paused (`pause`), or known down and still refusing at the first
    /// look; the request waits as if it were refused, with no attempt counted.
    NotRun,
}

/// The world the retry loop acts on; the FFI layer implements it over httpd.
pub trait Backend {
    fn run_handler(&mut self) -> Attempt;
    fn probe(&mut self, patience: Duration) -> ProbeOutcome;
    /// Sleeps up to `delay`; may end early when the backend's socket or the client changes.
    fn wait(&mut self, delay: Duration) -> WaitEnd;
    fn elapsed(&self) -> Duration;
    /// Asked before every probe and handler run of a waiting request: a reason to stop
    /// waiting that has nothing to do with the backend (the client left, another balancer
    /// member can serve).
    fn reason_to_stop(&mut self) -> Option<GiveUpReason>;
    /// Asked when a request is refused and would start to wait: the backend has refused
    /// without a break for longer than this request's budget (see `breaker`), so waiting
    /// would only spend the budget and a place others need.
    fn has_refused_for_a_whole_budget(&mut self) -> bool;
    /// Asked when a request that was refused, or dropped and may be repeated, would start to
    /// wait in its thread: true when it can wait without one instead (the event MPM suspends
    /// it once this run has returned).
    fn may_wait_without_a_thread(&mut self) -> bool {
        false
    }
    /// Before a request waits (in its thread or suspended): the rest of its body is read, so
    /// that neither the client nor mod_reqtimeout waits with it. `Err` is the status the
    /// request ends with (the client's read error, or no room to keep the body).
    fn read_body_before_waiting(&mut self) -> Result<(), i32> {
        Ok(())
    }
}

/// A script that crashes PHP on every run must not be re-run for the whole budget.
pub const MAX_DROPPED_RETRIES: u32 = 2;

/// A backend that drops connections is usually going down: PHP-FPM's children are exiting.
/// With `enablereuse=on`, mod_proxy's pool also holds connections to those children, and a
/// repeat right away takes the next one and is dropped again, spending the few repeats above
/// within milliseconds. Pausing this long lets the children exit, so mod_proxy sees their
/// connections closed and connects afresh (refused while PHP-FPM is down: a normal wait).
pub const DELAY_AFTER_A_DROP: Duration = Duration::from_millis(100);

/// PHP-FPM binds its socket as root and only then chowns and chmods it, so Apache's user can
/// meet EACCES for an instant during every start. Only a lasting error is a configuration one.
pub const UNUSABLE_PROBES_BEFORE_GIVING_UP: u32 = 3;

/// What a probe's outcome means for the requests waiting on that backend: decided here once,
/// for a request waiting in its thread (`serve`) and for the suspended ones sharing a probe
/// schedule (`suspended_waits`) alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The backend accepts: run the handler.
    Accepting,
    /// Not yet: wait the backoff out, from its start again when the socket was recreated.
    NotYet { reset_backoff: bool },
    /// The backend meets an error waiting will not mend (`UNUSABLE_PROBES_BEFORE_GIVING_UP`
    /// probes in a row): answer now, saying so.
    Unusable,
}

/// The probes of one backend as a wait sees them in turn: what the last one met, and how many
/// in a row met an error waiting will not mend.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProbeChain {
    unusable_in_a_row: u32,
    pub last_errno: Option<Errno>,
}

impl ProbeChain {
    pub fn note(&mut self, outcome: ProbeOutcome) -> Verdict {
        match outcome {
            ProbeOutcome::Accepting => {
                *self = ProbeChain::default();
                Verdict::Accepting
            }
            ProbeOutcome::NotYet { errno, recreated } => {
                *self = ProbeChain { unusable_in_a_row: 0, last_errno: Some(errno) };
                Verdict::NotYet { reset_backoff: recreated }
            }
            ProbeOutcome::Held => Verdict::NotYet { reset_backoff: false },
            ProbeOutcome::Unusable { errno } => {
                self.unusable_in_a_row += 1;
                self.last_errno = Some(errno);
                if self.waiting_will_not_mend() {
                    Verdict::Unusable
                } else {
                    Verdict::NotYet { reset_backoff: false }
                }
            }
        }
    }

    pub fn waiting_will_not_mend(&self) -> bool {
        self.unusable_in_a_row >= UNUSABLE_PROBES_BEFORE_GIVING_UP
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryLimits {
    pub budget: Duration,
    pub backoff: BackoffBounds,
    pub max_waiting: u32,
    pub retry_dropped: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpReason {
    BudgetSpent,
    BackendUnusable,
    TooManyWaiting(Refusal),
    /// The client closed its connection: nobody is left to answer, and running the request
    /// now would be a submission behind the user's back.
    ClientGone,
    /// Another balancer member became usable: mod_proxy fails over to it.
    FailOver,
    /// The backend has refused for longer than the budget: answered at once.
    StillRefusing,
    /// The request waits on, without holding its thread: it is suspended once this run returns.
    WaitsSuspended,
}

/// Where a request starts: by running the handler, or — for a backend already known to be
/// down — by waiting for it to accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    RunHandler,
    WaitForBackend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handler's own status goes to the client; `retries` counts handler runs after the
    /// first, `waited` whether the request waited for the backend at all.
    Served {
        status: i32,
        retries: u32,
        waited: bool,
    },
    GaveUp {
        reason: GiveUpReason,
        attempts: u32,
        last_errno: Option<Errno>,
    },
}

/// The blocking driver of the policy (`policy::step`): a request waits in its thread, doing the
/// I/O each action asks for. `seed` is called only when a request has to wait, keeping the happy
/// path free of it.
pub fn serve(
    backend: &mut impl Backend,
    start: Start,
    limits: &RetryLimits,
    waiting: &impl WaitingGate,
    seed: impl FnOnce() -> u64,
) -> Outcome {
    serve_continuing(backend, &mut Wait::default(), start, limits, waiting, seed)
}

/// Like `serve`, for a request whose `wait` goes on from an earlier run (`Wait::continued`):
/// a resumed request starts with the handler run the suspended driver asked for.
pub fn serve_continuing(
    backend: &mut impl Backend,
    wait: &mut Wait,
    start: Start,
    limits: &RetryLimits,
    waiting: &impl WaitingGate,
    seed: impl FnOnce() -> u64,
) -> Outcome {
    let mut action = if wait.is_resumed() {
        Action::RunHandler
    } else {
        step(wait, Event::Start(start), &mut InThread { backend, limits }, limits)
    };
    let mut seed = Some(seed);
    let mut backoff = None;
    // Held while waiting only: once the backend accepts, the request is served like any
    // other, and counting it would refuse others while the room has space.
    let mut place = None;
    loop {
        let event = match action {
            Action::RunHandler => {
                place = None;
                Event::Ran(backend.run_handler())
            }
            Action::Probe { patience } => Event::Probed(backend.probe(patience)),
            Action::TakePlace | Action::Suspend => {
                if let Err(status) = backend.read_body_before_waiting() {
                    return Outcome::Served { status, retries: wait.attempts.saturating_sub(1), waited: false };
                }
                if action == Action::Suspend {
                    return Outcome::GaveUp {
                        reason: GiveUpReason::WaitsSuspended,
                        attempts: wait.attempts,
                        last_errno: None,
                    };
                }
                match waiting.try_enter(limits.max_waiting) {
                    Ok(held) => {
                        place = Some(held);
                        Event::PlaceTaken
                    }
                    Err(refusal) => Event::PlaceRefused(refusal),
                }
            }
            Action::Sleep(delay) => Event::Slept(backend.wait(delay)),
            Action::BackOff { restart } => {
                let backoff =
                    backoff.get_or_insert_with(|| Backoff::new(limits.backoff, seed.take().map_or(1, |f| f())));
                if restart {
                    backoff.reset();
                }
                let remaining = limits.budget.saturating_sub(backend.elapsed());
                Event::Slept(backend.wait(backoff.next_delay().min(remaining)))
            }
            // Only the suspended driver reports turns with nothing new.
            Action::KeepWaiting => Event::Slept(WaitEnd::DelayPassed),
            Action::Answer(outcome) => {
                drop(place);
                return outcome;
            }
        };
        action = step(wait, event, &mut InThread { backend, limits }, limits);
    }
}

/// What a request waiting in its thread knows of the world: asked of its backend.
struct InThread<'a, B> {
    backend: &'a mut B,
    limits: &'a RetryLimits,
}

impl<B: Backend> Facts for InThread<'_, B> {
    fn remaining(&mut self) -> Duration {
        self.limits.budget.saturating_sub(self.backend.elapsed())
    }
    fn reason_to_stop(&mut self) -> Option<GiveUpReason> {
        self.backend.reason_to_stop()
    }
    fn refused_for_a_whole_budget(&mut self) -> bool {
        self.backend.has_refused_for_a_whole_budget()
    }
    fn may_wait_without_a_thread(&mut self) -> bool {
        self.backend.may_wait_without_a_thread()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::waiting_cap::{Cap, WaitingCount};
    use std::collections::VecDeque;

    const OK: i32 = 0;
    const UNAVAILABLE: i32 = 503;

    /// A scripted backend on a simulated clock: no real time passes in these tests.
    struct Scripted {
        attempts: VecDeque<Attempt>,
        probes: VecDeque<ProbeOutcome>,
        clock: Duration,
        handler_runs: u32,
        drops: u32,
        probes_done: u32,
        waits: Vec<Duration>,
        /// After this many waits, `reason_to_stop` gives this reason.
        stop_after_waits: Option<(usize, GiveUpReason)>,
        refused_for_a_whole_budget: bool,
        suspendable: bool,
        /// Whether a waiting place was held during each handler run (see `HeldPlaces`).
        held_while_running: Vec<bool>,
        places: Option<std::rc::Rc<WaitingCount>>,
        /// What reading the rest of the body before a wait meets.
        body: Result<(), i32>,
        body_reads: u32,
    }

    impl Scripted {
        fn new(attempts: &[Attempt], probes: &[ProbeOutcome]) -> Self {
            Scripted {
                attempts: attempts.iter().copied().collect(),
                probes: probes.iter().copied().collect(),
                clock: Duration::ZERO,
                handler_runs: 0,
                drops: 0,
                probes_done: 0,
                waits: Vec::new(),
                stop_after_waits: None,
                refused_for_a_whole_budget: false,
                suspendable: false,
                held_while_running: Vec::new(),
                places: None,
                body: Ok(()),
                body_reads: 0,
            }
        }
    }

    impl Backend for Scripted {
        fn run_handler(&mut self) -> Attempt {
            self.handler_runs += 1;
            if let Some(places) = &self.places {
                self.held_while_running.push(places.current() > 0);
            }
            let attempt = self.attempts.pop_front().expect("handler ran more often than scripted");
            if matches!(attempt, Attempt::DroppedBeforeResponse(_)) {
                self.drops += 1;
            }
            attempt
        }
        fn probe(&mut self, _patience: Duration) -> ProbeOutcome {
            self.probes_done += 1;
            self.probes.pop_front().unwrap_or(ProbeOutcome::NotYet { errno: Errno::ECONNREFUSED, recreated: false })
        }
        fn wait(&mut self, delay: Duration) -> WaitEnd {
            self.clock += delay;
            self.waits.push(delay);
            WaitEnd::DelayPassed
        }
        fn elapsed(&self) -> Duration {
            self.clock
        }
        fn reason_to_stop(&mut self) -> Option<GiveUpReason> {
            self.stop_after_waits.filter(|(waits, _)| self.waits.len() >= *waits).map(|(_, reason)| reason)
        }
        fn has_refused_for_a_whole_budget(&mut self) -> bool {
            self.refused_for_a_whole_budget
        }
        fn may_wait_without_a_thread(&mut self) -> bool {
            self.suspendable
        }
        fn read_body_before_waiting(&mut self) -> Result<(), i32> {
            self.body_reads += 1;
            self.body
        }
    }

    fn limits() -> RetryLimits {
        RetryLimits {
            budget: Duration::from_secs(2),
            backoff: BackoffBounds::new(Duration::from_millis(5), Duration::from_millis(50)).unwrap(),
            max_waiting: 4,
            retry_dropped: false,
        }
    }

    const REFUSED: ProbeOutcome = ProbeOutcome::NotYet { errno: Errno::ECONNREFUSED, recreated: false };

    #[test]
    fn happy_path_runs_the_handler_once_and_never_probes() {
        let mut backend = Scripted::new(&[Attempt::Finished(OK)], &[]);
        let outcome = serve(&mut backend, Start::RunHandler, &limits(), &WaitingCount::new(), || 1);
        assert_eq!(outcome, Outcome::Served { status: OK, retries: 0, waited: false });
        assert_eq!(backend.handler_runs, 1);
        assert!(backend.waits.is_empty());
    }

    #[test]
    fn waits_out_a_refusing_backend_then_serves() {
        let mut backend = Scripted::new(
            &[Attempt::NotConnected(UNAVAILABLE), Attempt::Finished(OK)],
            &[REFUSED, REFUSED, REFUSED, ProbeOutcome::Accepting],
        );
        let outcome = serve(&mut backend, Start::RunHandler, &limits(), &WaitingCount::new(), || 1);
        assert_eq!(outcome, Outcome::Served { status: OK, retries: 1, waited: true });
        assert_eq!(backend.waits.len(), 3);
    }

    #[test]
    fn a_failure_after_the_backend_got_the_request_is_never_repeated() {
        let mut backend = Scripted::new(&[Attempt::Finished(UNAVAILABLE)], &[ProbeOutcome::Accepting]);
        let outcome = serve(&mut backend, Start::RunHandler, &limits(), &WaitingCount::new(), || 1);
        assert_eq!(outcome, Outcome::Served { status: UNAVAILABLE, retries: 0, waited: false });
        assert_eq!(backend.handler_runs, 1);
    }

    #[test]
    fn dropped_connections_are_repeated_only_when_opted_in() {
        let script = [Attempt::DroppedBeforeResponse(UNAVAILABLE), Attempt::Finished(OK)];
        let mut backend = Scripted::new(&script, &[ProbeOutcome::Accepting]);
        assert_eq!(
            serve(&mut backend, Start::RunHandler, &limits(), &WaitingCount::new(), || 1),
            Outcome::Served { status: UNAVAILABLE, retries: 0, waited: false }
        );
        let mut backend = Scripted::new(&script, &[ProbeOutcome::Accepting]);
        let opted_in = RetryLimits { retry_dropped: true, ..limits() };
        assert_eq!(
            serve(&mut backend, Start::RunHandler, &opted_in, &WaitingCount::new(), || 1),
            Outcome::Served { status: OK, retries: 1, waited: true }
        );
    }

    #[test]
    fn a_backend_known_down_is_waited_for_before_the_handler_runs() {
        let mut backend = Scripted::new(&[Attempt::Finished(OK)], &[REFUSED, ProbeOutcome::Accepting]);
        let outcome = serve(&mut backend, Start::WaitForBackend, &limits(), &WaitingCount::new(), || 1);
        assert_eq!(outcome, Outcome::Served { status: OK, retries: 0, waited: true });
        assert_eq!(backend.handler_runs, 1);
        assert_eq!(backend.waits.len(), 1);
    }

    #[test]
    fn a_backend_known_down_that_is_back_costs_no_wait() {
        let mut backend = Scripted::new(&[Attempt::Finished(OK)], &[ProbeOutcome::Accepting]);
        let outcome = serve(&mut backend, Start::WaitForBackend, &limits(), &WaitingCount::new(), || 1);
        assert_eq!(outcome, Outcome::Served { status: OK, retries: 0, waited: false });
        assert!(backend.waits.is_empty());
    }

    /// An HTTP/2 stream's client check once fired at once: requests for a backend known down
    /// gave up before anything asked the backend, and the child failed them long after it was
    /// back. The backend is asked first, whatever else would end the request.
    #[test]
    fn a_backend_known_down_is_asked_before_anything_ends_the_request() {
        let mut backend = Scripted::new(&[Attempt::Finished(OK)], &[ProbeOutcome::Accepting]);
        backend.stop_after_waits = Some((0, GiveUpReason::ClientGone));
        let outcome = serve(&mut backend, Start::WaitForBackend, &limits(), &WaitingCount::new(), || 1);
        assert_eq!(outcome, Outcome::Served { status: OK, retries: 0, waited: false });

        let full = WaitingCount::new();
        let _others: Vec<_> = (0..4).map(|_| full.try_enter(4).unwrap()).collect();
        let mut backend = Scripted::new(&[Attempt::Finished(OK)], &[ProbeOutcome::Accepting]);
        let outcome = serve(&mut backend, Start::WaitForBackend, &limits(), &full, || 1);
        assert_eq!(outcome, Outcome::Served { status: OK, retries: 0, waited: false }, "the cap did not refuse it");
    }

    #[test]
    fn a_backend_known_down_and_still_refusing_is_probed_once_then_paused() {
        let mut backend = Scripted::new(&[Attempt::Finished(OK)], &[REFUSED, ProbeOutcome::Accepting]);
        let outcome = serve(&mut backend, Start::WaitForBackend, &limits(), &WaitingCount::new(), || 1);
        assert_eq!(outcome, Outcome::Served { status: OK, retries: 0, waited: true });
        assert_eq!(backend.probes_done, 2);
        assert_eq!(backend.waits.len(), 1, "no second probe without a pause in between");
    }

    #[test]
    fn gives_up_when_the_budget_is_spent() {
        let mut backend = Scripted::new(&[Attempt::NotConnected(UNAVAILABLE)], &[]);
        let outcome = serve(&mut backend, Start::RunHandler, &limits(), &WaitingCount::new(), || 1);
        assert_eq!(
            outcome,
            Outcome::GaveUp { reason: GiveUpReason::BudgetSpent, attempts: 1, last_errno: Some(Errno::ECONNREFUSED) }
        );
        assert_eq!(backend.clock, limits().budget, "waited exactly the budget on the simulated clock");
        assert!(backend.waits.iter().all(|w| *w <= Duration::from_millis(50)));
    }

    const DENIED: ProbeOutcome = ProbeOutcome::Unusable { errno: Errno::EACCES };

    #[test]
    fn gives_up_soon_when_waiting_cannot_help() {
        let mut backend = Scripted::new(&[Attempt::NotConnected(UNAVAILABLE)], &[DENIED; 10]);
        let outcome = serve(&mut backend, Start::RunHandler, &limits(), &WaitingCount::new(), || 1);
        assert_eq!(
            outcome,
            Outcome::GaveUp { reason: GiveUpReason::BackendUnusable, attempts: 1, last_errno: Some(Errno::EACCES) }
        );
        assert_eq!(backend.waits.len() as u32, UNUSABLE_PROBES_BEFORE_GIVING_UP - 1);
    }

    #[test]
    fn a_moment_of_permission_denied_while_php_fpm_starts_is_waited_out() {
        let mut backend = Scripted::new(
            &[Attempt::NotConnected(UNAVAILABLE), Attempt::Finished(OK)],
            &[REFUSED, DENIED, DENIED, ProbeOutcome::Accepting],
        );
        let outcome = serve(&mut backend, Start::RunHandler, &limits(), &WaitingCount::new(), || 1);
        assert_eq!(outcome, Outcome::Served { status: OK, retries: 1, waited: true });
    }

    #[test]
    fn a_backend_refusing_for_a_whole_budget_is_answered_at_once_after_its_own_attempt() {
        let mut backend = Scripted::new(&[Attempt::NotConnected(UNAVAILABLE)], &[]);
        backend.refused_for_a_whole_budget = true;
        let waiting = WaitingCount::new();
        let outcome = serve(&mut backend, Start::RunHandler, &limits(), &waiting, || 1);
        assert_eq!(outcome, Outcome::GaveUp { reason: GiveUpReason::StillRefusing, attempts: 1, last_errno: None });
        assert!(backend.waits.is_empty());
        assert_eq!(backend.handler_runs, 1, "the backend was asked before the answer");

        let mut back = Scripted::new(&[Attempt::Finished(OK)], &[]);
        back.refused_for_a_whole_budget = true;
        let outcome = serve(&mut back, Start::RunHandler, &limits(), &waiting, || 1);
        assert_eq!(
            outcome,
            Outcome::Served { status: OK, retries: 0, waited: false },
            "an accepting backend is served"
        );
    }

    /// Where the request can wait without its thread, a refused first connect, or a drop that
    /// may be repeated, ends the run at once, before any waiting place or probe.
    #[test]
    fn a_refused_request_that_can_be_suspended_hands_its_wait_over() {
        let waiting = WaitingCount::new();
        let mut backend = Scripted::new(&[Attempt::NotConnected(UNAVAILABLE)], &[]);
        backend.suspendable = true;
        let outcome = serve(&mut backend, Start::RunHandler, &limits(), &waiting, || 1);
        assert_eq!(outcome, Outcome::GaveUp { reason: GiveUpReason::WaitsSuspended, attempts: 1, last_errno: None });
        assert!(backend.waits.is_empty(), "no wait in the thread");
        assert_eq!(backend.probes_done, 1, "one short look: mod_proxy_fcgi does not say why it failed");

        let opted_in = RetryLimits { retry_dropped: true, ..limits() };
        let script = [Attempt::DroppedBeforeResponse(UNAVAILABLE), Attempt::Finished(OK)];
        let mut dropped = Scripted::new(&script, &[ProbeOutcome::Accepting]);
        dropped.suspendable = true;
        let outcome = serve(&mut dropped, Start::RunHandler, &opted_in, &waiting, || 1);
        assert_eq!(outcome, Outcome::GaveUp { reason: GiveUpReason::WaitsSuspended, attempts: 1, last_errno: None });

        let mut not_repeatable = Scripted::new(&script, &[ProbeOutcome::Accepting]);
        not_repeatable.suspendable = true;
        let outcome = serve(&mut not_repeatable, Start::RunHandler, &limits(), &waiting, || 1);
        assert_eq!(outcome, Outcome::Served { status: UNAVAILABLE, retries: 0, waited: false }, "answered as it is");
    }

    /// A request that has waited and is being served holds no waiting place: the cap counts
    /// requests that wait, not requests PHP runs.
    #[test]
    fn the_waiting_place_is_given_back_before_the_handler_runs_again() {
        let waiting = std::rc::Rc::new(WaitingCount::new());
        let mut backend = Scripted::new(
            &[Attempt::NotConnected(UNAVAILABLE), Attempt::NotConnected(UNAVAILABLE), Attempt::Finished(OK)],
            &[REFUSED, ProbeOutcome::Accepting, ProbeOutcome::Accepting],
        );
        backend.places = Some(waiting.clone());
        let outcome = serve(&mut backend, Start::RunHandler, &limits(), &*waiting, || 1);
        assert_eq!(outcome, Outcome::Served { status: OK, retries: 2, waited: true });
        assert_eq!(backend.held_while_running, vec![false, false, false]);
        assert_eq!(waiting.current(), 0);
    }

    #[test]
    fn a_request_without_budget_left_tries_once_and_does_not_wait() {
        let no_budget = RetryLimits { budget: Duration::ZERO, ..limits() };
        let mut backend = Scripted::new(&[Attempt::NotConnected(UNAVAILABLE)], &[]);
        let outcome = serve(&mut backend, Start::RunHandler, &no_budget, &WaitingCount::new(), || 1);
        assert_eq!(outcome, Outcome::GaveUp { reason: GiveUpReason::BudgetSpent, attempts: 1, last_errno: None });
        assert!(backend.waits.is_empty());
        assert_eq!(backend.probes_done, 0);
    }

    #[test]
    fn fails_fast_when_too_many_requests_wait() {
        let waiting = WaitingCount::new();
        let _others: Vec<_> = (0..4).map(|_| waiting.try_enter(4).unwrap()).collect();
        let mut backend = Scripted::new(&[Attempt::NotConnected(UNAVAILABLE)], &[]);
        let outcome = serve(&mut backend, Start::RunHandler, &limits(), &waiting, || 1);
        let refusal = Refusal { cap: Cap::ThisChild, waiting: 4, limit: 4 };
        assert_eq!(
            outcome,
            Outcome::GaveUp { reason: GiveUpReason::TooManyWaiting(refusal), attempts: 1, last_errno: None }
        );
        assert!(backend.waits.is_empty());
    }

    #[test]
    fn the_waiting_place_is_released_after_recovery() {
        let waiting = WaitingCount::new();
        let mut backend = Scripted::new(
            &[Attempt::NotConnected(UNAVAILABLE), Attempt::Finished(OK)],
            &[REFUSED, ProbeOutcome::Accepting],
        );
        serve(&mut backend, Start::RunHandler, &limits(), &waiting, || 1);
        assert_eq!(waiting.current(), 0);
    }

    #[test]
    fn a_race_lost_after_a_good_probe_is_retried_after_a_pause() {
        let mut backend = Scripted::new(
            &[Attempt::NotConnected(UNAVAILABLE), Attempt::NotConnected(UNAVAILABLE), Attempt::Finished(OK)],
            &[ProbeOutcome::Accepting, ProbeOutcome::Accepting],
        );
        let outcome = serve(&mut backend, Start::RunHandler, &limits(), &WaitingCount::new(), || 1);
        assert_eq!(outcome, Outcome::Served { status: OK, retries: 2, waited: true });
        assert_eq!(backend.waits.len(), 1, "the second retry waited, the first did not");
    }

    #[test]
    fn handler_runs_are_always_separated_by_a_pause_after_the_first_retry() {
        // A probe that always says "accepting" while every run fails at connect must not spin.
        let attempts = vec![Attempt::NotConnected(UNAVAILABLE); 10_000];
        let probes = vec![ProbeOutcome::Accepting; 10_000];
        let mut backend = Scripted::new(&attempts, &probes);
        let outcome = serve(&mut backend, Start::RunHandler, &limits(), &WaitingCount::new(), || 1);
        assert!(matches!(outcome, Outcome::GaveUp { reason: GiveUpReason::BudgetSpent, .. }), "{outcome:?}");
        assert_eq!(backend.waits.len() as u32, backend.handler_runs - 1);
    }

    #[test]
    fn a_request_that_keeps_being_dropped_is_repeated_only_a_few_times() {
        let attempts = vec![Attempt::DroppedBeforeResponse(UNAVAILABLE); 10];
        let probes = vec![ProbeOutcome::Accepting; 10];
        let mut backend = Scripted::new(&attempts, &probes);
        let opted_in = RetryLimits { retry_dropped: true, ..limits() };
        let outcome = serve(&mut backend, Start::RunHandler, &opted_in, &WaitingCount::new(), || 1);
        assert_eq!(outcome, Outcome::Served { status: UNAVAILABLE, retries: MAX_DROPPED_RETRIES, waited: true });
        assert_eq!(backend.handler_runs, MAX_DROPPED_RETRIES + 1);
        let long_pauses = backend.waits.iter().filter(|wait| **wait >= DELAY_AFTER_A_DROP).count() as u32;
        assert_eq!(
            long_pauses, MAX_DROPPED_RETRIES,
            "each repeat came after a pause that lets PHP-FPM's children exit"
        );
    }

    #[test]
    fn a_chain_of_probes_gives_up_only_on_errors_in_a_row_that_waiting_will_not_mend() {
        let unusable = ProbeOutcome::Unusable { errno: Errno::EACCES };
        let mut chain = ProbeChain::default();
        assert_eq!(chain.note(unusable), Verdict::NotYet { reset_backoff: false });
        assert_eq!(chain.note(unusable), Verdict::NotYet { reset_backoff: false });
        assert_eq!(chain.note(REFUSED), Verdict::NotYet { reset_backoff: false }, "a refusal breaks the chain");
        for _ in 1..UNUSABLE_PROBES_BEFORE_GIVING_UP {
            assert_eq!(chain.note(unusable), Verdict::NotYet { reset_backoff: false });
        }
        assert_eq!(chain.note(unusable), Verdict::Unusable);
        assert_eq!(chain.last_errno, Some(Errno::EACCES));
        assert_eq!(chain.note(ProbeOutcome::Accepting), Verdict::Accepting);
        assert_eq!(chain.last_errno, None);
        let recreated = ProbeOutcome::NotYet { errno: Errno::ECONNREFUSED, recreated: true };
        assert_eq!(chain.note(recreated), Verdict::NotYet { reset_backoff: true });
    }

    #[test]
    fn drops_before_a_suspension_count_against_the_repeat_limit() {
        let attempts = vec![Attempt::DroppedBeforeResponse(UNAVAILABLE); 10];
        let probes = vec![ProbeOutcome::Accepting; 10];
        let mut backend = Scripted::new(&attempts, &probes);
        let mut dropped_twice_before_it_was_suspended = Wait::with_drops(MAX_DROPPED_RETRIES);
        let opted_in = RetryLimits { retry_dropped: true, ..limits() };
        let outcome = serve_continuing(
            &mut backend,
            &mut dropped_twice_before_it_was_suspended,
            Start::RunHandler,
            &opted_in,
            &WaitingCount::new(),
            || 1,
        );
        assert_eq!(outcome, Outcome::Served { status: UNAVAILABLE, retries: 0, waited: false });
        assert_eq!(backend.handler_runs, 1, "three runs in all, whichever driver ran them");
    }

    #[test]
    fn a_client_that_left_while_waiting_is_never_served() {
        let mut backend = Scripted::new(
            &[Attempt::NotConnected(UNAVAILABLE), Attempt::Finished(OK)],
            &[REFUSED, REFUSED, REFUSED, ProbeOutcome::Accepting],
        );
        backend.stop_after_waits = Some((2, GiveUpReason::ClientGone));
        let outcome = serve(&mut backend, Start::RunHandler, &limits(), &WaitingCount::new(), || 1);
        assert_eq!(outcome, Outcome::GaveUp { reason: GiveUpReason::ClientGone, attempts: 1, last_errno: None });
        assert_eq!(backend.handler_runs, 1, "the handler never ran for the departed client");
    }

    #[test]
    fn a_client_that_left_just_as_the_backend_returned_is_not_served() {
        let mut backend = Scripted::new(
            &[Attempt::NotConnected(UNAVAILABLE), Attempt::Finished(OK)],
            &[REFUSED, ProbeOutcome::Accepting],
        );
        backend.stop_after_waits = Some((1, GiveUpReason::ClientGone));
        let outcome = serve(&mut backend, Start::RunHandler, &limits(), &WaitingCount::new(), || 1);
        assert!(matches!(outcome, Outcome::GaveUp { reason: GiveUpReason::ClientGone, .. }), "{outcome:?}");
        assert_eq!(backend.handler_runs, 1);
    }

    #[test]
    fn waiting_ends_when_another_balancer_member_can_serve() {
        let mut backend = Scripted::new(&[Attempt::NotConnected(UNAVAILABLE)], &[]);
        backend.stop_after_waits = Some((3, GiveUpReason::FailOver));
        let outcome = serve(&mut backend, Start::RunHandler, &limits(), &WaitingCount::new(), || 1);
        assert_eq!(outcome, Outcome::GaveUp { reason: GiveUpReason::FailOver, attempts: 1, last_errno: None });
        assert_eq!(backend.waits.len(), 3);
    }

    /// The body is read before any wait, whichever way the request waits, also when it starts by
    /// waiting for a backend known down; a read the client fails ends the request with its status.
    #[test]
    fn the_body_is_read_before_any_wait_and_a_failed_read_ends_the_request() {
        for start in [Start::RunHandler, Start::WaitForBackend] {
            for suspendable in [false, true] {
                let mut backend = Scripted::new(&[Attempt::NotConnected(UNAVAILABLE)], &[REFUSED]);
                backend.suspendable = suspendable;
                backend.body = Err(408);
                let outcome = serve(&mut backend, start, &limits(), &WaitingCount::new(), || 1);
                let retries = 0;
                assert_eq!(outcome, Outcome::Served { status: 408, retries, waited: false }, "{start:?} {suspendable}");
                assert_eq!(backend.body_reads, 1);
                assert!(backend.waits.is_empty(), "no wait with the body unread");
            }
        }
    }
}
