//! CPU contention for a test's duration: more busy threads than the machine has cores, so that
//! Apache's workers and threads are preempted at any instruction, as on a loaded server. The
//! threads belong to the test process: they stop when the guard is dropped (also when the test
//! panics), after `limit` at the latest, and with the process in any case.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct CpuContention {
    stop: Arc<AtomicBool>,
    spinners: Vec<JoinHandle<u64>>,
}

impl CpuContention {
    /// `threads` threads that spin until dropped, or until `limit` has passed.
    pub fn start(threads: usize, limit: Duration) -> CpuContention {
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + limit;
        let spinners = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || spin(&stop, deadline))
            })
            .collect();
        CpuContention { stop, spinners }
    }

    /// Twice as many busy threads as the machine has cores.
    pub fn twice_the_cores(limit: Duration) -> CpuContention {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::start(2 * cores, limit)
    }

    pub fn threads(&self) -> usize {
        self.spinners.len()
    }
}

fn spin(stop: &AtomicBool, deadline: Instant) -> u64 {
    let mut state = 1u64;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        for _ in 0..100_000 {
            state = std::hint::black_box(state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
    state
}

impl Drop for CpuContention {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for spinner in self.spinners.drain(..) {
            let _ = spinner.join();
        }
    }
}
