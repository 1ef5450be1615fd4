//! A bounded closed-loop load: each client keeps one connection alive and sends its next GET
//! when the previous answer is complete, until the run's duration is over. Every request is
//! recorded (start, latency, status) so failures and latencies can be put on a timeline.

use crate::http::{Connection, CLOSED_BEFORE_STATUS};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Record {
    /// Since the run's epoch.
    pub started: Duration,
    pub latency: Duration,
    /// HTTP status, or 0 for a socket error or timeout, or [`BODY_MISMATCH`].
    pub status: u16,
    /// Sent again on a new connection because the server had closed the kept-alive one before
    /// the request reached it (not a failure: browsers and curl do the same).
    pub resent: bool,
}

impl Record {
    pub fn ended(&self) -> Duration {
        self.started + self.latency
    }

    pub fn failed(&self) -> bool {
        !(200..300).contains(&self.status)
    }
}

#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub target: SocketAddr,
    pub path: String,
    pub clients: usize,
    /// The load stops this long after the epoch.
    pub duration: Duration,
    /// Per-request limit, past which the request counts as failed (status 0).
    pub timeout: Duration,
}

impl LoadSpec {
    /// `clients` asking `path` until the load is stopped, each request allowed 30 s.
    pub fn new(target: SocketAddr, path: &str, clients: usize) -> LoadSpec {
        LoadSpec { target, path: path.into(), clients, duration: Duration::ZERO, timeout: Duration::from_secs(30) }
    }
}

/// The status recorded for a POST answered 2xx with a body other than the one sent.
pub const BODY_MISMATCH: u16 = 1;

/// What one client sends: the next request on its connection; returns the status to record.
type Sender = dyn Fn(&mut Connection, &LoadSpec, u64) -> std::io::Result<u16> + Send + Sync;

/// A load running in the background; `finish` waits for its end and returns every request.
pub struct RunningLoad {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<Vec<Record>>>,
    until: Instant,
}

impl RunningLoad {
    pub fn start(spec: &LoadSpec, epoch: Instant) -> RunningLoad {
        Self::start_with(spec, epoch, Arc::new(send_get))
    }

    /// Like `start`, but each request is a POST of `body_size` bytes (different for every
    /// request) to `spec.path`, which must echo it; a different answer is [`BODY_MISMATCH`].
    pub fn start_posts(spec: &LoadSpec, epoch: Instant, body_size: usize) -> RunningLoad {
        Self::start_with(
            spec,
            epoch,
            Arc::new(move |c: &mut Connection, s: &LoadSpec, seed| send_post(c, s, seed, body_size)),
        )
    }

    fn start_with(spec: &LoadSpec, epoch: Instant, sender: Arc<Sender>) -> RunningLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..spec.clients)
            .map(|client| {
                let (spec, stop, sender) = (spec.clone(), stop.clone(), sender.clone());
                std::thread::spawn(move || client_loop(&spec, &stop, epoch, client as u64, &*sender))
            })
            .collect();
        RunningLoad { stop, clients, until: epoch + spec.duration }
    }

    /// Waits until the spec's duration is over, then collects every request.
    pub fn finish(self) -> Vec<Record> {
        let rest = self.until.saturating_duration_since(Instant::now());
        self.stop_after(rest)
    }

    /// Lets the load run `tail` longer, then collects every request.
    pub fn stop_after(self, tail: Duration) -> Vec<Record> {
        std::thread::sleep(tail);
        self.stop.store(true, Ordering::Relaxed);
        self.clients.into_iter().flat_map(|c| c.join().unwrap_or_default()).collect()
    }
}

/// Runs one load per spec, does `event` after `lead`, and lets the loads run `tail` past its
/// end; returns the requests of each load, in the order of `specs`.
pub fn around(specs: &[LoadSpec], lead: Duration, tail: Duration, event: impl FnOnce()) -> Vec<Vec<Record>> {
    let epoch = Instant::now();
    let loads: Vec<RunningLoad> = specs.iter().map(|spec| RunningLoad::start(spec, epoch)).collect();
    std::thread::sleep(lead);
    event();
    let mut loads = loads.into_iter();
    let first = loads.next().map(|load| load.stop_after(tail));
    first.into_iter().chain(loads.map(|load| load.stop_after(Duration::ZERO))).collect()
}

/// Runs the load in the foreground.
pub fn run(spec: &LoadSpec, epoch: Instant) -> Vec<Record> {
    RunningLoad::start(spec, epoch).finish()
}

fn client_loop(spec: &LoadSpec, stop: &AtomicBool, epoch: Instant, client: u64, sender: &Sender) -> Vec<Record> {
    let mut records = Vec::with_capacity(100_000);
    let mut connection: Option<Connection> = None;
    while !stop.load(Ordering::Relaxed) {
        let started = epoch.elapsed();
        let seed = (client << 32) | records.len() as u64;
        let (status, resent) = match one_request(&mut connection, spec, seed, sender) {
            Ok(outcome) => outcome,
            Err(_) => {
                connection = None;
                (0, false)
            }
        };
        records.push(Record { started, latency: epoch.elapsed() - started, status, resent });
        if status == 0 {
            std::thread::sleep(Duration::from_millis(1)); // no busy loop against a closed port
        }
    }
    records
}

fn one_request(
    connection: &mut Option<Connection>,
    spec: &LoadSpec,
    seed: u64,
    sender: &Sender,
) -> std::io::Result<(u16, bool)> {
    let mut resent = false;
    if let Some(kept) = connection.take().filter(Connection::is_open) {
        match sender(connection.insert(kept), spec, seed) {
            // The event MPM closes idle kept-alive connections when a child's workers are all
            // busy; HTTP clients (browsers, curl) then resend on a new connection, and so do we.
            Err(error) if closed_before_an_answer(&error) => resent = true,
            outcome => return outcome.map(|status| (status, false)),
        }
    }
    let fresh = Connection::open(spec.target, spec.timeout)?;
    sender(connection.insert(fresh), spec, seed).map(|status| (status, resent))
}

/// The server had closed the connection before this request reached it: nothing was read.
fn closed_before_an_answer(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionReset, UnexpectedEof};
    matches!(error.kind(), BrokenPipe | ConnectionReset | UnexpectedEof) || error.to_string() == CLOSED_BEFORE_STATUS
}

fn send_get(connection: &mut Connection, spec: &LoadSpec, _seed: u64) -> std::io::Result<u16> {
    Ok(connection.send("GET", &spec.path, "localhost", &[])?.status)
}

fn send_post(connection: &mut Connection, spec: &LoadSpec, seed: u64, size: usize) -> std::io::Result<u16> {
    let body = body_pattern(size, seed);
    let response = connection.send("POST", &spec.path, "localhost", &body)?;
    let intact = response.body == body;
    Ok(if (200..300).contains(&response.status) && !intact { BODY_MISMATCH } else { response.status })
}

/// Bytes that differ at every offset and between requests, so a lost, repeated, shifted or
/// swapped block shows.
pub fn body_pattern(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Requests that did not get a 2xx, by status (0 = socket error or timeout).
pub fn failures(records: &[Record]) -> Vec<(u16, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for record in records.iter().filter(|r| r.failed()) {
        *counts.entry(record.status).or_insert(0) += 1;
    }
    counts.into_iter().collect()
}

pub fn failed_count(records: &[Record]) -> usize {
    records.iter().filter(|r| r.failed()).count()
}

pub fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
