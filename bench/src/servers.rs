//! The processes a benchmark run needs: one php-fpm pool and each front end, all on
//! 127.0.0.1 or a Unix socket in the run's own directory, each killed when dropped.

use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Daemon {
    name: String,
    child: Child,
}

impl Daemon {
    pub fn spawn(name: &str, command: &mut Command, log: &Path) -> Daemon {
        let log_file = std::fs::File::create(log).expect("daemon log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Daemon { name: name.to_string(), child }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: signals a process this run started.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// SIGTERM, then SIGKILL for the whole process group if it lingers.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        // SAFETY: signals the process group this run started (process_group(0) above).
        unsafe { libc::kill(-self.pid(), libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // SAFETY: as above; also reaps children that ignored SIGTERM.
        unsafe { libc::kill(-self.pid(), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            eprintln!("stopping {}", self.name);
            self.terminate();
        }
    }
}

pub fn wait_until<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what} did not happen within {limit:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

pub struct PhpFpm {
    pub socket: PathBuf,
    config: PathBuf,
    dir: PathBuf,
    daemon: Option<Daemon>,
}

impl PhpFpm {
    pub fn new(dir: &Path, docroot: &Path) -> PhpFpm {
        let socket = dir.join("php-fpm.sock");
        let config = dir.join("php-fpm.conf");
        std::fs::write(
            &config,
            format!(
                "[global]\npid = {dir}/php-fpm.pid\nerror_log = {dir}/php-fpm.log\ndaemonize = no\n\n\
                 [www]\nuser = www-data\ngroup = www-data\nlisten = {socket}\nlisten.owner = www-data\n\
                 listen.group = www-data\nlisten.mode = 0666\nlisten.backlog = 511\npm = static\n\
                 pm.max_children = 8\nchdir = {docroot}\n",
                dir = dir.display(),
                socket = socket.display(),
                docroot = docroot.display()
            ),
        )
        .expect("php-fpm.conf");
        PhpFpm { socket, config, dir: dir.to_path_buf(), daemon: None }
    }

    fn binary() -> PathBuf {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/sbin")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("php-fpm")))
            .collect();
        found.sort();
        found.pop().expect("php-fpm in /usr/sbin (apt-get install php-fpm)")
    }

    /// Starts the pool and returns the moment its socket accepted.
    pub fn start(&mut self) -> Instant {
        let mut command = Command::new(Self::binary());
        command.arg("-n").arg("-y").arg(&self.config).arg("-F");
        self.daemon = Some(Daemon::spawn("php-fpm", &mut command, &self.dir.join("php-fpm.out")));
        self.wait_accepting()
    }

    pub fn wait_accepting(&self) -> Instant {
        wait_until("php-fpm accepting", Duration::from_secs(20), || UnixStream::connect(&self.socket).ok().map(|_| Instant::now()))
    }

    /// Stops it the way `systemctl stop` does (SIGTERM to the pool), and waits for the exit.
    pub fn stop(&mut self) {
        if let Some(daemon) = self.daemon.take() {
            daemon.stop();
        }
    }

    /// A graceful reload (SIGUSR2): the master re-executes and keeps its sockets.
    pub fn reload(&self) {
        if let Some(daemon) = &self.daemon {
            daemon.signal(libc::SIGUSR2);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontEnd {
    ApacheStock,
    ApacheModule,
    ApacheModuleIdempotent,
    Nginx,
    Haproxy,
    Caddy,
}

impl FrontEnd {
    pub const ALL: [FrontEnd; 6] = [
        FrontEnd::ApacheStock,
        FrontEnd::ApacheModule,
        FrontEnd::ApacheModuleIdempotent,
        FrontEnd::Nginx,
        FrontEnd::Haproxy,
        FrontEnd::Caddy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FrontEnd::ApacheStock => "apache-stock",
            FrontEnd::ApacheModule => "apache+module",
            FrontEnd::ApacheModuleIdempotent => "apache+module+idempotent",
            FrontEnd::Nginx => "nginx",
            FrontEnd::Haproxy => "haproxy",
            FrontEnd::Caddy => "caddy",
        }
    }

    pub fn from_name(name: &str) -> Option<FrontEnd> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

pub struct Site<'a> {
    pub dir: &'a Path,
    pub docroot: &'a Path,
    pub socket: &'a Path,
    pub port: u16,
    pub module: &'a Path,
    pub apache_log_level: &'a str,
}

pub fn start_front_end(front_end: FrontEnd, site: &Site) -> Daemon {
    let dir = site.dir.join(front_end.name());
    std::fs::create_dir_all(&dir).expect("front end directory");
    let log = dir.join("stderr.log");
    let mut command = match front_end {
        FrontEnd::ApacheStock | FrontEnd::ApacheModule | FrontEnd::ApacheModuleIdempotent => {
            let config = dir.join("httpd.conf");
            std::fs::write(&config, apache_config(front_end, site, &dir)).expect("httpd.conf");
            let mut command = Command::new("/usr/sbin/apache2");
            command.arg("-f").arg(&config).arg("-DFOREGROUND").env_clear().env("PATH", "/usr/sbin:/usr/bin:/bin");
            command
        }
        FrontEnd::Nginx => {
            let config = dir.join("nginx.conf");
            std::fs::write(&config, nginx_config(site, &dir)).expect("nginx.conf");
            let mut command = Command::new("/usr/sbin/nginx");
            command.arg("-c").arg(&config).arg("-p").arg(&dir);
            command
        }
        FrontEnd::Haproxy => {
            let config = dir.join("haproxy.cfg");
            std::fs::write(&config, haproxy_config(site)).expect("haproxy.cfg");
            let mut command = Command::new("/usr/sbin/haproxy");
            command.arg("-db").arg("-f").arg(&config);
            command
        }
        FrontEnd::Caddy => {
            let config = dir.join("Caddyfile");
            std::fs::write(&config, caddy_config(site, &dir)).expect("Caddyfile");
            let mut command = Command::new("/usr/bin/caddy");
            command
                .arg("run")
                .arg("--config")
                .arg(&config)
                .arg("--adapter")
                .arg("caddyfile")
                .env("HOME", &dir)
                .env("XDG_DATA_HOME", &dir)
                .env("XDG_CONFIG_HOME", &dir);
            command
        }
    };
    let daemon = Daemon::spawn(front_end.name(), &mut command, &log);
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], site.port));
    wait_until(&format!("{} listening", front_end.name()), Duration::from_secs(20), || {
        std::net::TcpStream::connect(address).ok()
    });
    daemon
}

fn apache_config(front_end: FrontEnd, site: &Site, dir: &Path) -> String {
    let module = match front_end {
        FrontEnd::ApacheStock => String::new(),
        FrontEnd::ApacheModule => format!("LoadModule fcgi_resilient_module {}\nFcgiResilient On\n", site.module.display()),
        _ => format!(
            "LoadModule fcgi_resilient_module {}\nFcgiResilient On\nFcgiResilientRetryIdempotent On\n",
            site.module.display()
        ),
    };
    format!(
        r#"ServerRoot {dir}
ServerName localhost
Listen 127.0.0.1:{port}
PidFile {dir}/httpd.pid
ErrorLog {dir}/error.log
LogLevel {log_level}
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_fcgi_module /usr/lib/apache2/modules/mod_proxy_fcgi.so
{module}TypesConfig /etc/mime.types
User www-data
Group www-data
StartServers 2
ServerLimit 4
ThreadLimit 64
ThreadsPerChild 64
MinSpareThreads 32
MaxSpareThreads 256
MaxRequestWorkers 256
KeepAlive On
MaxKeepAliveRequests 0
DocumentRoot {docroot}
<Directory {docroot}>
    AllowOverride None
    Require all granted
</Directory>
<FilesMatch "\.php$">
    SetHandler "proxy:unix:{socket}|fcgi://localhost"
</FilesMatch>
"#,
        dir = dir.display(),
        port = site.port,
        docroot = site.docroot.display(),
        socket = site.socket.display(),
        log_level = site.apache_log_level,
    )
}

fn nginx_config(site: &Site, dir: &Path) -> String {
    format!(
        r#"daemon off;
master_process on;
worker_processes 2;
user www-data www-data;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    fastcgi_temp_path {dir}/fastcgi;
    proxy_temp_path {dir}/proxy;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        root {docroot};
        location ~ \.php$ {{
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_pass unix:{socket};
        }}
    }}
}}
"#,
        dir = dir.display(),
        port = site.port,
        docroot = site.docroot.display(),
        socket = site.socket.display(),
    )
}

fn haproxy_config(site: &Site) -> String {
    format!(
        r#"global
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    retries 3
    retry-on conn-failure empty-response response-timeout
fcgi-app php
    docroot {docroot}
    index index.php
frontend site
    bind 127.0.0.1:{port}
    default_backend php
backend php
    use-fcgi-app php
    # PHP-FPM serves one request per child at a time: idle reused connections would pin
    # children and leave new requests hanging (Apache and nginx do not reuse them either).
    http-reuse never
    server fpm {socket} proto fcgi
"#,
        port = site.port,
        docroot = site.docroot.display(),
        socket = site.socket.display(),
    )
}

fn caddy_config(site: &Site, dir: &Path) -> String {
    format!(
        r#"{{
    admin off
    auto_https off
    storage file_system {dir}/storage
}}
http://127.0.0.1:{port} {{
    root * {docroot}
    php_fastcgi unix/{socket} {{
        lb_try_duration 10s
    }}
    file_server
}}
"#,
        dir = dir.display(),
        port = site.port,
        docroot = site.docroot.display(),
        socket = site.socket.display(),
    )
}
