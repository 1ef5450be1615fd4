//! Shared by the integration tests: temp dirs, running the binary, a real php-fpm.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_fcgi-resilient-helper");

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub struct TempDir(PathBuf);

impl TempDir {
    /// 0755 so that www-data (php-fpm workers, Apache checks) can reach inside.
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("fcgi-helper-it-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The newest /usr/sbin/php-fpm* binary.
pub fn php_fpm() -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/usr/sbin")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("php-fpm")))
        .collect();
    v.sort_by_key(|p| {
        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("").trim_start_matches("php-fpm").to_string();
        n.split('.').map(|x| x.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>()
    });
    v.pop()
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("addr").port()
}

pub fn fpm_conf(dir: &Path, listen: &str) -> PathBuf {
    let conf = dir.join("php-fpm.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\nerror_log = {d}/fpm-error.log\npid = {d}/fpm.pid\ndaemonize = no\n\n\
             [test]\nuser = www-data\ngroup = www-data\nlisten = {listen}\nlisten.mode = 0666\n\
             listen.allowed_clients = 127.0.0.1\npm = static\npm.max_children = 2\nping.path = /ping\n",
            d = dir.display()
        ),
    )
    .expect("write fpm conf");
    conf
}

/// php-fpm in the foreground, in its own process group, killed (group) on drop
/// so a failing test never leaves it behind.
pub struct Fpm {
    child: Child,
}

impl Fpm {
    pub fn start(conf: &Path) -> Fpm {
        use std::os::unix::process::CommandExt;
        let bin = php_fpm().expect("php-fpm binary");
        let child = Command::new(bin)
            .args(["-n", "-y"])
            .arg(conf)
            .arg("-F")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn php-fpm");
        Fpm { child }
    }
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Fpm {
    fn drop(&mut self) {
        let pg = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pg, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

pub fn wait_for_path(p: &Path, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if p.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
