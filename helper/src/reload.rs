//! `reload-and-wait`: SIGUSR2 to the PHP-FPM master, then readiness.
//!
//! On SIGUSR2 the master execs itself in place: same pid, same start time, same
//! /proc/PID/exe, and the listening socket is inherited (FPM_SOCKETS), so a plain
//! connect succeeds throughout. What does change is the set of worker processes:
//! the old ones are all stopped and new ones are forked from the re-executed
//! master. So we wait until none of the old workers is a child of the master any
//! more and a new one exists (for pm = ondemand, where there may be no workers,
//! a short settle time instead), then run the same readiness probe as `wait`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::fpm_config;
use crate::options::FpmConfigs;
use crate::wait::{self, WaitArgs};

#[derive(Args, Debug, Clone, PartialEq)]
pub struct ReloadArgs {
    /// The master's pid (default: the pid setting of the --fpm-config instance)
    #[arg(long, value_name = "PID", value_parser = parse_pid, conflicts_with = "pid_file")]
    pub pid: Option<i32>,
    /// File holding the master's pid
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    #[command(flatten)]
    pub fpm: FpmConfigs,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// A pid the helper may signal: never init, nor "every process" (0, -1).
pub fn parse_pid(text: &str) -> Result<i32, String> {
    let pid: i32 = text.trim().parse().map_err(|_| format!("`{text}` is not a process id"))?;
    if pid <= 1 {
        return Err(format!("refusing to signal pid {pid}"));
    }
    Ok(pid)
}

pub fn read_pid_file(p: &Path) -> Result<i32, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read pid file {}: {e}", p.display()))?;
    match text.trim().parse::<i32>() {
        Ok(pid) if pid > 1 => Ok(pid),
        _ => Err(format!("{}: does not contain a process id", p.display())),
    }
}

fn pid_from_config(fpm: &FpmConfigs) -> Result<i32, String> {
    let cfgs = fpm_config::load_all(&fpm.files, &fpm.load_options())?;
    let pids: Vec<_> = cfgs.iter().filter_map(|c| c.global.get("pid")).collect();
    match pids.as_slice() {
        [one] if Path::new(&one.value).is_absolute() => read_pid_file(Path::new(&one.value)),
        [one] => Err(format!("{}: relative pid path {}; use --pid-file", one.loc(), one.value)),
        [] => Err("no `pid` in the PHP-FPM [global] section; use --pid-file or --pid".to_string()),
        _ => Err("several PHP-FPM instances configured; choose one with --fpm-config or --pid-file".to_string()),
    }
}

/// A reload with `process_control_timeout` 0 kills the requests in flight: say so and what
/// to change. Still reloads: the new configuration may be what the admin needs right now.
fn warn_if_reload_cuts(pid: i32, fpm: &FpmConfigs) {
    let files = match (fpm.files.as_slice(), crate::fpm_process::master(pid)) {
        ([], Ok(Some(from_title))) => vec![from_title],
        ([], _) => return,
        (given, _) => given.to_vec(),
    };
    let Ok(cfgs) = fpm_config::load_all(&files, &fpm.load_options()) else { return };
    for warning in cfgs.iter().filter_map(|c| c.reload_cut_warning()) {
        eprintln!("fcgi-resilient-helper: warning: {warning}");
    }
}

/// (ppid, comm) from /proc/PID/stat; comm may contain spaces and parentheses.
fn stat(pid: i32) -> Option<(i32, String)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s.get(open + 1..close)?.to_string();
    let mut rest = s.get(close + 1..)?.split_whitespace();
    let state = rest.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    Some((rest.next()?.parse().ok()?, comm))
}

fn children(pid: i32) -> BTreeSet<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else { return BTreeSet::new() };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&c| stat(c).is_some_and(|(ppid, _)| ppid == pid))
        .collect()
}

pub fn run(o: &ReloadArgs) -> i32 {
    let target = &o.wait.target;
    let pid = match (o.pid, &o.pid_file) {
        (Some(p), _) => Ok(p),
        (None, Some(f)) => read_pid_file(f),
        (None, None) => pid_from_config(&o.fpm),
    };
    let pid = match pid {
        Ok(p) => p,
        Err(e) => {
            eprintln!("fcgi-resilient-helper: {e}");
            return 1;
        }
    };
    // Never signal a process that is not a PHP-FPM master (stale pid file, reused pid).
    match stat(pid) {
        Some((_, comm)) if comm.starts_with("php-fpm") => {}
        Some((_, comm)) => {
            eprintln!("fcgi-resilient-helper: process {pid} is `{comm}`, not php-fpm; not signalling it");
            return 1;
        }
        None => {
            eprintln!("fcgi-resilient-helper: no process {pid} (stale pid file?)");
            return 1;
        }
    }
    warn_if_reload_cuts(pid, &o.fpm);
    let start = Instant::now();
    let deadline = start + o.wait.timeout;
    let old = children(pid);
    if let Err(e) = kill(Pid::from_raw(pid), Signal::SIGUSR2) {
        eprintln!("fcgi-resilient-helper: cannot signal php-fpm master {pid}: {e}");
        return 1;
    }
    let settle = Duration::from_millis(500);
    let mut old_gone_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if stat(pid).is_none() {
            eprintln!("fcgi-resilient-helper: php-fpm master {pid} exited during the reload; see its error_log");
            return 1;
        }
        let cur = children(pid);
        if cur.is_disjoint(&old) {
            let gone = *old_gone_at.get_or_insert(now);
            if (!old.is_empty() && !cur.is_empty()) || now.duration_since(gone) >= settle {
                break;
            }
        }
        if now >= deadline {
            eprintln!(
                "fcgi-resilient-helper: php-fpm master {pid} did not replace its workers within {:.1}s",
                o.wait.timeout.as_secs_f64()
            );
            return 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match wait::wait_until(target, &o.wait, start, deadline) {
        Ok(()) => {
            println!(
                "php-fpm {pid} reloaded; {} ready after {:.1}s",
                target.connect_form(),
                start.elapsed().as_secs_f64()
            );
            0
        }
        Err(e) => {
            eprintln!("fcgi-resilient-helper: reloaded php-fpm {pid} but {} is not ready: {e}", target.connect_form());
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_stat_and_children() {
        let me = std::process::id() as i32;
        let (ppid, comm) = stat(me).unwrap();
        assert!(ppid > 0);
        assert!(!comm.is_empty());
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        assert!(children(me).contains(&(child.id() as i32)));
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn pid_file_errors() {
        let d = harness::WorkDir::new("pidfile");
        let f = d.path().join("x.pid");
        std::fs::write(&f, "1\n").unwrap();
        assert!(read_pid_file(&f).is_err());
        std::fs::write(&f, "abc").unwrap();
        assert!(read_pid_file(&f).is_err());
        std::fs::write(&f, "1234\n").unwrap();
        assert_eq!(read_pid_file(&f).unwrap(), 1234);
        assert!(read_pid_file(&d.path().join("none")).is_err());
    }
}
