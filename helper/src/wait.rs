//! `wait`: readiness as Apache will see it — a connection, and optionally a real
//! FastCGI request for the pool's ping page.

use std::io::{IsTerminal, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use clap::Args;
use fcgi_resilient_common::{AddressError, BackendAddress};

use crate::fastcgi;
use crate::options::{duration_value, Readiness, DEFAULT_TIMEOUT};

/// What `wait` takes, and `reload-and-wait` after the reload.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct WaitArgs {
    /// The pool: a socket path, unix:PATH, HOST:PORT, [IPv6]:PORT, a bare port on 127.0.0.1,
    /// or any form BACKEND takes (fcgi://HOST[:PORT], the status page's name)
    #[arg(value_name = "SOCKET|HOST:PORT", value_parser = parse_target)]
    pub target: BackendAddress,
    /// Give up after DURATION (500ms, 10s, 2mi, 1h; a number is seconds)
    #[arg(long, short = 't', value_name = "DURATION", default_value = DEFAULT_TIMEOUT, value_parser = duration_value)]
    pub timeout: Duration,
    #[command(flatten)]
    pub readiness: Readiness,
}

/// What `wait` and `reload-and-wait` are pointed at: every form `BackendAddress::parse`
/// reads (the status page's name, a socket path, a mod_proxy URL, `HOST:PORT`), a bare port
/// meaning 127.0.0.1 (the address a pool with `listen = PORT` answers on), and, as before, a
/// socket path relative to the working directory (`run/php.sock`, `unix:run/php.sock`).
pub fn parse_target(text: &str) -> Result<BackendAddress, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let port: u16 = text.parse().ok().filter(|&port| port != 0).ok_or_else(|| format!("invalid port `{text}`"))?;
        return Ok(BackendAddress::Tcp { host: "127.0.0.1".to_string(), port });
    }
    match BackendAddress::parse(text) {
        Err(AddressError::RelativeSocket { path, .. }) => Ok(BackendAddress::Unix(path.into())),
        Err(AddressError::Unrecognised { .. }) if text.contains('/') && !text.contains(':') => {
            Ok(BackendAddress::Unix(text.into()))
        }
        parsed => parsed.map_err(|error| error.to_string()),
    }
}

trait Conn: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> Conn for T {}

fn connect(t: &BackendAddress, timeout: Duration) -> Result<Box<dyn Conn>, String> {
    match t {
        BackendAddress::Unix(p) => {
            let s = UnixStream::connect(p).map_err(|e| format!("connect: {e}"))?;
            s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
            s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
            Ok(Box::new(s))
        }
        BackendAddress::Tcp { .. } => {
            let a = t.connect_form();
            let addrs = t.socket_addrs().map_err(|e| format!("resolve {a}: {e}"))?;
            let mut last = format!("{a} resolves to no address");
            for addr in addrs {
                match TcpStream::connect_timeout(&addr, timeout) {
                    Ok(s) => {
                        s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
                        s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
                        return Ok(Box::new(s));
                    }
                    Err(e) => last = format!("connect {addr}: {e}"),
                }
            }
            Err(last)
        }
    }
}

pub fn ping_params<'a>(path: &'a str, target: &BackendAddress) -> Vec<(&'static str, String)> {
    let _ = target;
    let p = |s: &'a str| s.to_string();
    vec![
        ("GATEWAY_INTERFACE", p("CGI/1.1")),
        ("SERVER_SOFTWARE", p("fcgi-resilient-helper")),
        ("SERVER_PROTOCOL", p("HTTP/1.1")),
        ("SERVER_NAME", p("localhost")),
        ("SERVER_ADDR", p("127.0.0.1")),
        ("SERVER_PORT", p("80")),
        ("REMOTE_ADDR", p("127.0.0.1")),
        ("REMOTE_PORT", p("0")),
        ("REQUEST_METHOD", p("GET")),
        ("REQUEST_URI", p(path)),
        ("DOCUMENT_URI", p(path)),
        ("SCRIPT_NAME", p(path)),
        ("SCRIPT_FILENAME", p(path)),
        ("QUERY_STRING", String::new()),
        ("CONTENT_TYPE", String::new()),
        ("CONTENT_LENGTH", p("0")),
    ]
}

/// One attempt. Ok(()) means ready.
pub fn probe(t: &BackendAddress, ping: Option<&str>, expect: &str, io_timeout: Duration) -> Result<(), String> {
    let Some(path) = ping else { return connect(t, io_timeout).map(drop) };
    let resp = fastcgi_get(t, path, io_timeout)?;
    let status = resp.status();
    let body = String::from_utf8_lossy(resp.body());
    if status == 200 && body.contains(expect) {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&resp.stderr);
    let mut msg = format!("{path} answered status {status} with {:?}", body.chars().take(80).collect::<String>());
    if !stderr.trim().is_empty() {
        msg.push_str(&format!(" (stderr: {})", stderr.trim()));
    }
    if status == 404 {
        msg.push_str(&format!("; is `ping.path = {path}` set in the pool?"));
    } else if status == 200 {
        msg.push_str(&format!("; expected {expect:?} (the pool's ping.response; see --expect)"));
    }
    Err(msg)
}

/// Polls until ready or `deadline`; returns the last failure on timeout.
pub fn wait_until(t: &BackendAddress, o: &WaitArgs, start: Instant, deadline: Instant) -> Result<(), String> {
    let ping = o.readiness.ping.as_deref();
    poll_until(t, o.timeout, start, deadline, |io_timeout| probe(t, ping, &o.readiness.expect, io_timeout))
}

/// A script path no pool serves: PHP-FPM answers it with a complete FastCGI response (404,
/// "Primary script unknown", or 403 from security.limit_extensions), which proves the pool
/// runs requests again without needing `ping.path`.
pub const READY_CHECK_PATH: &str = "/fcgi-resilient-helper-ready-check.php";

/// One FastCGI request for `READY_CHECK_PATH`: Ok once the backend answered it completely,
/// whatever the status.
pub fn answers_fastcgi(t: &BackendAddress, io_timeout: Duration) -> Result<(), String> {
    fastcgi_get(t, READY_CHECK_PATH, io_timeout).map(drop)
}

/// A FastCGI GET for `path` and its whole answer, unless the backend refused the request.
fn fastcgi_get(t: &BackendAddress, path: &str, io_timeout: Duration) -> Result<fastcgi::Response, String> {
    let mut conn = connect(t, io_timeout)?;
    let request = fastcgi::encode_request(1, &ping_params(path, t));
    conn.write_all(&request).map_err(|e| format!("sending the FastCGI request for {path}: {e}"))?;
    let response = fastcgi::read_response(&mut conn, 1)?;
    match response.end.protocol_status {
        0 => Ok(response),
        status => Err(format!("request refused (FastCGI protocol status {status})")),
    }
}

/// Calls `attempt` (given the I/O timeout left) every 100 ms until it succeeds or `deadline`.
pub fn poll_until(
    t: &BackendAddress,
    timeout: Duration,
    start: Instant,
    deadline: Instant,
    mut attempt: impl FnMut(Duration) -> Result<(), String>,
) -> Result<(), String> {
    let tty = std::io::stderr().is_terminal();
    let mut last_progress: Option<Instant> = None;
    let mut last_err;
    loop {
        let now = Instant::now();
        let remaining = deadline.saturating_duration_since(now);
        let io_timeout = remaining.clamp(Duration::from_millis(50), Duration::from_secs(5));
        match attempt(io_timeout) {
            Ok(()) => {
                if last_progress.is_some() {
                    eprint!("\r\x1b[K");
                }
                return Ok(());
            }
            Err(e) => last_err = e,
        }
        let now = Instant::now();
        if now >= deadline {
            if last_progress.is_some() {
                eprintln!();
            }
            return Err(last_err);
        }
        if tty && last_progress.is_none_or(|p| now.duration_since(p) >= Duration::from_secs(1)) {
            eprint!(
                "\r\x1b[Kwaiting for {} ({}s of {:?}): {last_err}",
                t.connect_form(),
                now.duration_since(start).as_secs(),
                timeout
            );
            let _ = std::io::stderr().flush();
            last_progress = Some(now);
        }
        std::thread::sleep(Duration::from_millis(100).min(deadline.saturating_duration_since(now)));
    }
}

pub fn run(o: &WaitArgs) -> i32 {
    let t = &o.target;
    let start = Instant::now();
    match wait_until(t, o, start, start + o.timeout) {
        Ok(()) => {
            println!("{}: ready after {:.1}s", t.connect_form(), start.elapsed().as_secs_f64());
            0
        }
        Err(e) => {
            eprintln!(
                "fcgi-resilient-helper: {}: not ready after {:.1}s: {e}",
                t.connect_form(),
                start.elapsed().as_secs_f64()
            );
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let unix = |path: &str| BackendAddress::Unix(path.into());
        let tcp = |host: &str, port| BackendAddress::Tcp { host: host.into(), port };
        assert_eq!(parse_target("/run/php/x.sock").unwrap(), unix("/run/php/x.sock"));
        assert_eq!(parse_target("unix:/run/php/x.sock|fcgi://localhost").unwrap(), unix("/run/php/x.sock"));
        assert_eq!(parse_target("127.0.0.1:9000").unwrap(), tcp("127.0.0.1", 9000));
        assert_eq!(parse_target("9000").unwrap(), tcp("127.0.0.1", 9000));
        assert_eq!(parse_target("[::1]:9000").unwrap(), tcp("::1", 9000));
        assert_eq!(parse_target("::1:9000").unwrap(), tcp("::1", 9000), "the status page's name");
        assert_eq!(parse_target("fcgi://127.0.0.1").unwrap(), tcp("127.0.0.1", 8000));
        assert_eq!(parse_target("run/php.sock").unwrap(), unix("run/php.sock"), "relative to the working directory");
        assert_eq!(parse_target("unix:run/php.sock").unwrap(), unix("run/php.sock"));
        assert!(parse_target("localhost").is_err());
        assert!(parse_target("host:port").is_err());
        assert!(parse_target("").is_err());
        assert!(parse_target("0").is_err());
    }

    #[test]
    fn times_out_on_missing_socket() {
        let o = WaitArgs {
            target: BackendAddress::Unix("/nonexistent/x.sock".into()),
            timeout: Duration::from_millis(300),
            readiness: Readiness { ping: None, expect: "pong".into() },
        };
        let start = Instant::now();
        let e = wait_until(&o.target, &o, start, start + o.timeout).unwrap_err();
        assert!(e.contains("connect"), "{e}");
    }
}
