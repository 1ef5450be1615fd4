//! When a suspended connection becomes the module's, and how many may be resumed at once.
//! Free of Apache: `ffi/suspend.rs` reads the scoreboard and feeds these rules.
//!
//! The event MPM runs the suspend_connection hooks from `notify_suspend`, then still writes two
//! fields of the connection (`c->sbh = NULL`, `cs->suspended = 1`) before its worker leaves
//! `process_socket`. The connection's memory may be used by another thread only once that
//! worker has provably left. Proof is something only that worker can do after leaving:
//! - its scoreboard status changes from the mark the hook wrote (`SERVER_IDLE_KILL`, which no
//!   2.4 MPM on Unix writes) to anything but `SERVER_GRACEFUL`: the worker's loop writes
//!   READY (or GRACEFUL while the child stops) right after `process_socket` returns, and then
//!   BUSY_* or DEAD as it goes on; the only other writer of a live worker's status is the
//!   listener, which writes GRACEFUL for every worker once, when the child begins to stop;
//! - or the worker ran a "knock" (a timed callback of this module) after the hook: program
//!   order on one thread. Knocks are how a stopping child's worker whose status stays GRACEFUL
//!   proves it.
//!
//! Nothing here waits for time to pass: a worker that has not proved it has left is waited for.

/// httpd's scoreboard status values (scoreboard.h), as the scoreboard stores them.
pub mod status {
    pub const DEAD: u8 = 0;
    pub const READY: u8 = 2;
    pub const BUSY_WRITE: u8 = 4;
    pub const GRACEFUL: u8 = 9;
    /// The mark: written by the suspend hook into the suspending worker's status.
    pub const IDLE_KILL: u8 = 10;
}

/// The worker that suspended a connection, as the suspend hook saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeavingWorker {
    pub thread_slot: usize,
    /// That worker's knock count when the hook ran.
    pub knocks_before: u64,
}

impl LeavingWorker {
    /// Whether the worker has left the connection, from its scoreboard status and knock count
    /// now.
    pub fn has_left(&self, status_now: u8, knocks_now: u64) -> bool {
        let wrote_after_leaving = status_now != status::IDLE_KILL && status_now != status::GRACEFUL;
        wrote_after_leaving || knocks_now > self.knocks_before
    }
}

/// How many more requests a child may resume now: as many as it has idle workers, less those
/// already promised to resumptions the MPM has not started, keeping `reserve` idle for the
/// connections the MPM has queued (so it never finds every worker busy because of us).
pub fn resumable_now(idle_workers: usize, scheduled_not_started: usize, reserve: usize) -> usize {
    idle_workers.saturating_sub(scheduled_not_started).saturating_sub(reserve)
}

/// Workers a child keeps free of resumptions: an eighth of its threads, at least one, but never
/// all of them (a child of one thread must still resume its requests).
pub fn reserve_for(threads_per_child: usize) -> usize {
    (threads_per_child / 8).max(1).min(threads_per_child.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKER: LeavingWorker = LeavingWorker { thread_slot: 3, knocks_before: 7 };

    #[test]
    fn the_mark_itself_proves_nothing() {
        assert!(!WORKER.has_left(status::IDLE_KILL, 7));
    }

    #[test]
    fn graceful_may_be_the_listeners_and_proves_nothing() {
        assert!(!WORKER.has_left(status::GRACEFUL, 7));
    }

    #[test]
    fn any_status_the_worker_writes_after_leaving_proves_it() {
        for status in [status::READY, status::BUSY_WRITE, status::DEAD, 3, 5, 8] {
            assert!(WORKER.has_left(status, 7), "status {status}");
        }
    }

    #[test]
    fn a_knock_run_by_the_worker_after_the_hook_proves_it_even_while_graceful() {
        assert!(WORKER.has_left(status::GRACEFUL, 8));
        assert!(WORKER.has_left(status::IDLE_KILL, 8));
    }

    #[test]
    fn resumptions_leave_the_reserve_idle() {
        assert_eq!(resumable_now(8, 0, 2), 6);
        assert_eq!(resumable_now(8, 5, 2), 1);
        assert_eq!(resumable_now(8, 7, 2), 0);
        assert_eq!(resumable_now(1, 0, 2), 0);
    }

    #[test]
    fn the_reserve_is_an_eighth_of_the_threads_at_least_one_never_all() {
        assert_eq!(reserve_for(25), 3);
        assert_eq!(reserve_for(8), 1);
        assert_eq!(reserve_for(2), 1);
        assert_eq!(reserve_for(1), 0);
        assert_eq!(resumable_now(1, 0, reserve_for(1)), 1, "a child of one thread still resumes");
    }
}
