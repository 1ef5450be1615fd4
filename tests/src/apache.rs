//! Debian's apache2 binary with a self-contained config generated per test: its own
//! ServerRoot, logs and port on 127.0.0.1, only the modules a test asks for.

use crate::daemon::{wait_until, Daemon};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const APACHE: &str = "/usr/sbin/apache2";
const MODULES: &str = "/usr/lib/apache2/modules";

/// Where, if anywhere, the config loads mod_fcgi_resilient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModulePlacement {
    NotLoaded,
    /// Before mod_proxy, as an alphabetical mods-enabled/*.load would put it.
    BeforeProxy,
    AfterProxy,
}

#[derive(Debug, Clone)]
pub struct ApacheConfig {
    pub port: u16,
    pub mpm: &'static str,
    pub module: ModulePlacement,
    /// The module's .so; by default [`module_path`].
    pub module_file: Option<PathBuf>,
    /// Modules loaded besides the MPM and mod_fcgi_resilient, by Debian's short name.
    pub modules: Vec<&'static str>,
    pub processes: Processes,
    pub log_level: String,
    /// The site: whatever follows the common part of the config.
    pub site: String,
    /// Environment variables apache2 is started with (besides PATH).
    pub environment: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone, Copy)]
pub struct Processes {
    pub start_servers: u32,
    pub server_limit: u32,
    pub threads_per_child: u32,
}

impl Processes {
    fn directives(&self, mpm: &str) -> String {
        let Processes { start_servers, server_limit, threads_per_child } = *self;
        let workers = server_limit * threads_per_child;
        let common = format!("StartServers {start_servers}\nServerLimit {server_limit}\nMaxRequestWorkers {workers}\n");
        if mpm == "prefork" {
            return common + &format!("MinSpareServers 1\nMaxSpareServers {server_limit}\n");
        }
        common
            + &format!(
                "ThreadLimit {threads_per_child}\nThreadsPerChild {threads_per_child}\nMinSpareThreads 1\nMaxSpareThreads {workers}\n"
            )
    }
}

impl ApacheConfig {
    /// Event MPM, proxy and proxy_fcgi loaded, mod_fcgi_resilient loaded after them, and a
    /// site serving `docroot` whose .php files go to `php_handler` (a SetHandler target).
    pub fn new(docroot: &Path, php_handler: &str) -> ApacheConfig {
        ApacheConfig {
            port: crate::free_port(),
            mpm: "event",
            module: ModulePlacement::AfterProxy,
            module_file: None,
            modules: vec!["authz_core", "authz_host", "mime", "proxy", "proxy_fcgi"],
            processes: Processes { start_servers: 2, server_limit: 4, threads_per_child: 64 },
            log_level: "warn fcgi_resilient:info".to_string(),
            site: default_site(docroot, php_handler),
            environment: Vec::new(),
        }
    }

    /// Adds directives at server level, ahead of the site.
    pub fn with_server_directives(mut self, directives: &str) -> ApacheConfig {
        self.site = format!("{directives}\n{}", self.site);
        self
    }

    fn load_fcgi_resilient(&self) -> String {
        let file = self.module_file.clone().unwrap_or_else(module_path);
        format!("LoadModule fcgi_resilient_module {}\n", file.display())
    }

    pub fn render(&self, server_root: &Path) -> String {
        let mut text = format!(
            "ServerRoot {root}\nDefaultRuntimeDir {root}\nServerName localhost\nListen 127.0.0.1:{port}\n\
             PidFile {root}/httpd.pid\nErrorLog {root}/error.log\nLogLevel {level}\n\
             LoadModule mpm_{mpm}_module {MODULES}/mod_mpm_{mpm}.so\n",
            root = server_root.display(),
            port = self.port,
            level = self.log_level,
            mpm = self.mpm,
        );
        if self.module == ModulePlacement::BeforeProxy {
            text += &self.load_fcgi_resilient();
        }
        for module in &self.modules {
            text += &format!("LoadModule {module}_module {MODULES}/mod_{module}.so\n");
        }
        if self.module == ModulePlacement::AfterProxy {
            text += &self.load_fcgi_resilient();
        }
        text += &self.processes.directives(self.mpm);
        text += "User www-data\nGroup www-data\nMaxConnectionsPerChild 0\nKeepAlive On\nMaxKeepAliveRequests 0\n";
        if self.modules.contains(&"mime") {
            text += "TypesConfig /etc/mime.types\n";
        }
        text + &self.site
    }
}

fn default_site(docroot: &Path, php_handler: &str) -> String {
    format!(
        "DocumentRoot {docroot}\n<Directory {docroot}>\n    AllowOverride None\n    Require all granted\n</Directory>\n\
         <FilesMatch \"\\.php$\">\n    SetHandler \"{php_handler}\"\n</FilesMatch>\n",
        docroot = docroot.display()
    )
}

/// The module the tests load: `FCGI_RESILIENT_MODULE`, or the build in this target directory.
pub fn module_path() -> PathBuf {
    if let Some(path) = std::env::var_os("FCGI_RESILIENT_MODULE") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // Test binaries live in target/<profile>/deps, the module in target/<profile>.
    let profile_dir = exe.ancestors().find(|dir| dir.join("libmod_fcgi_resilient.so").exists());
    let module = profile_dir.unwrap_or(Path::new("target/debug")).join("libmod_fcgi_resilient.so");
    assert!(
        module.exists(),
        "{} is missing: build the module first (cargo build -p mod_fcgi_resilient; scripts/test.sh does)",
        module.display()
    );
    module
}

pub struct Apache {
    pub config: ApacheConfig,
    dir: PathBuf,
    daemon: Daemon,
}

impl Apache {
    /// Writes the config into `dir`, starts Apache in the foreground and waits until it listens.
    pub fn start(dir: &Path, config: ApacheConfig) -> Apache {
        let config_file = write_config(dir, &config);
        let mut command = apache_command(&config_file);
        command.arg("-DFOREGROUND").envs(config.environment.iter().map(|(name, value)| (name, value)));
        let daemon = Daemon::spawn("apache2", &mut command, &dir.join("apache2.out"));
        let mut apache = Apache { config, dir: dir.to_path_buf(), daemon };
        let address = apache.address();
        wait_until("apache2 listening", Duration::from_secs(30), || {
            if !apache.daemon.is_running() {
                let output = std::fs::read_to_string(dir.join("apache2.out")).unwrap_or_default();
                panic!("apache2 exited at start:\n{output}\n{}", apache.error_log());
            }
            std::net::TcpStream::connect(address).ok()
        });
        // The listening socket accepts before every child has started its worker threads, and
        // the event MPM closes a kept-alive connection of a child with no idle thread: a load
        // begun at once lost a request to that start-up race (1 in 16,823, before any outage).
        std::thread::sleep(Duration::from_millis(300));
        apache
    }

    pub fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.config.port))
    }

    /// The pids of Apache's child processes now.
    pub fn children(&self) -> Vec<i32> {
        let parent = self.daemon.pid();
        let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| parent_of(*pid) == Some(parent))
            .collect()
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    pub fn stop(self) {
        self.daemon.stop();
    }

    /// Signals the parent as `apachectl -k` does: SIGTERM stop, SIGHUP restart (both at once),
    /// SIGUSR1 graceful, SIGWINCH graceful-stop.
    pub fn signal(&self, signal: i32) {
        self.daemon.signal(signal);
    }

    /// Whether the parent still runs.
    pub fn is_running(&mut self) -> bool {
        self.daemon.is_running()
    }

    /// A new config (e.g. another build of the module) taken up by `apachectl graceful`, as a
    /// package upgrade does.
    pub fn graceful_with(&mut self, config: ApacheConfig) {
        write_config(&self.dir, &config);
        self.config = config;
        self.graceful();
    }

    /// `apachectl graceful`: new children with the same config, requests in flight finish.
    pub fn graceful(&mut self) {
        let generations = || self.error_log().matches("resuming normal operations").count();
        let before = generations();
        self.daemon.signal(libc::SIGUSR1);
        wait_until("apache2 graceful restart", Duration::from_secs(30), || (generations() > before).then_some(()));
        assert!(self.daemon.is_running(), "apache2 exited on graceful restart:\n{}", self.error_log());
    }
}

/// The parent pid in /proc/PID/stat (the field after the parenthesised command name).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

fn write_config(dir: &Path, config: &ApacheConfig) -> PathBuf {
    let file = dir.join("httpd.conf");
    std::fs::write(&file, config.render(dir)).expect("httpd.conf");
    file
}

fn apache_command(config_file: &Path) -> Command {
    let mut command = Command::new(APACHE);
    command.arg("-f").arg(config_file).env_clear().env("PATH", "/usr/sbin:/usr/bin:/bin");
    command
}

/// `apachectl configtest` of `config`: whether it passed, and what httpd printed.
pub fn configtest(dir: &Path, config: &ApacheConfig) -> (bool, String) {
    let config_file = write_config(dir, config);
    let output = apache_command(&config_file).arg("-t").output().expect("run apache2 -t");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}
