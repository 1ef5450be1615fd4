//! shared_hosting: the shared-hosting scenario of bench/README.md. One php-fpm
//! master with hundreds of pools (one Unix socket each, all in one directory), one Apache
//! name-based virtual host per pool, a load spread over every site, and PHP-FPM restarted
//! under it: stock Apache against the module. Then the helper's commands over 500 pools.
//!
//! Usage: shared_hosting [--pools 200] [--children 1] [--clients 200]
//!        [--happy-clients 64] [--seconds 8] [--happy-seconds 4] [--helper-pools 500]
//!        [--module PATH] [--helper PATH] [--log-level LEVEL] [--strace] [--keep]
//!        [--only happy,restart,helper] [--variants apache-stock,apache+module,...]
//!
//! With as many clients as pools, client c always asks site c (see `SpreadLoad`): every
//! pool has one request in flight, and each waits through the restart.

mod helper_timing;
mod syscalls;

use harness::apache::{ApacheConfig, ModulePlacement, Processes};
use harness::load::{percentile, LoadSpec, Record};
use harness::sites::{self, Site, SiteRecord, SpreadLoad};
use harness::status::STATUS_LOCATION;
use harness::{free_port, Apache, Listen, PhpFpm};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const EVENT_AT: Duration = Duration::from_secs(2);
const HAPPY_ROUNDS: usize = 5;

pub struct Options {
    pools: usize,
    children: u32,
    clients: usize,
    happy_clients: usize,
    event_run: Duration,
    happy_run: Duration,
    helper_pools: usize,
    module: PathBuf,
    helper: PathBuf,
    log_level: String,
    strace: bool,
    keep: bool,
    parts: Vec<String>,
    variants: Vec<Variant>,
}

fn parse_options() -> Result<Options, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut o = Options {
        pools: 200,
        children: 1,
        clients: 200,
        happy_clients: 64,
        event_run: Duration::from_secs(8),
        happy_run: Duration::from_secs(4),
        helper_pools: 500,
        module: root.join("target/release/libmod_fcgi_resilient.so"),
        helper: root.join("target/release/fcgi-resilient-helper"),
        log_level: "warn fcgi_resilient:info".into(),
        strace: false,
        keep: false,
        parts: vec!["happy".into(), "restart".into(), "helper".into()],
        variants: Variant::ALL.to_vec(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |text: String| text.parse::<u64>().map_err(|_| format!("{flag} takes a number"));
        match flag.as_str() {
            "--pools" => o.pools = number(value()?)? as usize,
            "--children" => o.children = number(value()?)? as u32,
            "--clients" => o.clients = number(value()?)? as usize,
            "--happy-clients" => o.happy_clients = number(value()?)? as usize,
            "--seconds" => o.event_run = Duration::from_secs(number(value()?)?),
            "--happy-seconds" => o.happy_run = Duration::from_secs(number(value()?)?),
            "--helper-pools" => o.helper_pools = number(value()?)? as usize,
            "--module" => o.module = PathBuf::from(value()?),
            "--helper" => o.helper = PathBuf::from(value()?),
            "--log-level" => o.log_level = value()?,
            "--strace" => o.strace = true,
            "--keep" => o.keep = true,
            "--only" => o.parts = value()?.split(',').map(String::from).collect(),
            "--variants" => {
                o.variants = value()?
                    .split(',')
                    .map(|name| Variant::ALL.into_iter().find(|v| v.name() == name).ok_or(format!("no variant {name}")))
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.event_run <= EVENT_AT + Duration::from_secs(2) {
        return Err("--seconds must be more than 4".into());
    }
    Ok(o)
}

fn main() {
    let options = parse_options().unwrap_or_else(|message| {
        eprintln!("{message}\nsee the usage at the top of bench/src/bin/shared_hosting/main.rs");
        std::process::exit(2);
    });
    let dir = std::env::temp_dir().join(format!("fcgi-resilient-shared-hosting-{}", std::process::id()));
    let world = World::new(&dir, &options);
    let wants = |part: &str| options.parts.iter().any(|p| p == part);
    if wants("happy") {
        measure_happy_paths(&world, &options);
    }
    if wants("restart") {
        measure_restarts(&world, &options);
    }
    if wants("helper") {
        helper_timing::measure(&dir.join("helper"), &options.helper, options.helper_pools);
    }
    if options.keep {
        eprintln!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The run's directory: a document root, and the socket directory of the pools.
struct World {
    dir: PathBuf,
    docroot: PathBuf,
    sites: Vec<Site>,
}

impl World {
    fn new(dir: &Path, options: &Options) -> World {
        let docroot = dir.join("www");
        let sockets = dir.join("run");
        for path in [dir, &docroot, &sockets] {
            std::fs::create_dir_all(path).expect("run directory");
            make_world_readable(path);
        }
        std::fs::write(
            docroot.join("index.php"),
            "<?php $s = 0; for ($i = 0; $i < 2000; $i++) { $s += $i; } echo \"ok $s\\n\";\n",
        )
        .expect("index.php");
        make_world_readable(&docroot.join("index.php"));
        World { dir: dir.to_path_buf(), docroot, sites: sites::sites(&sockets, options.pools) }
    }

    fn subdir(&self, name: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::create_dir_all(&path).expect("subdirectory");
        make_world_readable(&path);
        path
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Stock,
    Module,
    ModuleIdempotent,
    /// RetryIdempotent On, and PHP-FPM stopped by `fcgi-resilient-helper stop`.
    ModuleIdempotentHelperStop,
}

impl Variant {
    const ALL: [Variant; 4] =
        [Variant::Stock, Variant::Module, Variant::ModuleIdempotent, Variant::ModuleIdempotentHelperStop];

    fn name(self) -> &'static str {
        match self {
            Variant::Stock => "apache-stock",
            Variant::Module => "apache+module",
            Variant::ModuleIdempotent => "apache+module+idempotent",
            Variant::ModuleIdempotentHelperStop => "apache+module+idem+helper-stop",
        }
    }

    fn directives(self) -> &'static str {
        match self {
            Variant::Stock => "",
            Variant::Module => "FcgiResilient On",
            _ => "FcgiResilient On\nFcgiResilientRetryIdempotent On",
        }
    }
}

/// Two children of 320 threads: a child may wait with up to 240 requests (¾ of its threads),
/// more than the 200 clients, however the event MPM spreads their connections. It does not
/// spread them evenly: with 4 children of 128 threads (96 per child) 2 of 3 runs had 7 to 10
/// requests answered 503 by that cap, with 4 of 256 (192 per child) 1 of 3 runs had 18.
fn apache_config(variant: Variant, port: u16, world: &World, sites: &[Site], options: &Options) -> ApacheConfig {
    let mut config = ApacheConfig::new(&world.docroot, "unused");
    config.port = port;
    config.log_level = options.log_level.clone();
    config.module_file = Some(options.module.clone());
    config.processes = Processes { start_servers: 2, server_limit: 2, threads_per_child: 320 };
    let mut site = format!("{}\n{}", variant.directives(), sites::virtual_hosts(port, &world.docroot, sites));
    if variant == Variant::Stock {
        config.module = ModulePlacement::NotLoaded;
        // Without the module its name is no valid LogLevel target.
        config.log_level = "warn".into();
    } else {
        site += STATUS_LOCATION;
    }
    config.site = site;
    config
}

fn spec(port: u16, clients: usize, duration: Duration) -> LoadSpec {
    LoadSpec { duration, ..LoadSpec::new(([127, 0, 0, 1], port).into(), "/index.php", clients) }
}

fn hosts(sites: &[Site]) -> Vec<String> {
    sites.iter().map(|s| s.host.clone()).collect()
}

/// Served requests per second over the time the load really took.
fn served_per_second(records: &[SiteRecord], run: Duration) -> f64 {
    let span = records.iter().map(|r| r.record.ended()).max().unwrap_or_default().max(run);
    records.iter().filter(|r| !r.record.failed()).count() as f64 / span.as_secs_f64()
}

/// Happy path, 1 pool and all pools, stock and module, all four Apaches running at once and
/// the load visiting them in turn (every other round backwards), each figure the median round.
fn measure_happy_paths(world: &World, options: &Options) {
    let one_dir = world.subdir("one-pool");
    let one_site = Site { host: "site0000.test".into(), socket: one_dir.join("php-fpm.sock") };
    let mut one = PhpFpm::new(&one_dir, &world.docroot, Listen::Unix(one_site.socket.clone()), 8);
    one.start();
    let many_dir = world.subdir("many-pools");
    let mut many =
        PhpFpm::with_pools(&many_dir, &world.docroot, &sites::sockets(&world.sites), "static", options.children);
    many.start();
    many.wait_all_accepting();
    let one_sites = std::slice::from_ref(&one_site);
    let setups: Vec<(String, Variant, &[Site])> = [(1, one_sites), (world.sites.len(), &world.sites[..])]
        .into_iter()
        .flat_map(|(count, sites)| {
            [Variant::Stock, Variant::Module]
                .map(|variant| (format!("{} {count} pool(s)", variant.name()), variant, sites))
        })
        .collect();
    let running: Vec<(String, u16, Vec<String>, Apache)> = setups
        .into_iter()
        .map(|(name, variant, sites)| {
            let port = free_port();
            let apache = Apache::start(
                &world.subdir(&format!("happy-{}", name.replace(' ', "-"))),
                apache_config(variant, port, world, sites, options),
            );
            (name, port, hosts(sites), apache)
        })
        .collect();
    for (_, port, hosts, _) in &running {
        SpreadLoad::start(&spec(*port, options.happy_clients, Duration::from_secs(1)), hosts, Instant::now()).finish();
    }
    let mut rounds: Vec<Vec<f64>> = vec![Vec::new(); running.len()];
    for round in 0..HAPPY_ROUNDS {
        let mut order: Vec<usize> = (0..running.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for index in order {
            let (name, port, hosts, _) = &running[index];
            let records =
                SpreadLoad::start(&spec(*port, options.happy_clients, options.happy_run), hosts, Instant::now())
                    .finish();
            let rate = served_per_second(&records, options.happy_run);
            let failed = records.iter().filter(|r| r.record.failed()).count();
            eprintln!("happy path round {}: {name}: {rate:.0} req/s, {failed} failed", round + 1);
            rounds[index].push(rate);
        }
    }
    println!(
        "\nhappy path ({} clients, {} rounds of {} s, median round):",
        options.happy_clients,
        HAPPY_ROUNDS,
        options.happy_run.as_secs()
    );
    println!("{:<36} {:>9} {:>7}", "front end", "req/s", "ratio");
    let medians: Vec<f64> = rounds
        .iter_mut()
        .map(|r| {
            r.sort_by(f64::total_cmp);
            r[r.len() / 2]
        })
        .collect();
    for (index, (name, ..)) in running.iter().enumerate() {
        // Rows come in pairs: stock, then the module with the same pools.
        let stock = medians[index - index % 2];
        println!("{name:<36} {:>9.0} {:>7.3}", medians[index], medians[index] / stock);
    }
    for (.., apache) in running {
        apache.stop();
    }
    one.stop();
    many.stop();
}

struct RestartRow {
    variant: Variant,
    requests: usize,
    failed: usize,
    failed_sites: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    in_flight_at_up: usize,
    added_p99: Duration,
    /// From the stop's start until php-fpm accepted on every socket again.
    outage: Duration,
    /// From the stop's start until every site had answered a request after php-fpm came back.
    all_serving: Option<Duration>,
    status: Option<StatusCheck>,
}

struct StatusCheck {
    backends: u64,
    untracked: u64,
    /// Sites whose requests waited (the module's info log names them) that the page lacks.
    waited_but_missing: usize,
    waited: usize,
}

fn measure_restarts(world: &World, options: &Options) {
    let dir = world.subdir("restart-fpm");
    let mut fpm = PhpFpm::with_pools(&dir, &world.docroot, &sites::sockets(&world.sites), "static", options.children);
    fpm.start();
    fpm.wait_all_accepting();
    let mut rows = Vec::new();
    for &variant in &options.variants {
        let port = free_port();
        let apache_dir = world.subdir(&format!("restart-{}", variant.name()));
        let apache = Apache::start(&apache_dir, apache_config(variant, port, world, &world.sites, options));
        let row = restart_under_load(variant, &apache, &apache_dir, &mut fpm, world, options);
        print_restart_row(&row);
        rows.push(row);
        apache.stop();
    }
    fpm.stop();
    println!(
        "\nPHP-FPM restart under load ({} pools, {} children each, {} clients over all sites, {} s run, stop at {} s):",
        options.pools,
        options.children,
        options.clients,
        options.event_run.as_secs(),
        EVENT_AT.as_secs()
    );
    println!("{}", restart_header());
    for row in &rows {
        println!("{}", restart_line(row));
    }
}

fn restart_under_load(
    variant: Variant,
    apache: &Apache,
    apache_dir: &Path,
    fpm: &mut PhpFpm,
    world: &World,
    options: &Options,
) -> RestartRow {
    fpm.wait_all_accepting();
    let hosts = hosts(&world.sites);
    let epoch = Instant::now();
    let load = SpreadLoad::start(&spec(apache.config.port, options.clients, options.event_run), &hosts, epoch);
    std::thread::sleep(EVENT_AT);
    let tracer = options.strace.then(|| syscalls::Tracer::attach(apache_dir));
    let sampler = (variant != Variant::Stock).then(|| syscalls::InotifySampler::start(apache_dir));
    let stop_at = epoch.elapsed();
    if variant == Variant::ModuleIdempotentHelperStop {
        helper_stop(&options.helper, fpm);
    }
    fpm.stop();
    fpm.start();
    let up = fpm.wait_all_accepting().duration_since(epoch);
    let records = load.finish();
    if let Some(sampler) = sampler {
        println!(
            "{}: at most {} inotify instances held by the Apache children at once (per-user cap {})",
            variant.name(),
            sampler.finish(),
            syscalls::inotify_cap()
        );
    }
    let plain: Vec<Record> = records.iter().map(|r| r.record).collect();
    eprintln!("{}: failures by status (0 = socket error): {:?}", variant.name(), harness::load::failures(&plain));
    for record in plain.iter().filter(|r| r.status == 0).take(5) {
        eprintln!("  socket error: started at {} ms, after {} ms", ms(record.started), ms(record.latency));
    }
    if let Some(tracer) = tracer {
        tracer.report(variant.name());
    }
    syscalls::report_trace_log(variant.name(), &apache.error_log());
    let status = (variant != Variant::Stock).then(|| check_status_page(apache, world));
    summarise(variant, &records, world.sites.len(), stop_at, up, status)
}

/// `fcgi-resilient-helper stop`: every pool's socket taken away, accepted requests finished,
/// then SIGTERM; the harness then reaps the master.
fn helper_stop(helper: &Path, fpm: &PhpFpm) {
    let pid = fpm.pid().expect("php-fpm running").to_string();
    let output = Command::new(helper)
        .args(["stop", "--pid", &pid, "--fpm-config"])
        .arg(fpm.config_file())
        .args(["--timeout", "20s"])
        .output()
        .expect("run fcgi-resilient-helper stop");
    if !output.status.success() {
        eprintln!("helper stop failed: {}", String::from_utf8_lossy(&output.stderr));
    }
}

fn summarise(
    variant: Variant,
    records: &[SiteRecord],
    sites: usize,
    stop_at: Duration,
    up: Duration,
    status: Option<StatusCheck>,
) -> RestartRow {
    let plain: Vec<Record> = records.iter().map(|r| r.record).collect();
    let mut latencies: Vec<Duration> = plain.iter().map(|r| r.latency).collect();
    latencies.sort();
    let mut added: Vec<Duration> =
        plain.iter().filter(|r| r.started < up && r.ended() > up).map(|r| r.ended() - up).collect();
    added.sort();
    let first = sites::first_answer_after(records, sites, up);
    let all_serving = first.iter().copied().collect::<Option<Vec<Duration>>>().and_then(|f| f.into_iter().max());
    RestartRow {
        variant,
        requests: plain.len(),
        failed: plain.iter().filter(|r| r.failed()).count(),
        failed_sites: sites::failed_sites(records).len(),
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or_default(),
        in_flight_at_up: added.len(),
        added_p99: percentile(&added, 0.99),
        outage: up - stop_at,
        all_serving: all_serving.map(|t| t - stop_at),
        status,
    }
}

/// The page's `?auto` totals, and whether every site whose requests waited is listed.
fn check_status_page(apache: &Apache, world: &World) -> StatusCheck {
    let response = harness::http::get(apache.address(), "/fcgi-resilient-status?auto").expect("status page");
    let page = response.text();
    let value = |key: &str| {
        page.lines().find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse::<u64>().ok())).unwrap_or(0)
    };
    let listed: std::collections::HashSet<&str> = page.lines().filter_map(|l| l.strip_prefix("Backend: ")).collect();
    let log = apache.error_log();
    let waited: Vec<&Site> = world
        .sites
        .iter()
        .filter(|site| log.contains(&format!("backend unix:{} answered after", site.socket.display())))
        .collect();
    let missing =
        waited.iter().filter(|site| !listed.contains(format!("unix:{}", site.socket.display()).as_str())).count();
    StatusCheck {
        backends: value("Backends:"),
        untracked: value("UntrackedEvents:"),
        waited_but_missing: missing,
        waited: waited.len(),
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1000.0)
}

fn restart_header() -> String {
    format!(
        "{:<31} {:>8} {:>6} {:>6} {:>7} {:>7} {:>8} {:>6} {:>9} {:>9} {:>10} {:>20}",
        "front end",
        "requests",
        "failed",
        "sites",
        "p50 ms",
        "p99 ms",
        "max ms",
        "held",
        "added p99",
        "outage ms",
        "all up ms",
        "status page"
    )
}

fn restart_line(row: &RestartRow) -> String {
    let status = match &row.status {
        Some(s) => format!(
            "{} backends, {} untracked, {}/{} waited listed",
            s.backends,
            s.untracked,
            s.waited - s.waited_but_missing,
            s.waited
        ),
        None => "-".into(),
    };
    format!(
        "{:<31} {:>8} {:>6} {:>6} {:>7} {:>7} {:>8} {:>6} {:>9} {:>9} {:>10} {status}",
        row.variant.name(),
        row.requests,
        row.failed,
        row.failed_sites,
        ms(row.p50),
        ms(row.p99),
        ms(row.max),
        row.in_flight_at_up,
        ms(row.added_p99),
        ms(row.outage),
        row.all_serving.map(ms).unwrap_or_else(|| "never".into()),
    )
}

fn print_restart_row(row: &RestartRow) {
    eprintln!("{}\n{}", restart_header(), restart_line(row));
}

fn make_world_readable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = if path.is_dir() { 0o755 } else { 0o644 };
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}
