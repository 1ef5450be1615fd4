//! `socket-keeper run`: the keeper without systemd (containers, sysvinit). The helper binds each
//! pool's socket itself, runs PHP-FPM under them (the same FPM_SOCKETS hand-over and private
//! keys as the systemd units), and stays PHP-FPM's parent: it starts it again when it exits
//! for any reason other than a stop, so the sockets are never closed and connects queue.
//!
//! Signals to the helper: SIGUSR2 reloads (after `php-fpm --test`: a broken config is refused,
//! the running master serves on), SIGHUP restarts PHP-FPM gracefully (SIGQUIT, then a new
//! master), SIGTERM/SIGINT/SIGQUIT stop it gracefully and then close and remove the sockets.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::socket::{listen, Backlog};
use nix::unistd::Pid;

use super::plan::{self, KeptPool, ServicePlan};
use crate::fpm_config::{self, Listen, LoadOptions};

#[derive(clap::Args, Debug, Clone, PartialEq, Default)]
pub struct RunOpts {
    /// PHP-FPM's main config (default: the one its command names, else its built-in default)
    #[arg(long, value_name = "FILE")]
    pub fpm_config: Option<PathBuf>,
    /// PHP-FPM's prefix (its --prefix)
    #[arg(long = "fpm-prefix", value_name = "DIR")]
    pub prefix: Option<PathBuf>,
    /// Where the generated config goes
    #[arg(long, value_name = "DIR", default_value = "/run/fcgi-resilient/socket-keeper")]
    pub runtime_dir: PathBuf,
    /// PHP-FPM's command line
    #[arg(last = true, required = true, value_name = "PHP-FPM COMMAND")]
    pub command: Vec<String>,
}

/// Pause before starting a PHP-FPM that exited unasked: a broken config is retried this often.
const RESTART_DELAY: Duration = Duration::from_millis(500);

/// The command with PHP-FPM kept in the foreground: a daemonizing master would look like an
/// exit and be started twice.
fn foreground(command: &str) -> String {
    let words: Vec<&str> = command.split_whitespace().collect();
    if words.iter().any(|w| *w == "-F" || *w == "--nodaemonize") {
        command.to_string()
    } else {
        format!("{command} --nodaemonize")
    }
}

/// Binds and listens like PHP-FPM would, with the pool's owner, group, mode and backlog applied
/// *before* the socket appears at its public path (bound under a temporary name, then renamed):
/// no moment of EACCES or ENOENT for a client.
fn bind(pool: &KeptPool) -> Result<OwnedFd, String> {
    let backlog = pool.socket.backlog.and_then(|b| i32::try_from(b).ok()).map(Backlog::new);
    let backlog = match backlog {
        Some(Ok(b)) => b,
        _ => Backlog::MAXCONN,
    };
    let fd: OwnedFd = match &pool.public {
        Listen::Unix(path) => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(format!("{} is in use: something already accepts there", path.display()));
            }
            let temporary = path.with_file_name(format!(
                ".{}.keeper-{}",
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                std::process::id()
            ));
            let _ = std::fs::remove_file(&temporary);
            let listener = std::os::unix::net::UnixListener::bind(&temporary)
                .map_err(|e| format!("bind {}: {e}", temporary.display()))?;
            let mode = pool.socket.mode.as_deref().and_then(|m| u32::from_str_radix(m, 8).ok()).unwrap_or(0o660);
            std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(mode))
                .map_err(|e| format!("chmod {}: {e}", temporary.display()))?;
            let uid = pool.socket.user.as_deref().map(crate::users::user).transpose()?.map(|u| u.uid);
            let gid = pool.socket.group.as_deref().map(crate::users::group).transpose()?.map(|g| g.gid);
            nix::unistd::chown(&temporary, uid, gid).map_err(|e| format!("chown {}: {e}", temporary.display()))?;
            if !pool.socket.acl.is_empty() {
                let ok = Command::new("setfacl")
                    .args(["-m", &pool.socket.acl.join(",")])
                    .arg(&temporary)
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    return Err(format!("setfacl on {} failed", temporary.display()));
                }
            }
            std::fs::rename(&temporary, path).map_err(|e| format!("rename to {}: {e}", path.display()))?;
            listener.into()
        }
        Listen::Tcp { .. } => std::net::TcpListener::bind(pool.socket.listen_stream.as_str())
            .map_err(|e| format!("bind {}: {e}", pool.socket.listen_stream))?
            .into(),
    };
    // std listened with its own backlog; listen() again sets the pool's.
    listen(&fd, backlog).map_err(|e| format!("listen {}: {e}", pool.socket.listen_stream))?;
    // Inherited by PHP-FPM across exec.
    nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()))
        .map_err(|e| format!("fcntl: {e}"))?;
    Ok(fd)
}

struct Supervisor {
    plan: ServicePlan,
    /// (key, fd) of every kept socket.
    sockets: Vec<(String, OwnedFd)>,
}

impl Supervisor {
    fn fpm_sockets(&self) -> String {
        self.sockets.iter().map(|(key, fd)| format!("{key}={}", fd.as_raw_fd())).collect::<Vec<_>>().join(",")
    }

    fn start(&self) -> Option<Child> {
        let words: Vec<&str> = self.plan.exec_start.split_whitespace().collect();
        let (program, args) = words.split_first()?;
        // In a process group of its own, whose id is the master's pid: its workers stay in it, so
        // that those a killed master leaves behind can be told to go (`end_orphaned_workers`).
        let mut command = Command::new(program);
        command.args(args).env("FPM_SOCKETS", self.fpm_sockets()).process_group(0);
        match command.spawn() {
            Ok(child) => {
                eprintln!("socket-keeper run: php-fpm started (pid {})", child.id());
                Some(child)
            }
            Err(e) => {
                eprintln!("socket-keeper run: {program}: {e}");
                None
            }
        }
    }

    /// A master that exits unasked (`kill -9`, a crash) leaves its workers running, and they
    /// would go on accepting on the kept sockets, outside any master, with whatever code they
    /// loaded. SIGQUIT to its process group: each finishes the request it runs, closes its
    /// socket and exits (PHP-FPM's graceful stop of a worker). After a stop it asked for, the
    /// group is empty already and this changes nothing.
    fn end_orphaned_workers(master: &Child) {
        let group = nix::unistd::Pid::from_raw(master.id() as i32);
        match nix::sys::signal::killpg(group, Signal::SIGQUIT) {
            Ok(()) => eprintln!("socket-keeper run: the workers the old master left are told to finish and exit"),
            Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => eprintln!("socket-keeper run: cannot signal the old master's workers: {e}"),
        }
    }

    /// `php-fpm --test` of the generated config: a reload with a broken one would end the master.
    fn config_ok(&self) -> bool {
        let binary = &self.plan.start.binary;
        let mut test = Command::new(binary);
        if let Some(p) = &self.plan.start.prefix {
            test.arg("--prefix").arg(p);
        }
        test.arg("--test").arg("--fpm-config").arg(&self.plan.generated_config);
        test.status().is_ok_and(|s| s.success())
    }

    /// After a stop: the sockets' paths, and the generated config (the status page reads it
    /// to name kept backends).
    fn remove_public_paths(&self) {
        let _ = std::fs::remove_file(&self.plan.generated_config);
        for pool in &self.plan.pools {
            if let Listen::Unix(path) = &pool.public {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

fn signal_child(child: &Option<Child>, signal: Signal) {
    if let Some(c) = child {
        if let Ok(pid) = i32::try_from(c.id()) {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }
}

/// Plans the pools from the real config and binds their sockets.
fn prepare(o: &RunOpts) -> Result<Supervisor, String> {
    let command = foreground(&o.command.join(" "));
    let mut start = crate::systemd::parse_exec_start(&format!("ExecStart={command}"))
        .ok_or("socket-keeper run: missing `-- PHP-FPM COMMAND`")?;
    if let Some(c) = &o.fpm_config {
        start.config = c.clone();
    }
    if o.prefix.is_some() {
        start.prefix = o.prefix.clone();
    }
    let config =
        fpm_config::load(&start.config, &LoadOptions { prefix: start.prefix.clone() }).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&o.runtime_dir).map_err(|e| format!("{}: {e}", o.runtime_dir.display()))?;
    let name = start.binary.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "php-fpm".into());
    let generated = o.runtime_dir.join(format!("{name}.conf"));
    let plan = plan::plan_service(&name, &command, &start, &config, &generated, None);
    for s in &plan.skipped {
        eprintln!("socket-keeper run: {s}; left with its own socket");
    }
    std::fs::write(&generated, plan::render_config(&plan)).map_err(|e| format!("{}: {e}", generated.display()))?;
    let mut sockets = Vec::new();
    for pool in &plan.pools {
        sockets.push((pool.key.clone(), bind(pool).map_err(|e| format!("pool [{}]: {e}", pool.pool))?));
    }
    Ok(Supervisor { plan, sockets })
}

pub fn run(o: &RunOpts) -> i32 {
    // Signals are taken with sigwait: blocked here, and unblocked again in PHP-FPM (std resets
    // the signal mask of the processes it spawns).
    let mut signals = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT, Signal::SIGHUP, Signal::SIGUSR2] {
        signals.add(s);
    }
    if let Err(e) = signals.thread_block() {
        eprintln!("socket-keeper run: cannot block signals: {e}");
        return 1;
    }
    let supervisor = match prepare(o) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("socket-keeper run: {e}");
            return 1;
        }
    };
    eprintln!(
        "socket-keeper run: holding {} socket(s): FPM_SOCKETS={}",
        supervisor.sockets.len(),
        supervisor.fpm_sockets()
    );
    let mut child = supervisor.start();
    let mut stopping = false;
    let mut restarting = false;
    loop {
        if child.is_none() && !stopping {
            std::thread::sleep(RESTART_DELAY);
            child = supervisor.start();
            continue;
        }
        let signal = match signals.wait() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("socket-keeper run: sigwait: {e}");
                continue;
            }
        };
        match signal {
            Signal::SIGCHLD => {
                let exited = child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                if let Some(status) = exited {
                    if let Some(old) = child.take() {
                        Supervisor::end_orphaned_workers(&old);
                    }
                    if stopping {
                        supervisor.remove_public_paths();
                        eprintln!("socket-keeper run: php-fpm stopped ({status}); sockets closed");
                        return 0;
                    }
                    if restarting {
                        restarting = false;
                        child = supervisor.start();
                    } else {
                        eprintln!("socket-keeper run: php-fpm exited ({status}); starting it again, its sockets kept");
                    }
                }
                // Whatever else ended (we may be PID 1 in a container): reaped.
                while let Ok(status) = nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                    if status == nix::sys::wait::WaitStatus::StillAlive {
                        break;
                    }
                }
            }
            Signal::SIGUSR2 => {
                if supervisor.config_ok() {
                    signal_child(&child, Signal::SIGUSR2);
                } else {
                    eprintln!(
                        "socket-keeper run: reload refused: `php-fpm --test` failed; the running master serves on"
                    );
                }
            }
            Signal::SIGHUP => {
                restarting = child.is_some();
                signal_child(&child, Signal::SIGQUIT);
            }
            _ => {
                stopping = true;
                if child.is_none() {
                    supervisor.remove_public_paths();
                    return 0;
                }
                signal_child(&child, Signal::SIGQUIT);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_fpm_is_kept_in_the_foreground() {
        assert_eq!(foreground("/usr/sbin/php-fpm8.2 -y /x.conf"), "/usr/sbin/php-fpm8.2 -y /x.conf --nodaemonize");
        assert_eq!(foreground("/usr/sbin/php-fpm -F"), "/usr/sbin/php-fpm -F");
    }

    #[test]
    fn a_unix_socket_appears_with_its_owner_and_mode_and_a_busy_one_is_refused() {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let work = harness::WorkDir::new("keeper-run-bind");
        let path = work.path().join("pool.sock");
        let pool = KeptPool {
            pool: "www".into(),
            listen_at: "x:1".into(),
            public: Listen::Unix(path.clone()),
            fd_name: "www".into(),
            socket_unit: String::new(),
            listen_override: None,
            key: "k".into(),
            socket: plan::SocketSettings {
                listen_stream: path.display().to_string(),
                user: Some("nobody".into()),
                group: Some("nogroup".into()),
                mode: Some("0640".into()),
                backlog: Some(7),
                ..Default::default()
            },
        };
        let fd = bind(&pool).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o7777, 0o640);
        assert_eq!(crate::users::user_name(meta.uid()), "nobody");
        assert!(bind(&pool).unwrap_err().contains("in use"), "a second keeper on the same path is refused");
        drop(fd);
    }
}
