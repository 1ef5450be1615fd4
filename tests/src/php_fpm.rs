//! A php-fpm pool started from Debian's binary with a config of our own (`-n -y`), listening
//! on a Unix socket in the work directory or on 127.0.0.1.

use crate::daemon::{wait_until, Daemon};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub enum Listen {
    Unix(PathBuf),
    Tcp(u16),
}

impl Listen {
    /// The value of the pool's `listen` setting: a socket path, or 127.0.0.1:port.
    pub fn address(&self) -> String {
        match self {
            Listen::Unix(path) => path.display().to_string(),
            Listen::Tcp(port) => format!("127.0.0.1:{port}"),
        }
    }

    /// The target of an Apache `SetHandler` that sends requests to this pool.
    pub fn proxy_handler(&self) -> String {
        match self {
            Listen::Unix(path) => format!("proxy:unix:{}|fcgi://localhost", path.display()),
            Listen::Tcp(port) => format!("proxy:fcgi://127.0.0.1:{port}"),
        }
    }

    /// The backend's name as the module's status page shows it.
    pub fn status_name(&self) -> String {
        match self {
            Listen::Unix(path) => format!("unix:{}", path.display()),
            Listen::Tcp(port) => format!("127.0.0.1:{port}"),
        }
    }

    pub fn accepts(&self) -> bool {
        match self {
            Listen::Unix(path) => UnixStream::connect(path).is_ok(),
            Listen::Tcp(port) => TcpStream::connect(("127.0.0.1", *port)).is_ok(),
        }
    }
}

pub struct PhpFpm {
    /// The (first) pool's address.
    pub listen: Listen,
    /// Every pool's address, in config order: one for [`PhpFpm::new`], many for
    /// [`PhpFpm::with_pools`].
    listens: Vec<Listen>,
    config: PathBuf,
    dir: PathBuf,
    daemon: Option<Daemon>,
}

impl PhpFpm {
    /// A pool of `children` static workers (not started yet) whose files live in `dir`.
    pub fn new(dir: &Path, docroot: &Path, listen: Listen, children: u32) -> PhpFpm {
        let config = dir.join(format!("php-fpm-{}.conf", std::process::id()));
        std::fs::write(&config, pool_config(dir, docroot, &listen, children)).expect("php-fpm.conf");
        PhpFpm { listens: vec![listen.clone()], listen, config, dir: dir.to_path_buf(), daemon: None }
    }

    /// One master with a pool per Unix socket in `sockets` (named `[pool0]`, `[pool1]`, ...),
    /// as a shared host runs one pool per site; each pool has `pm` ("static" or "ondemand")
    /// with `children` workers.
    pub fn with_pools(dir: &Path, docroot: &Path, sockets: &[PathBuf], pm: &str, children: u32) -> PhpFpm {
        let listens: Vec<Listen> = sockets.iter().cloned().map(Listen::Unix).collect();
        let listen = listens.first().cloned().expect("at least one pool");
        let config = dir.join(format!("php-fpm-{}.conf", std::process::id()));
        std::fs::write(&config, pools_config(dir, docroot, &listens, pm, children)).expect("php-fpm.conf");
        PhpFpm { listen, listens, config, dir: dir.to_path_buf(), daemon: None }
    }

    pub fn listens(&self) -> &[Listen] {
        &self.listens
    }

    /// Waits until every pool accepts; returns the moment the last one did.
    pub fn wait_all_accepting(&self) -> Instant {
        let mut last = Instant::now();
        for listen in &self.listens {
            last = wait_until("every php-fpm pool accepting", Duration::from_secs(30), || {
                listen.accepts().then(Instant::now)
            });
        }
        last
    }

    /// A pool on `php-fpm.sock` in `dir`.
    pub fn unix(dir: &Path, docroot: &Path) -> PhpFpm {
        PhpFpm::new(dir, docroot, Listen::Unix(dir.join("php-fpm.sock")), 8)
    }

    /// The newest php-fpm in /usr/sbin (Debian names it php-fpmX.Y).
    pub fn binary() -> PathBuf {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/sbin")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("php-fpm")))
            .collect();
        found.sort();
        found.pop().expect("php-fpm in /usr/sbin (scripts/install-deps.sh installs php-fpm)")
    }

    /// Starts the pool; returns the moment it accepted a connection.
    pub fn start(&mut self) -> Instant {
        assert!(self.daemon.is_none(), "php-fpm already started");
        let mut command = Command::new(Self::binary());
        command.arg("-n").arg("-y").arg(&self.config).arg("-F");
        self.daemon = Some(Daemon::spawn("php-fpm", &mut command, &self.dir.join("php-fpm.out")));
        self.wait_accepting()
    }

    pub fn wait_accepting(&self) -> Instant {
        wait_until("php-fpm accepting", Duration::from_secs(30), || self.listen.accepts().then(Instant::now))
    }

    pub fn pid(&self) -> Option<i32> {
        self.daemon.as_ref().map(Daemon::pid)
    }

    /// The config php-fpm runs with (`-y`).
    pub fn config_file(&self) -> &Path {
        &self.config
    }

    /// Sets a `[global]` option (e.g. `process_control_timeout = 10s`), replacing an earlier
    /// value of it; takes effect at the next start or reload.
    pub fn set_global(&self, key: &str, value: &str) {
        let text = std::fs::read_to_string(&self.config).expect("php-fpm.conf");
        let kept: Vec<&str> = text.lines().filter(|l| l.split('=').next().map(str::trim) != Some(key)).collect();
        let text = kept.join("\n").replacen("[global]", &format!("[global]\n{key} = {value}"), 1) + "\n";
        std::fs::write(&self.config, text).expect("php-fpm.conf");
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("php-fpm.pid")
    }

    /// The pool's error log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("php-fpm.log")).unwrap_or_default()
    }

    /// Stops the pool the way `systemctl stop` does (SIGTERM: requests in flight are cut)
    /// and waits until every process of it has exited.
    pub fn stop(&mut self) {
        if let Some(daemon) = self.daemon.take() {
            daemon.stop();
        }
    }

    /// Stop, wait `gap`, start: a restart, or an outage of `gap` more.
    pub fn restart_after(&mut self, gap: Duration) -> Instant {
        self.stop();
        std::thread::sleep(gap);
        self.start()
    }

    /// A graceful reload (SIGUSR2): the master re-executes itself and keeps its sockets.
    pub fn reload(&self) {
        if let Some(daemon) = &self.daemon {
            daemon.signal(libc::SIGUSR2);
        }
    }
}

fn pools_config(dir: &Path, docroot: &Path, listens: &[Listen], pm: &str, children: u32) -> String {
    // A master with hundreds of pools holds a socket and pipes per worker: it needs the
    // open-file limit it inherits to be well above 1024 (`ulimit -n`).
    let mut text = format!(
        "[global]\npid = {dir}/php-fpm.pid\nerror_log = {dir}/php-fpm.log\ndaemonize = no\n",
        dir = dir.display()
    );
    for (index, listen) in listens.iter().enumerate() {
        text += &format!(
            "\n[pool{index}]\nuser = www-data\ngroup = www-data\nlisten = {listen}\nlisten.owner = www-data\n\
             listen.group = www-data\nlisten.mode = 0666\nlisten.backlog = 511\npm = {pm}\n\
             pm.max_children = {children}\nchdir = {docroot}\nping.path = /ping\n",
            listen = listen.address(),
            docroot = docroot.display(),
        );
    }
    text
}

fn pool_config(dir: &Path, docroot: &Path, listen: &Listen, children: u32) -> String {
    format!(
        "[global]\npid = {dir}/php-fpm.pid\nerror_log = {dir}/php-fpm.log\ndaemonize = no\n\n\
         [www]\nuser = www-data\ngroup = www-data\nlisten = {listen}\nlisten.owner = www-data\n\
         listen.group = www-data\nlisten.mode = 0666\nlisten.backlog = 511\npm = static\n\
         pm.max_children = {children}\nchdir = {docroot}\nping.path = /ping\n",
        dir = dir.display(),
        listen = listen.address(),
        docroot = docroot.display(),
    )
}
