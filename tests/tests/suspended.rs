//! Waiting without a worker thread (event MPM): more waiting requests than Apache has threads
//! are all served once PHP-FPM is back, static content is served meanwhile, and nothing is
//! left behind (waiting count, connections) once they are.

use harness::apache::{ApacheConfig, Processes};
use harness::status::{self, STATUS_LOCATION};
use harness::{http, Apache, PhpFpm, WorkDir};
use std::time::Duration;

const THREADS: u32 = 8;
const CLIENTS: usize = 64;

fn outage_with_few_threads(name: &str) -> (WorkDir, PhpFpm, Apache) {
    let work = WorkDir::new(name);
    let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
    fpm.start();
    let mut config = ApacheConfig::new(&work.docroot(), &fpm.listen.proxy_handler()).with_server_directives(&format!(
        "FcgiResilient On\nFcgiResilientTimeout 20s\nFcgiResilientMaxWaiting 1000\n\
         # Suspended connections count toward the event MPM's per-child connection limit\n\
         # (ThreadsPerChild + idle threads x AsyncRequestWorkerFactor): room for them all.\n\
         AsyncRequestWorkerFactor 16\n{STATUS_LOCATION}"
    ));
    config.processes = Processes { start_servers: 1, server_limit: 1, threads_per_child: THREADS };
    config.log_level = "info fcgi_resilient:debug".to_string();
    let apache = Apache::start(&work.subdir("apache"), config);
    fpm.stop();
    (work, fpm, apache)
}

#[test]
fn more_waiting_requests_than_threads_are_all_served() {
    let (_work, mut fpm, apache) = outage_with_few_threads("suspended-many");
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
    assert_eq!(status::total(target, "TotalWaiting"), 0);
    assert!(!apache.error_log().contains("exit signal"), "{}", apache.error_log());
}
