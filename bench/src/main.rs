//! fcgi-resilient-bench: each front end, the same php-fpm pool and the same closed-loop load,
//! through five PHP-FPM events (restart, restart through `fcgi-resilient-helper stop`, restart
//! through `fcgi-resilient-helper deploy` (module front ends only), restart with a 2 s gap,
//! graceful reload), plus a happy-path throughput run. Prints a table and writes results.csv
//! and timeline.csv. With `--transports` naming h2c or h2, the same events again under an
//! HTTP/2 load (h2load), over h2c and over h2 on TLS: a second table, results-http2.csv and
//! results-http2.txt (with h2load's own output).
//!
//! Usage: fcgi-resilient-bench [--clients 32] [--seconds 8] [--happy-seconds 5]
//!        [--front-ends apache-stock,apache+module,...] [--events restart,helper-restart,...]
//!        [--transports http1,h2c,h2] [--h2-connections 16] [--h2-streams 8]
//!        [--module PATH] [--helper PATH] [--out DIR] [--happy-only]

mod http2_load;
mod servers;

use harness::load::{self, percentile, LoadSpec, Record};
use harness::transport::{H2loadSummary, Transport};
use harness::{free_port, PhpFpm};
use http2_load::{Http2LoadSpec, RunningHttp2Load};
use servers::{start_front_end, start_front_end_with_http2, Certificate, FrontEnd, Site};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Restart,
    /// `fcgi-resilient-helper stop` (socket aside, drain, SIGTERM), then start.
    HelperRestart,
    /// The restart as the COMMAND of `fcgi-resilient-helper deploy` (pause, drain, restart,
    /// answer, resume): only where the module reads the pause.
    Deploy,
    RestartWithGap,
    Reload,
}

impl Event {
    const ALL: [Event; 5] = [Event::Restart, Event::HelperRestart, Event::Deploy, Event::RestartWithGap, Event::Reload];
    fn name(self) -> &'static str {
        match self {
            Event::Restart => "restart",
            Event::HelperRestart => "helper-restart",
            Event::Deploy => "deploy",
            Event::RestartWithGap => "restart+2s-gap",
            Event::Reload => "reload(USR2)",
        }
    }

    /// The table's name, or a short one that needs no quoting on a command line.
    fn from_name(name: &str) -> Option<Event> {
        let short = match name {
            "gap" => "restart+2s-gap",
            "reload" => "reload(USR2)",
            other => other,
        };
        Self::ALL.into_iter().find(|e| e.name() == short)
    }
}

/// How long the helper may drain; far above this load's requests, so a timeout shows a fault.
const HELPER_DRAIN_TIMEOUT: &str = "10s";

const EVENT_AT: Duration = Duration::from_secs(2);
const GAP: Duration = Duration::from_secs(2);
const HAPPY_ROUNDS: usize = 3;

/// The transports `--transports` takes: HTTP/1.1 through the harness's client, h2c and h2
/// over TLS through h2load.
fn transport_from_name(name: &str) -> Option<Transport> {
    match name {
        "http1" => Some(Transport::Http1),
        "h2c" => Some(Transport::H2c),
        "h2" => Some(Transport::H2),
        _ => None,
    }
}

struct Options {
    clients: usize,
    event_run: Duration,
    happy_run: Duration,
    front_ends: Vec<FrontEnd>,
    events: Vec<Event>,
    transports: Vec<Transport>,
    /// The HTTP/2 load: h2load's connections, each with this many concurrent streams.
    h2_connections: usize,
    h2_streams: usize,
    module: PathBuf,
    helper: PathBuf,
    out: PathBuf,
    /// Keep the run's directory (configs and logs) for a look afterwards.
    keep: bool,
    /// Only the happy-path throughput, no PHP-FPM events.
    happy_only: bool,
    apache_log_level: String,
}

fn parse_options() -> Result<Options, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut options = Options {
        clients: 32,
        event_run: Duration::from_secs(8),
        happy_run: Duration::from_secs(5),
        front_ends: FrontEnd::ALL.to_vec(),
        events: Event::ALL.to_vec(),
        transports: vec![Transport::Http1],
        // As the HTTP/2 measurements of issue 16: 128 streams in flight, on 16 connections.
        h2_connections: 16,
        h2_streams: 8,
        module: root.join("target/release/libmod_fcgi_resilient.so"),
        helper: root.join("target/release/fcgi-resilient-helper"),
        out: root.join("target/bench"),
        keep: false,
        happy_only: false,
        apache_log_level: "warn".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--clients" => options.clients = value()?.parse().map_err(|_| "--clients takes a number")?,
            "--seconds" => {
                options.event_run = Duration::from_secs(value()?.parse().map_err(|_| "--seconds takes a number")?)
            }
            "--happy-seconds" => {
                options.happy_run = Duration::from_secs(value()?.parse().map_err(|_| "--happy-seconds takes a number")?)
            }
            "--front-ends" => {
                options.front_ends = value()?
                    .split(',')
                    .map(|name| FrontEnd::from_name(name).ok_or(format!("unknown front end {name}")))
                    .collect::<Result<_, _>>()?
            }
            "--events" => {
                options.events = value()?
                    .split(',')
                    .map(|name| Event::from_name(name).ok_or(format!("unknown event {name}")))
                    .collect::<Result<_, _>>()?
            }
            "--transports" => {
                options.transports = value()?
                    .split(',')
                    .map(|name| transport_from_name(name).ok_or(format!("unknown transport {name} (http1, h2c, h2)")))
                    .collect::<Result<_, _>>()?
            }
            "--h2-connections" => {
                options.h2_connections = value()?.parse().map_err(|_| "--h2-connections takes a number")?
            }
            "--h2-streams" => options.h2_streams = value()?.parse().map_err(|_| "--h2-streams takes a number")?,
            "--module" => options.module = PathBuf::from(value()?),
            "--helper" => options.helper = PathBuf::from(value()?),
            "--out" => options.out = PathBuf::from(value()?),
            "--log-level" => options.apache_log_level = value()?,
            "--keep" => options.keep = true,
            "--happy-only" => options.happy_only = true,
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if options.event_run <= EVENT_AT + GAP {
        return Err(format!("--seconds must be more than {}", (EVENT_AT + GAP).as_secs()));
    }
    let needs_helper = options.events.iter().any(|e| matches!(e, Event::HelperRestart | Event::Deploy));
    if needs_helper && !options.helper.is_file() {
        return Err(format!(
            "no helper at {} (cargo build --release -p fcgi-resilient-helper)",
            options.helper.display()
        ));
    }
    Ok(options)
}

struct Row {
    front_end: FrontEnd,
    event: &'static str,
    total: usize,
    failed: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    requests_per_second: f64,
    /// For events with downtime: p99, over the requests in flight when php-fpm accepted
    /// again, of how long after that moment they were answered.
    added_after_backend_up: Option<Duration>,
    /// For the restart through the helper: the drain time the helper reported.
    helper_drain: Option<Duration>,
}

/// An event under the HTTP/2 load: the same figures from h2load's per-request log, and
/// h2load's own counts.
struct Http2Row {
    /// What h2load says it spoke, so that a row cannot claim h2 for HTTP/1.1.
    protocol: String,
    h2load: H2loadSummary,
    /// From the event's start (the stop) until php-fpm accepted again: a slow php-fpm start
    /// on a busy machine makes a restart as long as a gap, and the failures follow it.
    outage: Option<Duration>,
    row: Row,
}

fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}\nusage: fcgi-resilient-bench [--clients N] [--seconds N] [--happy-seconds N] [--front-ends a,b] [--events a,b] [--transports http1,h2c,h2] [--h2-connections N] [--h2-streams N] [--module PATH] [--helper PATH] [--out DIR] [--log-level LEVEL] [--keep] [--happy-only]");
            std::process::exit(2);
        }
    };
    let (rows, http2_rows, http2_outputs) = run_all(&options);
    std::fs::create_dir_all(&options.out).expect("output directory");
    if options.transports.contains(&Transport::Http1) {
        let table = render_table(&rows);
        println!("{table}");
        std::fs::write(options.out.join("results.csv"), render_csv(&rows)).expect("results.csv");
        std::fs::write(options.out.join("results.txt"), &table).expect("results.txt");
        println!("written: {}/results.csv, results.txt, timeline.csv", options.out.display());
    }
    if !http2_rows.is_empty() {
        let table = render_http2_table(&http2_rows);
        println!("{table}");
        std::fs::write(options.out.join("results-http2.csv"), render_http2_csv(&http2_rows))
            .expect("results-http2.csv");
        std::fs::write(options.out.join("results-http2.txt"), table + "\n" + &http2_outputs)
            .expect("results-http2.txt");
        println!("written: {}/results-http2.csv, results-http2.txt", options.out.display());
    }
}

/// The HTTP/1.1 rows, the HTTP/2 rows, and h2load's output of each HTTP/2 row.
fn run_all(options: &Options) -> (Vec<Row>, Vec<Http2Row>, String) {
    let dir = std::env::temp_dir().join(format!("fcgi-resilient-bench-{}", std::process::id()));
    let docroot = dir.join("www");
    std::fs::create_dir_all(&docroot).expect("docroot");
    make_world_readable(&dir);
    std::fs::write(
        docroot.join("index.php"),
        "<?php $s = 0; for ($i = 0; $i < 2000; $i++) { $s += $i; } echo \"ok $s\\n\";\n",
    )
    .expect("index.php");
    make_world_readable(&docroot);
    let mut fpm = PhpFpm::unix(&dir, &docroot);
    let socket = dir.join("php-fpm.sock");
    fpm.start();
    let site = |port| Site {
        dir: &dir,
        docroot: &docroot,
        socket: &socket,
        port,
        module: &options.module,
        apache_log_level: &options.apache_log_level,
    };
    let http1 = options.transports.contains(&Transport::Http1);
    let mut rows = if http1 { measure_happy_paths(options, &site) } else { Vec::new() };
    let mut timeline = String::from("front_end,event,second,requests,failed,p99_ms\n");
    let event_runs = if options.happy_only || !http1 { &[][..] } else { &options.front_ends[..] };
    for &front_end in event_runs {
        let port = free_port();
        let daemon = start_front_end(front_end, &site(port));
        let spec = |duration| load_spec(port, options.clients, duration);
        for &event in &options.events {
            if event == Event::Deploy && !front_end.reads_pauses() {
                continue; // nothing of theirs reads the pause: the deploy would be a plain restart
            }
            fpm.wait_accepting();
            let epoch = Instant::now();
            let (records, applied) = std::thread::scope(|scope| {
                let load = scope.spawn(|| load::run(&spec(options.event_run), epoch));
                std::thread::sleep(EVENT_AT);
                let applied = apply(event, &mut fpm, &options.helper, &dir);
                (load.join().expect("load threads"), applied)
            });
            let backend_up = applied.backend_up.map(|up| up.duration_since(epoch));
            append_timeline(&mut timeline, front_end, event, &records);
            if let Some(up) = backend_up {
                report_wait_after_backend_up(front_end, event, &records, up);
            }
            let mut row = summarise(front_end, event.name(), &records, options.event_run, backend_up);
            row.helper_drain = applied.helper_drain;
            rows.push(row);
            eprintln!(
                "{} {}: {} requests, {} failed",
                front_end.name(),
                event.name(),
                records.len(),
                rows.last().map_or(0, |r| r.failed)
            );
        }
        daemon.stop();
    }
    let (http2_rows, http2_outputs) =
        if options.happy_only { Default::default() } else { measure_http2_events(options, &site, &mut fpm, &dir) };
    fpm.stop();
    // Each front end's rows together, its happy path first (the sort is stable).
    rows.sort_by_key(|row| options.front_ends.iter().position(|&f| f == row.front_end));
    std::fs::create_dir_all(&options.out).expect("output directory");
    if http1 {
        std::fs::write(options.out.join("timeline.csv"), timeline).expect("timeline.csv");
    }
    if options.keep {
        eprintln!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    (rows, http2_rows, http2_outputs)
}

/// Each front end, started once with its h2c and TLS listeners, through each event under
/// h2load over each HTTP/2 transport asked for.
fn measure_http2_events<'a>(
    options: &Options,
    site: &dyn Fn(u16) -> Site<'a>,
    fpm: &mut PhpFpm,
    dir: &Path,
) -> (Vec<Http2Row>, String) {
    let transports: Vec<Transport> =
        options.transports.iter().copied().filter(|t| Transport::HTTP2.contains(t)).collect();
    let mut rows = Vec::new();
    let mut outputs = String::new();
    if transports.is_empty() {
        return (rows, outputs);
    }
    let certificate = Certificate::make(dir);
    let spec =
        Http2LoadSpec { connections: options.h2_connections, streams: options.h2_streams, duration: options.event_run };
    for &front_end in &options.front_ends {
        let (daemon, ports) = start_front_end_with_http2(front_end, &site(free_port()), &certificate);
        for &transport in &transports {
            for &event in &options.events {
                fpm.wait_accepting();
                let log_file = dir.join(format!("h2load-{}-{}.log", front_end.name(), rows.len()));
                let epoch = Instant::now();
                let load = RunningHttp2Load::start(&ports, transport, &spec, &log_file, SystemTime::now());
                std::thread::sleep(EVENT_AT);
                let event_began = Instant::now();
                let applied = apply(event, fpm, &options.helper, dir);
                let outage = applied.backend_up.map(|up| up.duration_since(event_began));
                let outcome = load.finish();
                let backend_up = applied.backend_up.map(|up| up.duration_since(epoch));
                let mut row = summarise(front_end, event.name(), &outcome.records, options.event_run, backend_up);
                row.helper_drain = applied.helper_drain;
                let summary = outcome.summary;
                eprintln!(
                    "{} {} ({}) {}: h2load {} requests, {} failed, {} errored; {} logged",
                    front_end.name(),
                    transport.name(),
                    outcome.protocol,
                    event.name(),
                    summary.requests,
                    summary.failed,
                    summary.errored,
                    outcome.records.len()
                );
                let _ = writeln!(
                    outputs,
                    "== {} {} {} ==\n{}",
                    front_end.name(),
                    transport.name(),
                    event.name(),
                    outcome.output.trim_end()
                );
                rows.push(Http2Row { protocol: outcome.protocol, h2load: summary, outage, row });
            }
        }
        daemon.stop();
    }
    (rows, outputs)
}

fn load_spec(port: u16, clients: usize, duration: Duration) -> LoadSpec {
    LoadSpec { duration, ..LoadSpec::new(([127, 0, 0, 1], port).into(), "/index.php", clients) }
}

/// Happy-path throughput, interleaved: all front ends run at once and the load visits them in
/// turn, HAPPY_ROUNDS times, so that a slow phase of a shared machine hits every one of them
/// alike; each front end's row is its median round.
fn measure_happy_paths<'a>(options: &Options, site: &dyn Fn(u16) -> Site<'a>) -> Vec<Row> {
    let running: Vec<_> = options
        .front_ends
        .iter()
        .map(|&front_end| {
            let port = free_port();
            (front_end, port, start_front_end(front_end, &site(port)))
        })
        .collect();
    // Warm-up: php-fpm's children and each front end's caches.
    for (_, port, _) in &running {
        load::run(&load_spec(*port, options.clients, Duration::from_secs(1)), Instant::now());
    }
    let mut rounds: Vec<Vec<Vec<Record>>> = vec![Vec::new(); running.len()];
    for round in 0..HAPPY_ROUNDS {
        // Every other round backwards, so that no front end always follows the same one.
        let mut order: Vec<usize> = (0..running.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for index in order {
            let (front_end, port, _) = &running[index];
            let samples = &mut rounds[index];
            let records = load::run(&load_spec(*port, options.clients, options.happy_run), Instant::now());
            eprintln!(
                "happy path round {}: {} {:.0} req/s",
                round + 1,
                front_end.name(),
                served_per_second(&records, options.happy_run)
            );
            samples.push(records);
        }
    }
    let rows = running
        .iter()
        .zip(&mut rounds)
        .map(|((front_end, _, _), samples)| {
            samples.sort_by(|a, b| {
                served_per_second(a, options.happy_run).total_cmp(&served_per_second(b, options.happy_run))
            });
            summarise(*front_end, "happy path", &samples[samples.len() / 2], options.happy_run, None)
        })
        .collect();
    for (_, _, daemon) in running {
        daemon.stop();
    }
    rows
}

#[derive(Default)]
struct Applied {
    /// When php-fpm accepted again, for events that took it down.
    backend_up: Option<Instant>,
    helper_drain: Option<Duration>,
}

fn apply(event: Event, fpm: &mut PhpFpm, helper: &Path, dir: &Path) -> Applied {
    match event {
        Event::Restart => {
            fpm.stop();
            Applied { backend_up: Some(fpm.start()), helper_drain: None }
        }
        Event::HelperRestart => {
            let helper_drain = stop_through_helper(fpm, helper);
            fpm.stop(); // reaps the master the helper stopped
            Applied { backend_up: Some(fpm.start()), helper_drain }
        }
        Event::Deploy => restart_through_deploy(fpm, helper, dir),
        Event::RestartWithGap => {
            fpm.stop();
            std::thread::sleep(GAP);
            Applied { backend_up: Some(fpm.start()), helper_drain: None }
        }
        Event::Reload => {
            fpm.reload();
            Applied::default()
        }
    }
}

/// Runs `fcgi-resilient-helper stop` on the pool as a systemd unit's ExecStop would; returns
/// the drain time it reported. A failed stop leaves php-fpm running, and the restart that
/// follows would then be a plain SIGTERM: the run would measure the wrong event, so it ends.
fn stop_through_helper(fpm: &PhpFpm, helper: &Path) -> Option<Duration> {
    let pid = fpm.pid().expect("php-fpm started").to_string();
    let started = Instant::now();
    let output = Command::new(helper)
        .args(["stop", "--pid", &pid, "--timeout", HELPER_DRAIN_TIMEOUT, "--fpm-config"])
        .arg(fpm.config_file())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", helper.display()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "fcgi-resilient-helper stop failed ({}):\n{stderr}", output.status);
    eprintln!("helper stop took {} ms: {}", ms(started.elapsed()), stderr.trim());
    reported_drain(&stderr)
}

/// `fcgi-resilient-helper deploy unix:SOCKET -- COMMAND`, whose COMMAND hands over to the
/// benchmark for the restart (the benchmark owns php-fpm) and ends when it is done. The
/// drain column is the helper's "paused and idle after S.SSs".
fn restart_through_deploy(fpm: &mut PhpFpm, helper: &Path, dir: &Path) -> Applied {
    let (runs, may_end) = (dir.join("deploy-command-runs"), dir.join("deploy-command-may-end"));
    let _ = (std::fs::remove_file(&runs), std::fs::remove_file(&may_end));
    let script = format!("touch {}; while [ ! -e {} ]; do sleep 0.01; done", runs.display(), may_end.display());
    let backend = format!("unix:{}", dir.join("php-fpm.sock").display());
    let started = Instant::now();
    let deploy = Command::new(helper)
        .args(["deploy", &backend, "--force", "--timeout", HELPER_DRAIN_TIMEOUT, "--pause-dir"])
        .arg(servers::pause_dir(dir))
        .args(["--", "sh", "-c", &script])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", helper.display()));
    harness::wait_until("deploy running its command", Duration::from_secs(30), || runs.exists().then_some(()));
    fpm.stop();
    let backend_up = fpm.start();
    std::fs::write(&may_end, "").expect("end the deploy's command");
    let output = deploy.wait_with_output().expect("deploy");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "fcgi-resilient-helper deploy failed ({}):\n{stderr}", output.status);
    eprintln!("helper deploy took {} ms: {}", ms(started.elapsed()), stderr.trim());
    let idle_after = stderr.split("idle after ").nth(1).and_then(|rest| rest.split('s').next()?.parse().ok());
    Applied { backend_up: Some(backend_up), helper_drain: idle_after.map(Duration::from_secs_f64) }
}

/// The helper's "drained N connection(s) in S.SSs" line, as a duration.
fn reported_drain(stderr: &str) -> Option<Duration> {
    let seconds = stderr.split("connection(s) in ").nth(1)?.split('s').next()?;
    seconds.parse().ok().map(Duration::from_secs_f64)
}

fn summarise(
    front_end: FrontEnd,
    event: &'static str,
    records: &[Record],
    run: Duration,
    backend_up: Option<Duration>,
) -> Row {
    let mut latencies: Vec<Duration> = records.iter().map(|r| r.latency).collect();
    latencies.sort();
    let ok = records.iter().filter(|r| !r.failed()).count();
    let added_after_backend_up = backend_up.map(|up| {
        let mut added: Vec<Duration> =
            records.iter().filter(|r| r.started < up && r.ended() > up).map(|r| r.ended() - up).collect();
        added.sort();
        percentile(&added, 0.99)
    });
    Row {
        front_end,
        event,
        total: records.len(),
        failed: records.len() - ok,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or_default(),
        requests_per_second: served_per_second(records, run),
        added_after_backend_up,
        helper_drain: None,
    }
}

/// Over the time the load really took: a client stops sending once the run is over, but its
/// last request may hang much longer (HAProxy's do, for 30 s), and that time counts.
fn served_per_second(records: &[Record], run: Duration) -> f64 {
    let span = records.iter().map(Record::ended).max().unwrap_or_default().max(run);
    records.iter().filter(|r| !r.failed()).count() as f64 / span.as_secs_f64()
}

/// The spread, not just the p99: the first answers show how fast a front end reacts, the last
/// ones how long php-fpm's fresh children take to drain the requests that were held.
fn report_wait_after_backend_up(front_end: FrontEnd, event: Event, records: &[Record], up: Duration) {
    let mut added: Vec<Duration> =
        records.iter().filter(|r| r.started < up && r.ended() > up).map(|r| r.ended() - up).collect();
    added.sort();
    eprintln!(
        "{} {}: {} requests in flight when php-fpm accepted again; answered after min {} / p50 {} / p99 {} ms",
        front_end.name(),
        event.name(),
        added.len(),
        ms(added.first().copied().unwrap_or_default()),
        ms(percentile(&added, 0.5)),
        ms(percentile(&added, 0.99))
    );
}

fn append_timeline(timeline: &mut String, front_end: FrontEnd, event: Event, records: &[Record]) {
    let seconds = records.iter().map(|r| r.started.as_secs()).max().unwrap_or(0);
    for second in 0..=seconds {
        let mut in_second: Vec<&Record> = records.iter().filter(|r| r.started.as_secs() == second).collect();
        in_second.sort_by_key(|r| r.latency);
        let failed = in_second.iter().filter(|r| r.failed()).count();
        let latencies: Vec<Duration> = in_second.iter().map(|r| r.latency).collect();
        let _ = writeln!(
            timeline,
            "{},{},{second},{},{failed},{:.1}",
            front_end.name(),
            event.name(),
            in_second.len(),
            percentile(&latencies, 0.99).as_secs_f64() * 1000.0
        );
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1000.0)
}

fn throughput_ratio(rows: &[Row], row: &Row) -> Option<f64> {
    let stock = rows.iter().find(|r| r.front_end == FrontEnd::ApacheStock && r.event == "happy path")?;
    (row.event == "happy path").then(|| row.requests_per_second / stock.requests_per_second)
}

const COLUMNS: [(&str, &str, usize); 11] = [
    ("front end", "front_end", 26),
    ("event", "event", 15),
    ("requests", "requests", 8),
    ("failed", "failed", 7),
    ("p50 ms", "p50_ms", 8),
    ("p99 ms", "p99_ms", 8),
    ("max ms", "max_ms", 9),
    ("req/s", "requests_per_second", 9),
    ("ratio", "throughput_ratio_to_stock", 7),
    ("added p99 ms", "added_p99_ms_after_backend_up", 12),
    ("drain ms", "helper_drain_ms", 8),
];

/// One row's values, in the order of COLUMNS; None where the event has no such figure.
fn cells(rows: &[Row], row: &Row) -> [Option<String>; 11] {
    [
        Some(row.front_end.name().to_string()),
        Some(row.event.to_string()),
        Some(row.total.to_string()),
        Some(row.failed.to_string()),
        Some(ms(row.p50)),
        Some(ms(row.p99)),
        Some(ms(row.max)),
        Some(format!("{:.0}", row.requests_per_second)),
        throughput_ratio(rows, row).map(|r| format!("{r:.3}")),
        row.added_after_backend_up.map(ms),
        row.helper_drain.map(ms),
    ]
}

fn render_table(rows: &[Row]) -> String {
    let line = |values: Vec<String>| {
        let padded: Vec<String> = values
            .iter()
            .zip(COLUMNS)
            .enumerate()
            .map(
                |(i, (value, (_, _, width)))| {
                    if i < 2 {
                        format!("{value:<width$}")
                    } else {
                        format!("{value:>width$}")
                    }
                },
            )
            .collect();
        padded.join(" ") + "\n"
    };
    let mut table = line(COLUMNS.iter().map(|(title, _, _)| title.to_string()).collect());
    for row in rows {
        table += &line(cells(rows, row).into_iter().map(|cell| cell.unwrap_or_else(|| "-".into())).collect());
    }
    table
}

fn render_csv(rows: &[Row]) -> String {
    let mut csv = COLUMNS.map(|(_, key, _)| key).join(",") + "\n";
    for row in rows {
        let _ = writeln!(csv, "{}", cells(rows, row).map(Option::unwrap_or_default).join(","));
    }
    csv
}

const HTTP2_COLUMNS: [(&str, &str, usize); 14] = [
    ("front end", "front_end", 26),
    ("protocol", "protocol", 8),
    ("event", "event", 15),
    ("requests", "requests", 8),
    ("failed", "failed_not_2xx", 7),
    ("errored", "errored_streams", 7),
    ("5xx", "status_5xx", 6),
    ("p50 ms", "p50_ms", 8),
    ("p99 ms", "p99_ms", 8),
    ("max ms", "max_ms", 9),
    ("req/s", "requests_per_second", 9),
    ("added p99 ms", "added_p99_ms_after_backend_up", 12),
    ("outage ms", "outage_ms", 9),
    ("drain ms", "helper_drain_ms", 8),
];

/// One HTTP/2 row's values, in the order of HTTP2_COLUMNS. Requests, failed, errored and 5xx
/// are h2load's counts; the latencies and req/s come from its per-request log, as the
/// HTTP/1.1 rows' come from the harness's client.
fn http2_cells(row: &Http2Row) -> [Option<String>; 14] {
    let Http2Row { protocol, h2load, outage, row } = row;
    [
        Some(row.front_end.name().to_string()),
        Some(protocol.clone()),
        Some(row.event.to_string()),
        Some(h2load.requests.to_string()),
        Some(h2load.failed.to_string()),
        Some(h2load.errored.to_string()),
        Some(h2load.status_5xx.to_string()),
        Some(ms(row.p50)),
        Some(ms(row.p99)),
        Some(ms(row.max)),
        Some(format!("{:.0}", row.requests_per_second)),
        row.added_after_backend_up.map(ms),
        outage.map(ms),
        row.helper_drain.map(ms),
    ]
}

fn render_http2_table(rows: &[Http2Row]) -> String {
    let line = |values: Vec<String>| {
        let padded: Vec<String> = values
            .iter()
            .zip(HTTP2_COLUMNS)
            .enumerate()
            .map(
                |(i, (value, (_, _, width)))| {
                    if i < 3 {
                        format!("{value:<width$}")
                    } else {
                        format!("{value:>width$}")
                    }
                },
            )
            .collect();
        padded.join(" ") + "\n"
    };
    let mut table = line(HTTP2_COLUMNS.iter().map(|(title, _, _)| title.to_string()).collect());
    for row in rows {
        table += &line(http2_cells(row).into_iter().map(|cell| cell.unwrap_or_else(|| "-".into())).collect());
    }
    table
}

fn render_http2_csv(rows: &[Http2Row]) -> String {
    let mut csv = HTTP2_COLUMNS.map(|(_, key, _)| key).join(",") + "\n";
    for row in rows {
        let _ = writeln!(csv, "{}", http2_cells(row).map(Option::unwrap_or_default).join(","));
    }
    csv
}

fn make_world_readable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755));
}
