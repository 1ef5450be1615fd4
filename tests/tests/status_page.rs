//! The status page: its counters follow a real restart, are shared by all children, and
//! survive `apachectl graceful`.

use harness::apache::{ApacheConfig, Processes};
use harness::status::{self, STATUS_LOCATION};
use harness::{http, Apache, PhpFpm, WorkDir};
use std::collections::BTreeSet;
use std::net::SocketAddr;

const WAITING: u64 = 12;

/// Sends `count` requests on separate connections while PHP-FPM is down, then starts it.
fn outage_of(fpm: &mut PhpFpm, target: SocketAddr, count: u64) {
    let clients: Vec<_> = (0..count).map(|_| std::thread::spawn(move || http::get(target, "/index.php"))).collect();
    status::wait_for_total(target, "TotalWaiting", count);
    fpm.start();
    for client in clients {
        assert_eq!(client.join().expect("client").expect("a response").status, 200);
    }
}

/// The children (pids) that logged a recovered request.
fn recovering_children(log: &str) -> (usize, BTreeSet<String>) {
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("answered after")).collect();
    let pids = lines.iter().filter_map(|l| l.split("[pid ").nth(1)?.split(':').next().map(str::to_string)).collect();
    (lines.len(), pids)
}

#[test]
fn counters_follow_a_restart_across_children_and_survive_graceful() {
    let work = WorkDir::new("status");
    let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
    let mut config = ApacheConfig::new(&work.docroot(), &fpm.listen.proxy_handler()).with_server_directives(&format!(
        "FcgiResilient On\nFcgiResilientTimeout 60s\nFcgiResilientMaxWaiting 64\n{STATUS_LOCATION}"
    ));
    // Several children, so that the counters must be shared to add up; 16 threads each, so
    // that one child may hold all 12 waiting requests (3/4 of a child's threads may wait).
    config.processes = Processes { start_servers: 4, server_limit: 4, threads_per_child: 16 };
    let mut apache = Apache::start(&work.subdir("apache"), config);
    let target = apache.address();
    assert_eq!(status::total(target, "TotalRecovered"), 0);

    outage_of(&mut fpm, target, WAITING);
    let totals = status::totals(target);
    let (logged, children) = recovering_children(&apache.error_log());
    eprintln!("recovered in {} children: {totals:?}", children.len());
    assert_eq!(logged as u64, WAITING, "every waiting request logged its recovery");
    assert_eq!(totals["TotalRecovered"], WAITING, "no child's count lost: {totals:?}");
    assert_eq!(totals["TotalConnectFailures"], WAITING, "{totals:?}");
    assert_eq!((totals["TotalWaiting"], totals["TotalGaveUp"], totals["Backends"]), (0, 0, 1), "{totals:?}");

    let page = http::get(target, "/fcgi-resilient-status?auto").expect("status page").text();
    let backend = format!("Backend: {}", fpm.listen.status_name());
    assert!(page.lines().any(|l| l == backend), "{backend:?} missing in\n{page}");
    let errno = page.lines().find_map(|l| l.strip_prefix("LastFailureErrno: ")).unwrap_or("");
    assert!(["2", "111"].contains(&errno), "ENOENT or ECONNREFUSED, got {errno:?}");
    let human = http::get(target, "/fcgi-resilient-status").expect("status page").text();
    assert!(human.contains("<table") && human.contains(&fpm.listen.status_name()), "{human}");

    apache.graceful();
    assert_eq!(status::total(target, "TotalRecovered"), WAITING, "counters kept through graceful");
    fpm.stop();
    outage_of(&mut fpm, target, 3);
    assert_eq!(status::total(target, "TotalRecovered"), WAITING + 3, "new children count on");
}

/// The Debian conf the package ships: the module On, the page for local clients only.
fn shipped_conf() -> String {
    format!("{}/../httpd-conf/debian/fcgi_resilient.conf", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn shipped_conf_serves_the_page_locally_and_its_require_rule_applies() {
    let work = WorkDir::new("status-access");
    let fpm = PhpFpm::unix(work.path(), &work.docroot());
    let shipped = std::fs::read_to_string(shipped_conf()).expect("shipped conf");
    for (conf, expected) in [(shipped.clone(), 200), (shipped.replace("Require local", "Require ip 192.0.2.1"), 403)] {
        let dir = work.subdir(&format!("apache-{expected}"));
        std::fs::write(dir.join("fcgi_resilient.conf"), conf).expect("conf copy");
        let include = format!("Include {}/fcgi_resilient.conf", dir.display());
        let config = ApacheConfig::new(&work.docroot(), &fpm.listen.proxy_handler()).with_server_directives(&include);
        let apache = Apache::start(&dir, config);
        let response = http::get(apache.address(), "/fcgi-resilient-status").expect("a response");
        assert_eq!(response.status, expected, "{}", response.text());
    }
}
