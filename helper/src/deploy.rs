//! `deploy BACKEND -- COMMAND`: pause the backend, wait until no request runs on it, run
//! COMMAND (a restart, a reload, a symlink switch), wait until the backend answers a FastCGI
//! request again, resume. Whatever happens — COMMAND fails, a wait times out, the helper gets
//! SIGINT/SIGTERM/SIGHUP — the pause is taken away before the helper exits; and should the
//! helper be killed outright, the pause file's own end (`--for`) lets requests go on.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use clap::Args;
use fcgi_resilient_common::clock::unix_millis_now;
use fcgi_resilient_common::pause_file::PauseRecord;
use fcgi_resilient_common::BackendAddress;

use crate::options::{bounded_pause, duration_value, pause_length, BackendArgs, Readiness, DEFAULT_TIMEOUT};
use crate::pause::{remove_pause, resolve_or_say, wait_until_idle, write_pause};
use crate::stop;
use crate::wait;

#[derive(Args, Debug, Clone, PartialEq)]
pub struct DeployArgs {
    #[command(flatten)]
    pub target: BackendArgs,
    /// Bound of each wait (until idle, until answering)
    #[arg(long, short = 't', value_name = "DURATION", default_value = DEFAULT_TIMEOUT, value_parser = duration_value)]
    pub timeout: Duration,
    /// The pause's own end, should the helper be killed (default: 3 x --timeout)
    #[arg(long = "for", value_name = "DURATION", value_parser = pause_length)]
    pub pause_for: Option<Duration>,
    #[command(flatten)]
    pub readiness: Readiness,
    /// What to run while the backend is paused, after `--`
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl DeployArgs {
    /// `--for`, or long enough for a drain, the command and the readiness wait.
    pub fn pause_for(&self) -> Duration {
        bounded_pause(self.pause_for.unwrap_or(self.timeout * 3))
    }
}

const PREFIX: &str = "fcgi-resilient-helper: deploy";
/// What a shell reports for a command killed by a signal: 128 + the signal.
const SIGNALLED: i32 = 128;

/// Takes the pause away when dropped: on every way out of `deploy`.
struct Paused<'a> {
    opts: &'a DeployArgs,
    backend: &'a str,
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        match remove_pause(&self.opts.target.pause_dir, self.backend) {
            Ok(_) => eprintln!("{PREFIX}: {} resumed", self.backend),
            Err(e) => eprintln!("{PREFIX}: {e}; the pause ends by itself within {:?}", self.opts.pause_for()),
        }
    }
}

pub fn run(o: &DeployArgs) -> i32 {
    let Some(address) = resolve_or_say(&o.target, "deploy") else { return 1 };
    let backend = address.to_string();
    stop::catch_interrupts();
    let record =
        PauseRecord { backend: backend.clone(), until_unix_ms: unix_millis_now() + o.pause_for().as_millis() as u64 };
    if let Err(e) = write_pause(&o.target.pause_dir, &record) {
        eprintln!("{PREFIX}: {e}");
        return 1;
    }
    let _resume_on_exit = Paused { opts: o, backend: &backend };
    let start = Instant::now();
    match wait_until_idle(&address, o.timeout) {
        Ok(true) => eprintln!("{PREFIX}: {backend} paused and idle after {:.2}s", start.elapsed().as_secs_f64()),
        Ok(false) => eprintln!("{PREFIX}: running the command anyway: those requests may be cut"),
        Err(e) => {
            eprintln!("{PREFIX}: {e}; not running the command");
            return 1;
        }
    }
    let status = match run_command(&o.command) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("{PREFIX}: {e}");
            return 1;
        }
    };
    if status != 0 || stop::interrupted() {
        eprintln!("{PREFIX}: the command exited with {status}; resuming without waiting for {backend}");
        return if status != 0 { status } else { 1 };
    }
    match wait_until_ready(&address, o) {
        Ok(()) if stop::interrupted() => {
            eprintln!("{PREFIX}: interrupted while waiting for {backend}");
            1
        }
        Ok(()) => {
            eprintln!("{PREFIX}: {backend} answers after {:.2}s in all", start.elapsed().as_secs_f64());
            0
        }
        Err(e) => {
            eprintln!("{PREFIX}: {backend} does not answer after {:?}: {e}; resuming (requests wait as for a stopped backend)", o.timeout);
            1
        }
    }
}

/// Runs COMMAND with the helper's stdin/stdout/stderr; a signal the helper gets is passed on
/// to it (it may not share the helper's process group), and its exit is awaited.
fn run_command(command: &[String]) -> Result<i32, String> {
    let (program, args) = command.split_first().ok_or("no COMMAND after --")?;
    let mut child = Command::new(program).args(args).spawn().map_err(|e| format!("cannot run {program}: {e}"))?;
    let mut forwarded = false;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("waiting for {program}: {e}"))? {
            use std::os::unix::process::ExitStatusExt;
            return Ok(status.code().unwrap_or_else(|| SIGNALLED + status.signal().unwrap_or(0)));
        }
        if stop::interrupted() && !forwarded {
            terminate(&child);
            forwarded = true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn terminate(child: &Child) {
    eprintln!("{PREFIX}: interrupted: stopping the command (SIGTERM to pid {})", child.id());
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
}

/// With `--ping PATH`, the pool's ping page must answer `--expect`; without, any complete
/// FastCGI answer will do (a 404 for a script that does not exist proves PHP-FPM runs).
/// An interrupt ends the wait at once (the caller asks `stop::interrupted`).
fn wait_until_ready(target: &BackendAddress, o: &DeployArgs) -> Result<(), String> {
    let start = Instant::now();
    let deadline = start + o.timeout;
    wait::poll_until(target, o.timeout, start, deadline, |io| match &o.readiness.ping {
        _ if stop::interrupted() => Ok(()),
        Some(path) => wait::probe(target, Some(path), &o.readiness.expect, io),
        None => wait::answers_fastcgi(target, io),
    })
}
