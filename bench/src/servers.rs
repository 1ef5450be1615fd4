//! The front ends a benchmark run compares, each on 127.0.0.1 in front of the run's one
//! php-fpm pool, each killed when dropped. Apache comes from the test harness's config, so
//! the benchmark measures the same Apache the integration tests check.

use harness::apache::{ApacheConfig, ModulePlacement};
use harness::transport::{serve_every_transport, Ports};
use harness::{free_port, wait_until, Apache, Daemon};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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

/// A self-signed certificate for 127.0.0.1 (openssl, as the harness makes Apache's), shared
/// by the peers' TLS listeners; HAProxy wants certificate and key in one file.
pub struct Certificate {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_and_key: PathBuf,
}

impl Certificate {
    pub fn make(dir: &Path) -> Certificate {
        let (cert, key) = (dir.join("localhost.crt"), dir.join("localhost.key"));
        harness::transport::make_certificate(&cert, &key);
        let cert_and_key = dir.join("localhost.pem");
        let pem = std::fs::read_to_string(&cert).expect("certificate") + &std::fs::read_to_string(&key).expect("key");
        std::fs::write(&cert_and_key, pem).expect("localhost.pem");
        Certificate { cert, key, cert_and_key }
    }
}

/// The listeners a front end adds for HTTP/2, besides its HTTP/1.1 port: h2c with prior
/// knowledge, and h2 over TLS chosen by ALPN.
struct Http2Listeners<'a> {
    h2c_port: u16,
    tls_port: u16,
    certificate: &'a Certificate,
}

/// Starts `front_end` as [`start_front_end`] does, and also serving h2c and h2 over TLS;
/// returns where (`Ports::plain` is the h2c address).
pub fn start_front_end_with_http2(front_end: FrontEnd, site: &Site, certificate: &Certificate) -> (Running, Ports) {
    let listeners = Http2Listeners {
        // nginx 1.22 and HAProxy 2.6 speak only HTTP/2 on a cleartext port set up for it, so
        // h2c gets a port of its own; Apache and Caddy tell the two apart on one port.
        h2c_port: match front_end {
            FrontEnd::Nginx | FrontEnd::Haproxy => free_port(),
            _ => site.port,
        },
        tls_port: free_port(),
        certificate,
    };
    start(front_end, site, Some(&listeners))
}

pub fn start_front_end(front_end: FrontEnd, site: &Site) -> Running {
    start(front_end, site, None).0
}

fn start(front_end: FrontEnd, site: &Site, http2: Option<&Http2Listeners>) -> (Running, Ports) {
    let dir = site.dir.join(front_end.name());
    std::fs::create_dir_all(&dir).expect("front end directory");
    let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
    // Without HTTP/2 listeners there is only the HTTP/1.1 port to name.
    let mut ports = match http2 {
        Some(listeners) => Ports { plain: local(listeners.h2c_port), tls: local(listeners.tls_port) },
        None => Ports { plain: local(site.port), tls: local(site.port) },
    };
    let mut command = match front_end {
        FrontEnd::ApacheStock | FrontEnd::ApacheModule | FrontEnd::ApacheModuleIdempotent => {
            let mut config = apache_config(front_end, site);
            if http2.is_some() {
                // The harness's own HTTP/2 setup (h2c on the plain port, a TLS virtual host
                // with h2 and its own certificate), so the benchmark measures what the tests check.
                (config, ports) = serve_every_transport(config, &dir);
            }
            return (Running::Apache(Apache::start(&dir, config)), ports);
        }
        FrontEnd::Nginx => {
            let config = dir.join("nginx.conf");
            std::fs::write(&config, nginx_config(site, &dir, http2)).expect("nginx.conf");
            let mut command = Command::new("/usr/sbin/nginx");
            command.arg("-c").arg(&config).arg("-p").arg(&dir);
            command
        }
        FrontEnd::Haproxy => {
            let config = dir.join("haproxy.cfg");
            std::fs::write(&config, haproxy_config(site, http2)).expect("haproxy.cfg");
            let mut command = Command::new("/usr/sbin/haproxy");
            command.arg("-db").arg("-f").arg(&config);
            command
        }
        FrontEnd::Caddy => {
            let config = dir.join("Caddyfile");
            std::fs::write(&config, caddy_config(site, &dir, http2)).expect("Caddyfile");
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
    for address in [local(site.port), ports.plain, ports.tls] {
        wait_until(&format!("{} listening on {address}", front_end.name()), Duration::from_secs(20), || {
            std::net::TcpStream::connect(address).ok()
        });
    }
    (Running::Other(daemon), ports)
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

/// nginx 1.22 (Debian 12) takes `http2` as a parameter of `listen` (`http2 on;` came with
/// 1.25.1); without `ssl` that port speaks h2c with prior knowledge only.
fn nginx_http2_listeners(http2: Option<&Http2Listeners>) -> String {
    let Some(listeners) = http2 else { return String::new() };
    format!(
        "\n        listen 127.0.0.1:{h2c} http2;\n        listen 127.0.0.1:{tls} ssl http2;\n        \
         ssl_certificate {cert};\n        ssl_certificate_key {key};",
        h2c = listeners.h2c_port,
        tls = listeners.tls_port,
        cert = listeners.certificate.cert.display(),
        key = listeners.certificate.key.display(),
    )
}

fn nginx_config(site: &Site, dir: &Path, http2: Option<&Http2Listeners>) -> String {
    format!(
        r#"daemon off;
master_process on;
worker_processes 2;
user www-data www-data;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    fastcgi_temp_path {dir}/fastcgi;
    proxy_temp_path {dir}/proxy;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};{http2_listeners}
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
        http2_listeners = nginx_http2_listeners(http2),
        docroot = site.docroot.display(),
        socket = site.socket.display(),
    )
}

/// `proto h2` makes a cleartext bind speak h2c with prior knowledge only; on TLS, ALPN picks.
fn haproxy_http2_binds(http2: Option<&Http2Listeners>) -> String {
    let Some(listeners) = http2 else { return String::new() };
    format!(
        "\n    bind 127.0.0.1:{h2c} proto h2\n    bind 127.0.0.1:{tls} ssl crt {pem} alpn h2,http/1.1",
        h2c = listeners.h2c_port,
        tls = listeners.tls_port,
        pem = listeners.certificate.cert_and_key.display(),
    )
}

fn haproxy_config(site: &Site, http2: Option<&Http2Listeners>) -> String {
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
    bind 127.0.0.1:{port}{http2_binds}
    default_backend php
backend php
    use-fcgi-app php
    # PHP-FPM serves one request per child at a time: idle reused connections would pin
    # children and leave new requests hanging (Apache and nginx do not reuse them either).
    http-reuse never
    server fpm {socket} proto fcgi
"#,
        port = site.port,
        http2_binds = haproxy_http2_binds(http2),
        docroot = site.docroot.display(),
        socket = site.socket.display(),
    )
}

fn caddy_config(site: &Site, dir: &Path, http2: Option<&Http2Listeners>) -> String {
    let site_body = format!(
        r#"    bind 127.0.0.1
    root * {docroot}
    php_fastcgi unix/{socket} {{
        lb_try_duration 10s
    }}
    file_server
"#,
        docroot = site.docroot.display(),
        socket = site.socket.display(),
    );
    let mut config =
        caddy_global_options(dir, http2.is_some()) + &format!(":{port} {{\n{site_body}}}\n", port = site.port);
    if let Some(listeners) = http2 {
        config += &format!(
            ":{tls} {{\n    tls {cert} {key}\n{site_body}}}\n",
            tls = listeners.tls_port,
            cert = listeners.certificate.cert.display(),
            key = listeners.certificate.key.display(),
        );
    }
    config
}

/// Caddy serves h2c only when told to, for every server: the global `servers` option.
fn caddy_global_options(dir: &Path, h2c: bool) -> String {
    let servers = if h2c { "    servers {\n        protocols h1 h2 h2c\n    }\n" } else { "" };
    format!(
        "{{\n    admin off\n    auto_https off\n    storage file_system {dir}/storage\n{servers}}}\n",
        dir = dir.display()
    )
}
