//! Where the rest of a request body goes when its request is about to wait for the backend:
//! memory up to a limit, a temporary file after it. Free of Apache, so it is unit-tested here;
//! `ffi/request_body.rs` does the reading and the writing.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of body a waiting request may hold in memory (mod_proxy_fcgi's own prefetch counts);
/// past it the body goes to a temporary file, as mod_proxy does when it spools a body.
pub const MEMORY_LIMIT: u64 = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Memory,
    File,
}

/// Tracks one body's bytes as they are read. Once a chunk went to the file, every later
/// chunk goes there too: the body is sent memory first, then the file, so bytes keep order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spool {
    limit: u64,
    in_memory: u64,
    in_file: u64,
}

impl Spool {
    /// `already_in_memory`: what mod_proxy_fcgi prefetched before the first connect.
    pub fn new(limit: u64, already_in_memory: u64) -> Spool {
        Spool { limit, in_memory: already_in_memory, in_file: 0 }
    }

    /// Where a chunk of `bytes` just read goes; counts it there.
    pub fn place(&mut self, bytes: u64) -> Place {
        self.place_unless(bytes, |_| false)
    }

    /// Like `place`; `memory_full` may still send a chunk that fits this body's share to the
    /// file (the child's memory share is taken), asked only for such a chunk.
    pub fn place_unless(&mut self, bytes: u64, memory_full: impl FnOnce(u64) -> bool) -> Place {
        if self.in_file == 0 && self.in_memory.saturating_add(bytes) <= self.limit && !memory_full(bytes) {
            self.in_memory += bytes;
            return Place::Memory;
        }
        self.in_file = self.in_file.saturating_add(bytes);
        Place::File
    }

    pub fn in_file(&self) -> u64 {
        self.in_file
    }

    pub fn total(&self) -> u64 {
        self.in_memory.saturating_add(self.in_file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bodies_stay_in_memory() {
        let mut spool = Spool::new(100, 40);
        assert_eq!(spool.place(60), Place::Memory);
        assert_eq!((spool.total(), spool.in_file()), (100, 0));
    }

    #[test]
    fn the_chunk_that_crosses_the_limit_and_every_later_one_go_to_the_file() {
        let mut spool = Spool::new(100, 40);
        assert_eq!(spool.place(50), Place::Memory);
        assert_eq!(spool.place(20), Place::File);
        // Would fit in memory again, but must follow the bytes already in the file.
        assert_eq!(spool.place(1), Place::File);
        assert_eq!((spool.total(), spool.in_file()), (111, 21));
    }

    #[test]
    fn a_prefetch_already_past_the_limit_sends_everything_new_to_the_file() {
        let mut spool = Spool::new(100, 150);
        assert_eq!(spool.place(1), Place::File);
    }
}

/// Bytes of request bodies that the waiting requests of one child process hold, in memory and
/// in temporary files. Per process, so that a child that dies takes its count with it.
pub struct ChildSpool {
    held: AtomicU64,
    in_memory: AtomicU64,
}

/// Past this much body in memory in one child, further body bytes go to temporary files: a
/// thousand suspended uploads must not grow a child by 64 MiB.
pub const CHILD_MEMORY_LIMIT: u64 = 16 * 1024 * 1024;

/// The default of FcgiResilientMaxBodySpool: what one child may hold in all, memory and disk.
pub const DEFAULT_CHILD_LIMIT: u64 = 1024 * 1024 * 1024;

/// A temporary file is not written when its filesystem would keep less than this share free.
pub const MIN_FREE_SHARE: f64 = 0.05;

impl ChildSpool {
    pub const fn new() -> Self {
        ChildSpool { held: AtomicU64::new(0), in_memory: AtomicU64::new(0) }
    }

    /// Counts `bytes` more, if the child stays within `limit`; else says how much it holds.
    pub fn reserve(&self, bytes: u64, limit: u64) -> Result<(), u64> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|total| *total <= limit)
            })
            .map(|_| ())
    }

    /// Takes `bytes` of the child's memory share, if there is room for them.
    pub fn reserve_memory(&self, bytes: u64) -> bool {
        self.in_memory
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= CHILD_MEMORY_LIMIT)
            })
            .is_ok()
    }

    /// Gives back what a finished request held.
    pub fn release(&self, held: u64, in_memory: u64) {
        self.held.fetch_sub(held.min(self.held.load(Ordering::Acquire)), Ordering::AcqRel);
        self.in_memory.fetch_sub(in_memory.min(self.in_memory.load(Ordering::Acquire)), Ordering::AcqRel);
    }

    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }
}

impl Default for ChildSpool {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether writing `bytes` to a filesystem of `total` bytes with `available` free leaves it
/// at least `MIN_FREE_SHARE` free.
pub fn disk_has_room(bytes: u64, available: u64, total: u64) -> bool {
    let reserve = (total as f64 * MIN_FREE_SHARE) as u64;
    available.saturating_sub(bytes) >= reserve && available >= bytes
}

#[cfg(test)]
mod child_spool_tests {
    use super::*;

    #[test]
    fn a_child_holds_bodies_up_to_its_limit_and_gets_them_back() {
        let spool = ChildSpool::new();
        assert_eq!(spool.reserve(600, 1000), Ok(()));
        assert_eq!(spool.reserve(500, 1000), Err(600), "past the limit: says what it holds");
        assert_eq!(spool.reserve(400, 1000), Ok(()));
        spool.release(600, 0);
        assert_eq!(spool.held(), 400);
        assert_eq!(spool.reserve(600, 1000), Ok(()));
    }

    #[test]
    fn memory_beyond_the_child_share_goes_elsewhere() {
        let spool = ChildSpool::new();
        assert!(spool.reserve_memory(CHILD_MEMORY_LIMIT - 10));
        assert!(!spool.reserve_memory(11));
        assert!(spool.reserve_memory(10));
        spool.release(0, CHILD_MEMORY_LIMIT);
        assert!(spool.reserve_memory(1));
    }

    #[test]
    fn a_filesystem_keeps_its_last_twentieth_free() {
        let gib = 1024 * 1024 * 1024;
        assert!(disk_has_room(gib, 10 * gib, 100 * gib));
        assert!(!disk_has_room(gib, 5 * gib + gib / 2, 100 * gib), "would leave less than 5 GiB of 100");
        assert!(!disk_has_room(2 * gib, gib, 100 * gib));
    }
}
