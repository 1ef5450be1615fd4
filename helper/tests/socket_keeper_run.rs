//! `socket-keeper run`, the keeper without systemd: the helper binds the pool's socket and runs a
//! real php-fpm under it, Apache *without* mod_fcgi_resilient in front. GETs and 64 KiB POSTs
//! through a `kill -9` of the master (only what PHP was running may be lost, no failed connect),
//! a graceful restart (SIGHUP) and a broken config (reload refused, a restart retried until the
//! config is fixed) meet no failure; SIGTERM stops PHP-FPM and removes the socket.

// Only BIN is used here.
#[allow(dead_code)]
mod common;

use std::os::unix::fs::FileTypeExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use harness::apache::{Apache, ApacheConfig, ModulePlacement};
use harness::load::{failed_count, failures, LoadSpec, Record, RunningLoad};
use harness::{Listen, PhpFpm, WorkDir};

const WORKERS: usize = 4;

/// The helper, stopped (and with it PHP-FPM) when the test ends, also when it panics.
struct Keeper(Child);

impl Keeper {
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill() on the pid of our own child, which has not been waited for yet.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// The php-fpm master: the helper's child.
    fn master(&self) -> Option<i32> {
        let pid = self.pid();
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.signal(libc::SIGTERM);
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn around(apache: &Apache, name: &str, event: impl FnOnce()) -> (Vec<Record>, Vec<Record>) {
    let epoch = Instant::now();
    let spec = |path: &str, clients| LoadSpec {
        target: apache.address(),
        path: path.into(),
        clients,
        duration: Duration::ZERO,
        timeout: Duration::from_secs(30),
    };
    let gets = RunningLoad::start(&spec("/sleep.php?ms=20", 8), epoch);
    let posts = RunningLoad::start_posts(&spec("/slow-echo.php", 2), epoch, 64 * 1024);
    std::thread::sleep(Duration::from_millis(800));
    event();
    let gets = gets.stop_after(Duration::from_millis(1500));
    let posts = posts.stop_after(Duration::ZERO);
    eprintln!(
        "{name}: {} GETs ({:?} failed), {} POSTs ({:?} failed)",
        gets.len(),
        failures(&gets),
        posts.len(),
        failures(&posts)
    );
    (gets, posts)
}

fn failed_connects(apache: &Apache) -> usize {
    apache.error_log().lines().filter(|l| l.contains("AH02454") || l.contains("AH00957")).count()
}

#[test]
fn without_systemd_the_helper_keeps_the_socket_through_crashes_restarts_and_a_broken_config() {
    common::require_root();
    let work = WorkDir::new("socket-keeper-run");
    let socket = work.join("php.sock");
    keeps_its_socket_through_crashes_restarts_and_a_broken_config(&work, Listen::Unix(socket));
}

/// The same with a TCP pool on 127.0.0.1: its address is the key PHP-FPM finds its socket under.
#[test]
fn without_systemd_a_tcp_pool_keeps_its_port_through_crashes_restarts_and_a_broken_config() {
    common::require_root();
    let work = WorkDir::new("socket-keeper-run-tcp");
    keeps_its_socket_through_crashes_restarts_and_a_broken_config(&work, Listen::Tcp(harness::free_port()));
}

fn keeps_its_socket_through_crashes_restarts_and_a_broken_config(work: &WorkDir, listen: Listen) {
    let fpm = PhpFpm::new(work.path(), &work.docroot(), listen.clone(), WORKERS as u32);
    let config = fpm.config_file().to_path_buf();
    let log = std::fs::File::create(work.join("keeper.log")).unwrap();
    let keeper = Keeper(
        Command::new(common::BIN)
            .args(["socket-keeper", "run", "--runtime-dir"])
            .arg(work.join("runtime"))
            .arg("--")
            .arg(PhpFpm::binary())
            .arg("-n")
            .arg("-y")
            .arg(&config)
            .arg("-F")
            .stderr(log.try_clone().unwrap())
            .stdout(log)
            .spawn()
            .expect("helper"),
    );
    let keeper_log = || std::fs::read_to_string(work.join("keeper.log")).unwrap_or_default();
    harness::wait_until("php-fpm under the keeper accepting", Duration::from_secs(20), || {
        listen.accepts().then_some(())
    });
    let mut apache_config = ApacheConfig::new(&work.docroot(), &listen.proxy_handler());
    apache_config.module = ModulePlacement::NotLoaded;
    apache_config.log_level = "warn".into();
    let apache = Apache::start(&work.subdir("apache"), apache_config);

    // kill -9 of the master: the helper starts another one under the same socket, and the
    // workers the killed master left finish and exit instead of accepting on it for good.
    let master = keeper.master().expect("php-fpm master");
    let old_workers = children_of(master);
    assert!(!old_workers.is_empty(), "the master has workers");
    let (gets, posts) = around(&apache, "kill -9", || {
        // SAFETY: kill() of the php-fpm master this test started (through the helper).
        unsafe { libc::kill(master, libc::SIGKILL) };
    });
    assert_eq!(failed_connects(&apache), 0, "{}\n{}", apache.error_log(), keeper_log());
    assert!(failed_count(&gets) + failed_count(&posts) <= WORKERS, "more lost than were in PHP");
    assert!(gets.len() > 50 && posts.len() > 10, "too little load to tell");
    assert_ne!(keeper.master(), Some(master), "a new master");
    harness::wait_until("the killed master's workers gone", Duration::from_secs(30), || {
        old_workers.iter().all(|pid| !is_running(*pid)).then_some(())
    });

    // A graceful restart.
    let (gets, posts) = around(&apache, "SIGHUP", || keeper.signal(libc::SIGHUP));
    assert_eq!((failed_connects(&apache), failed_count(&gets), failed_count(&posts)), (0, 0, 0), "{}", keeper_log());

    // A broken config: the reload is refused; a restart fails and is retried until it is fixed.
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{good}pm = broken\n")).unwrap();
    let before = keeper.master();
    keeper.signal(libc::SIGUSR2);
    std::thread::sleep(Duration::from_millis(500));
    assert!(keeper_log().contains("reload refused"), "{}", keeper_log());
    assert_eq!(keeper.master(), before, "the running master serves on");
    let (gets, posts) = around(&apache, "broken config, restart, fixed", || {
        keeper.signal(libc::SIGHUP);
        std::thread::sleep(Duration::from_secs(1));
        std::fs::write(&config, &good).unwrap();
    });
    assert_eq!((failed_connects(&apache), failed_count(&gets), failed_count(&posts)), (0, 0, 0), "{}", keeper_log());
    assert!(keeper_log().contains("exited"), "the broken master did exit: {}", keeper_log());

    // SIGTERM: PHP-FPM stopped gracefully, the socket closed and removed.
    let mut keeper = keeper;
    keeper.signal(libc::SIGTERM);
    let status =
        harness::wait_until("the keeper exiting", Duration::from_secs(20), || keeper.0.try_wait().ok().flatten());
    assert!(status.success(), "{}", keeper_log());
    match &listen {
        Listen::Unix(socket) => {
            assert!(!std::fs::symlink_metadata(socket).is_ok_and(|m| m.file_type().is_socket()), "socket removed")
        }
        Listen::Tcp(_) => assert!(!listen.accepts(), "port closed"),
    }
    let generated: Vec<_> = std::fs::read_dir(work.join("runtime")).unwrap().flatten().collect();
    assert!(generated.is_empty(), "the generated config goes too: {generated:?}");
}

/// The processes whose parent is `parent`, from /proc.
fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| parent_of(*pid) == Some(parent))
        .collect()
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// Alive, not a zombie waiting to be reaped.
fn is_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}
