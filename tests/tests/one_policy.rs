//! One retry policy, whichever way a request waits: the same scenario over HTTP/1.1 and TLS
//! (suspended under the event MPM, no thread held), over h2c and h2 (an HTTP/2 stream waits
//! in its thread) and over HTTP/1.1 under the worker MPM (no suspension there) ends with the
//! same status, Retry-After, status-page counters and give-up line. Each way gets an Apache of
//! its own, so that each request is its child's first.
//!
//! Before, the two drivers disagreed: a suspended request ignored FcgiResilientBackoff (117
//! probes in 2 s where a thread made 5) and reported 0 attempts; a GET whose script kills its
//! PHP worker ran 5 times suspended and 3 times in a thread; a permission error was waited out
//! to the end of the budget and answered "budget spent" when suspended.

use harness::apache::{ApacheConfig, Processes};
use harness::status::{self, STATUS_LOCATION};
use harness::transport::{self, curl, CurlAnswer, CurlRequest, Transport};
use harness::{Apache, PhpFpm, WorkDir};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// One way a request can wait: a transport under an MPM.
#[derive(Clone, Copy)]
struct Way {
    transport: Transport,
    mpm: &'static str,
}

const WAYS: [Way; 5] = [
    Way { transport: Transport::Http1, mpm: "event" },
    Way { transport: Transport::Tls, mpm: "event" },
    Way { transport: Transport::H2c, mpm: "event" },
    Way { transport: Transport::H2, mpm: "event" },
    Way { transport: Transport::Http1, mpm: "worker" },
];

impl Way {
    fn name(&self) -> String {
        format!("{} ({} MPM)", self.transport.name(), self.mpm)
    }

    /// A name for its files and its request.
    fn id(&self) -> String {
        format!("{}-{}", self.transport.name().len(), self.mpm)
    }

    /// Suspended (no thread held) only under event, and only a top-level HTTP/1.x request.
    fn suspends(&self) -> bool {
        self.mpm == "event" && matches!(self.transport, Transport::Http1 | Transport::Tls)
    }

    /// The section every scenario runs under, with `extra` directives, under this way's MPM.
    fn config(&self, work: &WorkDir, fpm: &PhpFpm, extra: &str) -> ApacheConfig {
        let mut config = config(work, fpm, extra);
        config.mpm = self.mpm;
        config
    }
}

/// The section every scenario runs under, with `extra` directives.
fn config(work: &WorkDir, fpm: &PhpFpm, extra: &str) -> ApacheConfig {
    let mut config = ApacheConfig::new(&work.docroot(), &fpm.listen.proxy_handler()).with_server_directives(&format!(
        "FcgiResilient On\nFcgiResilientTimeout 2s\nFcgiResilientRetryAfter 7\n{extra}\n{STATUS_LOCATION}"
    ));
    config.processes = Processes { start_servers: 1, server_limit: 1, threads_per_child: 8 };
    config.log_level = "info fcgi_resilient:debug".to_string();
    config
}

/// A work directory and a PHP-FPM pool that was started once (its config written) and is down.
fn backend_down(name: &str) -> (WorkDir, PhpFpm) {
    let work = WorkDir::new(name);
    let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
    fpm.start();
    fpm.stop();
    (work, fpm)
}

/// One request over `transport` to a fresh Apache with `config`; its answer and error log.
fn one_request(work: &WorkDir, name: &str, config: ApacheConfig, transport: Transport, path: &str) -> Ended {
    let dir = work.subdir(name);
    let (config, ports) = transport::serve_every_transport(config, &dir);
    let apache = Apache::start(&dir, config);
    let answer = curl(&ports, transport, path, &CurlRequest::default());
    let log = apache.error_log();
    let totals = status::totals(ports.plain);
    let total = |key: &str| totals.get(key).copied().unwrap_or(0);
    assert!(!log.contains("exit signal"), "a child crashed\n{log}");
    Ended { answer, log, gave_up: total("TotalGaveUp"), connect_failures: total("TotalConnectFailures") }
}

struct Ended {
    answer: CurlAnswer,
    log: String,
    gave_up: u64,
    connect_failures: u64,
}

impl Ended {
    /// The module's give-up line, without its date and pid prefix.
    fn give_up_line(&self) -> String {
        let line = self.log.lines().find(|line| line.contains("[fcgi_resilient:error]")).unwrap_or_default();
        line.rsplit_once("] ").map_or(String::new(), |(_, message)| message.to_string())
    }

    fn attempts_and_probes(&self) -> Option<(u32, u32)> {
        let line = self.give_up_line();
        let after = line.split_once(" after ")?.1;
        let mut words = after.split_whitespace();
        let attempts = words.next()?.parse().ok()?;
        let probes = words.find_map(|word| word.parse().ok())?;
        Some((attempts, probes))
    }

    fn suspended(&self) -> bool {
        self.log.contains("the request waits suspended")
    }
}

fn assert_same_answer(way: Way, ended: &Ended) {
    let name = way.name();
    assert_eq!((ended.answer.exit, ended.answer.status), (0, 503), "{name}: {:?}\n{}", ended.answer, ended.log);
    assert_eq!(ended.answer.header("Retry-After"), Some("7"), "{name}: {:?}", ended.answer.headers);
    assert_eq!(ended.gave_up, 1, "{name}: counted once as given up\n{}", ended.log);
    assert_eq!(ended.suspended(), way.suspends(), "{name}: waited suspended: {}\n{}", ended.suspended(), ended.log);
}

/// PHP-FPM down, FcgiResilientTimeout 2s, FcgiResilientBackoff 500ms 500ms: the backend is
/// asked about every 500 ms however the request waits, and the one connect mod_proxy made is
/// counted as an attempt.
#[test]
fn the_backoff_and_the_attempts_are_the_same_suspended_or_in_a_thread() {
    let (work, fpm) = backend_down("policy-backoff");
    for way in WAYS {
        let config = way.config(&work, &fpm, "FcgiResilientBackoff 500ms 500ms");
        let ended = one_request(&work, &format!("backoff-{}", way.id()), config, way.transport, "/index.php");
        assert_same_answer(way, &ended);
        let line = ended.give_up_line();
        assert!(line.starts_with("gave up on backend"), "{}: {line}", way.name());
        let (attempts, probes) = ended.attempts_and_probes().unwrap_or_else(|| panic!("{line}"));
        assert_eq!(attempts, 1, "{}: {line}", way.name());
        // 2 s at one probe per 500 ms: about 4, plus the one that found it refusing.
        assert!((3..=7).contains(&probes), "{}: {probes} probes: {line}", way.name());
    }
}

/// A socket Apache's user may not connect to (EACCES) is a configuration error waiting will not
/// mend: answered after a few probes with a message about the socket's permissions, not after
/// the whole budget with "budget spent", however the request waits.
#[test]
fn a_permission_error_is_answered_early_with_the_same_message() {
    let work = WorkDir::new("policy-eacces");
    let fpm = PhpFpm::unix(work.path(), &work.docroot());
    let socket = socket_path(&fpm);
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind the socket");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    for way in WAYS {
        let config = way.config(&work, &fpm, "FcgiResilientTimeout 30s");
        let ended = one_request(&work, &format!("eacces-{}", way.id()), config, way.transport, "/index.php");
        assert_same_answer(way, &ended);
        let line = ended.give_up_line();
        assert!(line.contains("check the socket path and its permissions"), "{}: {line}", way.name());
        assert!(line.contains("Permission denied"), "{}: {line}", way.name());
    }
}

/// With FcgiResilientRetryIdempotent On, a GET whose script kills its own PHP worker is run
/// three times in all (two repeats), whether it waits suspended between runs or in its thread.
#[test]
fn a_dropped_get_is_repeated_twice_at_most_however_it_waits() {
    let work = WorkDir::new("policy-drops");
    let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
    let runs = work.path().join("runs");
    std::fs::create_dir_all(&runs).expect("runs directory");
    std::fs::set_permissions(&runs, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let script = format!(
        "<?php file_put_contents('{}/' . $_GET['id'], 'x', FILE_APPEND); shell_exec('kill -9 ' . getmypid());\n",
        runs.display()
    );
    std::fs::write(work.docroot().join("crash.php"), script).expect("crash.php");
    fpm.start();
    let mut statuses = Vec::new();
    for way in WAYS {
        let id = way.id();
        let config = way.config(&work, &fpm, "FcgiResilientRetryIdempotent On\nFcgiResilientTimeout 10s");
        let ended = one_request(&work, &format!("drops-{id}"), config, way.transport, &format!("/crash.php?id={id}"));
        let ran = std::fs::read(runs.join(&id)).map_or(0, |text| text.len());
        assert_eq!(ran, 3, "{}: PHP ran the GET {ran} times: {:?}\n{}", way.name(), ended.answer, ended.log);
        statuses.push((ended.answer.exit, ended.answer.status));
    }
    assert!(statuses.windows(2).all(|pair| pair[0] == pair[1]), "the same answer everywhere: {statuses:?}");
}

/// FcgiResilientMaxWaiting 1 with PHP-FPM down: while one request waits, the next is refused a
/// place and answered 503 with Retry-After at once, counted as given up, however it would
/// have waited.
#[test]
fn a_request_refused_a_waiting_place_is_answered_alike() {
    let (work, fpm) = backend_down("policy-cap");
    for way in WAYS {
        let transport = way.transport;
        let dir = work.subdir(&format!("cap-{}", way.id()));
        let config = way.config(&work, &fpm, "FcgiResilientMaxWaiting 1\nFcgiResilientTimeout 5s");
        let (config, ports) = transport::serve_every_transport(config, &dir);
        let apache = Apache::start(&dir, config);
        let first = std::thread::spawn(move || curl(&ports, transport, "/index.php", &CurlRequest::default()));
        status::wait_for_total(ports.plain, "TotalWaiting", 1);
        let refused = curl(&ports, transport, "/index.php", &CurlRequest::default());
        let name = way.name();
        assert_eq!((refused.exit, refused.status), (0, 503), "{name}: {refused:?}\n{}", apache.error_log());
        assert_eq!(refused.header("Retry-After"), Some("7"), "{name}: {:?}", refused.headers);
        assert!(apache.error_log().contains("answering 503 at once"), "{name}\n{}", apache.error_log());
        assert_eq!(status::total(ports.plain, "TotalGaveUp"), 1, "{name}: the refused one\n{}", apache.error_log());
        assert_eq!(first.join().unwrap().status, 503, "{name}: the first waits its budget out");
    }
}

fn socket_path(fpm: &PhpFpm) -> std::path::PathBuf {
    let handler = fpm.listen.proxy_handler();
    let path = handler.strip_prefix("proxy:unix:").and_then(|rest| rest.split('|').next()).expect("a Unix socket");
    Path::new(path).to_path_buf()
}

/// A slow upload while PHP-FPM restarts: FcgiResilientTimeout is for waiting on the backend,
/// not for the client's sending (Timeout and mod_reqtimeout bound a slow client), and a request
/// whose body has arrived asks the backend at least once. A 400 KB body sent at 100 KB/s (about
/// 4 s, twice the 2 s budget) with PHP-FPM back 1.5 s in is served whole, over every transport.
/// Before, the 4 s of sending spent the budget and the backend, long back, was never asked:
/// "gave up … after 1 attempt and 0 probes over 4.0s; last error: none".
#[test]
fn the_time_a_client_takes_to_send_its_body_is_not_charged_to_the_wait() {
    let (work, mut fpm) = backend_down("policy-slow-upload");
    let uploads = harness::uploads::Uploads::install(&work);
    let body = harness::load::body_pattern(400_000, 9);
    let body_file = work.join("body");
    std::fs::write(&body_file, &body).expect("body file");
    for way in WAYS {
        let transport = way.transport;
        let id = format!("slow-{}", way.id());
        let dir = work.subdir(&id);
        let (config, ports) = transport::serve_every_transport(way.config(&work, &fpm, ""), &dir);
        let apache = Apache::start(&dir, config);
        let sender = {
            let (body_file, path) = (body_file.clone(), format!("/upload.php?id={id}"));
            std::thread::spawn(move || {
                let request =
                    CurlRequest { body_file: Some(&body_file), limit_rate: Some("100k"), ..Default::default() };
                curl(&ports, transport, &path, &request)
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(1500));
        fpm.start();
        let answer = sender.join().expect("curl");
        let name = way.name();
        assert!(answer.is_ok_over(transport) && answer.body == body, "{name}: {answer:?}\n{}", apache.error_log());
        assert_eq!(uploads.runs(&id), vec![body.len()], "{name}: PHP ran it once, whole");
        fpm.stop();
    }
}

/// A paused backend (`fcgi-resilient-helper pause`) holds its requests without asking it: no
/// probe, no refusal counted, however the request waits. PHP-FPM runs meanwhile (a probe would
/// find it accepting), and the pause outlasts the 2 s budget. Before, a request held in its
/// thread counted a probe per backoff step and reported "Connection refused".
#[test]
fn a_pause_holds_requests_without_probes_or_refusals_however_they_wait() {
    let work = WorkDir::new("policy-pause");
    let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
    fpm.start();
    let pause_dir = work.path().join("pause");
    std::fs::create_dir_all(&pause_dir).expect("pause directory");
    std::fs::set_permissions(&pause_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let backend = fpm.listen.status_name();
    let until = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() + 600_000;
    let file_name = backend.replace('%', "%25").replace('/', "%2F") + ".pause";
    let record = format!("fcgi-resilient-pause 1\nbackend {backend}\nuntil {until}\n");
    std::fs::write(pause_dir.join(file_name), record).expect("pause file");
    for way in WAYS {
        let directives = format!("FcgiResilientPauseDir {}", pause_dir.display());
        let config = way.config(&work, &fpm, &directives);
        let ended = one_request(&work, &format!("pause-{}", way.id()), config, way.transport, "/index.php");
        let name = way.name();
        assert_eq!((ended.answer.exit, ended.answer.status), (0, 503), "{name}: {:?}\n{}", ended.answer, ended.log);
        assert_eq!(ended.answer.header("Retry-After"), Some("7"), "{name}");
        assert_eq!(ended.gave_up, 1, "{name}\n{}", ended.log);
        let line = ended.give_up_line();
        assert!(line.contains("after 0 attempts and 0 probes"), "{name}: {line}");
        assert!(line.ends_with("last error: none"), "{name}: {line}");
        assert_eq!(ended.connect_failures, 0, "{name}: a refusal was counted\n{}", ended.log);
    }
}

/// A POST for a backend already known down is treated as any waiting request: its body is read
/// before it waits, within FcgiResilientMaxBodySpool, however it waits. Past the bound it is
/// answered 503 at once, saying so, and PHP never runs it. Before, a request that started by
/// waiting for a backend known down in its thread (an HTTP/2 stream, or under the worker MPM)
/// waited with its body unread, outside the bound, and met its budget's end instead.
#[test]
fn a_body_is_read_before_waiting_for_a_backend_known_down() {
    let (work, fpm) = backend_down("policy-known-down-body");
    let uploads = harness::uploads::Uploads::install(&work);
    let body_file = work.join("body");
    std::fs::write(&body_file, harness::load::body_pattern(100_000, 3)).expect("body file");
    for way in WAYS {
        let transport = way.transport;
        let dir = work.subdir(&format!("known-down-body-{}", way.id()));
        let config = way.config(&work, &fpm, "FcgiResilientTimeout 4s\nFcgiResilientMaxBodySpool 64K");
        let (config, ports) = transport::serve_every_transport(config, &dir);
        let apache = Apache::start(&dir, config);
        // The first request finds PHP-FPM down and waits: the backend is known down from then on.
        let first = std::thread::spawn(move || curl(&ports, transport, "/index.php", &CurlRequest::default()));
        status::wait_for_total(ports.plain, "TotalWaiting", 1);
        let id = format!("known-down-{}", way.id());
        let request = CurlRequest { body_file: Some(&body_file), ..Default::default() };
        let post = curl(&ports, transport, &format!("/upload.php?id={id}"), &request);
        let (name, log) = (way.name(), apache.error_log());
        // Over HTTP/2 the answer, given before the client has sent its whole body, may reach
        // curl as a stream reset instead (mod_http2 resets the stream whose body is left
        // unread, as for stock's own early 413).
        let http2_reset = matches!(transport, Transport::H2c | Transport::H2) && post.exit == 92;
        assert!((post.exit, post.status) == (0, 503) || http2_reset, "{name}: {post:?}\n{log}");
        assert!(log.contains("(FcgiResilientMaxBodySpool 65536): answering 503"), "{name}: body not read first\n{log}");
        assert!(uploads.runs(&id).is_empty(), "{name}: PHP ran it");
        assert_eq!(first.join().unwrap().status, 503, "{name}: the first waits its budget out");
    }
}
