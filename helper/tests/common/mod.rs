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
