//! A closed-loop HTTP/1.1 load generator: each client keeps one connection alive and sends
//! the next request when the previous answer is complete. Every request is recorded (start,
//! latency, status) so that failures and latencies can be placed on the restart's timeline.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Record {
    /// Since the run's start.
    pub started: Duration,
    pub latency: Duration,
    /// HTTP status, or 0 for a socket error or timeout.
    pub status: u16,
}

impl Record {
    pub fn ended(&self) -> Duration {
        self.started + self.latency
    }
    pub fn failed(&self) -> bool {
        !(200..300).contains(&self.status)
    }
}

pub struct LoadSpec {
    pub target: SocketAddr,
    pub host: String,
    pub path: String,
    pub clients: usize,
    pub duration: Duration,
    /// Per-request limit, past which the request counts as failed (status 0).
    pub timeout: Duration,
}

/// Runs the load until `spec.duration` has passed; returns every request, in no order.
pub fn run(spec: &LoadSpec, epoch: Instant) -> Vec<Record> {
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..spec.clients)
        .map(|_| {
            let (target, timeout, stop) = (spec.target, spec.timeout, stop.clone());
            let request = format!("GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: fcgi-resilient-bench\r\n\r\n", spec.path, spec.host);
            std::thread::spawn(move || client_loop(target, &request, timeout, &stop, epoch))
        })
        .collect();
    std::thread::sleep(spec.duration.saturating_sub(epoch.elapsed()));
    stop.store(true, Ordering::Relaxed);
    clients.into_iter().flat_map(|c| c.join().unwrap_or_default()).collect()
}

fn client_loop(target: SocketAddr, request: &str, timeout: Duration, stop: &AtomicBool, epoch: Instant) -> Vec<Record> {
    let mut records = Vec::with_capacity(100_000);
    let mut connection: Option<BufReader<TcpStream>> = None;
    while !stop.load(Ordering::Relaxed) {
        let started = epoch.elapsed();
        let status = match one_request(&mut connection, target, request, timeout) {
            Ok(status) => status,
            Err(_) => {
                connection = None;
                0
            }
        };
        records.push(Record { started, latency: epoch.elapsed() - started, status });
        if status == 0 {
            std::thread::sleep(Duration::from_millis(1)); // no busy loop against a closed port
        }
    }
    records
}

fn one_request(
    connection: &mut Option<BufReader<TcpStream>>,
    target: SocketAddr,
    request: &str,
    timeout: Duration,
) -> std::io::Result<u16> {
    if connection.is_none() {
        let stream = TcpStream::connect_timeout(&target, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        *connection = Some(BufReader::new(stream));
    }
    let reader = connection.as_mut().expect("connected above");
    reader.get_mut().write_all(request.as_bytes())?;
    let (status, keep_alive) = read_response(reader)?;
    if !keep_alive {
        *connection = None;
    }
    Ok(status)
}

fn bad(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_string())
}

/// Reads one response, body included; returns its status and whether the connection stays open.
fn read_response(reader: &mut BufReader<TcpStream>) -> std::io::Result<(u16, bool)> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(bad("connection closed before the status line"));
    }
    let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status"))?;
    let (mut length, mut chunked, mut keep_alive) = (None, false, true);
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("connection closed in the headers"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else { continue };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<u64>().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => keep_alive = !value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    if chunked {
        read_chunked_body(reader)?;
    } else if let Some(length) = length {
        std::io::copy(&mut reader.by_ref().take(length), &mut std::io::sink())?;
    } else {
        std::io::copy(reader, &mut std::io::sink())?;
        keep_alive = false;
    }
    Ok((status, keep_alive))
}

fn read_chunked_body(reader: &mut BufReader<TcpStream>) -> std::io::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16).map_err(|_| bad("chunk size"))?;
        if size == 0 {
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(());
                }
            }
        }
        std::io::copy(&mut reader.by_ref().take(size + 2), &mut std::io::sink())?;
    }
}

pub fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
