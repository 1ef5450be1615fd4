//! What the module did, per backend, counted in memory that every child process shares.
//!
//! The table is one anonymous shared mapping made by httpd's parent before it forks, so all
//! children (and later generations, after a graceful restart) count into the same place.
//! Every field is an atomic, so processes need no lock, and no process ever waits for
//! another without a bound: a child can be killed at any instruction. Only requests that met
//! a failing backend touch it: the happy path costs nothing.
//!
//! The header names the layout. httpd keeps the mapping across `apachectl graceful` while it
//! loads the module's new code, so after a package upgrade new code could meet an old
//! layout: the key it is kept under carries [`LAYOUT_VERSION`], and [`StatsTable::from_shared`]
//! refuses a mapping whose header does not describe this exact layout.
//!
//! Capacity: [`BACKEND_SLOTS`] backends (about 1 MiB of address space; pages the kernel
//! only backs once used). A backend seen after the table is full is still retried as usual;
//! only its counters are lost, counted as untracked events, and the status page says since
//! when the table is full. With 5,000 pools the first 4,096 that fail are counted, the
//! others show up in that line.

use crate::breaker::RefusalChain;
use crate::liveness::{own_pid, process_alive};
use crate::waiting_table::{WaiterRecords, WaitingNow};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

/// Bump on any change to the structs of this file or of `waiting_table`: a graceful restart into
/// new code then starts a fresh table instead of reading the old one with the new layout.
pub const LAYOUT_VERSION: u32 = 4;
const MAGIC: u64 = u64::from_le_bytes(*b"FCGIRSTB");
/// The name httpd's process pool keeps the table under; it carries the layout version.
pub const TABLE_KEY: &std::ffi::CStr = c"mod_fcgi_resilient shared counters, layout 4";

pub const BACKEND_SLOTS: usize = 4096;
const NAME_CAPACITY: usize = 200;

/// Slot states. Any other value is the pid of the process filling the slot in: a claim
/// carries its owner, so a claim whose owner died can be taken over.
const FREE: u32 = 0;
const READY: u32 = u32::MAX;

/// How often a lookup checks a slot that a live process is filling in before it moves on.
/// Filling in takes nanoseconds; this bound only matters when the claimer was descheduled
/// or stopped, and then the lookup uses the next slot rather than wait.
const CLAIM_CHECKS: u32 = 200;

#[repr(C)]
struct TableHeader {
    magic: AtomicU64,
    layout_version: AtomicU32,
    backend_slots: AtomicU32,
    waiter_records: AtomicU32,
    slot_size: AtomicU32,
    table_size: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutMismatch {
    NotATable,
    OtherVersion { found: u32 },
    OtherSizes,
}

impl std::fmt::Display for LayoutMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayoutMismatch::NotATable => write!(f, "the shared memory found holds no counters table"),
            LayoutMismatch::OtherVersion { found } => {
                write!(f, "the counters table has layout {found}, this build uses {LAYOUT_VERSION}")
            }
            LayoutMismatch::OtherSizes => write!(f, "the counters table was made with other sizes"),
        }
    }
}

#[repr(C)]
pub struct BackendSlot {
    state: AtomicU32,
    name_len: AtomicU32,
    name: [AtomicU64; NAME_CAPACITY / 8],
    connect_failures: AtomicU64,
    retries: AtomicU64,
    recovered: AtomicU64,
    gave_up: AtomicU64,
    client_gone: AtomicU64,
    cut_by_backend: AtomicU64,
    longest_wait_ms: AtomicU64,
    last_failure_errno: AtomicI32,
    last_failure_unix_ms: AtomicU64,
    /// Requests answered 503 at once because the backend had refused for longer than their
    /// budget (see `breaker`).
    answered_at_once: AtomicU64,
    refusals: RefusalChain,
}

#[repr(C)]
pub struct StatsTable {
    header: TableHeader,
    /// Events for backends that found no slot: counted, never lost silently.
    untracked_events: AtomicU64,
    first_untracked_unix_ms: AtomicU64,
    slots: [BackendSlot; BACKEND_SLOTS],
    waiters: WaiterRecords,
}

/// Read-only copy of one backend's counters, for the status page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendSnapshot {
    pub backend: String,
    pub connect_failures: u64,
    pub retries: u64,
    pub recovered: u64,
    pub gave_up: u64,
    pub client_gone: u64,
    pub cut_by_backend: u64,
    pub waiting: u64,
    /// How long the request of this backend that waits longest has waited so far.
    pub oldest_waiting_ms: u64,
    pub longest_wait_ms: u64,
    pub last_failure_errno: i32,
    pub last_failure_unix_ms: u64,
    pub answered_at_once: u64,
    /// When the backend began refusing without a break, if it still does; 0 otherwise.
    pub refusing_since_unix_ms: u64,
}

/// Everything the status page shows, read at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableReport {
    pub backends: Vec<BackendSnapshot>,
    pub backend_capacity: usize,
    pub untracked_events: u64,
    pub first_untracked_unix_ms: u64,
    /// Requests waiting for a backend now, server-wide (live waiter records).
    pub waiting: u64,
    /// How long the request that waits longest, server-wide, has waited so far.
    pub oldest_waiting_ms: u64,
    pub waiting_capacity: usize,
    /// The server-wide cap requests get unless FcgiResilientMaxWaiting sets theirs.
    pub default_max_waiting: u32,
}

/// What a slot turned out to be for the name a lookup looks for.
enum SlotLookup {
    Found,
    OtherBackend,
}

impl StatsTable {
    /// A table in a MAP_SHARED anonymous mapping: children forked later share it.
    pub fn new_shared() -> Option<&'static StatsTable> {
        let size = std::mem::size_of::<StatsTable>();
        // SAFETY: a fresh anonymous mapping; the kernel zero-fills it, and zero is a valid
        // StatsTable. It is never unmapped, so the 'static reference stays valid.
        let table = unsafe {
            let memory = libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            (memory != libc::MAP_FAILED).then(|| &*(memory as *const StatsTable))?
        };
        table.write_header();
        Some(table)
    }

    /// The table at `memory`, which a previous load of the module made, if its header
    /// describes this build's layout.
    ///
    /// # Safety
    /// `memory` must point to a live mapping of at least a header's size, made by some build
    /// of this module's `new_shared` (the header is read before anything else).
    pub unsafe fn from_shared(memory: *const std::ffi::c_void) -> Result<&'static StatsTable, LayoutMismatch> {
        // SAFETY: the caller guarantees a header's worth of mapped memory at `memory`.
        let header = unsafe { &*(memory as *const TableHeader) };
        Self::check_header(header)?;
        // SAFETY: the header says the mapping holds a whole table of this layout.
        Ok(unsafe { &*(memory as *const StatsTable) })
    }

    fn write_header(&self) {
        let header = &self.header;
        header.layout_version.store(LAYOUT_VERSION, Ordering::Relaxed);
        header.backend_slots.store(BACKEND_SLOTS as u32, Ordering::Relaxed);
        header.waiter_records.store(WaiterRecords::CAPACITY as u32, Ordering::Relaxed);
        header.slot_size.store(std::mem::size_of::<BackendSlot>() as u32, Ordering::Relaxed);
        header.table_size.store(std::mem::size_of::<StatsTable>() as u64, Ordering::Relaxed);
        header.magic.store(MAGIC, Ordering::Release);
    }

    fn check_header(header: &TableHeader) -> Result<(), LayoutMismatch> {
        if header.magic.load(Ordering::Acquire) != MAGIC {
            return Err(LayoutMismatch::NotATable);
        }
        let found = header.layout_version.load(Ordering::Relaxed);
        if found != LAYOUT_VERSION {
            return Err(LayoutMismatch::OtherVersion { found });
        }
        let sizes_match = header.backend_slots.load(Ordering::Relaxed) == BACKEND_SLOTS as u32
            && header.waiter_records.load(Ordering::Relaxed) == WaiterRecords::CAPACITY as u32
            && header.slot_size.load(Ordering::Relaxed) == std::mem::size_of::<BackendSlot>() as u32
            && header.table_size.load(Ordering::Relaxed) == std::mem::size_of::<StatsTable>() as u64;
        if !sizes_match {
            return Err(LayoutMismatch::OtherSizes);
        }
        Ok(())
    }

    pub fn waiters(&self) -> &WaiterRecords {
        &self.waiters
    }

    /// The slot counting for `backend`, claiming a free one the first time it is seen.
    ///
    /// Slots are claimed in order and never freed, so the used slots are a prefix of the
    /// array and a lookup stops at the first free one.
    pub fn backend(&self, backend: &str) -> Option<&BackendSlot> {
        self.backend_index(backend).map(|index| &self.slots[index])
    }

    /// Like [`backend`](Self::backend), with the slot's place in the table (which waiter
    /// records name).
    pub fn backend_index(&self, backend: &str) -> Option<usize> {
        let name = &backend.as_bytes()[..backend.len().min(NAME_CAPACITY)];
        for (index, slot) in self.slots.iter().enumerate() {
            if let Some(SlotLookup::Found) = slot.look_up_or_claim(name) {
                return Some(index);
            }
        }
        self.count_untracked_event();
        None
    }

    fn count_untracked_event(&self) {
        if self.untracked_events.fetch_add(1, Ordering::Relaxed) == 0 {
            self.first_untracked_unix_ms.store(unix_millis_now(), Ordering::Relaxed);
        }
    }

    /// The counters of every backend. A backend whose claimer was too slow can have two
    /// slots (see `CLAIM_CHECKS`); its rows are added up, so the page shows it once.
    pub fn snapshot(&self) -> Vec<BackendSnapshot> {
        self.snapshot_with(&self.waiters.live_waiting(BACKEND_SLOTS).per_backend)
    }

    fn snapshot_with(&self, waiting: &[WaitingNow]) -> Vec<BackendSnapshot> {
        let mut rows: Vec<BackendSnapshot> = Vec::new();
        for (index, slot) in self.used_slots() {
            if slot.state.load(Ordering::Acquire) != READY {
                continue;
            }
            let mut row = slot.snapshot();
            row.waiting = waiting[index].requests;
            row.oldest_waiting_ms = waiting[index].oldest_ms;
            match rows.iter_mut().find(|known| known.backend == row.backend) {
                Some(known) => known.add(&row),
                None => rows.push(row),
            }
        }
        rows
    }

    fn used_slots(&self) -> impl Iterator<Item = (usize, &BackendSlot)> {
        self.slots.iter().enumerate().take_while(|(_, slot)| slot.state.load(Ordering::Acquire) != FREE)
    }

    pub fn report(&self, default_max_waiting: u32) -> TableReport {
        // One pass over the waiter records: the total and the rows agree.
        let waiting = self.waiters.live_waiting(BACKEND_SLOTS);
        TableReport {
            backends: self.snapshot_with(&waiting.per_backend),
            backend_capacity: BACKEND_SLOTS,
            untracked_events: self.untracked_events(),
            first_untracked_unix_ms: self.first_untracked_unix_ms.load(Ordering::Relaxed),
            waiting: waiting.all.requests,
            oldest_waiting_ms: waiting.all.oldest_ms,
            waiting_capacity: WaiterRecords::CAPACITY,
            default_max_waiting,
        }
    }

    pub fn untracked_events(&self) -> u64 {
        self.untracked_events.load(Ordering::Relaxed)
    }
}

impl BackendSnapshot {
    fn add(&mut self, other: &BackendSnapshot) {
        self.connect_failures += other.connect_failures;
        self.retries += other.retries;
        self.recovered += other.recovered;
        self.gave_up += other.gave_up;
        self.client_gone += other.client_gone;
        self.cut_by_backend += other.cut_by_backend;
        self.waiting += other.waiting;
        self.oldest_waiting_ms = self.oldest_waiting_ms.max(other.oldest_waiting_ms);
        self.longest_wait_ms = self.longest_wait_ms.max(other.longest_wait_ms);
        self.answered_at_once += other.answered_at_once;
        self.refusing_since_unix_ms = match (self.refusing_since_unix_ms, other.refusing_since_unix_ms) {
            (0, since) | (since, 0) => since,
            (mine, theirs) => mine.min(theirs),
        };
        if other.last_failure_unix_ms > self.last_failure_unix_ms {
            self.last_failure_errno = other.last_failure_errno;
            self.last_failure_unix_ms = other.last_failure_unix_ms;
        }
    }
}

impl BackendSlot {
    /// Whether this slot counts for `name`, claiming it when free or when its claimer died.
    /// `None`: a live process is still filling it in after `CLAIM_CHECKS` looks; skipped.
    fn look_up_or_claim(&self, name: &[u8]) -> Option<SlotLookup> {
        for _ in 0..CLAIM_CHECKS {
            match self.state.load(Ordering::Acquire) {
                READY if self.name_matches(name) => return Some(SlotLookup::Found),
                READY => return Some(SlotLookup::OtherBackend),
                claimer if claimer == FREE || !process_alive(claimer) => {
                    if self.state.compare_exchange(claimer, own_pid(), Ordering::AcqRel, Ordering::Acquire).is_ok() {
                        self.fill_in(name);
                        return Some(SlotLookup::Found);
                    }
                }
                _ => std::thread::yield_now(),
            }
        }
        None
    }

    /// Only the claimer writes the name, and readers look at it only once READY is set.
    fn fill_in(&self, name: &[u8]) {
        self.store_name(name);
        self.state.store(READY, Ordering::Release);
    }

    fn store_name(&self, name: &[u8]) {
        for (index, chunk) in name.chunks(8).enumerate() {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.name[index].store(u64::from_le_bytes(word), Ordering::Relaxed);
        }
        self.name_len.store(name.len() as u32, Ordering::Relaxed);
    }

    fn name(&self) -> Vec<u8> {
        let len = (self.name_len.load(Ordering::Relaxed) as usize).min(NAME_CAPACITY);
        let mut bytes: Vec<u8> = self.name.iter().flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes()).collect();
        bytes.truncate(len);
        bytes
    }

    /// Word by word, without copying: a lookup compares against every used slot.
    fn name_matches(&self, name: &[u8]) -> bool {
        self.name_len.load(Ordering::Relaxed) as usize == name.len()
            && name.chunks(8).zip(&self.name).all(|(chunk, word)| {
                let mut expected = [0u8; 8];
                expected[..chunk.len()].copy_from_slice(chunk);
                word.load(Ordering::Relaxed) == u64::from_le_bytes(expected)
            })
    }

    pub fn connect_failed(&self, errno: i32, unix_ms: u64) {
        self.connect_failures.fetch_add(1, Ordering::Relaxed);
        self.last_failure_errno.store(errno, Ordering::Relaxed);
        self.last_failure_unix_ms.store(unix_ms, Ordering::Relaxed);
    }

    pub fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn recovered(&self, waited_ms: u64) {
        self.recovered.fetch_add(1, Ordering::Relaxed);
        self.longest_wait_ms.fetch_max(waited_ms, Ordering::Relaxed);
    }

    pub fn gave_up(&self, waited_ms: u64) {
        self.gave_up.fetch_add(1, Ordering::Relaxed);
        self.longest_wait_ms.fetch_max(waited_ms, Ordering::Relaxed);
    }

    /// A waiting request whose client hung up: it was never sent to the backend.
    pub fn client_left(&self, waited_ms: u64) {
        self.client_gone.fetch_add(1, Ordering::Relaxed);
        self.longest_wait_ms.fetch_max(waited_ms, Ordering::Relaxed);
    }

    /// Every refusal seen, by a connect or a probe, and every acceptance a probe saw.
    pub fn refusals(&self) -> &RefusalChain {
        &self.refusals
    }

    /// A request answered 503 at once: its backend had refused for longer than its budget.
    pub fn answered_at_once(&self) {
        self.answered_at_once.fetch_add(1, Ordering::Relaxed);
    }

    /// The backend dropped a request after it had connected (PHP-FPM's stop cuts what it
    /// runs and what waits in its listen queue): what the module could not save.
    pub fn cut(&self) {
        self.cut_by_backend.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> BackendSnapshot {
        BackendSnapshot {
            backend: String::from_utf8_lossy(&self.name()).into_owned(),
            connect_failures: self.connect_failures.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            recovered: self.recovered.load(Ordering::Relaxed),
            gave_up: self.gave_up.load(Ordering::Relaxed),
            client_gone: self.client_gone.load(Ordering::Relaxed),
            cut_by_backend: self.cut_by_backend.load(Ordering::Relaxed),
            waiting: 0,
            oldest_waiting_ms: 0,
            longest_wait_ms: self.longest_wait_ms.load(Ordering::Relaxed),
            last_failure_errno: self.last_failure_errno.load(Ordering::Relaxed),
            last_failure_unix_ms: self.last_failure_unix_ms.load(Ordering::Relaxed),
            answered_at_once: self.answered_at_once.load(Ordering::Relaxed),
            refusing_since_unix_ms: match self.refusals.refusing_for(unix_millis_now()) {
                Some(_) => self.refusals.since_ms(),
                None => 0,
            },
        }
    }
}

pub use fcgi_resilient_common::clock::unix_millis_now;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::liveness::pid_of_a_dead_process;

    fn table() -> &'static StatsTable {
        StatsTable::new_shared().expect("mmap")
    }

    #[test]
    fn counts_per_backend() {
        let table = table();
        let socket = table.backend("unix:/run/php/php8.2-fpm.sock").unwrap();
        socket.connect_failed(111, 1000);
        socket.retried();
        socket.retried();
        socket.recovered(250);
        table.backend("127.0.0.1:9000").unwrap().gave_up(10_000);
        let again = table.backend("unix:/run/php/php8.2-fpm.sock").unwrap();
        again.recovered(90);
        let snapshot = table.snapshot();
        assert_eq!(snapshot.len(), 2);
        let socket = &snapshot[0];
        assert_eq!(socket.backend, "unix:/run/php/php8.2-fpm.sock");
        assert_eq!((socket.connect_failures, socket.retries, socket.recovered), (1, 2, 2));
        assert_eq!((socket.longest_wait_ms, socket.last_failure_errno), (250, 111));
        assert_eq!(snapshot[1].gave_up, 1);
    }

    #[test]
    fn long_names_are_cut_not_refused() {
        let table = table();
        let long = format!("unix:/{}", "d/".repeat(200));
        assert!(table.backend(&long).is_some());
        assert!(table.backend(&long).is_some());
        assert_eq!(table.snapshot().len(), 1);
    }

    #[test]
    fn a_full_table_counts_what_it_cannot_track_and_says_since_when() {
        let table = table();
        for index in 0..BACKEND_SLOTS {
            assert!(table.backend(&format!("backend-{index}")).is_some());
        }
        assert_eq!(table.report(1).first_untracked_unix_ms, 0);
        assert!(table.backend("one-too-many").is_none());
        let report = table.report(1);
        assert_eq!((report.untracked_events, report.backend_capacity), (1, BACKEND_SLOTS));
        assert!(report.first_untracked_unix_ms > 0);
    }

    /// 5,000 pools that all fail: the first 4,096 are listed, every event of the other 904
    /// is counted as untracked, and the page says since when the table is full. Prints the
    /// page's size and how long the lookups and the page took (`--nocapture`).
    #[test]
    fn five_thousand_pools_fill_the_table_and_the_rest_are_counted() {
        let table = table();
        let started = std::time::Instant::now();
        for index in 0..5_000 {
            if let Some(slot) = table.backend(&format!("unix:/run/php/site{index:04}.sock")) {
                slot.connect_failed(2, 1000);
            }
        }
        let lookups = started.elapsed();
        let started = std::time::Instant::now();
        let page = crate::status_page::render_auto(&table.report(100));
        eprintln!(
            "5,000 pools: lookups {lookups:?} (the last 904 scan all 4,096 slots), ?auto page of {} bytes in {:?}",
            page.len(),
            started.elapsed()
        );
        assert!(page.lines().any(|l| l == "Backends: 4096"));
        assert!(page.lines().any(|l| l == "UntrackedEvents: 904"));
        assert!(page.lines().any(|l| l.starts_with("TableFullSince: ") && l != "TableFullSince: 0"));
        assert!(page.contains("Backend: unix:/run/php/site4095.sock\n"));
        assert!(!page.contains("site4096"));
    }

    #[test]
    fn children_count_into_the_same_table() {
        let table = table();
        let slot = table.backend("shared").unwrap();
        let children: Vec<libc::pid_t> = (0..3)
            .map(|_| {
                // SAFETY: the child only touches atomics in the shared mapping, then _exits.
                match unsafe { libc::fork() } {
                    0 => {
                        for _ in 0..1000 {
                            slot.retried();
                        }
                        // SAFETY: leaves the forked test process without running Rust's
                        // test harness teardown twice.
                        unsafe { libc::_exit(0) }
                    }
                    pid => pid,
                }
            })
            .collect();
        for pid in children {
            let mut status = 0;
            // SAFETY: waits for a child this test forked.
            unsafe { libc::waitpid(pid, &mut status, 0) };
        }
        assert_eq!(table.snapshot()[0].retries, 3000);
    }

    #[test]
    fn a_slot_whose_claimer_died_mid_claim_is_taken_over() {
        let table = table();
        // The state a child killed between claiming and marking READY leaves behind.
        table.slots[0].state.store(pid_of_a_dead_process(), Ordering::Release);
        assert_eq!(table.backend_index("after the crash"), Some(0));
        assert_eq!(table.backend_index("after the crash"), Some(0), "found again, READY now");
        assert_eq!(table.snapshot().len(), 1);
    }

    #[test]
    fn a_slot_a_live_process_never_finishes_is_skipped_not_waited_for() {
        let table = table();
        // pid 1 never claims anything here: a claimer that stopped (or a reused pid).
        table.slots[0].state.store(1, Ordering::Release);
        assert_eq!(table.backend_index("next"), Some(1));
        assert_eq!(table.backend_index("next"), Some(1));
        assert_eq!(table.snapshot().len(), 1, "the unfinished slot is not shown");
    }

    #[test]
    fn a_backend_in_two_slots_is_shown_once() {
        let table = table();
        table.slots[0].state.store(1, Ordering::Release);
        let count_every_event = |slot: &BackendSlot| {
            slot.connect_failed(2, 1000);
            slot.retried();
            slot.recovered(10);
            slot.gave_up(20);
            slot.client_left(30);
            slot.cut();
        };
        count_every_event(table.backend("twice").unwrap());
        // The slow claimer finishes after all, for the same backend.
        table.slots[0].fill_in(b"twice");
        count_every_event(table.backend("twice").unwrap());
        let snapshot = table.snapshot();
        assert_eq!(snapshot.len(), 1);
        let row = &snapshot[0];
        let counts =
            [row.connect_failures, row.retries, row.recovered, row.gave_up, row.client_gone, row.cut_by_backend];
        assert_eq!(counts, [2; 6], "{row:?}");
    }

    #[test]
    fn the_pool_key_names_the_layout() {
        let key = TABLE_KEY.to_str().unwrap();
        assert!(key.ends_with(&format!(" layout {LAYOUT_VERSION}")), "{key}");
    }

    #[test]
    fn the_header_of_this_layout_is_accepted() {
        let table = table();
        let memory = table as *const StatsTable as *const std::ffi::c_void;
        // SAFETY: a whole table made by new_shared.
        assert!(unsafe { StatsTable::from_shared(memory) }.is_ok());
    }

    #[test]
    fn a_table_of_another_layout_is_rejected() {
        let memory = |table: &StatsTable| table as *const StatsTable as *const std::ffi::c_void;
        let older = table();
        older.header.layout_version.store(LAYOUT_VERSION - 1, Ordering::Relaxed);
        // SAFETY: a whole table made by new_shared (headers are only read).
        let found = unsafe { StatsTable::from_shared(memory(older)) }.err();
        assert_eq!(found, Some(LayoutMismatch::OtherVersion { found: LAYOUT_VERSION - 1 }));

        let resized = table();
        resized.header.backend_slots.store(64, Ordering::Relaxed);
        // SAFETY: as above.
        assert_eq!(unsafe { StatsTable::from_shared(memory(resized)) }.err(), Some(LayoutMismatch::OtherSizes));

        // The table of the first release had no header at all: its first word is a slot state.
        let headerless = table();
        headerless.header.magic.store(0, Ordering::Relaxed);
        // SAFETY: as above.
        assert_eq!(unsafe { StatsTable::from_shared(memory(headerless)) }.err(), Some(LayoutMismatch::NotATable));
    }
}
