//! A real systemd (the host's, booted in systemd-nspawn on an overlay of `/` whose writes go to
//! a tmpfs): for tests and measurements of units, drop-ins and socket activation, which need
//! a systemd that runs. The host's /etc, packages and services are never touched; one host
//! directory (the test's work directory) is bound at the same path inside. The container has
//! its own network namespace (loopback only); `in_network` runs load clients inside it.
//! Powered off when dropped, also when a test panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Container {
    boot: Child,
    pid1: u32,
    log: PathBuf,
}

/// Why a real systemd cannot be booted here, if it cannot: the caller skips with this message.
pub fn unavailable() -> Option<String> {
    if !nix_is_root() {
        return Some("not root: systemd-nspawn needs root".into());
    }
    for tool in ["systemd-nspawn", "nsenter", "unshare", "setsid"] {
        let found = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"].iter().any(|d| Path::new(d).join(tool).exists());
        if !found {
            return Some(format!("{tool} not installed (scripts/install-deps.sh installs systemd systemd-container)"));
        }
    }
    if !Path::new("/lib/systemd/systemd").exists() && !Path::new("/usr/lib/systemd/systemd").exists() {
        return Some("systemd not installed (scripts/install-deps.sh installs it)".into());
    }
    None
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn boot_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/systemd-container-boot.sh")
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

impl Container {
    /// Boots, binds `bind` read-write, and waits until systemd is up.
    pub fn boot(bind: &Path) -> Container {
        let log = bind.join("container-boot.log");
        let out = std::fs::File::create(&log).expect("boot log");
        let boot = Command::new("setsid")
            .args(["unshare", "--mount", "--propagation", "private"])
            .arg(boot_script())
            .arg(bind)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("boot log"))
            .stderr(out)
            .spawn()
            .expect("systemd-nspawn");
        let mut container = Container { pid1: 0, boot, log };
        // setsid, unshare and the script exec one another: the child is systemd-nspawn, and the
        // container's PID 1 its child running systemd (a first child of nspawn's own set-up is
        // short-lived: taken for PID 1, every later nsenter failed).
        let started = Instant::now();
        while container.pid1 == 0 {
            if let Ok(Some(status)) = container.boot.try_wait() {
                panic!("systemd-nspawn exited ({status}): {}", container.boot_log());
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no container PID 1: {}", container.boot_log());
            let is_systemd =
                |pid: &u32| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "systemd");
            container.pid1 = children(container.boot.id()).into_iter().find(is_systemd).unwrap_or(0);
            std::thread::sleep(Duration::from_millis(50));
        }
        // Asked again and again rather than with --wait, which once missed the end of the start-up
        // and waited on; until its bus is up, systemctl cannot even ask (empty answer).
        let mut state = String::new();
        while !(state == "running" || state == "degraded") {
            assert!(started.elapsed() < Duration::from_secs(90), "systemd state `{state}`: {}", container.boot_log());
            std::thread::sleep(Duration::from_millis(100));
            let up = container.sh("timeout 5 systemctl is-system-running");
            state = String::from_utf8_lossy(&up.stdout).trim().to_string();
        }
        // Long tests meet no apt timer.
        container.sh("systemctl stop apt-daily.timer apt-daily-upgrade.timer 2>/dev/null");
        container
    }

    fn boot_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs a bash script inside (all namespaces of PID 1).
    pub fn sh(&self, script: &str) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.pid1.to_string(), "-a", "bash", "-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    /// Like `sh`; panics with its output when it fails. Returns stdout.
    pub fn sh_ok(&self, script: &str) -> String {
        let out = self.sh(script);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "`{script}` failed ({}):\n{text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// Runs `f` on a thread inside the container's network namespace; threads it starts are
    /// inside too (a new thread shares its creator's namespaces), so a load started there
    /// reaches servers listening on the container's loopback.
    pub fn in_network<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let ns = std::fs::File::open(format!("/proc/{}/ns/net", self.pid1)).expect("container network namespace");
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    use std::os::fd::AsRawFd;
                    // SAFETY: `ns` is an open namespace file for the duration of the call;
                    // setns changes only this thread's network namespace, and this thread
                    // exists only to run `f` there.
                    let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
                    f()
                })
                .join()
                .expect("thread in the container's network")
        })
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.sh("systemctl poweroff");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.boot.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Our own systemd-nspawn: it takes the container with it.
        let _ = self.boot.kill();
        let _ = self.boot.wait();
    }
}
