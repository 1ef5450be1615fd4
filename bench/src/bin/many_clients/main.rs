//! many_clients: issue 18, point 9. N clients on a 20 ms PHP page plus 8 clients on a static
//! file, PHP-FPM stopped for 5 s in the middle of the load, for stock Apache, the module
//! (suspending its waiting requests under the event MPM), nginx, HAProxy and Caddy. See
//! bench/README.md, "Many clients through a 5 s outage".
//!
//! Usage: many_clients [--clients 256,1024] [--seconds 12] [--stop-at 3] [--outage 5]
//!        [--front-ends apache-stock,apache+module,...] [--module PATH] [--keep]
//!
//! Apache: event MPM, 4 children of 32 threads (MaxRequestWorkers 128). php-fpm: one pool of
//! 8 static children on a Unix socket. Each front end is started afresh for each N; php-fpm
//! is shared and stopped (SIGTERM, as `systemctl stop`), left down `--outage` seconds and
//! started again, `--stop-at` seconds into a load of `--seconds`.

#[allow(dead_code)]
#[path = "../../servers.rs"]
mod servers;

use harness::apache::{ApacheConfig, ModulePlacement, Processes};
use harness::load::{failures, percentile, LoadSpec, Record, RunningLoad};
use harness::{free_port, Apache, Listen, PhpFpm, WorkDir};
use servers::{FrontEnd, Running, Site};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STATIC_CLIENTS: usize = 8;
const PHP_PATH: &str = "/sleep.php?ms=20";
const STATIC_PATH: &str = "/static.txt";
/// The static rate "before" the outage is counted from here (the load's start-up left out).
const WARMED_UP: Duration = Duration::from_secs(1);
const RSS_PERIOD: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    ApacheStock,
    /// FcgiResilient On, FcgiResilientRetryIdempotent On.
    Module,
    /// FcgiResilient On only.
    ModuleDefaults,
    /// As Module, with AsyncRequestWorkerFactor 8.
    ModuleFactor8,
    /// As Module, with a graceful restart of Apache (SIGUSR1) in the middle of the outage.
    ModuleGraceful,
    Nginx,
    Haproxy,
    Caddy,
}

impl Variant {
    const ALL: [Variant; 8] = [
        Variant::ApacheStock,
        Variant::Module,
        Variant::ModuleDefaults,
        Variant::ModuleFactor8,
        Variant::ModuleGraceful,
        Variant::Nginx,
        Variant::Haproxy,
        Variant::Caddy,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::ApacheStock => "apache-stock",
            Variant::Module => "apache+module",
            Variant::ModuleDefaults => "apache+module-defaults",
            Variant::ModuleFactor8 => "apache+module+arwf8",
            Variant::ModuleGraceful => "apache+module+graceful",
            Variant::Nginx => "nginx",
            Variant::Haproxy => "haproxy",
            Variant::Caddy => "caddy",
        }
    }

    fn peer(self) -> Option<FrontEnd> {
        match self {
            Variant::Nginx => Some(FrontEnd::Nginx),
            Variant::Haproxy => Some(FrontEnd::Haproxy),
            Variant::Caddy => Some(FrontEnd::Caddy),
            _ => None,
        }
    }

    fn directives(self) -> &'static str {
        match self {
            Variant::ModuleDefaults => "FcgiResilient On",
            Variant::ModuleFactor8 => "FcgiResilient On\nFcgiResilientRetryIdempotent On\nAsyncRequestWorkerFactor 8",
            _ => "FcgiResilient On\nFcgiResilientRetryIdempotent On",
        }
    }
}

struct Options {
    clients: Vec<usize>,
    run: Duration,
    stop_at: Duration,
    outage: Duration,
    variants: Vec<Variant>,
    module: PathBuf,
    keep: bool,
}

fn parse_options() -> Result<Options, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut o = Options {
        clients: vec![256, 1024],
        run: Duration::from_secs(12),
        stop_at: Duration::from_secs(3),
        outage: Duration::from_secs(5),
        variants: Variant::ALL.to_vec(),
        module: root.join("target/release/libmod_fcgi_resilient.so"),
        keep: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |text: &str| text.parse::<u64>().map_err(|_| format!("{flag} takes a number"));
        match flag.as_str() {
            "--clients" => {
                o.clients = value()?.split(',').map(|n| number(n).map(|n| n as usize)).collect::<Result<_, _>>()?
            }
            "--seconds" => o.run = Duration::from_secs(number(&value()?)?),
            "--stop-at" => o.stop_at = Duration::from_secs(number(&value()?)?),
            "--outage" => o.outage = Duration::from_secs(number(&value()?)?),
            "--module" => o.module = PathBuf::from(value()?),
            "--keep" => o.keep = true,
            "--front-ends" => {
                o.variants = value()?
                    .split(',')
                    .map(|name| {
                        Variant::ALL.into_iter().find(|v| v.name() == name).ok_or(format!("no front end {name}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.run <= o.stop_at + o.outage {
        return Err("--seconds must be more than --stop-at plus --outage".into());
    }
    Ok(o)
}

/// One thread per client: the bench process holds a socket per client and the front ends
/// inherit the limit, so the soft open-file limit is raised to the hard one.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct owned by this frame.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    eprintln!("open-file limit: soft {}, hard {}", limit.rlim_cur, limit.rlim_max);
}

fn main() {
    let options = parse_options().unwrap_or_else(|message| {
        eprintln!("{message}\nsee the usage at the top of bench/src/bin/many_clients/main.rs");
        std::process::exit(2);
    });
    raise_open_file_limit();
    if options.keep {
        std::env::set_var("FCGI_RESILIENT_KEEP", "1");
    }
    let work = WorkDir::new("many-clients");
    let docroot = work.docroot();
    let socket = work.join("php-fpm.sock");
    let mut fpm = PhpFpm::new(work.path(), &docroot, Listen::Unix(socket.clone()), 8);
    fpm.start();
    let mut rows = Vec::new();
    for &clients in &options.clients {
        for &variant in &options.variants {
            let row = run_one(variant, clients, &work, &socket, &mut fpm, &options);
            eprintln!("{}\n{}", header(), line(&row));
            rows.push(row);
        }
    }
    fpm.stop();
    println!(
        "\n{} s load, PHP-FPM ({} children) stopped at {} s for {} s; PHP: {PHP_PATH}, static: {STATIC_CLIENTS} clients on {STATIC_PATH}",
        options.run.as_secs(),
        8,
        options.stop_at.as_secs(),
        options.outage.as_secs()
    );
    println!("{}", header());
    for row in &rows {
        println!("{}", line(row));
    }
    for row in &rows {
        for note in &row.notes {
            println!("{} {}: {note}", row.variant.name(), row.clients);
        }
    }
}

/// A running front end, and the process group whose RSS is summed.
enum Front {
    Apache(Apache),
    Peer(Running),
}

impl Front {
    fn process_group(&self, dir: &Path) -> i32 {
        match self {
            // The harness starts apache2 -DFOREGROUND in a process group of its own.
            Front::Apache(_) => std::fs::read_to_string(dir.join("httpd.pid"))
                .ok()
                .and_then(|pid| pid.trim().parse().ok())
                .expect("httpd.pid"),
            Front::Peer(Running::Other(daemon)) => daemon.pid(),
            Front::Peer(Running::Apache(_)) => unreachable!("Apache front ends are started here"),
        }
    }

    fn stop(self) {
        match self {
            Front::Apache(apache) => apache.stop(),
            Front::Peer(running) => running.stop(),
        }
    }
}

fn apache_config(variant: Variant, port: u16, docroot: &Path, socket: &Path, module: &Path) -> ApacheConfig {
    let handler = Listen::Unix(socket.to_path_buf()).proxy_handler();
    let mut config = ApacheConfig::new(docroot, &handler);
    config.port = port;
    config.module_file = Some(module.to_path_buf());
    config.processes = Processes { start_servers: 4, server_limit: 4, threads_per_child: 32 };
    // mpm_event:debug logs "Too many open connections (N), not accepting new conns in this
    // process" when a child stops accepting, and "Accepting new connections again".
    if variant == Variant::ApacheStock {
        config.module = ModulePlacement::NotLoaded;
        config.log_level = "warn mpm_event:debug".into();
        config
    } else {
        config.log_level = "warn mpm_event:debug fcgi_resilient:info".into();
        config.with_server_directives(variant.directives())
    }
}

struct Row {
    variant: Variant,
    clients: usize,
    php: Vec<Record>,
    statics: Vec<Record>,
    stop: Duration,
    up: Duration,
    idle_rss_kb: u64,
    peak_rss_kb: u64,
    notes: Vec<String>,
}

fn run_one(
    variant: Variant,
    clients: usize,
    work: &WorkDir,
    socket: &Path,
    fpm: &mut PhpFpm,
    options: &Options,
) -> Row {
    fpm.wait_accepting();
    let port = free_port();
    let dir = work.subdir(&format!("{}-{clients}", variant.name()));
    let docroot = work.docroot();
    let mut front = match variant.peer() {
        Some(peer) => Front::Peer(servers::start_front_end(
            peer,
            &Site { dir: &dir, docroot: &docroot, socket, port, module: &options.module, apache_log_level: "warn" },
        )),
        None => Front::Apache(Apache::start(&dir, apache_config(variant, port, &docroot, socket, &options.module))),
    };
    // The peers write under dir/<name>; Apache's httpd.pid is in dir.
    let group = front.process_group(&dir);
    let idle_rss_kb = group_rss_kb(group);
    let sampler = RssSampler::start(group);
    let target = ([127, 0, 0, 1], port).into();
    let php_spec = LoadSpec { duration: options.run, ..LoadSpec::new(target, PHP_PATH, clients) };
    let static_spec = LoadSpec { duration: options.run, ..LoadSpec::new(target, STATIC_PATH, STATIC_CLIENTS) };
    let epoch = Instant::now();
    let php_load = RunningLoad::start(&php_spec, epoch);
    let static_load = RunningLoad::start(&static_spec, epoch);
    std::thread::sleep(options.stop_at.saturating_sub(epoch.elapsed()));
    let stop = epoch.elapsed();
    let mut notes = Vec::new();
    fpm.stop();
    if let (Variant::ModuleGraceful, Front::Apache(apache)) = (variant, &mut front) {
        std::thread::sleep(options.outage / 2);
        let signalled = epoch.elapsed();
        apache.graceful();
        notes.push(format!(
            "graceful restart (SIGUSR1) at {} ms, 'resuming normal operations' after {} ms",
            ms(signalled),
            ms(epoch.elapsed() - signalled),
        ));
    }
    std::thread::sleep((stop + options.outage).saturating_sub(epoch.elapsed()));
    let up = fpm.start().duration_since(epoch);
    let php = php_load.finish();
    let statics = static_load.stop_after(Duration::ZERO);
    let finished = epoch.elapsed();
    let peak_rss_kb = sampler.finish();
    notes.push(format!("load ended at {} ms (its last request answered)", ms(finished)));
    if let Front::Apache(apache) = &front {
        notes.extend(mpm_notes(&apache.error_log()));
    }
    front.stop();
    Row { variant, clients, php, statics, stop, up, idle_rss_kb, peak_rss_kb, notes }
}

/// What the event MPM and the module said about connection limits and waits.
fn mpm_notes(log: &str) -> Vec<String> {
    let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    let mut notes = Vec::new();
    for needle in [
        "Too many open connections",
        "Accepting new connections again",
        "server reached MaxRequestWorkers",
        "AH00485",
        "all workers are busy",
        "AH00484",
        "scoreboard is full",
        "exit signal",
    ] {
        let n = count(needle);
        if let Some(first) = log.lines().find(|l| l.contains(needle)) {
            notes.push(format!("error log: {n} line(s) with \"{needle}\", the first: {}", tail(first)));
        }
    }
    let module: Vec<&str> = log.lines().filter(|l| l.contains("[fcgi_resilient:")).collect();
    if let Some(first) = module.first() {
        notes.push(format!("error log: {} fcgi_resilient line(s), the first: {}", module.len(), tail(first)));
    }
    notes
}

/// An error log line without its date and pid prefix.
fn tail(line: &str) -> &str {
    line.rsplit_once("] ").map_or(line, |(_, message)| message)
}

/// Samples the summed VmRSS of a process group every [`RSS_PERIOD`]; `finish` gives the peak.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl RssSampler {
    fn start(group: i32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(group_rss_kb(group));
                std::thread::sleep(RSS_PERIOD);
            }
            peak
        });
        RssSampler { stop, thread }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

/// The sum of VmRSS (kB) of the processes in process group `group` (/proc/PID/stat, field 5).
fn group_rss_kb(group: i32) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| process_group_of(*pid) == Some(group))
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum()
}

fn process_group_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(2)?.parse().ok()
}

fn ms(duration: Duration) -> String {
    format!("{:.0}", duration.as_secs_f64() * 1000.0)
}

fn by_status(records: &[Record]) -> String {
    let failed = failures(records);
    if failed.is_empty() {
        return "0".into();
    }
    let total: usize = failed.iter().map(|(_, n)| n).sum();
    let parts: Vec<String> = failed.iter().map(|(status, n)| format!("{status}:{n}")).collect();
    format!("{total} ({})", parts.join(" "))
}

/// Answered 2xx per second among the requests that ended in [from, to).
fn rate(records: &[Record], from: Duration, to: Duration) -> f64 {
    let served = records.iter().filter(|r| !r.failed() && r.ended() >= from && r.ended() < to).count();
    served as f64 / (to - from).as_secs_f64().max(0.001)
}

fn header() -> String {
    format!(
        "{:<24} {:>5} {:>7} {:<26} {:>7} {:<14} {:>8} {:>8} {:>6} {:>8} {:>8} {:>9} {:>9} {:>7} {:>9}",
        "front end",
        "N",
        "PHP req",
        "PHP non-2xx (status:n)",
        "static",
        "static failed",
        "st/s bef",
        "st/s out",
        "waited",
        "p99 wait",
        "max wait",
        "RSS idle",
        "RSS peak",
        "outage",
        "ka closed"
    )
}

fn line(row: &Row) -> String {
    // PHP requests that waited the outage out: in flight at some moment of it (started before
    // php-fpm accepted again, ended after it was stopped) and answered 2xx.
    let mut waited: Vec<Duration> = row
        .php
        .iter()
        .filter(|r| r.started < row.up && r.ended() > row.stop && !r.failed())
        .map(|r| r.latency)
        .collect();
    waited.sort();
    let mb = |kb: u64| format!("{:.0} MB", kb as f64 / 1024.0);
    format!(
        "{:<24} {:>5} {:>7} {:<26} {:>7} {:<14} {:>8.0} {:>8.0} {:>6} {:>8} {:>8} {:>9} {:>9} {:>7} {:>9}",
        row.variant.name(),
        row.clients,
        row.php.len(),
        by_status(&row.php),
        row.statics.len(),
        by_status(&row.statics),
        rate(&row.statics, WARMED_UP, row.stop),
        rate(&row.statics, row.stop, row.up),
        waited.len(),
        ms(percentile(&waited, 0.99)),
        ms(waited.last().copied().unwrap_or_default()),
        mb(row.idle_rss_kb),
        mb(row.peak_rss_kb),
        ms(row.up - row.stop),
        row.php.iter().chain(&row.statics).filter(|r| r.resent).count(),
    )
}
