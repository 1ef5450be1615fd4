//! This child's waiting thread: it takes parked requests once their worker has left them
//! (steps 3 and 4 of the protocol in `suspend`), keeps their waits, resumes them on workers
//! the child can spare, lingers the connections they leave, and answers everything it owns when
//! the child stops at once. A panic in it is caught: what it owned is answered 503 and it goes
//! on, so it never vanishes with connections in its hands.

use super::resume::{self, Claim, Lingering, OwnedRequest, Suspension};
use super::{lock, Handover, RequestPointer};
use crate::ffi::guard::guard;
use crate::ffi::log;
use crate::ffi::scheme_handler::KNOWN_DOWN;
use crate::ffi::{hooks, pause_watch, scoreboard, status_handler};
use crate::handoff::{self, LeavingWorker};
use crate::probe::{BackendAddress, ClientWatch};
use crate::stats::unix_millis_now;
use crate::suspended_waits::{Resolution, SuspendedWaits};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, RecvTimeoutError, SendError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the thread looks at its waits; probes follow the backoff.
const TICK: Duration = Duration::from_millis(5);
/// A parked request whose worker has not shown it left by then gets knocks: timed callbacks,
/// one of which that worker will run (a stopping child's idle worker whose status stays
/// GRACEFUL proves it no other way). Only how soon it is taken depends on this.
const KNOCK_AFTER: Duration = Duration::from_millis(20);
/// How long a stop at once waits for the workers of parked requests to leave them.
const STOP_PATIENCE: Duration = Duration::from_secs(1);

pub enum Message {
    /// From `hand_over`, on the suspending worker: not ours until that worker has left it.
    Parked { request: RequestPointer, handover: Handover, leaving: LeavingWorker },
    /// From a resumed request that must wait again: ours already.
    Returned(Suspension),
    /// A finished connection to close once the client has stopped sending.
    Linger(Lingering),
    /// The child stops at once: answer everything, then say so.
    AnswerAllNow(SyncSender<()>),
}

static THREAD: Mutex<Option<Sender<Message>>> = Mutex::new(None);
/// Whether `THREAD` holds a live thread's sender: asked on every request that may be suspended.
static ALIVE: AtomicBool = AtomicBool::new(false);

/// Whether a waiting thread runs (starting one if none does): a request is suspended only then.
pub fn running() -> bool {
    if ALIVE.load(Ordering::Acquire) {
        return true;
    }
    let mut thread = lock(&THREAD);
    if thread.is_none() {
        *thread = start();
    }
    ALIVE.store(thread.is_some(), Ordering::Release);
    thread.is_some()
}

/// Passes the message to the waiting thread, starting a new one if the last has ended.
fn send(message: Message) -> Result<(), Box<Message>> {
    let mut thread = lock(&THREAD);
    let mut message = message;
    for _ in 0..2 {
        if thread.is_none() {
            *thread = start();
        }
        let Some(sender) = thread.as_ref() else { return Err(Box::new(message)) };
        match sender.send(message) {
            Ok(()) => return Ok(()),
            Err(SendError(returned)) => {
                message = returned;
                *thread = None;
                ALIVE.store(false, Ordering::Release);
            }
        }
    }
    Err(Box::new(message))
}

pub fn park(request: RequestPointer, handover: Handover, leaving: LeavingWorker) {
    if send(Message::Parked { request, handover, leaving }).is_err() {
        // The request cannot be touched before its worker has left it, and nothing is left
        // to wait for that: its connection stays suspended until the child exits.
        log::server_error("no thread could take a suspended request: its connection is left until the child exits");
    }
}

/// A request a worker resumed must wait again.
pub fn wait_again(suspension: Suspension) {
    // Should no thread take it, dropping it closes its connection.
    drop(send(Message::Returned(suspension)));
}

pub fn linger(lingering: Lingering) {
    drop(send(Message::Linger(lingering)));
}

/// For the child_stopping hook: returns once the waiting thread has answered what it owns, or
/// after a bound (the MPM is about to join its workers and exit).
pub fn answer_all_now() {
    let (done, answered) = sync_channel(1);
    if send(Message::AnswerAllNow(done)).is_ok() {
        let _ = answered.recv_timeout(STOP_PATIENCE * 2);
    }
}

/// Set by the SIGTERM handler of a gracefully stopping child: the waiting thread answers what it
/// owns at its next turn.
static TERMINATED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigterm(_signal: libc::c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    // A stopping child's listener sends SIGTERM to its own process to wake the main thread
    // (event.c, close_listeners): only another process's (the parent's) means "stop now".
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler; getpid is
    // async-signal-safe, and so is one atomic store.
    unsafe {
        if (*info).si_pid() != libc::getpid() {
            TERMINATED.store(true, Ordering::Release);
        }
    }
}

/// For a child stopping gracefully: a later SIGTERM (the parent's, once a graceful stop runs out
/// of time or an immediate stop follows) has the waiting thread answer every request it owns.
pub fn answer_all_on_sigterm() {
    // SAFETY: a sigaction of plain data whose handler only reads its siginfo and stores an
    // atomic. The event MPM's own SIGTERM handler of a child past its start-up does nothing
    // (dummy_signal_handler): the child reads the pipe of death instead, and no longer once it
    // stops.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction =
            on_sigterm as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        action.sa_flags = libc::SA_RESTART | libc::SA_SIGINFO;
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
    }
}

fn start() -> Option<Sender<Message>> {
    let (sender, receiver) = channel();
    let spawned = std::thread::Builder::new().name("fcgi-resilient-waits".into()).spawn(move || keep_waits(&receiver));
    match spawned {
        Ok(_) => Some(sender),
        Err(error) => {
            log::server_error(&format!("could not start the thread for suspended requests: {error}"));
            None
        }
    }
}

struct Parked {
    request: RequestPointer,
    handover: Handover,
    leaving: LeavingWorker,
    since: Instant,
}

struct Waits {
    parked: Vec<Parked>,
    waits: SuspendedWaits<Suspension>,
    claims: Vec<Arc<Claim>>,
    lingering: Vec<Lingering>,
    last_knock: Option<Instant>,
}

fn keep_waits(arrivals: &Receiver<Message>) {
    let mut state = Waits {
        parked: Vec::new(),
        waits: SuspendedWaits::default(),
        claims: Vec::new(),
        lingering: Vec::new(),
        last_knock: None,
    };
    loop {
        // A panic is logged by `guard` ("internal error in the waiting thread: …").
        match guard("the waiting thread", None, || Some(state.turn(arrivals))) {
            Some(true) => {}
            Some(false) => return,
            None => {
                log::server_error("the suspended requests the waiting thread kept are answered 503");
                state.answer_owned_waits(Resolution::InternalError);
            }
        }
    }
}

impl Waits {
    fn is_idle(&self) -> bool {
        self.parked.is_empty() && self.waits.is_empty() && self.lingering.is_empty() && self.claims.is_empty()
    }

    /// One round: take what arrived, take over what is proven, end waits, linger. `false`
    /// once nothing can send to this thread any more.
    fn turn(&mut self, arrivals: &Receiver<Message>) -> bool {
        let patience = if self.is_idle() { Duration::from_secs(1) } else { TICK };
        match arrivals.recv_timeout(patience) {
            Ok(message) => self.take(message),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return false,
        }
        while let Ok(message) = arrivals.try_recv() {
            self.take(message);
        }
        fault_injection(&self.waits);
        self.take_over_proven();
        if TERMINATED.swap(false, Ordering::AcqRel) && !super::STOPPING.swap(true, Ordering::AcqRel) {
            log::server_error("SIGTERM while stopping gracefully: the suspended requests are answered now");
            self.answer_everything();
        }
        if super::STOPPING.load(Ordering::Acquire) {
            // Parked when the stop's answers were already given: answered as soon as ours.
            self.answer_owned_waits(Resolution::Stopping);
        }
        self.claims.retain(|claim| claim.is_pending());
        self.resume_ended();
        self.lingering.retain_mut(|lingering| !lingering.is_done(Instant::now()));
        true
    }

    fn take(&mut self, message: Message) {
        match message {
            Message::Parked { request, handover, leaving } => {
                self.parked.push(Parked { request, handover, leaving, since: Instant::now() })
            }
            Message::Returned(suspension) => self.wait(suspension),
            Message::Linger(lingering) => self.lingering.push(lingering),
            Message::AnswerAllNow(done) => {
                self.answer_everything();
                let _ = done.try_send(());
            }
        }
    }

    fn wait(&mut self, mut suspension: Suspension) {
        let client = suspension.handover.client.take().map(ClientWatch::new);
        let handover = &suspension.handover;
        let (address, deadline, wait, first) =
            (handover.address.clone(), handover.deadline, handover.wait, handover.first);
        let limits = handover.policy.limits(handover.policy.budget);
        self.waits.add(address, limits, suspension, wait, first, deadline, client, Instant::now());
    }

    /// Step 3 to 4: parked requests whose worker has provably left become this thread's.
    fn take_over_proven(&mut self) {
        let mut index = 0;
        let mut unproven_since = None;
        while index < self.parked.len() {
            let leaving = self.parked[index].leaving;
            let thread = leaving.thread_slot;
            if leaving.has_left(scoreboard::status(thread), scoreboard::knocks(thread)) {
                let parked = self.parked.swap_remove(index);
                // SAFETY: its worker has left it (`handoff`); from here on this thread owns it.
                let request = unsafe { OwnedRequest::new(parked.request) };
                if request.client_aborted() {
                    continue; // dropped: its connection is closed, nothing can be written to it
                }
                self.wait(Suspension { request, handover: parked.handover });
            } else {
                let since = self.parked[index].since;
                unproven_since = Some(unproven_since.map_or(since, |earliest: Instant| earliest.min(since)));
                index += 1;
            }
        }
        if let Some(since) = unproven_since {
            self.knock_if_due(since);
        }
    }

    fn knock_if_due(&mut self, unproven_since: Instant) {
        let now = Instant::now();
        let due = now.duration_since(unproven_since) >= KNOCK_AFTER
            && self.last_knock.is_none_or(|last| now.duration_since(last) >= KNOCK_AFTER);
        if due {
            resume::knock_soon();
            self.last_knock = Some(now);
        }
    }

    /// Ends the waits that are over, as many as the child has workers to spare for.
    fn resume_ended(&mut self) {
        let threads = hooks::threads_per_child() as usize;
        let spare = handoff::resumable_now(
            scoreboard::idle_workers(threads),
            resume::scheduled(),
            handoff::reserve_for(threads),
        );
        let paused =
            |address: &BackendAddress| pause_watch::any() && pause_watch::paused_until(&address.to_string()).is_some();
        for mut ended in self.waits.tick_holding(Instant::now(), spare, paused) {
            // Its place among the waiting requests is for waiting only: the next request may
            // have it while this one waits for a worker to resume it.
            ended.request.handover.place = None;
            if let Some(claim) = resume::resume_soon(ended) {
                self.claims.push(claim);
            }
        }
        for (address, accepted) in self.waits.take_probed() {
            note_probe(&address, accepted);
        }
    }

    /// After a panic (the waits may be half-updated) or at a stop: each request is answered now.
    fn answer_owned_waits(&mut self, resolution: Resolution) {
        for ended in self.waits.end_all(resolution) {
            resume::answer_here(ended);
        }
    }

    /// The child stops at once: every request owned or about to be is answered here, every
    /// lingering connection closed. Parked requests are waited for, within a bound.
    fn answer_everything(&mut self) {
        let until = Instant::now() + STOP_PATIENCE;
        while !self.parked.is_empty() && Instant::now() < until {
            self.take_over_proven();
            std::thread::sleep(Duration::from_millis(1));
        }
        if !self.parked.is_empty() {
            log::server_error(&format!(
                "{} suspended requests were still being left by their workers when the child stopped: \
                 their connections close with the child",
                self.parked.len()
            ));
        }
        for claim in std::mem::take(&mut self.claims) {
            if let Some(ended) = claim.reclaim() {
                resume::answer_here(ended);
            }
        }
        self.answer_owned_waits(Resolution::Stopping);
        self.lingering.clear();
    }
}

/// The waiting thread's probes keep the child's memory of the backend and the breaker's
/// chain of refusals (`breaker`) as current as a waiting request's own probes would.
fn note_probe(address: &BackendAddress, accepted: bool) {
    let text = address.to_string();
    let refusals = status_handler::shared_table().and_then(|table| table.backend(&text)).map(|slot| slot.refusals());
    if accepted {
        KNOWN_DOWN.mark_up(&text);
        if let Some(refusals) = refusals {
            refusals.accepted();
        }
    } else {
        KNOWN_DOWN.mark_down(&text, Instant::now());
        if let Some(refusals) = refusals {
            refusals.refused(unix_millis_now());
        }
    }
}

/// For the test that shows the thread cannot vanish: with
/// `FCGI_RESILIENT_TEST_FAULT=waiting-thread-panic` in Apache's environment, the waiting thread
/// of each child panics once, the first time it keeps a wait.
fn fault_injection(waits: &SuspendedWaits<Suspension>) {
    static INJECTED: AtomicBool = AtomicBool::new(false);
    static WANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let wanted =
        *WANTED.get_or_init(|| std::env::var("FCGI_RESILIENT_TEST_FAULT").is_ok_and(|v| v == "waiting-thread-panic"));
    if wanted && !waits.is_empty() && !INJECTED.swap(true, Ordering::AcqRel) {
        panic!("injected by FCGI_RESILIENT_TEST_FAULT");
    }
}
