//! The module in configurations real servers have (issue: "no silent off-switch, no double
//! submission, no delayed fail-over"): a quiet LogLevel, a client that gives up, balancers,
//! a ProxyFCGISetEnvIf that cannot be evaluated, a script killed after sending its headers.

use harness::apache::ApacheConfig;
use harness::load::{self, LoadSpec, Record};
use harness::status::{self, STATUS_LOCATION};
use harness::{http, Apache, Listen, PhpFpm, WorkDir};
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CLIENTS: usize = 16;

fn describe(records: &[Record], apache: &Apache) -> String {
    format!(
        "{} requests, failures by status {:?}\nerror log:\n{}",
        records.len(),
        load::failures(records),
        apache.error_log()
    )
}

/// A directory PHP's workers (www-data) may write, for scripts that record their runs.
fn runs_dir(work: &WorkDir) -> PathBuf {
    let dir = work.subdir("runs");
    std::os::unix::fs::chown(&dir, Some(33), Some(33)).expect("chown runs to www-data");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod runs");
    dir
}

fn runs(dir: &Path, id: &str) -> usize {
    std::fs::read_to_string(dir.join(id)).map(|text| text.lines().count()).unwrap_or(0)
}

/// A 2 s PHP-FPM gap under GET load with the module at its defaults and a quiet log level.
/// Stopping PHP-FPM cuts what it is running and what waits in its listen queue; those
/// requests had connected, and the module rightly does not repeat them at its defaults. Any
/// request that started after PHP-FPM was gone must wait and succeed. Returns the requests,
/// the failed ones that started after the stop, and Apache.
fn two_second_gap_with(log_level: &str, site_directives: &str) -> (Vec<Record>, usize, Apache) {
    let work = WorkDir::new("quiet-log");
    let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
    fpm.start();
    let mut config = ApacheConfig::new(&work.docroot(), &fpm.listen.proxy_handler())
        .with_server_directives(&format!("FcgiResilient On\n{site_directives}"));
    config.log_level = log_level.to_string();
    let apache = Apache::start(&work.subdir("apache"), config);
    let epoch = Instant::now();
    let mut stopped = epoch;
    let results = load::around(
        &[LoadSpec::new(apache.address(), "/index.php", CLIENTS)],
        Duration::from_millis(500),
        Duration::from_millis(500),
        || {
            fpm.stop();
            stopped = Instant::now();
            std::thread::sleep(Duration::from_secs(2));
            fpm.start();
        },
    );
    let records = results.into_iter().next().unwrap_or_default();
    let after_stop = stopped - epoch;
    let failed_after_stop = records.iter().filter(|r| r.failed() && r.started >= after_stop).count();
    eprintln!(
        "LogLevel {log_level:?} {site_directives:?}, 2 s gap: {} of {} requests failed, {failed_after_stop} of them \
         started after PHP-FPM had stopped",
        load::failed_count(&records),
        records.len()
    );
    (records, failed_after_stop, apache)
}

#[test]
fn a_quiet_log_level_does_not_turn_retrying_off_or_make_silenced_lines_appear() {
    let (records, failed_after_stop, apache) = two_second_gap_with("crit", "");
    assert_eq!(failed_after_stop, 0, "{}", describe(&records, &apache));
    assert!(records.len() > 4 * CLIENTS, "the load barely ran: {}", describe(&records, &apache));
    let log = apache.error_log();
    for silenced in ["AH01079", "AH02454", "AH00957"] {
        assert!(!log.contains(silenced), "LogLevel crit, yet {silenced} was logged:\n{log}");
    }
}

#[test]
fn at_the_default_log_level_the_same_gap_fails_only_what_php_fpm_cut() {
    let (records, failed_after_stop, apache) = two_second_gap_with("warn", "");
    assert_eq!(failed_after_stop, 0, "{}", describe(&records, &apache));
}

#[test]
fn a_quiet_log_level_inside_a_location_does_not_turn_retrying_off() {
    let location = "<Location \"/\">\n    LogLevel proxy_fcgi:crit proxy:crit\n</Location>";
    let (records, failed_after_stop, apache) = two_second_gap_with("warn proxy:crit", location);
    assert_eq!(failed_after_stop, 0, "{}", describe(&records, &apache));
}

/// Records every run with the body it received, then answers.
const RECORDING_SCRIPT: &str = "<?php\n\
    file_put_contents(__DIR__ . '/../runs/' . basename($_GET['id']), file_get_contents('php://input') . \"\\n\", FILE_APPEND);\n\
    echo \"recorded\\n\";\n";

/// Sends a POST on a raw connection and returns the connection, unread.
fn send_post(target: std::net::SocketAddr, path: &str, body: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(target).expect("connect to Apache");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body)).expect("send the POST");
    stream
}

#[test]
fn a_client_that_hung_up_while_waiting_is_never_served_and_a_patient_one_is() {
    let work = WorkDir::new("hung-up");
    let runs_dir = runs_dir(&work);
    std::fs::write(work.docroot().join("record.php"), RECORDING_SCRIPT).expect("record.php");
    let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
    fpm.start();
    let config = ApacheConfig::new(&work.docroot(), &fpm.listen.proxy_handler())
        .with_server_directives(&format!("FcgiResilient On\nFcgiResilientTimeout 60s\n{STATUS_LOCATION}"));
    let apache = Apache::start(&work.subdir("apache"), config);
    let target = apache.address();
    fpm.stop();
    let impatient = send_post(target, "/record.php?id=impatient", b"twenty bytes of data");
    let patient = std::thread::spawn(move || http::post(target, "/record.php?id=patient", b"twenty bytes of data"));
    status::wait_for_total(target, "TotalWaiting", 2);
    drop(impatient);
    // Give the module a moment to notice (it is woken at once); a module that does not
    // notice at all would run the POST as soon as PHP-FPM is back, which the runs show.
    let noticed = Instant::now() + Duration::from_secs(5);
    while status::total(target, "TotalClientGone") == 0 && Instant::now() < noticed {
        std::thread::sleep(Duration::from_millis(10));
    }
    fpm.start();
    let response = patient.join().expect("patient client").expect("a response for the patient client");
    assert_eq!(response.status, 200, "{}", apache.error_log());
    assert_eq!(runs(&runs_dir, "patient"), 1, "the patient POST ran once");
    assert_eq!(
        runs(&runs_dir, "impatient"),
        0,
        "the POST of a client that hung up reached PHP:\n{}",
        apache.error_log()
    );
    assert_eq!(status::total(target, "TotalClientGone"), 1, "the status page counts the client that left");
}

/// Two PHP-FPM pools behind one balancer; `start` says which of them run.
struct TwoMembers {
    work: WorkDir,
    pools: [PhpFpm; 2],
}

impl TwoMembers {
    fn new(name: &str) -> TwoMembers {
        let work = WorkDir::new(name);
        let pools = ["a", "b"].map(|member| {
            let dir = work.subdir(&format!("fpm-{member}"));
            PhpFpm::new(&dir, &work.docroot(), Listen::Unix(dir.join("php-fpm.sock")), 4)
        });
        TwoMembers { work, pools }
    }

    fn socket(&self, index: usize) -> PathBuf {
        match &self.pools[index].listen {
            Listen::Unix(path) => path.clone(),
            Listen::Tcp(_) => unreachable!("members listen on Unix sockets"),
        }
    }

    fn apache(&self, name: &str, directives: &str) -> Apache {
        let members = format!(
            "{directives}\n{STATUS_LOCATION}\n<Proxy balancer://php>\n    \
             BalancerMember \"unix:{}|fcgi://member-a\"\n    BalancerMember \"unix:{}|fcgi://member-b\"\n</Proxy>\n",
            self.socket(0).display(),
            self.socket(1).display()
        );
        let mut config =
            ApacheConfig::new(&self.work.docroot(), "proxy:balancer://php").with_server_directives(&members);
        config.modules.extend(["slotmem_shm", "proxy_balancer", "lbmethod_byrequests"]);
        Apache::start(&self.work.subdir(name), config)
    }
}

fn p99(records: &[Record]) -> Duration {
    let mut latencies: Vec<Duration> = records.iter().map(|r| r.latency).collect();
    latencies.sort();
    load::percentile(&latencies, 0.99)
}

#[test]
fn a_balancer_member_that_refuses_fails_over_at_once() {
    let mut members = TwoMembers::new("fail-over");
    members.pools[1].start();
    let module = members.apache("module", "FcgiResilient On\nFcgiResilientTimeout 3s");
    let stock = members.apache("stock", "FcgiResilient Off");
    let epoch = Instant::now();
    let spec = |apache: &Apache| LoadSpec {
        duration: Duration::from_secs(2),
        ..LoadSpec::new(apache.address(), "/index.php", 4)
    };
    let (with_module, without) = (load::run(&spec(&module), epoch), load::run(&spec(&stock), Instant::now()));
    eprintln!(
        "one member down: module p99 {:?} over {} requests, stock p99 {:?} over {} requests",
        p99(&with_module),
        with_module.len(),
        p99(&without),
        without.len()
    );
    assert_eq!(load::failed_count(&with_module), 0, "{}", describe(&with_module, &module));
    let totals = status::totals(module.address());
    assert_eq!(totals.get("TotalGaveUp"), Some(&0), "a request waited out the budget on the dead member: {totals:?}");
    assert_eq!(totals.get("TotalRecovered"), Some(&0), "a request waited for the dead member: {totals:?}");
    let response = http::get(module.address(), "/index.php").expect("a response");
    assert_eq!(response.header("retry-after"), None, "a Retry-After leaked into a 200");
}

#[test]
fn with_every_member_down_requests_wait_and_are_served_when_one_returns() {
    let mut members = TwoMembers::new("all-down");
    let apache = members.apache("module", "FcgiResilient On\nFcgiResilientTimeout 60s");
    let target = apache.address();
    let waiting: Vec<_> = (0..6).map(|_| std::thread::spawn(move || http::get(target, "/index.php"))).collect();
    status::wait_for_total(target, "TotalWaiting", 6);
    members.pools[1].start();
    for request in waiting {
        let response = request.join().expect("client thread").expect("a response");
        assert_eq!(response.status, 200, "{}", apache.error_log());
        assert_eq!(response.header("retry-after"), None);
    }
    let totals = status::totals(target);
    assert_eq!(totals.get("TotalGaveUp"), Some(&0), "{totals:?}\n{}", apache.error_log());
    assert!(members.pools[0].pid().is_none(), "member a stayed down throughout");
}

#[test]
fn a_setenvif_expression_that_cannot_be_evaluated_fails_at_once_with_one_attempt() {
    let work = WorkDir::new("setenvif");
    let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
    fpm.start();
    let directives = "FcgiResilient On\nFcgiResilientTimeout 5s\n\
                      ProxyFCGISetEnvIf \"file('/nonexistent/fcgi-resilient') == 'x'\" BROKEN 1";
    let config = ApacheConfig::new(&work.docroot(), &fpm.listen.proxy_handler()).with_server_directives(directives);
    let apache = Apache::start(&work.subdir("apache"), config);
    let response = http::get(apache.address(), "/index.php").expect("a response");
    assert_eq!(response.status, 503);
    let log = apache.error_log();
    assert_eq!(log.matches("AH10241").count(), 1, "the handler ran more than once:\n{log}");
    assert!(!log.contains("gave up"), "a configuration error was waited out:\n{log}");
}

/// A FastCGI backend that answers every request with response headers only (a cookie and a
/// redirect) and then drops the connection: what Apache sees when PHP-FPM's stop kills a
/// script that had flushed its headers. PHP itself cannot be made to send headers without a
/// body byte, so this peer speaks the protocol directly. Returns the requests it served.
/// The module's probes connect and close without a request; they are not counted. The thread
/// ends at the first connection after `stop` is set.
fn headers_then_drop(
    listener: std::os::unix::net::UnixListener,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut served = 0;
        while let Ok((mut connection, _)) = listener.accept() {
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            connection.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
            if !read_request(&mut connection) {
                continue;
            }
            served += 1;
            let headers = format!("Set-Cookie: session=run-{served}\r\nLocation: /after-run-{served}\r\n\r\n");
            let mut record = vec![1, 6, 0, 1];
            record.extend((headers.len() as u16).to_be_bytes());
            record.extend([0, 0]);
            record.extend(headers.as_bytes());
            let _ = connection.write_all(&record);
        }
        served
    })
}

/// Reads FastCGI records up to the empty STDIN record that ends a request.
fn read_request(connection: &mut std::os::unix::net::UnixStream) -> bool {
    use std::io::Read;
    let mut header = [0u8; 8];
    while connection.read_exact(&mut header).is_ok() {
        let length = u16::from_be_bytes([header[4], header[5]]) as usize + header[6] as usize;
        let mut content = vec![0u8; length];
        if connection.read_exact(&mut content).is_err() {
            return false;
        }
        if header[1] == 5 && length == 0 {
            return true;
        }
    }
    false
}

#[test]
fn a_response_whose_headers_were_parsed_is_never_repeated() {
    let work = WorkDir::new("headers");
    let socket = work.join("fake-fcgi.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind the FastCGI socket");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).expect("chmod the socket");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let backend = headers_then_drop(listener, stop.clone());
    let handler = format!("proxy:unix:{}|fcgi://localhost", socket.display());
    let config = ApacheConfig::new(&work.docroot(), &handler)
        .with_server_directives("FcgiResilient On\nFcgiResilientRetryIdempotent On");
    let apache = Apache::start(&work.subdir("apache"), config);
    let response = http::get(apache.address(), "/index.php").expect("a response");
    let cookies: Vec<&str> = response
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, value)| value.as_str())
        .collect();
    apache.stop();
    // Unblock the backend's accept so its thread can end and report.
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    drop(std::os::unix::net::UnixStream::connect(&socket));
    let served = backend.join().expect("backend thread");
    eprintln!("headers then dropped: {} {cookies:?}, {served} connection(s)", response.status);
    assert_eq!(served, 1, "the request was repeated after its headers were parsed: {cookies:?}");
    assert!(cookies.len() <= 1, "duplicate Set-Cookie: {cookies:?}");
}
