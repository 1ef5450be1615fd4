//! `stop`: stop PHP-FPM without cutting a request.
//!
//! PHP-FPM's own stop (SIGTERM, or SIGQUIT past `process_control_timeout`) kills the scripts
//! it is running and resets the connections still queued on its sockets. Those requests may
//! have reached PHP, so nobody may repeat them. Instead: rename each pool's Unix socket
//! aside (new connects get ENOENT, which mod_fcgi_resilient waits out as for a stopped
//! backend), wait until /proc/net/unix shows no connection to the socket any more — every
//! accepted request answered, the backlog empty — and only then send SIGTERM. The waiting
//! requests are served by the next PHP-FPM as soon as it listens.
//!
//! Renaming rather than unlinking keeps the way back: if anything fails before the SIGTERM,
//! or the helper is interrupted, the sockets go back in place and PHP-FPM keeps serving.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::Pid;

use crate::fpm_config::{self, Listen, LoadOptions};
use crate::fpm_process;
use crate::options::{duration_value, DEFAULT_TIMEOUT};
use crate::unix_sockets;

#[derive(Args, Debug, Clone, PartialEq)]
pub struct StopArgs {
    #[command(flatten)]
    pub pid: PidChoice,
    /// Its main config (repeatable: the pools of every one are drained; default: the one in
    /// the master's process title)
    #[arg(long = "fpm-config", value_name = "FILE")]
    pub fpm_configs: Vec<PathBuf>,
    /// Resolve relative include= globs against DIR, like php-fpm -p
    #[arg(long = "fpm-prefix", value_name = "DIR")]
    pub fpm_prefix: Option<PathBuf>,
    /// Longest wait for the connections; then the remaining requests are cut and their number
    /// reported
    #[arg(long, short = 't', value_name = "DURATION", default_value = DEFAULT_TIMEOUT, value_parser = duration_value)]
    pub timeout: Duration,
}

/// Where `stop` finds the master's pid: exactly one of the two.
#[derive(Args, Debug, Clone, PartialEq)]
#[group(required = true, multiple = false)]
pub struct PidChoice {
    /// The master (systemd: --pid=${MAINPID}; empty: nothing to stop)
    #[arg(long, value_name = "PID", value_parser = parse_main_pid)]
    pub pid: Option<MainPid>,
    /// File holding the master's pid
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
}

/// `--pid`'s value: a pid, or nothing (systemd's $MAINPID of a service whose main process is
/// gone).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MainPid {
    Pid(i32),
    None,
}

fn parse_main_pid(text: &str) -> Result<MainPid, String> {
    match text.trim() {
        "" => Ok(MainPid::None),
        pid => crate::reload::parse_pid(pid).map(MainPid::Pid),
    }
}

const PREFIX: &str = "fcgi-resilient-helper: stop";

/// A socket path taken away, and where it is meanwhile.
struct Aside {
    path: PathBuf,
    aside: PathBuf,
}

fn aside_name(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_string_lossy();
    Some(path.with_file_name(format!(".{name}.fcgi-resilient-draining")))
}

fn restore(asides: &[Aside]) {
    for a in asides {
        match std::fs::rename(&a.aside, &a.path) {
            Ok(()) => eprintln!("{PREFIX}: {} put back; php-fpm keeps serving", a.path.display()),
            Err(e) => eprintln!("{PREFIX}: cannot put {} back to {}: {e}", a.aside.display(), a.path.display()),
        }
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether SIGINT, SIGTERM or SIGHUP came since `catch_interrupts`.
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C or a kill of the helper while draining must put the sockets back, not leave
/// PHP-FPM running unreachable (and `deploy` must resume).
pub(crate) fn catch_interrupts() {
    let action = SigAction::new(SigHandler::Handler(on_signal), SaFlags::empty(), SigSet::empty());
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(signal, &action) };
    }
}

fn resolve_pid(choice: &PidChoice) -> Result<Option<i32>, String> {
    match (&choice.pid, &choice.pid_file) {
        (Some(MainPid::Pid(pid)), _) => Ok(Some(*pid)),
        (Some(MainPid::None), _) => Ok(None),
        (None, Some(file)) => crate::reload::read_pid_file(file).map(Some),
        (None, None) => Err("--pid PID or --pid-file FILE is required".to_string()),
    }
}

/// The Unix socket paths of the master's pools; TCP pools are named on stderr.
fn pool_sockets(configs: &[PathBuf], prefix: Option<&PathBuf>) -> Result<Vec<PathBuf>, String> {
    let mut sockets: Vec<PathBuf> = Vec::new();
    let loaded = fpm_config::load_all(configs, &LoadOptions { prefix: prefix.cloned() })?;
    for pool in loaded.iter().flat_map(|config| &config.pools) {
        match pool.listen() {
            Some((Ok(Listen::Unix(path)), _)) if path.is_absolute() => {
                if !sockets.contains(&path) {
                    sockets.push(path);
                }
            }
            Some((Ok(Listen::Unix(path)), setting)) => {
                return Err(format!("{}: relative socket path {}: not supported", setting.loc(), path.display()))
            }
            Some((Ok(tcp), setting)) => eprintln!(
                "{PREFIX}: pool [{}] listens on TCP {tcp} ({}): a TCP port cannot be taken away while php-fpm \
                 listens on it, so this pool is not drained: requests running there when it stops are cut",
                pool.name,
                setting.loc()
            ),
            Some((Err(e), setting)) => return Err(format!("{}: {e}", setting.loc())),
            None => return Err(format!("{}: pool [{}] has no `listen` setting", pool.loc(), pool.name)),
        }
    }
    Ok(sockets)
}

/// Renames every socket aside; on the first failure puts back what was moved.
fn take_away(sockets: &[PathBuf]) -> Result<Vec<Aside>, String> {
    use std::os::unix::fs::FileTypeExt;
    let mut asides = Vec::new();
    for path in sockets {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {}
            Ok(_) => {
                restore(&asides);
                return Err(format!("{} is not a socket; not touching it", path.display()));
            }
            Err(_) => {
                eprintln!("{PREFIX}: {} does not exist (already taken away?); draining what is left", path.display());
                continue;
            }
        }
        let Some(aside) = aside_name(path) else { continue };
        if let Err(e) = std::fs::rename(path, &aside) {
            restore(&asides);
            return Err(format!("cannot move {} aside: {e}", path.display()));
        }
        asides.push(Aside { path: path.clone(), aside });
    }
    Ok(asides)
}

pub(crate) enum Drained {
    /// With the number of connections open when the sockets were moved aside.
    Empty(usize),
    TimedOut(usize),
    Interrupted,
}

fn open_connections(sockets: &[PathBuf]) -> Result<usize, String> {
    Ok(unix_sockets::connections(&unix_sockets::read()?, sockets).values().sum())
}

/// Polls `open` (connections counted in /proc/net) until it says none is left, the timeout
/// passes or the helper is interrupted; `what` names them on the progress line.
pub(crate) fn drain(
    what: &str,
    mut open: impl FnMut() -> Result<usize, String>,
    timeout: Duration,
    start: Instant,
) -> Result<Drained, String> {
    let tty = std::io::stderr().is_terminal();
    let deadline = start + timeout;
    let mut last_progress: Option<Instant> = None;
    let mut at_start = None;
    let end = |line_shown: bool| {
        if line_shown {
            eprint!("\r\x1b[K");
        }
    };
    loop {
        let open = open()?;
        let at_start = *at_start.get_or_insert(open);
        let now = Instant::now();
        if open == 0 || now >= deadline || INTERRUPTED.load(Ordering::SeqCst) {
            end(last_progress.is_some());
            return Ok(match (open, INTERRUPTED.load(Ordering::SeqCst)) {
                (_, true) => Drained::Interrupted,
                (0, _) => Drained::Empty(at_start),
                (n, _) => Drained::TimedOut(n),
            });
        }
        if tty && last_progress.is_none_or(|p| now.duration_since(p) >= Duration::from_secs(1)) {
            eprint!(
                "\r\x1b[Kdraining {what} ({}s of {:?}): {open} connection(s) open",
                now.duration_since(start).as_secs(),
                timeout
            );
            let _ = std::io::stderr().flush();
            last_progress = Some(now);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn remove_asides(asides: &[Aside]) {
    for a in asides {
        let _ = std::fs::remove_file(&a.aside);
    }
}

/// Everything up to the SIGTERM; on error nothing has changed (sockets restored).
fn drain_and_signal(o: &StopArgs, pid: i32, configs: &[PathBuf]) -> Result<(), String> {
    let sockets = pool_sockets(configs, o.fpm_prefix.as_ref())?;
    let start = Instant::now();
    let asides = take_away(&sockets)?;
    let drained = match drain("php-fpm", || open_connections(&sockets), o.timeout, start) {
        Ok(d) => d,
        Err(e) => {
            restore(&asides);
            return Err(e);
        }
    };
    match drained {
        Drained::Interrupted => {
            restore(&asides);
            return Err("interrupted; php-fpm left running".to_string());
        }
        Drained::Empty(n) if !sockets.is_empty() => {
            eprintln!("{PREFIX}: drained {n} connection(s) in {:.2}s", start.elapsed().as_secs_f64())
        }
        Drained::Empty(_) => {}
        Drained::TimedOut(n) => eprintln!(
            "{PREFIX}: {n} connection(s) still open after {:?} (requests longer than --timeout, or \
             kept-alive connections); stopping anyway: those requests are cut",
            o.timeout
        ),
    }
    if fpm_process::has_exited(pid) {
        eprintln!("{PREFIX}: php-fpm master {pid} exited by itself while draining");
        remove_asides(&asides);
        return Ok(());
    }
    if let Err(e) = kill(Pid::from_raw(pid), Signal::SIGTERM) {
        restore(&asides);
        return Err(format!("cannot signal php-fpm master {pid}: {e}"));
    }
    // The master still holds the listening sockets; the names are no longer needed.
    remove_asides(&asides);
    Ok(())
}

pub fn run(o: &StopArgs) -> i32 {
    let pid = match resolve_pid(&o.pid) {
        Ok(Some(pid)) => pid,
        Ok(None) => {
            println!("no php-fpm main process (empty --pid): nothing to stop");
            return 0;
        }
        Err(e) => {
            eprintln!("{PREFIX}: {e}");
            return 1;
        }
    };
    let title_config = match fpm_process::master(pid) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{PREFIX}: {e}; not signalling it");
            return 1;
        }
    };
    let configs = match (o.fpm_configs.as_slice(), title_config) {
        ([], Some(from_title)) => vec![from_title],
        ([], None) => {
            eprintln!("{PREFIX}: cannot tell php-fpm {pid}'s config from its process title; use --fpm-config");
            return 1;
        }
        (given, _) => given.to_vec(),
    };
    catch_interrupts();
    if let Err(e) = drain_and_signal(o, pid, &configs) {
        eprintln!("{PREFIX}: {e}");
        return 1;
    }
    let exit_limit = o.timeout.max(Duration::from_secs(10));
    if !fpm_process::wait_exit(pid, exit_limit) {
        eprintln!("{PREFIX}: php-fpm master {pid} did not exit within {exit_limit:?} of SIGTERM");
        return 1;
    }
    println!("php-fpm {pid} stopped");
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aside_names_stay_in_the_socket_directory() {
        assert_eq!(
            aside_name(Path::new("/run/php/php8.2-fpm.sock")),
            Some(PathBuf::from("/run/php/.php8.2-fpm.sock.fcgi-resilient-draining"))
        );
    }

    #[test]
    fn a_failed_move_puts_back_what_was_moved() {
        let d = harness::WorkDir::new("stop-aside");
        let good = d.join("a.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&good).unwrap();
        let plain = d.join("b.sock");
        std::fs::write(&plain, "not a socket").unwrap();
        let e = take_away(&[good.clone(), plain]).err().unwrap();
        assert!(e.contains("not a socket"), "{e}");
        assert!(good.exists(), "the first socket must be back in place");
        assert!(!aside_name(&good).unwrap().exists());
    }
}
