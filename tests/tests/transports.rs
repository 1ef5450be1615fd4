//! Every promise on every transport: HTTP/1.1, HTTP/1.1 over TLS, h2c and h2 over TLS, with
//! real clients (curl, h2load) against one Apache that serves all four.
//!
//! An HTTP/2 stream's request runs on a secondary connection whose socket is a placeholder:
//! a module that polls it for the client leaving sees a hang-up at once. These tests failed on
//! such a module: streams were reset at once instead of waiting, and the backend stayed
//! "known down" in the child long after PHP-FPM was back.

use harness::apache::{ApacheConfig, Processes};
use harness::status::{self, STATUS_LOCATION};
use harness::transport::{self, curl, CurlRequest, Outage, Transport};
use harness::uploads::Uploads;
use harness::{load, Apache, PhpFpm, WorkDir};
use std::path::Path;
use std::time::Duration;

const BODY_SIZE: usize = 1_000_000;

/// A body of `BODY_SIZE` bytes in a file of the outage's work directory, for curl to send.
fn body_file(outage: &Outage, name: &str, seed: u64) -> (std::path::PathBuf, Vec<u8>) {
    let body = load::body_pattern(BODY_SIZE, seed);
    let file = outage.work.join(name);
    std::fs::write(&file, &body).expect("body file");
    (file, body)
}

fn post<'a>(file: &'a Path, expect_continue: bool) -> CurlRequest<'a> {
    CurlRequest { body_file: Some(file), expect_continue, ..Default::default() }
}

#[test]
fn requests_on_every_transport_wait_out_an_outage_and_posts_arrive_once_and_whole() {
    let mut outage = Outage::begin("transports-wait", "FcgiResilientTimeout 30s");
    let uploads = Uploads::install(&outage.work);
    let ports = outage.ports;
    let mut clients = Vec::new();
    for (index, transport) in Transport::ALL.into_iter().enumerate() {
        clients.push((
            transport,
            "GET".to_string(),
            None,
            std::thread::spawn(move || curl(&ports, transport, "/index.php", &CurlRequest::default())),
        ));
        for expect_continue in [false, true] {
            let id = format!("{}-{}", index, if expect_continue { "expect" } else { "plain" });
            let (file, body) = body_file(&outage, &id, index as u64 * 2 + expect_continue as u64);
            let path = format!("/upload.php?id={id}");
            clients.push((
                transport,
                format!("POST {id}"),
                Some((id, body)),
                std::thread::spawn(move || curl(&ports, transport, &path, &post(&file, expect_continue))),
            ));
        }
    }
    status::wait_for_total(ports.plain, "TotalWaiting", clients.len() as u64);
    outage.fpm.start();

    for (transport, what, posted, client) in clients {
        let answer = client.join().expect("curl thread");
        let log = outage.apache.error_log();
        assert!(
            answer.is_ok_over(transport),
            "{what} over {}: curl exit {}, status {} over HTTP/{}: {}\n{log}",
            transport.name(),
            answer.exit,
            answer.status,
            answer.http_version,
            answer.stderr
        );
        match posted {
            None => assert_eq!(String::from_utf8_lossy(&answer.body), "hello from php-fpm\n"),
            Some((id, body)) => {
                assert_eq!(uploads.runs(&id), vec![BODY_SIZE], "{what} over {}: PHP's runs", transport.name());
                assert!(answer.body == body, "{what} over {} came back different", transport.name());
            }
        }
    }
}

/// Clients that give up while their request waits — by closing the connection, or over HTTP/2
/// by closing it with streams open — never have their POST run.
#[test]
fn a_post_whose_client_left_is_never_run_on_any_transport() {
    let mut outage = Outage::begin("transports-gone", "FcgiResilientTimeout 30s");
    let uploads = Uploads::install(&outage.work);
    let ports = outage.ports;
    let (file, _) = body_file(&outage, "small", 7);
    let impatient = CurlRequest { max_time: Some(Duration::from_millis(1500)), ..post(&file, false) };
    for (index, transport) in Transport::ALL.into_iter().enumerate() {
        let answer = curl(&ports, transport, &format!("/upload.php?id=left-{index}"), &impatient);
        assert_eq!(answer.exit, 28, "curl over {} should have timed out: {answer:?}", transport.name());
    }
    // Every waiting request noticed its client: none is left waiting for PHP-FPM to return.
    status::wait_for_total(ports.plain, "TotalWaiting", 0);
    assert_eq!(status::total(ports.plain, "TotalClientGone"), Transport::ALL.len() as u64);
    outage.fpm.start();
    let (patient_file, body) = body_file(&outage, "patient", 8);
    let answer = curl(&ports, Transport::H2, "/upload.php?id=patient", &post(&patient_file, false));
    assert!(answer.is_ok_over(Transport::H2) && answer.body == body, "{answer:?}");
    for (index, transport) in Transport::ALL.into_iter().enumerate() {
        assert_eq!(uploads.runs(&format!("left-{index}")), Vec::<usize>::new(), "over {}", transport.name());
    }
}

/// A child that saw the backend refuse only over HTTP/2 must not keep failing once PHP-FPM is
/// back: nothing the module remembers may outlive the outage.
#[test]
fn after_an_outage_seen_only_over_http2_every_request_is_served() {
    let mut outage = Outage::begin("transports-after", "FcgiResilientTimeout 30s");
    let ports = outage.ports;
    // Streams that meet the refusing backend, on every child, and leave before it returns.
    let leaving = CurlRequest { max_time: Some(Duration::from_millis(700)), ..Default::default() };
    let departed: Vec<_> = (0..8)
        .map(|index| {
            let transport = Transport::HTTP2[index % 2];
            let leaving = leaving.clone();
            std::thread::spawn(move || curl(&ports, transport, "/index.php", &leaving))
        })
        .collect();
    for client in departed {
        client.join().expect("curl thread");
    }
    outage.fpm.start();
    std::thread::sleep(Duration::from_secs(1));
    // HTTP/2 first: an HTTP/1.1 request would probe the backend and clear what the child
    // remembered.
    for transport in [Transport::H2c, Transport::H2, Transport::Tls, Transport::Http1] {
        let answers: Vec<_> = (0..20).map(|_| curl(&ports, transport, "/index.php", &CurlRequest::default())).collect();
        let served = answers.iter().filter(|answer| answer.is_ok_over(transport)).count();
        let first_failure = answers.iter().find(|answer| !answer.is_ok_over(transport));
        assert_eq!(
            served,
            20,
            "over {}, 1 s after PHP-FPM was back: {first_failure:?}\n{}",
            transport.name(),
            outage.apache.error_log()
        );
    }
}

/// `ErrorDocument 503` pointing at a PHP page: the error page of a request that spent its
/// budget does not wait a second budget.
#[test]
fn an_error_page_shares_the_budget_of_the_request_it_answers() {
    let outage = Outage::begin("transports-errordoc", "FcgiResilientTimeout 1s\nErrorDocument 503 /error.php");
    std::fs::write(outage.work.docroot().join("error.php"), "<?php echo 'sorry';\n").expect("error.php");
    for transport in [Transport::Http1, Transport::H2] {
        let answer = curl(&outage.ports, transport, "/index.php", &CurlRequest::default());
        assert_eq!(answer.status, 503, "over {}: {answer:?}", transport.name());
        // A request right after a whole budget of refusals would be answered at once (the
        // module's breaker); a second without refusals (its CHAIN_GAP) and it waits again.
        std::thread::sleep(Duration::from_millis(1500));
    }
    let log = outage.apache.error_log();
    let give_ups: Vec<&str> = log.lines().filter(|line| line.contains("gave up on backend")).collect();
    assert_eq!(give_ups.len(), 4, "a request and its error page over each of two transports:\n{log}");
    let shared = give_ups.iter().filter(|line| line.contains("of which earlier waits of the same request")).count();
    assert_eq!(shared, 2, "each error page waited in what its request left:\n{log}");
    assert!(
        give_ups.iter().filter(|line| line.contains("left 0 ms")).count() == 2,
        "the requests spent the whole budget, so their error pages had none:\n{log}"
    );
}

/// PHP-FPM restarted with a 2 s gap under an HTTP/2 load (h2c and h2 over TLS at once, many
/// streams per connection): with the module every stream is answered 200; without it the
/// same restart fails requests (the test's premise).
///
/// One child of 64 threads and 64 streams: a stream waits in one of mod_http2's workers (96 by
/// default), not in an MPM thread, so a cap of three quarters of the MPM's threads (48) would
/// refuse the last 16 — as it did when streams counted against the MPM's threads.
#[test]
fn http2_load_through_a_restart_with_a_gap_loses_nothing() {
    let run = |module: &str| -> Vec<(Transport, transport::H2loadSummary, String)> {
        let mut outage = Outage::begin_with(
            &format!("transports-h2load-{}", module.to_lowercase()),
            &format!("FcgiResilient {module}\nFcgiResilientRetryIdempotent On\nFcgiResilientTimeout 30s"),
            |config| config.processes = Processes { start_servers: 1, server_limit: 1, threads_per_child: 64 },
        );
        outage.fpm.start();
        let ports = outage.ports;
        let loads: Vec<_> = Transport::HTTP2
            .into_iter()
            .map(|transport| {
                (transport, transport::H2load::start(&ports, transport, "/sleep.php", 4, 8, Duration::from_secs(6)))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500));
        outage.fpm.restart_after(Duration::from_secs(2));
        loads
            .into_iter()
            .map(|(transport, load)| {
                let (summary, text) = load.finish();
                (transport, summary, text + &outage.apache.error_log())
            })
            .collect()
    };
    for (transport, summary, text) in run("Off") {
        assert!(
            summary.not_ok() > 0,
            "premise: without the module the restart fails requests over {}: {text}",
            transport.name()
        );
    }
    for (transport, summary, text) in run("On") {
        assert!(summary.requests > 0, "{text}");
        assert_eq!(summary.not_ok(), 0, "over {}: {summary:?}\n{text}", transport.name());
    }
}

/// A balancer whose first member's socket is missing: every transport fails over to the
/// member that accepts, at once, without a 503.
#[test]
fn balancer_fail_over_is_the_same_on_every_transport() {
    let work = WorkDir::new("transports-balancer");
    let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
    fpm.start();
    let members = format!(
        "FcgiResilient On\n{STATUS_LOCATION}<Proxy balancer://php>\n\
         BalancerMember \"unix:{missing}|fcgi://member-a\" retry=60\n\
         BalancerMember \"unix:{socket}|fcgi://member-b\" retry=60\n</Proxy>\n",
        missing = work.join("missing.sock").display(),
        socket = work.join("php-fpm.sock").display()
    );
    let mut config = ApacheConfig::new(&work.docroot(), "proxy:balancer://php").with_server_directives(&members);
    config.modules.extend(["slotmem_shm", "proxy_balancer", "lbmethod_byrequests"]);
    let apache_dir = work.subdir("apache");
    let (config, ports) = transport::serve_every_transport(config, &apache_dir);
    let apache = Apache::start(&apache_dir, config);
    for transport in Transport::ALL {
        for _ in 0..6 {
            let answer = curl(&ports, transport, "/index.php", &CurlRequest::default());
            assert!(answer.is_ok_over(transport), "over {}: {answer:?}\n{}", transport.name(), apache.error_log());
        }
    }
    assert_eq!(status::total(ports.plain, "TotalGaveUp"), 0);
}

/// FcgiResilientMaxWaiting counts waiting requests of every transport alike: two HTTP/2
/// streams fill a cap of 2, and a request over any transport gets its 503 at once.
#[test]
fn the_waiting_cap_counts_every_transport() {
    let mut outage = Outage::begin("transports-cap", "FcgiResilientTimeout 60s\nFcgiResilientMaxWaiting 2");
    let ports = outage.ports;
    let waiters: Vec<_> = Transport::HTTP2
        .into_iter()
        .map(|transport| {
            (transport, std::thread::spawn(move || curl(&ports, transport, "/index.php", &CurlRequest::default())))
        })
        .collect();
    status::wait_for_total(ports.plain, "TotalWaiting", 2);
    for transport in Transport::ALL {
        let answer = curl(&ports, transport, "/index.php", &CurlRequest::default());
        assert_eq!(answer.status, 503, "over {}: {answer:?}", transport.name());
    }
    assert_eq!(status::total(ports.plain, "TotalWaiting"), 2, "the 503s came before the waiters gave up");
    outage.fpm.start();
    for (transport, waiter) in waiters {
        let answer = waiter.join().expect("curl thread");
        assert!(answer.is_ok_over(transport), "over {}: {answer:?}", transport.name());
    }
}
