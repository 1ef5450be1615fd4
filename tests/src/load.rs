//! A bounded closed-loop load: each client keeps one connection alive and sends its next GET
//! when the previous answer is complete, until the run's duration is over. Every request is
//! recorded (start, latency, status) so failures and latencies can be put on a timeline.

use crate::http::Connection;
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

/// A load running in the background; `finish` waits for its end and returns every request.
pub struct RunningLoad {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<Vec<Record>>>,
    until: Instant,
}

impl RunningLoad {
    pub fn start(spec: &LoadSpec, epoch: Instant) -> RunningLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..spec.clients)
            .map(|_| {
                let (spec, stop) = (spec.clone(), stop.clone());
                std::thread::spawn(move || client_loop(&spec, &stop, epoch))
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

fn client_loop(spec: &LoadSpec, stop: &AtomicBool, epoch: Instant) -> Vec<Record> {
    let mut records = Vec::with_capacity(100_000);
    let mut connection: Option<Connection> = None;
    while !stop.load(Ordering::Relaxed) {
        let started = epoch.elapsed();
        let status = match one_request(&mut connection, spec) {
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

fn one_request(connection: &mut Option<Connection>, spec: &LoadSpec) -> std::io::Result<u16> {
    let open = match connection.take() {
        Some(open) if open.is_open() => open,
        _ => Connection::open(spec.target, spec.timeout)?,
    };
    let connection = connection.insert(open);
    Ok(connection.send("GET", &spec.path, "localhost", &[])?.status)
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
