//! What the module did, per backend, counted in memory that every child process shares.
//!
//! The table is a fixed array of slots in one anonymous shared mapping made by httpd's parent
//! before it forks, so all children (and later generations, after a graceful restart) count
//! into the same place. All-zero bytes are a valid empty table, and every field is an atomic,
//! so processes need no lock. Only requests that met a failing backend touch it: the happy
//! path costs nothing.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

pub const BACKEND_SLOTS: usize = 64;
const NAME_CAPACITY: usize = 200;

const FREE: u32 = 0;
const CLAIMED: u32 = 1;
const READY: u32 = 2;

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
    waiting: AtomicU64,
    longest_wait_ms: AtomicU64,
    last_failure_errno: AtomicI32,
    last_failure_unix_ms: AtomicU64,
}

#[repr(C)]
pub struct StatsTable {
    slots: [BackendSlot; BACKEND_SLOTS],
    /// Events for backends that found no free slot: counted, never lost silently.
    untracked_events: AtomicU64,
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
    pub waiting: u64,
    pub longest_wait_ms: u64,
    pub last_failure_errno: i32,
    pub last_failure_unix_ms: u64,
}

impl StatsTable {
    /// A table in a MAP_SHARED anonymous mapping: children forked later share it.
    pub fn new_shared() -> Option<&'static StatsTable> {
        let size = std::mem::size_of::<StatsTable>();
        // SAFETY: a fresh anonymous mapping; the kernel zero-fills it, and zero is a valid
        // StatsTable. It is never unmapped, so the 'static reference stays valid.
        unsafe {
            let memory = libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            (memory != libc::MAP_FAILED).then(|| &*(memory as *const StatsTable))
        }
    }

    /// The slot counting for `backend`, claiming a free one the first time it is seen.
    pub fn backend(&self, backend: &str) -> Option<&BackendSlot> {
        let name = &backend.as_bytes()[..backend.len().min(NAME_CAPACITY)];
        for slot in &self.slots {
            loop {
                match slot.state.load(Ordering::Acquire) {
                    READY if slot.name_matches(name) => return Some(slot),
                    READY => break,
                    CLAIMED => std::hint::spin_loop(),
                    _ => {
                        if slot.state.compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                            slot.store_name(name);
                            slot.state.store(READY, Ordering::Release);
                            return Some(slot);
                        }
                    }
                }
            }
        }
        self.untracked_events.fetch_add(1, Ordering::Relaxed);
        None
    }

    pub fn snapshot(&self) -> Vec<BackendSnapshot> {
        self.slots
            .iter()
            .filter(|slot| slot.state.load(Ordering::Acquire) == READY)
            .map(BackendSlot::snapshot)
            .collect()
    }

    pub fn untracked_events(&self) -> u64 {
        self.untracked_events.load(Ordering::Relaxed)
    }
}

impl BackendSlot {
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

    fn name_matches(&self, name: &[u8]) -> bool {
        self.name() == name
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

    /// Counts the request as waiting until the returned guard is dropped.
    pub fn start_waiting(&self) -> WaitingGuard<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        WaitingGuard { slot: self }
    }

    fn snapshot(&self) -> BackendSnapshot {
        BackendSnapshot {
            backend: String::from_utf8_lossy(&self.name()).into_owned(),
            connect_failures: self.connect_failures.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            recovered: self.recovered.load(Ordering::Relaxed),
            gave_up: self.gave_up.load(Ordering::Relaxed),
            client_gone: self.client_gone.load(Ordering::Relaxed),
            waiting: self.waiting.load(Ordering::Relaxed),
            longest_wait_ms: self.longest_wait_ms.load(Ordering::Relaxed),
            last_failure_errno: self.last_failure_errno.load(Ordering::Relaxed),
            last_failure_unix_ms: self.last_failure_unix_ms.load(Ordering::Relaxed),
        }
    }
}

pub struct WaitingGuard<'a> {
    slot: &'a BackendSlot,
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.slot.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

pub fn unix_millis_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn waiting_is_counted_while_the_guard_lives() {
        let slot = table().backend("x").unwrap();
        let guard = slot.start_waiting();
        assert_eq!(slot.snapshot().waiting, 1);
        drop(guard);
        assert_eq!(slot.snapshot().waiting, 0);
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
    fn a_full_table_counts_what_it_cannot_track() {
        let table = table();
        for index in 0..BACKEND_SLOTS {
            assert!(table.backend(&format!("backend-{index}")).is_some());
        }
        assert!(table.backend("one-too-many").is_none());
        assert_eq!(table.untracked_events(), 1);
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
}
