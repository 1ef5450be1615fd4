//! The requests waiting for a backend, server-wide: one record per waiting request in the
//! shared table, so the cap on waiting requests holds across all child processes (under
//! prefork every child has one thread, and a per-child cap would protect nothing).
//!
//! A record names its owner's pid and a deadline after which its owner has certainly
//! stopped waiting. A child killed while it waits never gives its records back; they stop
//! counting as soon as its pid is gone (or, should the pid have been reused, once the
//! deadline has passed) and the next request that looks takes them over. A bare counter
//! would keep such phantom waiters forever.
//!
//! Entering takes a record first and counts the live records after: of two processes racing
//! for the last place, at least one sees the other, so the cap is never exceeded (both may
//! refuse, which errs on the side of keeping workers free).

use crate::liveness::{own_pid, process_alive};
use crate::waiting_cap::{Cap, Refusal, WaitingCount, WaitingGate, WaitingPlace};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use fcgi_resilient_common::clock::{unix_millis_now, unix_seconds_now};

/// Records, shared by all backends. More requests than this cannot wait at once; a cap
/// above it acts as this number (the status page shows both).
const RECORDS: usize = 8192;

/// Room past a request's budget for the handler run that follows its wait.
const DEADLINE_SLACK: Duration = Duration::from_secs(60);

/// A record's backend before the request learned which slot counts for it.
const NO_BACKEND: u32 = u32::MAX;

#[repr(C)]
struct WaiterRecord {
    /// 0 when free, else owner pid << 32 | deadline in Unix seconds: one word, so a record
    /// is claimed, checked and taken over with a single compare-and-swap.
    owner: AtomicU64,
    /// The backend slot (see `StatsTable::backend_index`) this request waits for.
    backend: AtomicU32,
    /// When the request began to wait (Unix ms), for the age of the longest wait going on:
    /// a counter of waiting requests cannot tell one long wait from many short ones.
    waiting_since_unix_ms: AtomicU64,
}

#[repr(C)]
pub struct WaiterRecords {
    /// Records are taken lowest index first, so every record ever used lies below this
    /// mark: scans stop there, and a refusal while the cap is full stays cheap.
    high_water: AtomicU32,
    records: [WaiterRecord; RECORDS],
}

fn owner_word(pid: u32, deadline_secs: u32) -> u64 {
    (u64::from(pid) << 32) | u64::from(deadline_secs)
}

fn pid_of(word: u64) -> u32 {
    (word >> 32) as u32
}

fn deadline_of(word: u64) -> u32 {
    word as u32
}

/// The requests waiting now, for one backend or server-wide.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitingNow {
    pub requests: u64,
    /// How long the request that waits longest has waited so far; 0 when none waits.
    pub oldest_ms: u64,
}

impl WaitingNow {
    fn count(&mut self, waited_ms: u64) {
        self.requests += 1;
        self.oldest_ms = self.oldest_ms.max(waited_ms);
    }

    pub fn add(&mut self, other: &WaitingNow) {
        self.requests += other.requests;
        self.oldest_ms = self.oldest_ms.max(other.oldest_ms);
    }
}

/// The live waiter records read in one pass: all of them, and per backend slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveWaiting {
    /// Also the requests whose backend found no slot in the table.
    pub all: WaitingNow,
    pub per_backend: Vec<WaitingNow>,
}

/// Remembers the last pid checked: a threaded child holds many records, one syscall will do.
struct LivenessCheck {
    now_secs: u32,
    last: Option<(u32, bool)>,
}

impl LivenessCheck {
    fn new() -> Self {
        LivenessCheck { now_secs: unix_seconds_now(), last: None }
    }

    fn is_live(&mut self, word: u64) -> bool {
        if word == 0 || deadline_of(word) < self.now_secs {
            return false;
        }
        let pid = pid_of(word);
        match self.last {
            Some((known, alive)) if known == pid => alive,
            _ => {
                let alive = process_alive(pid);
                self.last = Some((pid, alive));
                alive
            }
        }
    }
}

impl WaiterRecords {
    pub const CAPACITY: usize = RECORDS;

    /// Takes a record for a request that may wait `budget`, if fewer than `limit` requests
    /// wait server-wide (this one included) and its backend may have one more of them.
    pub fn try_enter(&self, limit: u32, budget: Duration, backend: Option<usize>) -> Result<WaiterPlace<'_>, Refusal> {
        let refused = |cap, waiting: usize| Refusal { cap, waiting: waiting as u32, limit };
        let (waiting, of_backend) = self.live_counts(backend);
        if waiting >= limit as usize {
            return Err(refused(Cap::ServerWide, waiting)); // the common refusal during an outage: nothing written
        }
        if !backend_may_wait(waiting as u32, of_backend as u32, limit) {
            return Err(refused(Cap::BackendShare, of_backend));
        }
        let deadline = unix_seconds_now().saturating_add((budget + DEADLINE_SLACK).as_secs() as u32);
        let place = self.claim(owner_word(own_pid(), deadline)).ok_or(refused(Cap::ServerWide, RECORDS))?;
        place.set_backend(backend);
        self.records[place.index].waiting_since_unix_ms.store(unix_millis_now(), Ordering::Relaxed);
        // Counted again with this place taken: requests of other threads and children that
        // passed the checks above at the same moment are counted now, so that neither the total
        // nor a backend's share is exceeded. Racers may all be refused, never all admitted past
        // a cap. `place` is dropped on refusal: the record is free again.
        let (waiting, of_backend) = self.live_counts(backend);
        if waiting > limit as usize {
            return Err(refused(Cap::ServerWide, waiting - 1));
        }
        let others = (waiting - 1) as u32;
        if backend.is_some() && !backend_may_wait(others, of_backend.saturating_sub(1) as u32, limit) {
            return Err(refused(Cap::BackendShare, of_backend - 1));
        }
        Ok(place)
    }

    /// Live records, all and those of `backend`, in one pass.
    fn live_counts(&self, backend: Option<usize>) -> (usize, usize) {
        let mut liveness = LivenessCheck::new();
        let backend = backend.map_or(NO_BACKEND, |index| index as u32);
        let mut counts = (0, 0);
        for record in self.used() {
            if record.count_or_free(&mut liveness) {
                counts.0 += 1;
                if backend != NO_BACKEND && record.backend.load(Ordering::Relaxed) == backend {
                    counts.1 += 1;
                }
            }
        }
        counts
    }

    fn used(&self) -> &[WaiterRecord] {
        let high_water = (self.high_water.load(Ordering::SeqCst) as usize).min(RECORDS);
        &self.records[..high_water]
    }

    /// A free record, else one whose owner is gone, else a never used one: each of the
    /// three is one bounded pass, no waiting on anyone.
    fn claim(&self, word: u64) -> Option<WaiterPlace<'_>> {
        let take = |index: usize, current: u64| {
            let record = &self.records[index];
            // `then`, not `then_some`: a place made for a lost race would free the winner's
            // record when dropped (threads of one child write the same word).
            let won = record.owner.compare_exchange(current, word, Ordering::SeqCst, Ordering::SeqCst).is_ok();
            won.then(|| WaiterPlace { records: self, index, word })
        };
        let used = self.used();
        let free = used.iter().position(|r| r.owner.load(Ordering::SeqCst) == 0);
        if let Some(place) = free.and_then(|index| take(index, 0)) {
            return Some(place);
        }
        let mut liveness = LivenessCheck::new();
        let reclaimed = used.iter().enumerate().find_map(|(index, record)| {
            let current = record.owner.load(Ordering::SeqCst);
            (!liveness.is_live(current)).then(|| take(index, current)).flatten()
        });
        reclaimed.or_else(|| self.claim_unused(word))
    }

    fn claim_unused(&self, word: u64) -> Option<WaiterPlace<'_>> {
        loop {
            let index = self
                .high_water
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |mark| (mark < RECORDS as u32).then_some(mark + 1))
                .ok()? as usize;
            let record = &self.records[index];
            if record.owner.compare_exchange(0, word, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                return Some(WaiterPlace { records: self, index, word });
            }
        }
    }

    /// Requests waiting now; records of dead owners are freed on the way.
    pub fn live_count(&self) -> usize {
        let mut liveness = LivenessCheck::new();
        self.used().iter().filter(|record| record.count_or_free(&mut liveness)).count()
    }

    /// Live waiters, all and per backend slot (indexed by slot, `slots` entries).
    pub fn live_waiting(&self, slots: usize) -> LiveWaiting {
        let mut waiting = LiveWaiting { all: WaitingNow::default(), per_backend: vec![WaitingNow::default(); slots] };
        let mut liveness = LivenessCheck::new();
        let now_ms = unix_millis_now();
        for record in self.used() {
            if record.count_or_free(&mut liveness) {
                // A record just claimed may still show its previous owner's start, or none.
                let since = record.waiting_since_unix_ms.load(Ordering::Relaxed);
                let waited_ms = if since == 0 { 0 } else { now_ms.saturating_sub(since) };
                waiting.all.count(waited_ms);
                if let Some(backend) = waiting.per_backend.get_mut(record.backend.load(Ordering::Relaxed) as usize) {
                    backend.count(waited_ms);
                }
            }
        }
        waiting
    }
}

impl WaiterRecord {
    fn count_or_free(&self, liveness: &mut LivenessCheck) -> bool {
        let word = self.owner.load(Ordering::SeqCst);
        if word == 0 {
            return false;
        }
        if liveness.is_live(word) {
            return true;
        }
        // Fails harmlessly when someone took the record over meanwhile.
        let _ = self.owner.compare_exchange(word, 0, Ordering::SeqCst, Ordering::Relaxed);
        false
    }
}

/// Whether one more request of a backend may wait, with `waiting` requests waiting
/// server-wide and `of_backend` of them for this backend, under a cap of `limit`.
///
/// One backend may fill the waiting room alone up to three quarters; past half of it, it may
/// take more only while that last quarter is untouched, so a pool that is down for good (a
/// misconfigured site on a shared host) cannot take the room the other pools need through
/// their own restarts. The breaker (`breaker`) then answers that pool at once once it has
/// refused for a whole budget.
pub fn backend_may_wait(waiting: u32, of_backend: u32, limit: u32) -> bool {
    waiting < limit && (of_backend < limit / 2 || waiting < limit - limit / 4)
}

/// One waiting request's record, given back when dropped.
pub struct WaiterPlace<'a> {
    records: &'a WaiterRecords,
    index: usize,
    word: u64,
}

impl WaiterPlace<'_> {
    /// Names the backend slot the request waits for, once it is known.
    pub fn set_backend(&self, backend: Option<usize>) {
        let slot = backend.map_or(NO_BACKEND, |index| index as u32);
        self.records.records[self.index].backend.store(slot, Ordering::Relaxed);
    }
}

impl Drop for WaiterPlace<'_> {
    fn drop(&mut self) {
        let record = &self.records.records[self.index];
        // Only if still ours: a record kept past its deadline may have been taken over.
        let _ = record.owner.compare_exchange(self.word, 0, Ordering::SeqCst, Ordering::Relaxed);
    }
}

/// The server-wide gate one request uses: its budget, and how to learn its backend's slot
/// (looked up only if the request has to wait, keeping the happy path free of it).
pub struct ServerWideGate<'t, F: Fn() -> Option<usize>> {
    pub records: &'t WaiterRecords,
    pub budget: Duration,
    pub backend_slot: F,
    /// This child's own count and its limit, for MPMs with threads: the event MPM serves the
    /// connections a child accepted only with that child's threads, and it accepts in bursts
    /// when only one or two are idle (measured: static content fell to 66 % of its rate with
    /// all threads but one allowed to wait, against 146-215 % with a quarter kept free). So
    /// each child keeps a quarter of its threads free whatever the server-wide cap allows.
    /// None under prefork, where every child has one thread.
    pub per_child: Option<ThreadCap<'t>>,
}

/// The waiting requests of one child that hold threads of one kind, and how many may.
pub struct ThreadCap<'t> {
    pub waiting: &'t WaitingCount,
    pub limit: u32,
    pub cap: Cap,
}

/// A place in both counts; dropping it gives both back.
pub struct GatePlace<'a> {
    _in_child: Option<WaitingPlace<'a>>,
    _record: WaiterPlace<'a>,
}

impl<F: Fn() -> Option<usize>> WaitingGate for ServerWideGate<'_, F> {
    type Place<'a>
        = GatePlace<'a>
    where
        Self: 'a;

    fn try_enter(&self, limit: u32) -> Result<GatePlace<'_>, Refusal> {
        let in_child = match &self.per_child {
            Some(threads) => Some(threads.waiting.try_enter(threads.limit).ok_or(Refusal {
                cap: threads.cap,
                waiting: threads.waiting.current(),
                limit: threads.limit,
            })?),
            None => None,
        };
        let record = self.records.try_enter(limit, self.budget, (self.backend_slot)())?;
        Ok(GatePlace { _in_child: in_child, _record: record })
    }
}

/// How many requests of one child may wait: three quarters of its threads, so the child keeps
/// serving (see `ServerWideGate::per_child`); no limit of its own with one thread per child.
pub fn per_child_limit(threads_per_child: u32) -> Option<u32> {
    (threads_per_child > 1).then(|| (threads_per_child * 3 / 4).max(1))
}

/// mod_http2's default H2MaxWorkers for a child of `threads_per_child` MPM threads: one and a
/// half times ThreadsPerChild, at least 4 (h2_config.c, h2_get_num_workers).
pub fn http2_workers_per_child(threads_per_child: u32) -> u32 {
    (threads_per_child.saturating_mul(3) / 2).max(4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::liveness::pid_of_a_dead_process;
    use crate::stats::StatsTable;

    fn records() -> &'static WaiterRecords {
        StatsTable::new_shared().expect("mmap").waiters()
    }

    const BUDGET: Duration = Duration::from_secs(10);

    #[test]
    fn refuses_past_the_limit_and_frees_on_drop() {
        let records = records();
        let first = records.try_enter(2, BUDGET, Some(0)).expect("first place");
        let second = records.try_enter(2, BUDGET, Some(1)).expect("second place");
        assert!(records.try_enter(2, BUDGET, None).is_err());
        assert_eq!(records.live_count(), 2, "a refused request leaves no record");
        let per_backend: Vec<u64> = records.live_waiting(3).per_backend.iter().map(|w| w.requests).collect();
        assert_eq!(per_backend, [1, 1, 0]);
        drop(first);
        assert!(records.try_enter(2, BUDGET, None).is_ok());
        drop(second);
        assert_eq!(records.live_count(), 0);
    }

    #[test]
    fn the_oldest_wait_is_the_earliest_start_of_a_live_waiter() {
        let records = records();
        let _early = records.try_enter(5, BUDGET, Some(0)).expect("a place");
        let _late = records.try_enter(5, BUDGET, Some(1)).expect("a place");
        let now = unix_millis_now();
        // Backdated starts, so that no test depends on how long it takes to run.
        records.records[0].waiting_since_unix_ms.store(now - 40_000, Ordering::Relaxed);
        records.records[1].waiting_since_unix_ms.store(now - 3_000, Ordering::Relaxed);
        let waiting = records.live_waiting(3);
        assert_eq!(waiting.all.requests, 2);
        assert!(waiting.all.oldest_ms >= 40_000, "{waiting:?}");
        assert_eq!(waiting.per_backend[0].oldest_ms, waiting.all.oldest_ms, "{waiting:?}");
        let late = waiting.per_backend[1].oldest_ms;
        assert!(late >= 3_000 && late < waiting.all.oldest_ms, "{waiting:?}");
        assert_eq!(waiting.per_backend[2], WaitingNow::default());
    }

    #[test]
    fn records_given_back_are_used_again_before_new_ones() {
        let records = records();
        for _ in 0..100 {
            drop(records.try_enter(1, BUDGET, None).expect("a place"));
        }
        assert_eq!(records.used().len(), 1);
    }

    /// The records a child killed while its requests waited leaves behind.
    fn records_of_a_dead_child(records: &WaiterRecords, count: usize) {
        let dead = owner_word(pid_of_a_dead_process(), unix_seconds_now() + 3600);
        records.high_water.fetch_max(count as u32, Ordering::SeqCst);
        for record in records.records.iter().take(count) {
            record.owner.store(dead, Ordering::SeqCst);
            record.backend.store(0, Ordering::Relaxed);
        }
    }

    #[test]
    fn waiters_of_a_dead_process_are_not_counted() {
        let records = records();
        records_of_a_dead_child(records, 3);
        let _live = records.try_enter(10, BUDGET, Some(0)).expect("a place");
        assert_eq!(records.live_count(), 1);
        assert_eq!(records.live_waiting(1).per_backend[0].requests, 1);
    }

    #[test]
    fn places_of_a_dead_process_are_given_to_new_waiters() {
        let records = records();
        records_of_a_dead_child(records, 2);
        let places: Vec<_> = (0..2).map(|_| records.try_enter(2, BUDGET, None).expect("a place")).collect();
        assert!(records.try_enter(2, BUDGET, None).is_err(), "the cap counts the live ones");
        drop(places);
    }

    #[test]
    fn records_of_a_dead_process_are_reused_when_all_are_taken() {
        let records = records();
        records_of_a_dead_child(records, RECORDS);
        let place = records.try_enter(1, BUDGET, None).expect("a dead owner's record");
        assert_eq!(records.live_count(), 1);
        drop(place);
    }

    #[test]
    fn a_record_past_its_deadline_is_not_counted() {
        let records = records();
        // A live pid (its own) that reused a dead child's pid: only the deadline tells.
        records.high_water.store(1, Ordering::SeqCst);
        records.records[0].owner.store(owner_word(own_pid(), unix_seconds_now() - 1), Ordering::SeqCst);
        assert_eq!(records.live_count(), 0);
    }

    #[test]
    fn a_waiter_in_a_child_that_is_killed_disappears() {
        let records = records();
        let (mut ready, mut signal) = (0u8, 0);
        let mut fds = [0; 2];
        // SAFETY: a pipe for the child to say it holds its place.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child takes a place in the shared mapping, reports, and sleeps.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let place = records.try_enter(5, BUDGET, Some(0));
            // SAFETY: writes one byte to the pipe made above, then sleeps until killed.
            unsafe {
                libc::write(fds[1], [u8::from(place.is_ok())].as_ptr().cast(), 1);
                libc::pause();
                libc::_exit(0)
            }
        }
        // SAFETY: reads the child's byte from the pipe made above.
        unsafe { libc::read(fds[0], (&mut ready as *mut u8).cast(), 1) };
        assert_eq!(ready, 1, "the child got a place");
        assert_eq!(records.live_count(), 1);
        // SAFETY: kills and reaps the child this test forked.
        unsafe {
            libc::kill(child, libc::SIGKILL);
            libc::waitpid(child, &mut signal, 0);
        }
        assert_eq!(records.live_count(), 0);
        assert!(records.try_enter(1, BUDGET, None).is_ok());
    }

    #[test]
    fn a_threaded_child_keeps_a_quarter_of_its_threads_free_whatever_the_server_wide_cap() {
        let in_child = WaitingCount::new();
        let gate = ServerWideGate {
            records: records(),
            budget: BUDGET,
            backend_slot: || Some(0),
            per_child: per_child_limit(4).map(|limit| ThreadCap { waiting: &in_child, limit, cap: Cap::ChildThreads }),
        };
        let places: Vec<_> = (0..3).map(|_| gate.try_enter(100).expect("a place")).collect();
        assert_eq!(
            gate.try_enter(100).err(),
            Some(Refusal { cap: Cap::ChildThreads, waiting: 3, limit: 3 }),
            "a quarter of the child's threads stays free"
        );
        assert_eq!(gate.records.live_count(), 3, "a refusal by the child's count leaves no record");
        drop(places);
        assert_eq!((in_child.current(), gate.records.live_count()), (0, 0));
        assert_eq!(per_child_limit(1), None, "prefork: only the server-wide cap");
        assert_eq!(http2_workers_per_child(64), 96);
        assert_eq!(http2_workers_per_child(1), 4, "mod_http2 starts 4 workers under prefork");
    }

    #[test]
    fn one_backend_alone_fills_three_quarters_of_the_room() {
        assert!(backend_may_wait(0, 0, 8));
        assert!(backend_may_wait(5, 5, 8), "past half while the last quarter is untouched");
        assert!(!backend_may_wait(6, 6, 8), "the last quarter is kept for the others");
        assert!(backend_may_wait(6, 2, 8), "another backend under half its share gets it");
        assert!(!backend_may_wait(8, 0, 8), "never past the cap");
        assert!(backend_may_wait(0, 0, 1), "a cap of one still lets one request wait");
    }

    /// A pool that is down for good holds at most three quarters of the room: a restart of
    /// another pool still finds places.
    #[test]
    fn a_backend_that_fills_the_room_leaves_a_share_to_the_others() {
        let records = records();
        let dead: Vec<_> = (0..6).map(|_| records.try_enter(8, BUDGET, Some(0)).expect("a place")).collect();
        assert_eq!(
            records.try_enter(8, BUDGET, Some(0)).err(),
            Some(Refusal { cap: Cap::BackendShare, waiting: 6, limit: 8 })
        );
        let healthy: Vec<_> =
            (0..2).map(|_| records.try_enter(8, BUDGET, Some(1)).expect("the others' share")).collect();
        assert_eq!(
            records.try_enter(8, BUDGET, Some(1)).err(),
            Some(Refusal { cap: Cap::ServerWide, waiting: 8, limit: 8 })
        );
        drop((dead, healthy));
    }

    #[test]
    fn concurrent_entries_never_exceed_the_limit() {
        let records = records();
        // Admitted requests only: a refused one holds a record for an instant while it counts.
        let (admitted, peak) = (std::sync::Arc::new(AtomicU32::new(0)), std::sync::Arc::new(AtomicU32::new(0)));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (admitted, peak) = (admitted.clone(), peak.clone());
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        if let Ok(place) = records.try_enter(3, BUDGET, None) {
                            peak.fetch_max(admitted.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                            std::thread::yield_now();
                            admitted.fetch_sub(1, Ordering::SeqCst);
                            drop(place);
                        }
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert!(peak.load(Ordering::SeqCst) <= 3, "{peak:?}");
        assert_eq!(records.live_count(), 0);
    }

    /// The share one backend may take holds under concurrent entries too, as the total does: a
    /// dead pool's requests racing in from every child may not take the places the others
    /// need (`dead_backend`'s healthy pool once lost 261 requests to a full room).
    #[test]
    fn concurrent_entries_of_one_backend_never_take_the_others_share() {
        let records = records();
        let (admitted, peak) = (std::sync::Arc::new(AtomicU32::new(0)), std::sync::Arc::new(AtomicU32::new(0)));
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (admitted, peak, barrier) = (admitted.clone(), peak.clone(), barrier.clone());
                std::thread::spawn(move || {
                    for _ in 0..500 {
                        barrier.wait();
                        let place = records.try_enter(8, BUDGET, Some(0));
                        if place.is_ok() {
                            peak.fetch_max(admitted.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                        }
                        barrier.wait();
                        if place.is_ok() {
                            admitted.fetch_sub(1, Ordering::SeqCst);
                        }
                        drop(place);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert!(peak.load(Ordering::SeqCst) <= 6, "one backend took {peak:?} of 8 places, past its three quarters");
        assert_eq!(records.live_count(), 0);
    }
}
