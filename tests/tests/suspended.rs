//! Waiting without a worker thread (event MPM): more waiting requests than Apache has threads
//! are all served once PHP-FPM is back while static content is served meanwhile; a client that
//! leaves while its request is suspended never has it run; a graceful restart keeps the
//! suspended requests waiting and serves them, and its old children exit after; nothing is
//! left behind (waiting count, connections) once it is over.
//!
//! These failed on the module that held a thread per waiting request: with 8 threads, all but
//! a few of 64 requests were answered 503 at once by the per-child cap.

use harness::apache::{ApacheConfig, Processes};
use harness::status::{self, assert_nothing_left, STATUS_LOCATION};
use harness::transport::{self, curl, CurlRequest, Transport};
use harness::uploads::Uploads;
use harness::{http, load, wait_until, Apache, PhpFpm, WorkDir};
use std::io::Write;
use std::time::Duration;

const THREADS: u32 = 8;
const CLIENTS: usize = 64;

/// One child of few threads, room for every waiting connection (suspended connections count
/// toward the event MPM's per-child connection limit: ThreadsPerChild + idle threads x
/// AsyncRequestWorkerFactor; the requests that meet the outage together, before the child
/// knows the backend is down, wait in their threads and leave fewer idle), mod_status, and
/// PHP-FPM stopped.
fn outage_with_few_threads(name: &str) -> (WorkDir, PhpFpm, ApacheConfig) {
    let work = WorkDir::new(name);
    let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
    fpm.start();
    let mut config = ApacheConfig::new(&work.docroot(), &fpm.listen.proxy_handler()).with_server_directives(&format!(
        "FcgiResilient On\nFcgiResilientTimeout 20s\nFcgiResilientMaxWaiting 1000\nAsyncRequestWorkerFactor 64\n\
         {STATUS_LOCATION}"
    ));
    status::serve_server_status(&mut config);
    config.processes = Processes { start_servers: 1, server_limit: 1, threads_per_child: THREADS };
    config.log_level = "info fcgi_resilient:debug".to_string();
    fpm.stop();
    (work, fpm, config)
}

#[test]
fn more_waiting_requests_than_threads_are_all_served() {
    let (work, mut fpm, config) = outage_with_few_threads("suspended-many");
    let apache = Apache::start(&work.subdir("apache"), config);
    let target = apache.address();
    // The first request of the child meets the refusal in its thread and teaches the child
    // that the backend is down; the others are suspended.
    let waiting: Vec<_> = (0..CLIENTS).map(|_| std::thread::spawn(move || http::get(target, "/index.php"))).collect();
    status::wait_for_total(target, "TotalWaiting", CLIENTS as u64);
    for _ in 0..20 {
        let response = http::get(target, "/static.txt").expect("static file during the outage");
        assert_eq!(response.status, 200, "{}", apache.error_log());
    }
    fpm.start();
    let statuses: Vec<u16> = waiting.into_iter().map(|client| client.join().unwrap().map_or(0, |r| r.status)).collect();
    let served = statuses.iter().filter(|status| **status == 200).count();
    assert_eq!(served, CLIENTS, "statuses {statuses:?}\n{}", apache.error_log());
    let suspended = apache.error_log().matches("waiting, suspended (no thread held)").count();
    assert!(suspended >= CLIENTS - THREADS as usize, "only {suspended} of {CLIENTS} were suspended");
    assert_nothing_left(target, &apache);
}

/// A POST whose client hangs up while it is suspended never reaches PHP; its neighbour, whose
/// client stays, is served once with its body whole — over HTTP/1.1 and over TLS.
#[test]
fn a_suspended_post_whose_client_left_is_never_run() {
    let (work, mut fpm, config) = outage_with_few_threads("suspended-gone");
    let uploads = Uploads::install(&work);
    let apache_dir = work.subdir("apache");
    let (config, ports) = transport::serve_every_transport(config, &apache_dir);
    let apache = Apache::start(&apache_dir, config);
    let target = ports.plain;
    // Teaches the child that the backend is down, so the requests below are suspended.
    let first = std::thread::spawn(move || http::get(target, "/index.php"));
    status::wait_for_total(target, "TotalWaiting", 1);

    let body = load::body_pattern(100_000, 5);
    let body_file = work.join("body");
    std::fs::write(&body_file, &body).expect("body file");
    let leaving =
        CurlRequest { body_file: Some(&body_file), max_time: Some(Duration::from_secs(2)), ..Default::default() };
    for transport in [Transport::Http1, Transport::Tls] {
        let answer = curl(&ports, transport, &format!("/upload.php?id=left-{}", transport.name().len()), &leaving);
        assert_eq!(answer.exit, 28, "curl over {} should have given up: {answer:?}", transport.name());
    }
    let patient = std::thread::spawn({
        let body_file = body_file.clone();
        move || {
            curl(
                &ports,
                Transport::Tls,
                "/upload.php?id=patient",
                &CurlRequest { body_file: Some(&body_file), ..Default::default() },
            )
        }
    });
    wait_until("the clients that left are counted", Duration::from_secs(30), || {
        (status::total(target, "TotalClientGone") == 2).then_some(())
    });
    fpm.start();
    let answer = patient.join().expect("curl");
    assert!(answer.is_ok_over(Transport::Tls) && answer.body == body, "{answer:?}\n{}", apache.error_log());
    assert_eq!(first.join().unwrap().expect("first").status, 200);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(uploads.runs("patient"), vec![body.len()]);
    for transport in [Transport::Http1, Transport::Tls] {
        let id = format!("left-{}", transport.name().len());
        assert_eq!(uploads.runs(&id), Vec::<usize>::new(), "PHP ran the POST whose client left ({})", transport.name());
    }
    assert!(apache.error_log().contains("waiting, suspended") || apache.error_log().contains("waits suspended"));
    assert_nothing_left(target, &apache);
}

/// `apachectl graceful` while requests are suspended: the old child keeps their waits going
/// (the MPM keeps it running while they remain), they are all served once PHP-FPM is back,
/// and then the old child exits.
#[test]
fn a_graceful_restart_serves_suspended_requests_and_its_old_child_exits() {
    let (work, mut fpm, config) = outage_with_few_threads("suspended-graceful");
    let mut apache = Apache::start(&work.subdir("apache"), config);
    let target = apache.address();
    let waiting: Vec<_> = (0..24).map(|_| std::thread::spawn(move || http::get(target, "/index.php"))).collect();
    status::wait_for_total(target, "TotalWaiting", 24);
    let children_before = apache.children();
    apache.graceful();
    std::thread::sleep(Duration::from_millis(500));
    fpm.start();
    for client in waiting {
        let response = client.join().unwrap().expect("an answer, not a dropped connection");
        assert_eq!(response.status, 200, "{:?}\n{}", response.text(), apache.error_log());
    }
    wait_until("the old generation's child exits", Duration::from_secs(30), || {
        apache.children().iter().all(|pid| !children_before.contains(pid)).then_some(())
    });
    assert_eq!(http::get(target, "/index.php").expect("a response").status, 200);
    assert_nothing_left(target, &apache);
}

/// A raw client that sends a request and goes away without reading: the suspended request
/// is not run and the connection is counted out.
#[test]
fn a_client_that_vanishes_leaves_no_connection_behind() {
    let (work, mut fpm, config) = outage_with_few_threads("suspended-vanish");
    let apache = Apache::start(&work.subdir("apache"), config);
    let target = apache.address();
    let first = std::thread::spawn(move || http::get(target, "/index.php"));
    status::wait_for_total(target, "TotalWaiting", 1);
    for _ in 0..10 {
        let mut stream = std::net::TcpStream::connect(target).expect("connect");
        stream.write_all(b"GET /index.php HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("request");
        status::wait_for_total(target, "TotalWaiting", 2);
        drop(stream);
        status::wait_for_total(target, "TotalWaiting", 1);
    }
    fpm.start();
    assert_eq!(first.join().unwrap().expect("first").status, 200);
    assert_eq!(status::total(target, "TotalClientGone"), 10);
    assert_nothing_left(target, &apache);
}

/// The sum of the resident memory of Apache's processes, in KiB.
fn apache_rss_kib(apache: &Apache) -> u64 {
    let rss = |pid: i32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")?.split_whitespace().next()?.parse().ok()).unwrap_or(0)
    };
    apache.children().into_iter().map(rss).sum()
}

/// Clients that send a request and hang up after a moment, while it is suspended or not.
fn hang_ups(target: std::net::SocketAddr, count: usize) -> Vec<std::thread::JoinHandle<()>> {
    (0..count)
        .map(|index| {
            std::thread::spawn(move || {
                if let Ok(mut stream) = std::net::TcpStream::connect(target) {
                    let _ = stream.write_all(b"GET /index.php HTTP/1.1\r\nHost: localhost\r\n\r\n");
                    std::thread::sleep(Duration::from_millis(20 * (index as u64 % 10)));
                }
            })
        })
        .collect()
}

/// Outage after outage under 200 clients, clients hanging up, a graceful restart in the middle
/// of one: no child crashes, no request fails, and the waiting count, the connections and
/// Apache's memory come back to where they were.
#[test]
fn repeated_outages_with_hang_ups_and_a_graceful_restart_leave_nothing_behind() {
    let (work, mut fpm, mut config) = outage_with_few_threads("suspended-soak");
    config.processes = Processes { start_servers: 2, server_limit: 2, threads_per_child: 16 };
    config.site = config.site.replace("FcgiResilient On\n", "FcgiResilient On\nFcgiResilientRetryIdempotent On\n");
    fpm.start();
    let mut apache = Apache::start(&work.subdir("apache"), config);
    let target = apache.address();
    let warm = load::run(
        &load::LoadSpec { duration: Duration::from_secs(1), ..load::LoadSpec::new(target, "/sleep.php?ms=5", 50) },
        std::time::Instant::now(),
    );
    assert_eq!(load::failed_count(&warm), 0);
    let rss_before = apache_rss_kib(&apache);
    for round in 0..3 {
        let epoch = std::time::Instant::now();
        let spec =
            load::LoadSpec { duration: Duration::from_secs(4), ..load::LoadSpec::new(target, "/sleep.php?ms=5", 200) };
        let running = load::RunningLoad::start(&spec, epoch);
        std::thread::sleep(Duration::from_millis(800));
        fpm.stop();
        let leaving = hang_ups(target, 30);
        std::thread::sleep(Duration::from_millis(700));
        if round == 1 {
            apache.graceful();
        }
        std::thread::sleep(Duration::from_millis(500));
        fpm.start();
        let records = running.finish();
        leaving.into_iter().for_each(|client| client.join().unwrap());
        let failures = load::failures(&records);
        let log = apache.error_log();
        assert!(!log.contains("exit signal"), "round {round}: a child crashed\n{log}");
        assert_eq!(load::failed_count(&records), 0, "round {round}: {failures:?} of {}\n{log}", records.len());
    }
    assert_nothing_left(target, &apache);
    let rss_after = apache_rss_kib(&apache);
    eprintln!("Apache RSS: {rss_before} KiB before, {rss_after} KiB after three outages");
    assert!(rss_after < rss_before * 2 + 20_000, "Apache grew from {rss_before} to {rss_after} KiB");
}

/// `ProxyPassMatch … unix:…|fcgi://…`, the other way sites send PHP to PHP-FPM: mod_proxy's
/// fixup moves the socket into r->notes before the handlers run, and the request is
/// suspended all the same.
#[test]
fn proxy_pass_match_requests_are_suspended_too() {
    let (work, mut fpm, mut config) = outage_with_few_threads("suspended-ppm");
    config.site += &format!(
        "ProxyPassMatch \"^/ppm/(.*\\.php)$\" \"unix:{}|fcgi://localhost{}/$1\"\n",
        fpm.listen.address(),
        work.docroot().display()
    );
    let apache = Apache::start(&work.subdir("apache"), config);
    let target = apache.address();
    let waiting: Vec<_> = (0..16).map(|_| std::thread::spawn(move || http::get(target, "/ppm/index.php"))).collect();
    status::wait_for_total(target, "TotalWaiting", 16);
    fpm.start();
    for client in waiting {
        let response = client.join().unwrap().expect("a response");
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "hello from php-fpm\n"),
            "{}",
            apache.error_log()
        );
    }
    let suspended = apache.error_log().matches("waiting, suspended (no thread held)").count();
    assert!(suspended >= 8, "only {suspended} of 16 were suspended\n{}", apache.error_log());
    assert_nothing_left(target, &apache);
}

/// Request bodies read before waiting are bounded per child (FcgiResilientMaxBodySpool): past
/// the bound a POST is answered 503 at once, before the backend got any of it; the POSTs
/// within it wait and arrive whole.
#[test]
fn bodies_past_the_spool_bound_get_a_clear_503_and_never_reach_php() {
    const BODY: usize = 100_000;
    let (work, mut fpm, mut config) = outage_with_few_threads("suspended-spool");
    config.site = config.site.replace("FcgiResilient On\n", "FcgiResilient On\nFcgiResilientMaxBodySpool 256K\n");
    let uploads = Uploads::install(&work);
    let apache = Apache::start(&work.subdir("apache"), config);
    let target = apache.address();
    let posts: Vec<_> = (0..6)
        .map(|index| {
            std::thread::spawn(move || {
                let body = load::body_pattern(BODY, index);
                (body.clone(), http::post(target, &format!("/upload.php?id=post-{index}"), &body))
            })
        })
        .collect();
    // 256K holds two bodies of 100,000 bytes: two wait, the others are answered at once. Bodies
    // are counted as they arrive, so two read side by side may both pass the bound where one
    // alone would fit: then only one waits. Never more than two.
    let refused = wait_until("every POST waits or was answered past the bound", Duration::from_secs(30), || {
        let refused = apache.error_log().matches("FcgiResilientMaxBodySpool 262144").count();
        (refused >= 4 && refused as u64 + status::total(target, "TotalWaiting") == 6).then_some(refused)
    });
    fpm.start();
    let mut statuses = Vec::new();
    for (index, post) in posts.into_iter().enumerate() {
        let (body, response) = post.join().unwrap();
        let response = response.expect("an answer");
        let runs = uploads.runs(&format!("post-{index}"));
        match response.status {
            200 => assert!(response.body == body && runs == vec![BODY], "POST {index}: {runs:?}"),
            503 => assert_eq!(runs, Vec::<usize>::new(), "POST {index} was refused yet reached PHP"),
            other => panic!("POST {index}: {other}\n{}", apache.error_log()),
        }
        statuses.push(response.status);
    }
    statuses.sort();
    let expected: Vec<u16> = (0..6).map(|index| if index < 6 - refused { 200 } else { 503 }).collect();
    assert_eq!(statuses, expected, "{}", apache.error_log());
    assert_nothing_left(target, &apache);
}

/// `apachectl -k stop` (SIGTERM) and `-k restart` (SIGHUP) stop children at once: their workers
/// exit without running the MPM's timed callbacks. Every suspended client, over HTTP/1.1 and
/// TLS, still gets an answer — 503 with Retry-After — before its child exits, not an empty
/// reply, and no child crashes. Before, all of them got an empty reply (curl exit 52).
#[test]
fn an_immediate_stop_or_restart_answers_every_suspended_request() {
    for (signal, name) in [(libc::SIGTERM, "stop"), (libc::SIGHUP, "restart")] {
        let (work, _fpm, config) = outage_with_few_threads(&format!("suspended-{name}"));
        let apache_dir = work.subdir("apache");
        let (config, ports) = transport::serve_every_transport(config, &apache_dir);
        let mut apache = Apache::start(&apache_dir, config);
        let target = ports.plain;
        let plain: Vec<_> = (0..5).map(|_| std::thread::spawn(move || http::get(target, "/index.php"))).collect();
        let tls: Vec<_> = (0..5)
            .map(|_| std::thread::spawn(move || curl(&ports, Transport::Tls, "/index.php", &CurlRequest::default())))
            .collect();
        status::wait_for_total(target, "TotalWaiting", 10);
        apache.signal(signal);
        for client in plain {
            let response = client.join().unwrap().unwrap_or_else(|error| {
                panic!("-k {name}: an answer, not an empty reply: {error}\n{}", apache.error_log())
            });
            assert_eq!(response.status, 503, "-k {name}: {}", response.text());
            assert!(response.header("Retry-After").is_some(), "-k {name}: no Retry-After");
        }
        for client in tls {
            let answer = client.join().unwrap();
            assert_eq!((answer.exit, answer.status), (0, 503), "-k {name} over TLS: {answer:?}");
        }
        if name == "restart" {
            wait_until("the restarted server answers", Duration::from_secs(30), || {
                http::get(target, "/static.txt").ok()
            });
            assert!(apache.is_running());
        } else {
            wait_until("apache2 exits", Duration::from_secs(30), || (!apache.is_running()).then_some(()));
        }
        let log = apache.error_log();
        assert_eq!(log.matches("answered early: this child process is stopping").count(), 10, "-k {name}\n{log}");
        assert!(!log.contains("exit signal"), "-k {name}: a child crashed\n{log}");
    }
}

/// The waiting thread cannot vanish with requests in its hands: made to panic once (a fault
/// injected through the environment), it answers the request it held with 503 and goes on, and
/// the next requests wait in it and are served when PHP-FPM is back.
#[test]
fn a_panic_in_the_waiting_thread_answers_what_it_held_and_waiting_goes_on() {
    let (work, mut fpm, mut config) = outage_with_few_threads("suspended-panic");
    config.environment.push(("FCGI_RESILIENT_TEST_FAULT", "waiting-thread-panic".to_string()));
    let apache = Apache::start(&work.subdir("apache"), config);
    let target = apache.address();
    let first = http::get(target, "/index.php").expect("an answer, not a dropped connection");
    assert_eq!(first.status, 503, "{}\n{}", first.text(), apache.error_log());
    assert!(first.header("Retry-After").is_some());
    let log = apache.error_log();
    assert!(log.contains("internal error in the waiting thread: injected"), "{log}");
    assert!(log.contains("answered early: mod_fcgi_resilient could not keep the request waiting"), "{log}");
    assert!(!log.contains("this child process is stopping"), "a panic is not a stop: {log}");
    let waiting: Vec<_> = (0..5).map(|_| std::thread::spawn(move || http::get(target, "/index.php"))).collect();
    status::wait_for_total(target, "TotalWaiting", 5);
    fpm.start();
    for client in waiting {
        let response = client.join().unwrap().expect("an answer");
        assert_eq!(response.status, 200, "{}\n{}", response.text(), apache.error_log());
    }
    assert_nothing_left(target, &apache);
}

/// A resumed request counts like any other: while it runs it holds a worker that mod_status
/// shows busy. Before, the resuming worker showed idle (the connection had no scoreboard
/// handle), so the MPM and mod_status saw free workers that were not.
#[test]
fn a_resumed_request_shows_busy_on_the_scoreboard_while_it_runs() {
    let (work, mut fpm, config) = outage_with_few_threads("suspended-scoreboard");
    let apache = Apache::start(&work.subdir("apache"), config);
    let target = apache.address();
    let client = std::thread::spawn(move || http::get(target, "/sleep.php?ms=3000"));
    status::wait_for_total(target, "TotalWaiting", 1);
    let busy_before = busy_workers(target);
    fpm.start();
    wait_until("the resumed request shows as a busy worker", Duration::from_secs(10), || {
        (busy_workers(target) > busy_before).then_some(())
    });
    let response = client.join().unwrap().expect("an answer");
    assert_eq!(response.text(), "slept\n", "{}", apache.error_log());
    assert!(apache.error_log().contains("waiting, suspended (no thread held)"), "it was not suspended");
    assert_nothing_left(target, &apache);
}

/// mod_status's count of busy workers (the asking one included).
fn busy_workers(target: std::net::SocketAddr) -> u64 {
    let page = http::get(target, "/server-status?auto").expect("server-status").text();
    page.lines().find_map(|line| line.strip_prefix("BusyWorkers: ")?.trim().parse().ok()).unwrap_or(0)
}

/// Resumptions never take every worker of a child: when PHP-FPM comes back with far more
/// suspended requests than threads, the child resumes only as many as it has idle workers,
/// keeping some free, so a request on a kept-alive connection is served at once rather than
/// queued behind every resumption (the MPM hands timed callbacks to workers before the
/// connections it has queued). Before, 32 were resumed per 5 ms tick into a child of 8
/// threads: the static request was answered only once nearly all the resumed ones were.
#[test]
fn resumptions_leave_workers_free_for_other_connections() {
    let (work, mut fpm, config) = outage_with_few_threads("suspended-reserve");
    let apache = Apache::start(&work.subdir("apache"), config);
    let target = apache.address();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let waiting: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let answered = answered.clone();
            std::thread::spawn(move || {
                let response = http::get(target, "/sleep.php?ms=300");
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                response
            })
        })
        .collect();
    status::wait_for_total(target, "TotalWaiting", CLIENTS as u64);
    // Opened once every request waits: a burst of new requests into a child of few threads
    // makes the MPM close idle keep-alive connections by itself, module or not.
    let mut kept = http::Connection::open(target, Duration::from_secs(60)).expect("connect");
    assert_eq!(kept.send("GET", "/static.txt", "localhost", b"").expect("static").status, 200);
    fpm.start();
    wait_until("the first resumed request is answered", Duration::from_secs(30), || {
        (answered.load(std::sync::atomic::Ordering::SeqCst) > 0).then_some(())
    });
    let response = kept.send("GET", "/static.txt", "localhost", b"").expect("an answer on the kept connection");
    let answered_before_static = answered.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(response.status, 200);
    assert!(
        answered_before_static < CLIENTS / 2,
        "the static request waited behind {answered_before_static} of {CLIENTS} resumed requests"
    );
    let statuses: Vec<u16> = waiting.into_iter().map(|client| client.join().unwrap().map_or(0, |r| r.status)).collect();
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}\n{}", apache.error_log());
    assert_nothing_left(target, &apache);
}

/// `apachectl -k graceful-stop` lets children finish, but only for `GracefulShutdownTimeout`:
/// then the parent sends SIGTERM, which a gracefully stopping child of the event MPM no longer
/// acts on, and SIGKILL 3 s later. Every suspended client still gets 503 with Retry-After, not
/// a connection cut by SIGKILL.
#[test]
fn a_graceful_stop_past_its_timeout_answers_every_suspended_request() {
    let (work, _fpm, config) = outage_with_few_threads("suspended-graceful-stop");
    let config = config.with_server_directives("GracefulShutdownTimeout 1\n");
    let mut apache = Apache::start(&work.subdir("apache"), config);
    let target = apache.address();
    let waiting: Vec<_> = (0..10).map(|_| std::thread::spawn(move || http::get(target, "/index.php"))).collect();
    status::wait_for_total(target, "TotalWaiting", 10);
    apache.signal(libc::SIGWINCH);
    for client in waiting {
        let response = client.join().unwrap().unwrap_or_else(|error| {
            panic!("an answer, not a connection cut by SIGKILL: {error}\n{}", apache.error_log())
        });
        assert_eq!(response.status, 503, "{}", response.text());
        assert!(response.header("Retry-After").is_some(), "no Retry-After");
    }
    wait_until("apache2 exits", Duration::from_secs(30), || (!apache.is_running()).then_some(()));
    let log = apache.error_log();
    assert!(log.contains("SIGTERM while stopping gracefully"), "{log}");
    assert!(!log.contains("sending a SIGKILL"), "{log}");
    assert!(!log.contains("exit signal"), "a child crashed\n{log}");
}

/// WordPress's `.htaccess` (pretty permalinks): mod_rewrite sends every URL that is not a file
/// to /index.php by an internal redirect, which httpd 2.4 cannot suspend. Once the child knows
/// PHP-FPM is down, such requests are suspended before the redirect, so far more of them than
/// threads wait without holding one, static files are served meanwhile, and all are answered by
/// PHP once it is back. Before, every one waited in a worker thread.
#[test]
fn front_controller_requests_are_suspended_before_their_rewrite() {
    let (work, mut fpm, mut config) = outage_with_few_threads("suspended-front-controller");
    std::fs::write(
        work.docroot().join(".htaccess"),
        "RewriteEngine On\nRewriteBase /\nRewriteRule ^index\\.php$ - [L]\n\
         RewriteCond %{REQUEST_URI} !^/(fcgi-resilient-status|server-status)\n\
         RewriteCond %{REQUEST_FILENAME} !-f\nRewriteCond %{REQUEST_FILENAME} !-d\nRewriteRule . /index.php [L]\n",
    )
    .expect(".htaccess");
    config.modules.push("rewrite");
    config.site = config.site.replace("AllowOverride None", "AllowOverride All");
    let apache = Apache::start(&work.subdir("apache"), config);
    let target = apache.address();
    // The first request of the outage teaches the child that the backend is down (the status
    // pages are left out of the rewrite, as an admin does).
    let first = std::thread::spawn(move || http::get(target, "/2026/12/hello-world/"));
    status::wait_for_total(target, "TotalWaiting", 1);
    let waiting: Vec<_> = (0..CLIENTS)
        .map(|index| std::thread::spawn(move || http::get(target, &format!("/2026/12/post-{index}/"))))
        .collect();
    status::wait_for_total(target, "TotalWaiting", CLIENTS as u64 + 1);
    for _ in 0..20 {
        let response = http::get(target, "/static.txt").expect("static file during the outage");
        assert_eq!(response.status, 200, "{}", apache.error_log());
    }
    fpm.start();
    for client in waiting.into_iter().chain([first]) {
        let response = client.join().unwrap().expect("an answer");
        assert_eq!(
            (response.status, response.text()),
            (200, "hello from php-fpm\n".to_string()),
            "{}",
            apache.error_log()
        );
    }
    let suspended = apache.error_log().matches("waiting, suspended (no thread held)").count();
    assert!(suspended >= CLIENTS, "only {suspended} of {CLIENTS} front-controller requests were suspended");
    assert_nothing_left(target, &apache);
}
