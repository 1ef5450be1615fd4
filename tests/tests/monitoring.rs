//! What admins watch: mod_status's /server-status (its HTML and its `?auto`, with the module's
//! section added through mod_status's optional hook) and the module's own page in Prometheus'
//! text format, read with a parser of that format. The numbers of all three agree after a
//! PHP-FPM restart under load; mod_status may load before or after the module, or not at all.

use harness::apache::{ApacheConfig, ModulePlacement};
use harness::load::{self, LoadSpec};
use harness::status::{self, STATUS_LOCATION};
use harness::{http, Apache, PhpFpm, WorkDir};
use prometheus_parse::{Sample, Scrape, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

const SERVER_STATUS_LOCATION: &str =
    "<Location /server-status>\n    SetHandler server-status\n    Require local\n</Location>\n";

/// RetryIdempotent: SIGTERM cuts the GETs PHP-FPM runs, and the load should see none fail.
const MODULE_ON: &str = "FcgiResilient On\nFcgiResilientRetryIdempotent On\nFcgiResilientTimeout 60s";

/// The module, mod_status, both pages; `placement` puts the module before mod_status
/// (BeforeProxy: first of all modules) or after it (AfterProxy: last).
fn apache_with_mod_status(work: &WorkDir, name: &str, fpm: &PhpFpm, placement: ModulePlacement) -> Apache {
    let mut config = ApacheConfig::new(&work.docroot(), &fpm.listen.proxy_handler())
        .with_server_directives(&format!("{MODULE_ON}\n{STATUS_LOCATION}{SERVER_STATUS_LOCATION}"));
    config.modules.push("status");
    config.module = placement;
    Apache::start(&work.subdir(name), config)
}

/// The `FcgiResilient*` lines of mod_status's `?auto`, without the prefix.
fn server_status_section(target: SocketAddr) -> BTreeMap<String, u64> {
    let response = http::get(target, "/server-status?auto").expect("server-status");
    assert_eq!(response.status, 200, "{}", response.text());
    let page = response.text();
    let section: BTreeMap<String, u64> = page
        .lines()
        .filter_map(|line| line.strip_prefix("FcgiResilient")?.split_once(": "))
        .map(|(key, value)| (key.to_string(), value.trim().parse().expect("a number")))
        .collect();
    assert!(page.contains("\nServerMPM: "), "mod_status's own lines are kept:\n{page}");
    section
}

struct Metrics {
    samples: Vec<Sample>,
}

impl Metrics {
    fn scrape(target: SocketAddr) -> Metrics {
        let response = http::get(target, "/fcgi-resilient-status?format=prometheus").expect("metrics");
        assert_eq!(response.status, 200, "{}", response.text());
        let content_type = response.header("content-type").unwrap_or_default();
        assert!(content_type.starts_with("text/plain; version=0.0.4"), "Content-Type {content_type:?}");
        let text = response.text();
        let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_string()))).expect("the text format");
        for (family, _) in scrape.docs.iter() {
            assert!(text.contains(&format!("# TYPE {family} ")), "{family} has HELP but no TYPE");
        }
        Metrics { samples: scrape.samples }
    }

    fn value(sample: &Sample) -> f64 {
        match sample.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            ref other => panic!("{} is a {other:?}", sample.metric),
        }
    }

    /// The family's samples, by their `backend` label (empty for a server-wide one).
    fn family(&self, name: &str) -> BTreeMap<String, f64> {
        let family: BTreeMap<String, f64> = self
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .map(|s| (s.labels.get("backend").unwrap_or("").to_string(), Self::value(s)))
            .collect();
        assert!(!family.is_empty(), "no {name} in the scrape");
        family
    }

    /// A server-wide gauge, or the sum of a per-backend family.
    fn total(&self, name: &str) -> u64 {
        self.family(name).values().sum::<f64>() as u64
    }

    fn is_counter(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.metric == name && matches!(s.value, Value::Counter(_)))
    }
}

/// The counters each page names its own way: (?auto and mod_status's section, Prometheus).
const COUNTERS: [(&str, &str); 6] = [
    ("TotalConnectFailures", "fcgi_resilient_connect_failures_total"),
    ("TotalRetries", "fcgi_resilient_retries_total"),
    ("TotalRecovered", "fcgi_resilient_recovered_total"),
    ("TotalGaveUp", "fcgi_resilient_gave_up_total"),
    ("TotalClientGone", "fcgi_resilient_client_gone_total"),
    ("TotalCutByBackend", "fcgi_resilient_cut_by_backend_total"),
];

#[test]
fn server_status_and_prometheus_agree_after_a_restart_under_load() {
    let work = WorkDir::new("monitoring");
    let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
    fpm.start();
    // mod_status loads after the module: the module's hook is added before its provider exists.
    let apache = apache_with_mod_status(&work, "apache", &fpm, ModulePlacement::BeforeProxy);
    let target = apache.address();
    let spec = LoadSpec::new(target, "/index.php", 16);
    let results = load::around(&[spec], Duration::from_millis(700), Duration::from_millis(700), || {
        fpm.restart_after(Duration::from_millis(300));
    });
    let records = &results[0];
    assert_eq!(load::failed_count(records), 0, "{:?}\n{}", load::failures(records), apache.error_log());

    let own = status::totals(target);
    let section = server_status_section(target);
    let metrics = Metrics::scrape(target);
    eprintln!("module's ?auto: {own:?}\nmod_status ?auto: {section:?}");
    assert!(own["TotalRecovered"] > 0, "no request waited: the restart proved nothing {own:?}");
    for (auto_name, metric) in COUNTERS {
        assert!(metrics.is_counter(metric), "{metric} is typed counter");
        let values = (own[auto_name], section[auto_name], metrics.total(metric));
        assert_eq!(values, (own[auto_name], own[auto_name], own[auto_name]), "{auto_name} / {metric}");
    }
    let backend = fpm.listen.status_name();
    let recovered = metrics.family("fcgi_resilient_recovered_total");
    assert_eq!(recovered.keys().collect::<Vec<_>>(), [&backend], "one series, labelled with the backend");
    for (auto_name, metric) in [
        ("TotalWaiting", "fcgi_resilient_server_waiting_requests"),
        ("DefaultMaxWaiting", "fcgi_resilient_waiting_limit"),
        ("WaitingCapacity", "fcgi_resilient_waiting_capacity"),
        ("Backends", "fcgi_resilient_backends"),
    ] {
        assert_eq!((section[auto_name], metrics.total(metric)), (own[auto_name], own[auto_name]), "{auto_name}");
    }
    assert_eq!(metrics.total("fcgi_resilient_waiting_requests"), 0, "nothing waits after the load");

    let html = http::get(target, "/server-status").expect("server-status").text();
    assert!(html.contains("<h2>mod_fcgi_resilient</h2>"), "{html}");
    let recovered_line = format!("{} recovered, {} gave up", own["TotalRecovered"], own["TotalGaveUp"]);
    assert!(html.contains(&recovered_line), "{recovered_line:?} in\n{html}");
}

/// While requests wait: the gauges count them, per backend and server-wide, and the age of the
/// oldest grows (a lower bound only: they are still waiting after the pause, so they waited
/// at least that long). mod_status loads before the module here.
#[test]
fn gauges_show_requests_waiting_now_and_how_long_the_oldest_has_waited() {
    const WAITING: u64 = 4;
    const PAUSE: Duration = Duration::from_millis(1200);
    let work = WorkDir::new("monitoring-waiting");
    let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
    let apache = apache_with_mod_status(&work, "apache", &fpm, ModulePlacement::AfterProxy);
    let target = apache.address();
    let clients: Vec<_> = (0..WAITING).map(|_| std::thread::spawn(move || http::get(target, "/index.php"))).collect();
    status::wait_for_total(target, "TotalWaiting", WAITING);
    std::thread::sleep(PAUSE);

    let section = server_status_section(target);
    let metrics = Metrics::scrape(target);
    let own = status::totals(target);
    let backend = fpm.listen.status_name();
    assert_eq!(section["TotalWaiting"], WAITING, "{section:?}");
    assert_eq!(metrics.family("fcgi_resilient_waiting_requests")[&backend], WAITING as f64);
    assert_eq!(metrics.total("fcgi_resilient_server_waiting_requests"), WAITING);
    let oldest = metrics.family("fcgi_resilient_oldest_waiting_seconds")[&backend];
    assert!(oldest >= PAUSE.as_secs_f64(), "oldest wait {oldest} s after a pause of {PAUSE:?}");
    let server_oldest = metrics.family("fcgi_resilient_server_oldest_waiting_seconds")[""];
    assert!(server_oldest >= oldest, "server-wide {server_oldest} s, the backend's {oldest} s");
    for (name, oldest_ms) in [("mod_status", section["OldestWaitingMs"]), ("own ?auto", own["OldestWaitingMs"])] {
        assert!(oldest_ms >= PAUSE.as_millis() as u64, "{name}: {oldest_ms} ms");
    }

    fpm.start();
    for client in clients {
        assert_eq!(client.join().expect("client").expect("a response").status, 200);
    }
    let metrics = Metrics::scrape(target);
    assert_eq!(metrics.total("fcgi_resilient_server_waiting_requests"), 0);
    assert_eq!(metrics.family("fcgi_resilient_oldest_waiting_seconds")[&backend], 0.0);
    assert_eq!(metrics.total("fcgi_resilient_recovered_total"), WAITING);
}

/// Without mod_status, Apache starts, no status hook is missed, and requests still wait out
/// an outage; the module's own metrics count them.
#[test]
fn without_mod_status_apache_starts_and_the_module_works() {
    let work = WorkDir::new("monitoring-no-status");
    let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
    let config = ApacheConfig::new(&work.docroot(), &fpm.listen.proxy_handler())
        .with_server_directives(&format!("{MODULE_ON}\n{STATUS_LOCATION}"));
    assert!(!config.modules.contains(&"status"));
    let apache = Apache::start(&work.subdir("apache"), config);
    let target = apache.address();
    let client = std::thread::spawn(move || http::get(target, "/index.php"));
    status::wait_for_total(target, "TotalWaiting", 1);
    fpm.start();
    assert_eq!(client.join().expect("client").expect("a response").status, 200);
    assert_eq!(Metrics::scrape(target).total("fcgi_resilient_recovered_total"), 1);
    assert_eq!(http::get(target, "/server-status?auto").expect("a response").status, 404);
    let log = apache.error_log();
    assert!(!log.contains("status_hook") && !log.contains("internal error"), "{log}");
}
