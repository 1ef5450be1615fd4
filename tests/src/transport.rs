//! The four ways an admin's clients reach Apache — HTTP/1.1, HTTP/1.1 over TLS, h2c and h2
//! over TLS — on one Apache: its plain port speaks HTTP/1.1 and h2c (prior knowledge), a TLS
//! virtual host on a second port speaks h2 and HTTP/1.1 by ALPN, with a certificate made by
//! openssl for the test. Requests go through real HTTP/2 clients: curl for single requests,
//! nghttp2's h2load for load.

use crate::apache::ApacheConfig;
use crate::status::STATUS_LOCATION;
use crate::{Apache, PhpFpm, WorkDir};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Http1,
    Tls,
    H2c,
    H2,
}

impl Transport {
    pub const ALL: [Transport; 4] = [Transport::Http1, Transport::Tls, Transport::H2c, Transport::H2];
    pub const HTTP2: [Transport; 2] = [Transport::H2c, Transport::H2];

    pub fn name(self) -> &'static str {
        match self {
            Transport::Http1 => "HTTP/1.1",
            Transport::Tls => "HTTP/1.1 over TLS",
            Transport::H2c => "h2c",
            Transport::H2 => "h2 over TLS",
        }
    }

    fn uses_tls(self) -> bool {
        matches!(self, Transport::Tls | Transport::H2)
    }

    fn curl_protocol(self) -> &'static str {
        match self {
            Transport::Http1 | Transport::Tls => "--http1.1",
            Transport::H2c => "--http2-prior-knowledge",
            Transport::H2 => "--http2",
        }
    }

    /// The HTTP version curl reports for an answer over this transport.
    fn curl_version(self) -> &'static str {
        match self {
            Transport::Http1 | Transport::Tls => "1.1",
            Transport::H2c | Transport::H2 => "2",
        }
    }
}

/// Where each transport is served: the plain port and the TLS port.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub plain: SocketAddr,
    pub tls: SocketAddr,
}

impl Ports {
    pub fn url(&self, transport: Transport, path: &str) -> String {
        if transport.uses_tls() {
            format!("https://{}{path}", self.tls)
        } else {
            format!("http://{}{path}", self.plain)
        }
    }
}

/// Adds HTTP/2 (h2c on the plain port) and a TLS virtual host (h2 and HTTP/1.1) on a port of
/// its own to `config`, with a self-signed certificate written into `dir`.
pub fn serve_every_transport(mut config: ApacheConfig, dir: &Path) -> (ApacheConfig, Ports) {
    let (cert, key) = (dir.join("localhost.crt"), dir.join("localhost.key"));
    make_certificate(&cert, &key);
    let tls_port = crate::free_port();
    for module in ["http2", "socache_shmcb", "ssl"] {
        if !config.modules.contains(&module) {
            config.modules.push(module);
        }
    }
    config.site += &format!(
        "Protocols h2c http/1.1\n\
         # Streams wait in the module as long as HTTP/1.1 requests do.\n\
         H2StreamTimeout 60\n\
         Listen 127.0.0.1:{tls_port}\n\
         SSLSessionCache shmcb:{dir}/ssl_scache(512000)\n\
         <VirtualHost 127.0.0.1:{tls_port}>\n\
             SSLEngine on\n\
             SSLCertificateFile {cert}\n\
             SSLCertificateKeyFile {key}\n\
             Protocols h2 http/1.1\n\
         </VirtualHost>\n",
        dir = dir.display(),
        cert = cert.display(),
        key = key.display(),
    );
    let ports = Ports {
        plain: SocketAddr::from(([127, 0, 0, 1], config.port)),
        tls: SocketAddr::from(([127, 0, 0, 1], tls_port)),
    };
    (config, ports)
}

/// PHP-FPM stopped behind an Apache with the module On that serves every transport; the
/// module's status page is at `STATUS_LOCATION`.
pub struct Outage {
    pub work: WorkDir,
    pub fpm: PhpFpm,
    pub apache: Apache,
    pub ports: Ports,
}

impl Outage {
    /// `directives` go to the server config after `FcgiResilient On`.
    pub fn begin(name: &str, directives: &str) -> Outage {
        Self::begin_with(name, directives, |_| {})
    }

    /// Like `begin`, with a last word on the rest of Apache's config (e.g. its processes).
    pub fn begin_with(name: &str, directives: &str, configure: impl FnOnce(&mut ApacheConfig)) -> Outage {
        let work = WorkDir::new(name);
        let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
        fpm.start();
        let mut config = ApacheConfig::new(&work.docroot(), &fpm.listen.proxy_handler())
            .with_server_directives(&format!("FcgiResilient On\n{directives}\n{STATUS_LOCATION}"));
        configure(&mut config);
        let apache_dir = work.subdir("apache");
        let (mut config, ports) = serve_every_transport(config, &apache_dir);
        config.log_level = "info fcgi_resilient:debug".to_string();
        let apache = Apache::start(&apache_dir, config);
        fpm.stop();
        Outage { work, fpm, apache, ports }
    }
}

/// A self-signed certificate for localhost and 127.0.0.1, valid two days, and its key.
pub fn make_certificate(cert: &Path, key: &Path) {
    let output = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout"])
        .arg(key)
        .arg("-out")
        .arg(cert)
        .output()
        .expect("run openssl (Debian package openssl)");
    assert!(output.status.success(), "openssl req: {}", String::from_utf8_lossy(&output.stderr));
}

/// One answer as curl saw it.
#[derive(Debug, Clone)]
pub struct CurlAnswer {
    /// curl's exit status: 0, or e.g. 92 for an HTTP/2 stream error (the stream was reset).
    pub exit: i32,
    pub status: u16,
    pub http_version: String,
    pub body: Vec<u8>,
    pub stderr: String,
    /// The final answer's header lines, as (name, value).
    pub headers: Vec<(String, String)>,
}

impl CurlAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn is_ok_over(&self, transport: Transport) -> bool {
        self.exit == 0 && self.status == 200 && self.http_version == transport.curl_version()
    }
}

/// What one curl request sends besides a GET.
#[derive(Debug, Clone, Default)]
pub struct CurlRequest<'a> {
    /// A POST of this file's content.
    pub body_file: Option<&'a Path>,
    pub expect_continue: bool,
    /// The body goes without a Content-Length: chunked over HTTP/1.1, DATA frames until the
    /// stream ends over HTTP/2 (mod_http2 hands such a request on with Transfer-Encoding: chunked).
    pub chunked: bool,
    /// curl gives up (and closes its connection) after this long.
    pub max_time: Option<Duration>,
    /// curl's --limit-rate: sends (and reads) no faster, e.g. "100k".
    pub limit_rate: Option<&'a str>,
}

/// Sends one request over `transport` with curl and waits for its answer.
pub fn curl(ports: &Ports, transport: Transport, path: &str, request: &CurlRequest) -> CurlAnswer {
    let body_out = tempfile_path("curl-body");
    let headers_out = tempfile_path("curl-headers");
    let mut command = Command::new("curl");
    command
        .args(["--silent", "--show-error", "--insecure", transport.curl_protocol()])
        .arg("--dump-header")
        .arg(&headers_out)
        .args(["--max-time", &request.max_time.unwrap_or(Duration::from_secs(60)).as_secs_f64().to_string()])
        .args(["--write-out", "%{http_code} %{http_version}", "--output"])
        .arg(&body_out);
    if let Some(rate) = request.limit_rate {
        command.args(["--limit-rate", rate]);
    }
    if let Some(file) = request.body_file {
        command.arg("--data-binary").arg(format!("@{}", file.display()));
        command.args(["-H", "Content-Type: application/octet-stream"]);
        // curl sends Expect: 100-continue on its own for large HTTP/1.1 bodies; say which.
        command.args(["-H", if request.expect_continue { "Expect: 100-continue" } else { "Expect:" }]);
        if request.chunked {
            command.args(["-H", "Transfer-Encoding: chunked"]);
        }
    }
    command.arg(ports.url(transport, path));
    let output = command.output().expect("run curl");
    let body = std::fs::read(&body_out).unwrap_or_default();
    let _ = std::fs::remove_file(&body_out);
    let headers = final_headers(&std::fs::read_to_string(&headers_out).unwrap_or_default());
    let _ = std::fs::remove_file(&headers_out);
    CurlAnswer { headers, ..parse_curl(&output, body) }
}

/// The header lines of the last answer in curl's --dump-header output (interim answers such as
/// 100 Continue come first, each after its own status line).
fn final_headers(dump: &str) -> Vec<(String, String)> {
    let last = dump.rsplit("HTTP/").next().unwrap_or("");
    last.lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect()
}

fn parse_curl(output: &Output, body: Vec<u8>) -> CurlAnswer {
    let written = String::from_utf8_lossy(&output.stdout);
    let mut fields = written.split_whitespace();
    CurlAnswer {
        exit: output.status.code().unwrap_or(-1),
        status: fields.next().and_then(|code| code.parse().ok()).unwrap_or(0),
        http_version: fields.next().unwrap_or("").to_string(),
        body,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        headers: Vec::new(),
    }
}

fn tempfile_path(name: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "fcgi-resilient-{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// What h2load counted over one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct H2loadSummary {
    pub requests: u64,
    pub succeeded: u64,
    /// Requests without a complete answer: stream resets, connection errors, timeouts.
    pub failed: u64,
    pub errored: u64,
    pub status_2xx: u64,
    pub status_5xx: u64,
}

impl H2loadSummary {
    /// Requests that did not end in a 2xx answer.
    pub fn not_ok(&self) -> u64 {
        self.requests.saturating_sub(self.status_2xx)
    }
}

/// An HTTP/2 load (h2c or h2 over TLS): `connections` connections of `streams` concurrent
/// streams each, for `duration`. Runs h2load in the background; `finish` collects it.
pub struct H2load {
    child: std::process::Child,
}

impl H2load {
    pub fn start(
        ports: &Ports,
        transport: Transport,
        path: &str,
        connections: u32,
        streams: u32,
        duration: Duration,
    ) -> H2load {
        assert!(Transport::HTTP2.contains(&transport), "h2load speaks HTTP/2 only");
        let child = Command::new("h2load")
            .args(["-c", &connections.to_string(), "-m", &streams.to_string()])
            .args(["-D", &duration.as_secs().max(1).to_string(), "-T", "60", "-N", "60"])
            .arg(ports.url(transport, path))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run h2load (Debian package nghttp2-client)");
        H2load { child }
    }

    pub fn finish(self) -> (H2loadSummary, String) {
        let output = self.child.wait_with_output().expect("h2load");
        let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        (parse_h2load(&text), text)
    }
}

/// Reads h2load's "requests:" and "status codes:" lines.
pub fn parse_h2load(text: &str) -> H2loadSummary {
    let mut summary = H2loadSummary::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("requests:") {
            for (count, word) in counted_words(rest) {
                match word {
                    "total" => summary.requests = count,
                    "succeeded" => summary.succeeded = count,
                    "failed" => summary.failed = count,
                    "errored" => summary.errored = count,
                    _ => {}
                }
            }
        } else if let Some(rest) = line.strip_prefix("status codes:") {
            for (count, word) in counted_words(rest) {
                match word {
                    "2xx" => summary.status_2xx = count,
                    "5xx" => summary.status_5xx = count,
                    _ => {}
                }
            }
        }
    }
    summary
}

/// "1000 total, 990 succeeded" → (1000, "total"), (990, "succeeded").
fn counted_words(text: &str) -> impl Iterator<Item = (u64, &str)> {
    text.split(',').filter_map(|part| {
        let mut words = part.split_whitespace();
        Some((words.next()?.parse().ok()?, words.next()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_h2load_counts() {
        let text = "finished in 5.00s, 100.00 req/s, 1.00MB/s\n\
                    requests: 500 total, 500 started, 500 done, 480 succeeded, 20 failed, 20 errored, 0 timeout\n\
                    status codes: 470 2xx, 0 3xx, 0 4xx, 10 5xx\n";
        let summary = parse_h2load(text);
        assert_eq!(
            summary,
            H2loadSummary { requests: 500, succeeded: 480, failed: 20, errored: 20, status_2xx: 470, status_5xx: 10 }
        );
        assert_eq!(summary.not_ok(), 30);
    }
}
