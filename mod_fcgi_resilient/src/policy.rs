//! The retry policy as one state machine: every decision about a request whose backend failed
//! it is made here, once, for both ways a request waits. The drivers only do the I/O an
//! [`Action`] asks for and report what happened as an [`Event`]:
//! - `retry::serve`, the blocking driver: a request waiting in its worker thread (HTTP/2
//!   streams, subrequests, balancer members, prefork and worker);
//! - `suspended_waits`, the resumable driver: suspended HTTP/1.x requests under event, whose
//!   probes of one backend are merged into one connect that every one of them hears about.
//!
//! A request's [`Wait`] goes with it from one driver to the other (kept in its `wait_record`),
//! so the counts its repeat limit and give-up line rest on run on across suspensions.
//!
//! The backoff schedule is the driver's: a wait in a thread has its own, suspended waits share
//! one per backend. Both draw their delays from `backoff` with the section's bounds; this
//! machine says when to back off and when to start the schedule over.

use crate::probe::{ProbeOutcome, WaitEnd};
use crate::retry::{
    Attempt, GiveUpReason, Outcome, ProbeChain, RetryLimits, Start, Verdict, DELAY_AFTER_A_DROP, MAX_DROPPED_RETRIES,
};
use crate::waiting_cap::Refusal;
use std::time::Duration;

/// mod_proxy_fcgi does not say why its connect failed: before a request is suspended, a probe
/// this short says whether the backend accepts by now (then it is better served from its thread).
pub const PATIENCE_BEFORE_SUSPENDING: Duration = Duration::from_millis(50);

/// What one request carries through its waits.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    phase: Phase,
    /// Runs of the backend's handler, whichever driver asked for them.
    pub attempts: u32,
    /// Runs the backend dropped before any response: the repeat limit counts them all.
    pub drops: u32,
    /// Probes of the backend this request heard the outcome of.
    pub probes: u32,
    /// It has held a waiting place: the breaker no longer answers it at once.
    waited: bool,
    /// It has held a waiting place in this driver's run: a wait in its thread is not handed to
    /// the suspended driver halfway, and a served answer says it waited.
    waited_here: bool,
    /// The last run was dropped: the backend is given `DELAY_AFTER_A_DROP` first.
    after_a_drop: bool,
    /// The backend's socket came back under a new inode or its directory changed: the next
    /// back-off starts its schedule over.
    restart_backoff: bool,
    chain: ProbeChain,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    #[default]
    New,
    /// The first look at a backend known to be down, before any handler run.
    FirstProbe,
    /// A handler run was asked for.
    Running,
    /// The short look before a refused request is suspended.
    ProbingBeforeSuspending,
    /// Handed to the suspended driver, which first asks for a place.
    Suspending,
    /// A waiting place was asked for.
    Entering,
    /// The delay after a drop.
    AfterDrop,
    /// Backing off or probing until the backend accepts.
    Waiting,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Start(Start),
    /// A handler run ended.
    Ran(Attempt),
    PlaceTaken,
    PlaceRefused(Refusal),
    /// A delay asked for (`Sleep`, `BackOff`) ended.
    Slept(WaitEnd),
    Probed(ProbeOutcome),
    /// Time passed with nothing else to report (the suspended driver's turn).
    Tick,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    RunHandler,
    /// Connect to the backend and close again, waiting at most `patience`.
    Probe {
        patience: Duration,
    },
    /// Ask the waiting cap for a place; held until the handler runs again or the request ends.
    TakePlace,
    /// Wait this long (the delay after a drop).
    Sleep(Duration),
    /// Wait the backoff's next delay (at most what is left of the budget); `restart`: start the
    /// schedule over first.
    BackOff {
        restart: bool,
    },
    /// Nothing new: the request waits on.
    KeepWaiting,
    /// Go on waiting without a thread: the suspended driver takes the request, and asks for a
    /// place (`Event::PlaceTaken` or `PlaceRefused`) first.
    Suspend,
    /// The request ends so.
    Answer(Outcome),
}

/// What the driver knows of the world besides the event; asked only at the points that need it.
pub trait Facts {
    /// The budget left: FcgiResilientTimeout less what this request has waited (with its
    /// ErrorDocument, redirects and suspensions).
    fn remaining(&mut self) -> Duration;
    /// A reason to stop waiting that has nothing to do with the backend: the client left,
    /// another balancer member can serve.
    fn reason_to_stop(&mut self) -> Option<GiveUpReason>;
    /// The backend has refused without a break for longer than this request's budget
    /// (`breaker`): waiting would only spend the budget and a place others need.
    fn refused_for_a_whole_budget(&mut self) -> bool;
    /// The request could wait without a thread (the event MPM suspends it once this run returns).
    fn may_wait_without_a_thread(&mut self) -> bool;
}

impl Wait {
    /// A wait that goes on in another run of the handler for the same request (its
    /// ErrorDocument, a redirect, the next balancer member, a resumed run): the counts run on;
    /// a resumed run picks up where the suspended driver left it.
    pub fn continued(previous: Wait) -> Wait {
        let Wait { phase, attempts, drops, probes, waited, chain, .. } = previous;
        let phase = if phase == Phase::Running { Phase::Running } else { Phase::New };
        Wait { phase, attempts, drops, probes, waited, chain, ..Wait::default() }
    }

    /// The suspended driver asked for this handler run: the next driver starts by running it.
    pub fn is_resumed(&self) -> bool {
        self.phase == Phase::Running
    }

    pub fn last_errno(&self) -> Option<nix::errno::Errno> {
        self.chain.last_errno
    }

    #[cfg(test)]
    pub fn with_drops(drops: u32) -> Wait {
        Wait { drops, ..Wait::default() }
    }

    fn run(&mut self) -> Action {
        self.phase = Phase::Running;
        Action::RunHandler
    }

    fn answer(&mut self, outcome: Outcome) -> Action {
        self.phase = Phase::Done;
        Action::Answer(outcome)
    }

    fn served(&mut self, status: i32) -> Action {
        let retries = self.attempts.saturating_sub(1);
        self.answer(Outcome::Served { status, retries, waited: self.waited_here })
    }

    fn give_up(&mut self, reason: GiveUpReason, last_errno: Option<nix::errno::Errno>) -> Action {
        self.answer(Outcome::GaveUp { reason, attempts: self.attempts, last_errno })
    }

    /// After a handler run, or a first probe that found a backend known down still refusing.
    fn after_run(&mut self, attempt: Attempt, facts: &mut impl Facts, limits: &RetryLimits) -> Action {
        match attempt {
            Attempt::Finished(status) => return self.served(status),
            Attempt::DroppedBeforeResponse(status) if !limits.retry_dropped || self.drops > MAX_DROPPED_RETRIES => {
                return self.served(status)
            }
            Attempt::DroppedBeforeResponse(_) | Attempt::NotConnected(_) | Attempt::NotRun => {}
        }
        // An error page for a request that spent its budget waits no more.
        if facts.remaining().is_zero() {
            return self.give_up(GiveUpReason::BudgetSpent, None);
        }
        if !self.waited && facts.refused_for_a_whole_budget() {
            return self.give_up(GiveUpReason::StillRefusing, None);
        }
        self.after_a_drop = matches!(attempt, Attempt::DroppedBeforeResponse(_));
        if !self.waited_here && facts.may_wait_without_a_thread() {
            if self.after_a_drop || self.phase == Phase::FirstProbe {
                // A drop says the backend took the connection; a first probe has just looked.
                self.phase = Phase::Suspending;
                return Action::Suspend;
            }
            self.phase = Phase::ProbingBeforeSuspending;
            return Action::Probe { patience: PATIENCE_BEFORE_SUSPENDING };
        }
        self.phase = Phase::Entering;
        Action::TakePlace
    }

    /// Once the place is held (and a drop's delay is over).
    fn start_waiting(&mut self, facts: &mut impl Facts) -> Action {
        self.phase = Phase::Waiting;
        // Only a first connect failure may be retried without a pause (the backend may be back
        // already); otherwise a probe and mod_proxy that disagree would spin. A request that
        // has not run the handler has just probed.
        if self.attempts != 1 || self.drops > 0 {
            return Action::BackOff { restart: std::mem::take(&mut self.restart_backoff) };
        }
        self.probe_now(facts)
    }

    fn probe_now(&mut self, facts: &mut impl Facts) -> Action {
        if let Some(reason) = facts.reason_to_stop() {
            return self.give_up(reason, None);
        }
        Action::Probe { patience: facts.remaining() }
    }

    fn heard(&mut self, outcome: ProbeOutcome, facts: &mut impl Facts) -> Action {
        if outcome != ProbeOutcome::Held {
            self.probes += 1;
        }
        let remaining = facts.remaining();
        match self.chain.note(outcome) {
            Verdict::Accepting if !remaining.is_zero() => match facts.reason_to_stop() {
                Some(reason) => self.give_up(reason, None),
                None => self.run(),
            },
            Verdict::Unusable => self.give_up(GiveUpReason::BackendUnusable, self.chain.last_errno),
            _ if remaining.is_zero() => self.give_up(GiveUpReason::BudgetSpent, self.chain.last_errno),
            Verdict::NotYet { reset_backoff } => {
                Action::BackOff { restart: reset_backoff || std::mem::take(&mut self.restart_backoff) }
            }
            Verdict::Accepting => unreachable!("an accepting backend with budget left is run above"),
        }
    }

    /// A turn with nothing new: only the client, a fail-over or the budget can end the wait.
    fn tick(&mut self, facts: &mut impl Facts) -> Action {
        if let Some(reason) = facts.reason_to_stop() {
            return self.give_up(reason, None);
        }
        if facts.remaining().is_zero() {
            return self.give_up(GiveUpReason::BudgetSpent, self.chain.last_errno);
        }
        Action::KeepWaiting
    }
}

/// The one place the policy decides: given what just happened to this request, what next.
pub fn step(wait: &mut Wait, event: Event, facts: &mut impl Facts, limits: &RetryLimits) -> Action {
    match (wait.phase, event) {
        (Phase::New, Event::Start(Start::RunHandler)) => wait.run(),
        // Known down is a guess from earlier requests: the backend itself has the last word,
        // before any cap or client check can end this request without asking it.
        (Phase::New, Event::Start(Start::WaitForBackend)) => {
            wait.phase = Phase::FirstProbe;
            Action::Probe { patience: facts.remaining() }
        }
        (Phase::FirstProbe, Event::Probed(outcome)) => {
            wait.probes += (outcome != ProbeOutcome::Held) as u32;
            if outcome == ProbeOutcome::Accepting {
                return wait.run();
            }
            wait.after_run(Attempt::NotRun, facts, limits)
        }
        (Phase::Running, Event::Ran(attempt)) => {
            wait.attempts += (attempt != Attempt::NotRun) as u32;
            wait.drops += matches!(attempt, Attempt::DroppedBeforeResponse(_)) as u32;
            wait.after_run(attempt, facts, limits)
        }
        (Phase::ProbingBeforeSuspending, Event::Probed(outcome)) => {
            wait.probes += (outcome != ProbeOutcome::Held) as u32;
            if outcome == ProbeOutcome::Accepting {
                wait.phase = Phase::Entering;
                return Action::TakePlace;
            }
            wait.chain.note(outcome);
            wait.phase = Phase::Suspending;
            Action::Suspend
        }
        (Phase::Suspending | Phase::Entering, Event::PlaceRefused(refusal)) => {
            wait.give_up(GiveUpReason::TooManyWaiting(refusal), None)
        }
        (Phase::Suspending | Phase::Entering, Event::PlaceTaken) => {
            wait.waited = true;
            wait.waited_here = wait.phase == Phase::Entering;
            if std::mem::take(&mut wait.after_a_drop) {
                wait.phase = Phase::AfterDrop;
                return Action::Sleep(DELAY_AFTER_A_DROP.min(facts.remaining()));
            }
            wait.start_waiting(facts)
        }
        (Phase::AfterDrop, Event::Slept(_)) => wait.start_waiting(facts),
        (Phase::Waiting, Event::Slept(end)) => {
            wait.restart_backoff |= end == WaitEnd::SocketDirectoryChanged;
            wait.probe_now(facts)
        }
        (Phase::Waiting, Event::Probed(outcome)) => wait.heard(outcome, facts),
        (Phase::AfterDrop | Phase::Waiting, Event::Tick) => wait.tick(facts),
        (phase, event) => {
            // A driver that reports what was not asked for is a bug; the request must still end.
            debug_assert!(false, "event {event:?} in phase {phase:?}");
            wait.give_up(GiveUpReason::BudgetSpent, wait.chain.last_errno)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::BackoffBounds;
    use crate::waiting_cap::Cap;
    use nix::errno::Errno;

    /// The facts of a scripted world, on a simulated clock.
    #[derive(Default)]
    struct World {
        remaining: Duration,
        stop: Option<GiveUpReason>,
        breaker_open: bool,
        suspendable: bool,
    }

    impl Facts for World {
        fn remaining(&mut self) -> Duration {
            self.remaining
        }
        fn reason_to_stop(&mut self) -> Option<GiveUpReason> {
            self.stop
        }
        fn refused_for_a_whole_budget(&mut self) -> bool {
            self.breaker_open
        }
        fn may_wait_without_a_thread(&mut self) -> bool {
            self.suspendable
        }
    }

    fn world() -> World {
        World { remaining: Duration::from_secs(2), ..World::default() }
    }

    fn limits() -> RetryLimits {
        RetryLimits {
            budget: Duration::from_secs(2),
            backoff: BackoffBounds::new(Duration::from_millis(5), Duration::from_millis(50)).unwrap(),
            max_waiting: 4,
            retry_dropped: true,
        }
    }

    const REFUSED: ProbeOutcome = ProbeOutcome::NotYet { errno: Errno::ECONNREFUSED, recreated: false };
    const DENIED: ProbeOutcome = ProbeOutcome::Unusable { errno: Errno::EACCES };
    const NOT_CONNECTED: Attempt = Attempt::NotConnected(503);

    fn run(wait: &mut Wait, world: &mut World, events: &[Event]) -> Vec<Action> {
        events.iter().map(|event| step(wait, *event, world, &limits())).collect()
    }

    /// A request whose first connect was refused where it can wait without a thread: handed to
    /// the suspended driver, which asks for its place next.
    fn suspending() -> (Wait, World) {
        let mut wait = Wait::default();
        let mut facts = World { suspendable: true, ..world() };
        let actions = run(&mut wait, &mut facts, &[Event::Start(Start::RunHandler), Event::Ran(NOT_CONNECTED)]);
        assert_eq!(actions[1], Action::Probe { patience: PATIENCE_BEFORE_SUSPENDING });
        assert_eq!(step(&mut wait, Event::Probed(REFUSED), &mut facts, &limits()), Action::Suspend);
        (wait, facts)
    }

    /// The same scenario driven as a thread waits and as a suspended request waits ends the
    /// same: one decision, two drivers.
    #[test]
    fn a_refused_request_waits_then_runs_again_however_it_waits() {
        let mut in_thread = Wait::default();
        let actions = run(
            &mut in_thread,
            &mut world(),
            &[
                Event::Start(Start::RunHandler),
                Event::Ran(NOT_CONNECTED),
                Event::PlaceTaken,
                Event::Probed(REFUSED),
                Event::Slept(WaitEnd::DelayPassed),
                Event::Probed(ProbeOutcome::Accepting),
                Event::Ran(Attempt::Finished(200)),
            ],
        );
        let served = Action::Answer(Outcome::Served { status: 200, retries: 1, waited: true });
        assert_eq!(
            actions,
            [
                Action::RunHandler,
                Action::TakePlace,
                Action::Probe { patience: Duration::from_secs(2) },
                Action::BackOff { restart: false },
                Action::Probe { patience: Duration::from_secs(2) },
                Action::RunHandler,
                served,
            ]
        );

        let (mut suspended, mut facts) = suspending();
        let actions = run(
            &mut suspended,
            &mut facts,
            &[Event::PlaceTaken, Event::Tick, Event::Probed(REFUSED), Event::Probed(ProbeOutcome::Accepting)],
        );
        assert_eq!(
            actions,
            [
                Action::Probe { patience: Duration::from_secs(2) },
                Action::KeepWaiting,
                Action::BackOff { restart: false },
                Action::RunHandler,
            ]
        );
        // Resumed: the next driver runs the handler the suspended one asked for.
        let mut resumed = Wait::continued(suspended);
        assert!(resumed.is_resumed());
        let served_after_suspension = Action::Answer(Outcome::Served { status: 200, retries: 1, waited: false });
        assert_eq!(
            step(&mut resumed, Event::Ran(Attempt::Finished(200)), &mut world(), &limits()),
            served_after_suspension
        );
        assert_eq!((resumed.attempts, resumed.probes), (2, 3), "counted across the suspension");
    }

    #[test]
    fn permission_errors_end_the_wait_after_a_few_probes_in_both_drivers() {
        for suspendable in [false, true] {
            let mut wait = Wait::default();
            let mut facts = World { suspendable, ..world() };
            step(&mut wait, Event::Start(Start::RunHandler), &mut facts, &limits());
            let first = step(&mut wait, Event::Ran(NOT_CONNECTED), &mut facts, &limits());
            if suspendable {
                assert_eq!(step(&mut wait, Event::Probed(DENIED), &mut facts, &limits()), Action::Suspend);
            } else {
                assert_eq!(first, Action::TakePlace);
            }
            step(&mut wait, Event::PlaceTaken, &mut facts, &limits());
            let mut last = Action::KeepWaiting;
            while !matches!(last, Action::Answer(_)) {
                last = step(&mut wait, Event::Probed(DENIED), &mut facts, &limits());
            }
            let unusable =
                Outcome::GaveUp { reason: GiveUpReason::BackendUnusable, attempts: 1, last_errno: Some(Errno::EACCES) };
            assert_eq!(last, Action::Answer(unusable), "suspendable: {suspendable}");
            assert_eq!(wait.probes, crate::retry::UNUSABLE_PROBES_BEFORE_GIVING_UP);
        }
    }

    #[test]
    fn a_dropped_request_is_repeated_at_most_twice_across_suspensions() {
        let mut wait = Wait::default();
        let mut facts = World { suspendable: true, ..world() };
        let mut actions = Vec::new();
        for _ in 0..3 {
            let first = if wait.attempts == 0 { Event::Start(Start::RunHandler) } else { Event::Ran(NOT_CONNECTED) };
            if wait.attempts == 0 {
                step(&mut wait, first, &mut facts, &limits());
            }
            let dropped = step(&mut wait, Event::Ran(Attempt::DroppedBeforeResponse(502)), &mut facts, &limits());
            actions.push(dropped);
            if dropped != Action::Suspend {
                break;
            }
            assert_eq!(
                step(&mut wait, Event::PlaceTaken, &mut facts, &limits()),
                Action::Sleep(DELAY_AFTER_A_DROP),
                "a dropping backend is given time to go down"
            );
            assert_eq!(
                step(&mut wait, Event::Slept(WaitEnd::DelayPassed), &mut facts, &limits()),
                Action::BackOff { restart: false }
            );
            assert_eq!(
                step(&mut wait, Event::Probed(ProbeOutcome::Accepting), &mut facts, &limits()),
                Action::RunHandler
            );
            wait = Wait::continued(wait); // resumed on a worker
        }
        assert_eq!(
            actions,
            [
                Action::Suspend,
                Action::Suspend,
                Action::Answer(Outcome::Served { status: 502, retries: 2, waited: false })
            ]
        );
    }

    #[test]
    fn a_refused_place_is_answered_whichever_driver_asked() {
        let refusal = Refusal { cap: Cap::ServerWide, waiting: 8, limit: 8 };
        let refused = Action::Answer(Outcome::GaveUp {
            reason: GiveUpReason::TooManyWaiting(refusal),
            attempts: 1,
            last_errno: None,
        });
        let mut in_thread = Wait::default();
        let actions = run(
            &mut in_thread,
            &mut world(),
            &[Event::Start(Start::RunHandler), Event::Ran(NOT_CONNECTED), Event::PlaceRefused(refusal)],
        );
        assert_eq!(actions[2], refused);
        let (mut suspended, mut facts) = suspending();
        assert_eq!(step(&mut suspended, Event::PlaceRefused(refusal), &mut facts, &limits()), refused);
    }

    #[test]
    fn a_request_already_waiting_in_its_thread_is_not_suspended_halfway() {
        let mut wait = Wait::default();
        let mut facts = world();
        run(&mut wait, &mut facts, &[Event::Start(Start::RunHandler), Event::Ran(NOT_CONNECTED), Event::PlaceTaken]);
        facts.suspendable = true;
        assert_eq!(step(&mut wait, Event::Probed(ProbeOutcome::Accepting), &mut facts, &limits()), Action::RunHandler);
        assert_eq!(step(&mut wait, Event::Ran(NOT_CONNECTED), &mut facts, &limits()), Action::TakePlace);
    }

    #[test]
    fn a_backend_that_accepts_just_before_suspending_is_served_from_the_thread() {
        let mut wait = Wait::default();
        let mut facts = World { suspendable: true, ..world() };
        let actions = run(
            &mut wait,
            &mut facts,
            &[Event::Start(Start::RunHandler), Event::Ran(NOT_CONNECTED), Event::Probed(ProbeOutcome::Accepting)],
        );
        assert_eq!(actions[2], Action::TakePlace);
    }

    #[test]
    fn the_budget_and_the_client_end_a_suspended_wait_between_probes() {
        let (mut wait, mut facts) = suspending();
        step(&mut wait, Event::PlaceTaken, &mut facts, &limits());
        assert_eq!(step(&mut wait, Event::Tick, &mut facts, &limits()), Action::KeepWaiting);
        facts.remaining = Duration::ZERO;
        let spent =
            Outcome::GaveUp { reason: GiveUpReason::BudgetSpent, attempts: 1, last_errno: Some(Errno::ECONNREFUSED) };
        assert_eq!(step(&mut wait.clone(), Event::Tick, &mut facts, &limits()), Action::Answer(spent));
        facts.stop = Some(GiveUpReason::ClientGone);
        let gone = Outcome::GaveUp { reason: GiveUpReason::ClientGone, attempts: 1, last_errno: None };
        assert_eq!(step(&mut wait, Event::Tick, &mut facts, &limits()), Action::Answer(gone));
    }

    #[test]
    fn a_pause_holds_without_counting_probes() {
        let mut wait = Wait::default();
        let mut facts = world();
        run(&mut wait, &mut facts, &[Event::Start(Start::RunHandler), Event::Ran(NOT_CONNECTED), Event::PlaceTaken]);
        assert_eq!(
            step(&mut wait, Event::Probed(ProbeOutcome::Held), &mut facts, &limits()),
            Action::BackOff { restart: false }
        );
        assert_eq!((wait.probes, wait.last_errno()), (0, None));
    }

    #[test]
    fn a_recreated_socket_restarts_the_backoff() {
        let mut wait = Wait::default();
        let mut facts = world();
        run(&mut wait, &mut facts, &[Event::Start(Start::RunHandler), Event::Ran(NOT_CONNECTED), Event::PlaceTaken]);
        let recreated = ProbeOutcome::NotYet { errno: Errno::ECONNREFUSED, recreated: true };
        assert_eq!(step(&mut wait, Event::Probed(recreated), &mut facts, &limits()), Action::BackOff { restart: true });
        step(&mut wait, Event::Slept(WaitEnd::SocketDirectoryChanged), &mut facts, &limits());
        assert_eq!(step(&mut wait, Event::Probed(REFUSED), &mut facts, &limits()), Action::BackOff { restart: true });
        step(&mut wait, Event::Slept(WaitEnd::DelayPassed), &mut facts, &limits());
        assert_eq!(step(&mut wait, Event::Probed(REFUSED), &mut facts, &limits()), Action::BackOff { restart: false });
    }

    #[test]
    fn a_backend_known_down_that_still_refuses_is_suspended_without_a_second_look() {
        let mut wait = Wait::default();
        let mut facts = World { suspendable: true, ..world() };
        let actions = run(&mut wait, &mut facts, &[Event::Start(Start::WaitForBackend), Event::Probed(REFUSED)]);
        assert_eq!(actions, [Action::Probe { patience: Duration::from_secs(2) }, Action::Suspend]);
        assert_eq!((wait.attempts, wait.probes), (0, 1));
        facts.breaker_open = true;
        let mut open = Wait::default();
        let actions = run(&mut open, &mut facts, &[Event::Start(Start::WaitForBackend), Event::Probed(REFUSED)]);
        let at_once = Outcome::GaveUp { reason: GiveUpReason::StillRefusing, attempts: 0, last_errno: None };
        assert_eq!(actions[1], Action::Answer(at_once));
    }
}
