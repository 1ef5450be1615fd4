//! One broken backend cannot take the others' protection. A site whose pool socket never
//! exists (a misconfigured vhost on a shared host) under heavy load, while another pool is
//! restarted: the healthy pool fails nothing, and once the dead one has refused for a whole
//! budget its requests are answered 503 at once instead of filling the waiting room.
//!
//! Failed on the module before the per-backend share and the breaker: the dead site's
//! requests filled FcgiResilientMaxWaiting and the healthy pool's restart got immediate 503s.

use harness::apache::{ApacheConfig, Processes};
use harness::load::{self, LoadSpec, RunningLoad};
use harness::status::{self, STATUS_LOCATION};
use harness::{Apache, PhpFpm, WorkDir};
use std::time::{Duration, Instant};

const DEAD_CLIENTS: usize = 48;
const HEALTHY_CLIENTS: usize = 8;
const BUDGET_SECS: u64 = 3;

#[test]
fn a_dead_pool_neither_fills_the_waiting_room_nor_waits_out_every_budget() {
    let work = WorkDir::new("dead-backend");
    let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
    fpm.start();
    let dead_socket = work.join("never-there.sock");
    let mut config = ApacheConfig::new(&work.docroot(), &fpm.listen.proxy_handler()).with_server_directives(&format!(
        "FcgiResilient On\nFcgiResilientRetryIdempotent On\nFcgiResilientTimeout {BUDGET_SECS}s\n\
         FcgiResilientMaxWaiting 32\n{STATUS_LOCATION}\
         <Location /dead/>\n    SetHandler \"proxy:unix:{}|fcgi://dead\"\n</Location>\n",
        dead_socket.display()
    ));
    config.processes = Processes { start_servers: 2, server_limit: 2, threads_per_child: 64 };
    let apache = Apache::start(&work.subdir("apache"), config);
    let target = apache.address();

    let epoch = Instant::now();
    let dead = RunningLoad::start(&LoadSpec::new(target, "/dead/index.php", DEAD_CLIENTS), epoch);
    let healthy = RunningLoad::start(&LoadSpec::new(target, "/index.php", HEALTHY_CLIENTS), epoch);
    // Within the dead pool's first budget: only its share of the room keeps places free.
    std::thread::sleep(Duration::from_secs(1));
    fpm.restart_after(Duration::from_secs(1));
    // Past it: the breaker answers the dead pool at once.
    std::thread::sleep(Duration::from_secs(BUDGET_SECS + 1));
    let answered_at_once_before = status::total(target, "TotalAnsweredAtOnce");
    fpm.restart_after(Duration::from_secs(1));
    let healthy = healthy.stop_after(Duration::from_millis(500));
    let dead = dead.stop_after(Duration::ZERO);

    let log = apache.error_log();
    assert_eq!(
        load::failed_count(&healthy),
        0,
        "the healthy pool lost {:?} of {} requests, started at {:?}\n{log}",
        load::failures(&healthy),
        healthy.len(),
        healthy.iter().filter(|r| r.failed()).map(|r| (r.started, r.latency)).collect::<Vec<_>>()
    );
    assert!(dead.iter().all(|record| record.status == 503), "{:?}", load::failures(&dead));
    assert!(answered_at_once_before > 0, "the dead pool was answered at once after a whole budget\n{log}");
    assert!(status::total(target, "TotalAnsweredAtOnce") > answered_at_once_before, "and still is while it refuses");
    assert!(!log.contains("exit signal"), "a child crashed\n{log}");
    let opened = log.matches("answering 503 at once until it accepts again").count();
    assert_eq!(opened, 1, "one error line for the dead pool's outage, not one per request\n{log}");
    assert!(log.contains("the rest is kept for other backends"), "the share refused the dead pool by name\n{log}");
}
