//! Shared hosting: one site per PHP-FPM pool, each an Apache name-based virtual host whose
//! .php files go to its own pool's socket, and a load that spreads its requests over all of
//! them, as a control panel's server sees it.

use crate::http::Connection;
use crate::load::{LoadSpec, Record};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One site: the Host it answers to and the socket of its pool.
#[derive(Debug, Clone)]
pub struct Site {
    pub host: String,
    pub socket: PathBuf,
}

/// `count` sites whose pools listen in `socket_dir` (one directory, like /run/php).
pub fn sites(socket_dir: &Path, count: usize) -> Vec<Site> {
    (0..count)
        .map(|index| Site {
            host: format!("site{index:04}.test"),
            socket: socket_dir.join(format!("site{index:04}.sock")),
        })
        .collect()
}

pub fn sockets(sites: &[Site]) -> Vec<PathBuf> {
    sites.iter().map(|site| site.socket.clone()).collect()
}

/// The Apache config of the sites: a name-based virtual host each, all serving `docroot`
/// through their own pool. The first one also answers requests for other names (the status
/// page's `Host: localhost`).
pub fn virtual_hosts(port: u16, docroot: &Path, sites: &[Site]) -> String {
    let docroot = docroot.display();
    let mut text = format!("<Directory {docroot}>\n    AllowOverride None\n    Require all granted\n</Directory>\n");
    for site in sites {
        text += &format!(
            "<VirtualHost 127.0.0.1:{port}>\n    ServerName {host}\n    DocumentRoot {docroot}\n    \
             <FilesMatch \"\\.php$\">\n        SetHandler \"proxy:unix:{socket}|fcgi://localhost\"\n    \
             </FilesMatch>\n</VirtualHost>\n",
            host = site.host,
            socket = site.socket.display(),
        );
    }
    text
}

/// One request of a spread load: which site it went to, and how it went.
#[derive(Debug, Clone, Copy)]
pub struct SiteRecord {
    pub site: usize,
    pub record: Record,
}

/// A closed-loop load like [`crate::load::RunningLoad`], but request n of client c goes to
/// site (c + n * clients) mod sites: at any moment the clients are on different sites, and
/// every site gets its turn.
pub struct SpreadLoad {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<Vec<SiteRecord>>>,
    until: Instant,
}

impl SpreadLoad {
    /// `spec.path` on every site, `spec.clients` clients, until `spec.duration` after `epoch`.
    pub fn start(spec: &LoadSpec, hosts: &[String], epoch: Instant) -> SpreadLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let hosts = Arc::new(hosts.to_vec());
        let clients = (0..spec.clients)
            .map(|client| {
                let (spec, stop, hosts) = (spec.clone(), stop.clone(), hosts.clone());
                std::thread::spawn(move || client_loop(&spec, &hosts, &stop, epoch, client))
            })
            .collect();
        SpreadLoad { stop, clients, until: epoch + spec.duration }
    }

    /// Waits until the spec's duration is over, then collects every request.
    pub fn finish(self) -> Vec<SiteRecord> {
        let rest = self.until.saturating_duration_since(Instant::now());
        self.stop_after(rest)
    }

    pub fn stop_after(self, tail: Duration) -> Vec<SiteRecord> {
        std::thread::sleep(tail);
        self.stop.store(true, Ordering::Relaxed);
        self.clients.into_iter().flat_map(|c| c.join().unwrap_or_default()).collect()
    }
}

fn client_loop(spec: &LoadSpec, hosts: &[String], stop: &AtomicBool, epoch: Instant, client: usize) -> Vec<SiteRecord> {
    let mut records = Vec::with_capacity(100_000);
    let mut connection: Option<Connection> = None;
    let mut site = client % hosts.len();
    while !stop.load(Ordering::Relaxed) {
        let started = epoch.elapsed();
        let status = match one_request(&mut connection, spec, &hosts[site]) {
            Ok(status) => status,
            Err(_) => {
                connection = None;
                0
            }
        };
        records.push(SiteRecord {
            site,
            record: Record {
                started,
                latency: epoch.elapsed() - started,
                status,
                // This client never resends: a kept-alive connection closed under it is a failure.
                resent: false,
            },
        });
        if status == 0 {
            std::thread::sleep(Duration::from_millis(1)); // no busy loop against a closed port
        }
        site = (site + spec.clients) % hosts.len();
    }
    records
}

fn one_request(connection: &mut Option<Connection>, spec: &LoadSpec, host: &str) -> std::io::Result<u16> {
    let open = match connection.take() {
        Some(open) if open.is_open() => open,
        _ => Connection::open(spec.target, spec.timeout)?,
    };
    Ok(connection.insert(open).send("GET", &spec.path, host, &[])?.status)
}

/// The sites that had a request fail, in order.
pub fn failed_sites(records: &[SiteRecord]) -> Vec<usize> {
    let mut sites: Vec<usize> = records.iter().filter(|r| r.record.failed()).map(|r| r.site).collect();
    sites.sort_unstable();
    sites.dedup();
    sites
}

/// For each site, when (since the epoch) it first answered a request that was still open at
/// `from`, or started after it; None for a site that never did.
pub fn first_answer_after(records: &[SiteRecord], sites: usize, from: Duration) -> Vec<Option<Duration>> {
    let mut first = vec![None; sites];
    for SiteRecord { site, record } in records {
        if record.failed() || record.ended() < from {
            continue;
        }
        let slot: &mut Option<Duration> = &mut first[*site];
        if slot.is_none_or(|known| record.ended() < known) {
            *slot = Some(record.ended());
        }
    }
    first
}
