//! When waiting does not help: the time budget runs out, or too many requests already wait.

use harness::apache::{ApacheConfig, Processes};
use harness::status::{self, STATUS_LOCATION};
use harness::{http, Apache, PhpFpm, WorkDir};
use std::time::{Duration, Instant};

#[test]
fn spent_budget_answers_503_with_retry_after_and_one_clear_error_line() {
    let work = WorkDir::new("budget");
    let docroot = work.docroot();
    for dir in ["quiet", "patient"] {
        std::fs::create_dir_all(docroot.join(dir)).expect("test dir");
        std::fs::write(docroot.join(dir).join("index.php"), "<?php echo 1;\n").expect("index.php");
    }
    // Not started until the end: its socket does not exist while the budgets run.
    let mut fpm = PhpFpm::unix(work.path(), &docroot);
    let sections = format!(
        "<Directory {root}/quiet>\n    FcgiResilientRetryAfter Off\n</Directory>\n\
         <Directory {root}/patient>\n    FcgiResilientTimeout 300\n</Directory>",
        root = docroot.display()
    );
    let config = ApacheConfig::new(&docroot, &fpm.listen.proxy_handler())
        .with_server_directives(&format!("FcgiResilient On\nFcgiResilientTimeout 1s\n{sections}\n{STATUS_LOCATION}"));
    let apache = Apache::start(&work.subdir("apache"), config);
    let target = apache.address();

    // The budget is checked against another request's, not against a clock: the 1s request
    // must give up while one with 300s is still waiting (a noisy machine only slows both).
    let patient = std::thread::spawn(move || http::get(target, "/patient/index.php"));
    status::wait_for_total(target, "TotalWaiting", 1);
    let started = Instant::now();
    let response = http::get(target, "/index.php").expect("a response");
    let took = started.elapsed();
    assert_eq!(response.status, 503);
    assert_eq!(response.header("Retry-After"), Some("5"), "headers: {:?}", response.headers);
    assert!(!patient.is_finished(), "the request with a 300s budget was answered before the 1s one gave up");
    assert_eq!(status::total(target, "TotalWaiting"), 1, "only the patient request still waits");
    // A lower bound only, which delay cannot break: giving up early is a bug.
    assert!(took >= Duration::from_secs(1), "answered after {took:?}, before the 1s budget was spent");

    let log = apache.error_log();
    let socket = fpm.listen.status_name();
    let give_ups: Vec<&str> = log.lines().filter(|l| l.contains("gave up on backend")).collect();
    assert_eq!(give_ups.len(), 1, "one error line per request given up:\n{log}");
    for part in [
        socket.as_str(),
        // 1 attempt, or 0 when the patient request's child already knew the backend down.
        " attempt",
        " probes over ",
        "FcgiResilientTimeout 1s",
        "No such file or directory",
    ] {
        assert!(give_ups[0].contains(part), "{part:?} missing in {:?}", give_ups[0]);
    }
    assert!(give_ups[0].contains("[fcgi_resilient:error]"), "logged under the module's own name: {:?}", give_ups[0]);

    let response = http::get(target, "/quiet/index.php").expect("a response");
    assert_eq!(response.status, 503);
    assert_eq!(response.header("Retry-After"), None, "FcgiResilientRetryAfter Off in that directory");

    fpm.start();
    let patient = patient.join().expect("patient client").expect("a response");
    assert_eq!(patient.status, 200, "the patient request is served once PHP-FPM is up");
}

#[test]
fn static_files_keep_serving_while_the_waiting_cap_is_full() {
    let work = WorkDir::new("cap");
    let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
    let mut config = ApacheConfig::new(&work.docroot(), &fpm.listen.proxy_handler()).with_server_directives(&format!(
        "FcgiResilient On\nFcgiResilientTimeout 60s\nFcgiResilientMaxWaiting 2\n{STATUS_LOCATION}"
    ));
    // One child, so the requests surely share it (the cap counts all children together).
    config.processes = Processes { start_servers: 1, server_limit: 1, threads_per_child: 8 };
    let apache = Apache::start(&work.subdir("apache"), config);
    let target = apache.address();

    let waiters: Vec<_> = (0..2).map(|_| std::thread::spawn(move || http::get(target, "/index.php"))).collect();
    status::wait_for_total(target, "TotalWaiting", 2);

    let over_cap = http::get(target, "/index.php").expect("a response");
    assert_eq!(over_cap.status, 503, "the third request must fail at once");
    assert_eq!(status::total(target, "TotalWaiting"), 2, "the 503 came before the waiting requests gave up");
    let static_file = http::get(target, "/static.txt").expect("a response");
    assert_eq!((static_file.status, static_file.text().as_str()), (200, "static content\n"));
    assert!(apache.error_log().contains("FcgiResilientMaxWaiting"), "{}", apache.error_log());

    fpm.start();
    for waiter in waiters {
        assert_eq!(waiter.join().expect("waiter").expect("a response").status, 200);
    }
    assert_eq!(status::total(target, "TotalGaveUp"), 1);
}
