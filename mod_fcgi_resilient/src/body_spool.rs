//! Where the rest of a request body goes when its request is about to wait for the backend:
//! memory up to a limit, a temporary file after it. Free of Apache, so it is unit-tested here;
//! `ffi/request_body.rs` does the reading and the writing.

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
        if self.in_file == 0 && self.in_memory.saturating_add(bytes) <= self.limit {
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

/// The Content-Length a whole body gets, as mod_proxy_fcgi decides it when its prefetch read
/// the whole body: none for a request that announced no body and sent none.
pub fn content_length_for(announced_a_body: bool, total: u64) -> Option<u64> {
    (announced_a_body || total > 0).then_some(total)
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

    #[test]
    fn content_length_only_where_a_body_was_announced_or_sent() {
        assert_eq!(content_length_for(false, 0), None);
        assert_eq!(content_length_for(true, 0), Some(0));
        assert_eq!(content_length_for(false, 5), Some(5));
    }
}
