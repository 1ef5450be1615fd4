//! The front ends a benchmark run compares, each on 127.0.0.1 in front of the run's one
//! php-fpm pool, each killed when dropped. Apache comes from the test harness's config, so
//! the benchmark measures the same Apache the integration tests check.

use harness::apache::{ApacheConfig, ModulePlacement};
use harness::{wait_until, Apache, Daemon};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

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

    /// Whether `fcgi-resilient-helper pause` applies: the module is loaded and On.
    pub fn reads_pauses(self) -> bool {
        matches!(self, FrontEnd::ApacheModule | FrontEnd::ApacheModuleIdempotent)
    }

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

/// A running front end; dropping it stops it.
pub enum Running {
    Apache(Apache),
    Other(Daemon),
}

impl Running {
    pub fn stop(self) {
        match self {
            Running::Apache(apache) => apache.stop(),
            Running::Other(daemon) => daemon.stop(),
        }
    }
}

pub fn start_front_end(front_end: FrontEnd, site: &Site) -> Running {
    let dir = site.dir.join(front_end.name());
    std::fs::create_dir_all(&dir).expect("front end directory");
    let mut command = match front_end {
        FrontEnd::ApacheStock | FrontEnd::ApacheModule | FrontEnd::ApacheModuleIdempotent => {
            return Running::Apache(Apache::start(&dir, apache_config(front_end, site)));
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
    let daemon = Daemon::spawn(front_end.name(), &mut command, &dir.join("stderr.log"));
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], site.port));
    wait_until(&format!("{} listening", front_end.name()), Duration::from_secs(20), || {
        std::net::TcpStream::connect(address).ok()
    });
    Running::Other(daemon)
}

fn apache_config(front_end: FrontEnd, site: &Site) -> ApacheConfig {
    let handler = format!("proxy:unix:{}|fcgi://localhost", site.socket.display());
    let mut config = ApacheConfig::new(site.docroot, &handler);
    config.port = site.port;
    config.log_level = site.apache_log_level.to_string();
    config.module_file = Some(site.module.to_path_buf());
    match front_end {
        FrontEnd::ApacheStock => config.module = ModulePlacement::NotLoaded,
        FrontEnd::ApacheModule => config = config.with_server_directives("FcgiResilient On"),
        _ => config = config.with_server_directives("FcgiResilient On\nFcgiResilientRetryIdempotent On"),
    }
    if front_end.reads_pauses() {
        config = config.with_server_directives(&format!("FcgiResilientPauseDir {}", pause_dir(site.dir).display()));
    }
    config
}

/// Where the benchmark's `deploy` pauses the pool, and the module front ends look.
pub fn pause_dir(run_dir: &Path) -> std::path::PathBuf {
    run_dir.join("pause")
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
    # Without this php-fpm keeps each connection open, and its children stay pinned to the
    # first clients while the others hang until "timeout server" (24 of 32 clients, 30 s).
    no option keep-conn
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
:{port} {{
    bind 127.0.0.1
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
