//! Shared by the integration tests: running the built binary. Work directories and php-fpm
//! come from the project's test harness.

use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_fcgi-resilient-helper");

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(args: &[&str]) -> Run {
    let Output { status, stdout, stderr } = Command::new(BIN).args(args).output().expect("run helper");
    let r = Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    eprintln!("$ fcgi-resilient-helper {}\n[{}]\n{}{}", args.join(" "), r.code, r.stdout, r.stderr);
    r
}

/// The helper changes owners and the tests use real users: they run as root, as in CI.
#[allow(dead_code)] // each test binary compiles this module; not every one needs root
pub fn require_root() {
    assert!(nix::unistd::geteuid().is_root(), "these tests run as root (scripts/test.sh)");
}

/// The load both lossless-restart tests put on a site: 16 clients of GETs of a 25 ms script,
/// or of 64 KiB POSTs echoed back after 25 ms, with LEAD of load before and after the event.
#[allow(dead_code)]
pub mod restart_load {
    use harness::load::{self, LoadSpec, Record, RunningLoad};
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    pub const CLIENTS: usize = 16;
    pub const POST_SIZE: usize = 64 * 1024;
    /// Load before and after the event: enough for every client to be busy around it.
    pub const LEAD: Duration = Duration::from_millis(600);

    #[derive(Clone, Copy, Debug)]
    pub enum Load {
        Get,
        Post,
    }

    /// Runs CLIENTS of `kind` against `target`, does `event` after LEAD, loads LEAD longer.
    pub fn around(target: SocketAddr, kind: Load, event: impl FnOnce()) -> Vec<Record> {
        let path = match kind {
            Load::Get => "/sleep.php",
            Load::Post => "/slow-echo.php",
        };
        let spec = LoadSpec::new(target, path, CLIENTS);
        let epoch = Instant::now();
        let running = match kind {
            Load::Get => RunningLoad::start(&spec, epoch),
            Load::Post => RunningLoad::start_posts(&spec, epoch, POST_SIZE),
        };
        std::thread::sleep(LEAD);
        event();
        running.stop_after(LEAD)
    }

    pub fn summary(kind: Load, how: &str, records: &[Record]) -> String {
        format!(
            "{kind:?} load, {CLIENTS} clients, {how}: {} requests, {} failed {:?}",
            records.len(),
            load::failed_count(records),
            load::failures(records)
        )
    }
}
