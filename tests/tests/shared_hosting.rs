//! A shared host: one PHP-FPM master with a pool per site, one virtual host per site, all
//! pools restarted together under a load on every site. With the module On (and GETs
//! repeated) no request fails and the status page lists every pool; with it Off some fail.

use harness::apache::{ApacheConfig, Processes};
use harness::load::LoadSpec;
use harness::sites::{self, Site, SiteRecord, SpreadLoad};
use harness::status::STATUS_LOCATION;
use harness::{Apache, PhpFpm, WorkDir};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const POOLS: usize = 40;
/// One client per site: client c always asks site c (see `SpreadLoad`), so every pool has a
/// request waiting through the restart.
const CLIENTS: usize = POOLS;

const ON: &str = "FcgiResilient On\nFcgiResilientRetryIdempotent On";

/// Four children of 64 threads: no child's waiting cap (¾ of its threads) is reached even if
/// every client lands in the same child.
fn apache(work: &WorkDir, name: &str, sites: &[Site], directives: &str) -> Apache {
    let mut config = ApacheConfig::new(&work.docroot(), "unused");
    config.processes = Processes { start_servers: 4, server_limit: 4, threads_per_child: 64 };
    config.site =
        format!("{directives}\n{}{STATUS_LOCATION}", sites::virtual_hosts(config.port, &work.docroot(), sites));
    Apache::start(&work.subdir(name), config)
}

fn load_on(apache: &Apache) -> LoadSpec {
    LoadSpec::new(apache.address(), "/index.php", CLIENTS)
}

fn describe(records: &[SiteRecord], apache: &Apache) -> String {
    let failed: Vec<_> = records.iter().filter(|r| r.record.failed()).map(|r| (r.site, r.record.status)).collect();
    format!("{} requests; failed (site, status): {failed:?}\nerror log:\n{}", records.len(), apache.error_log())
}

/// The backends the status page lists, and its UntrackedEvents.
fn status_page(apache: &Apache) -> (HashSet<String>, u64) {
    let page = harness::http::get(apache.address(), "/fcgi-resilient-status?auto").expect("status page").text();
    let listed = page.lines().filter_map(|l| l.strip_prefix("Backend: ")).map(String::from).collect();
    let untracked = page.lines().find_map(|l| l.strip_prefix("UntrackedEvents: ")).and_then(|v| v.parse().ok());
    (listed, untracked.expect("UntrackedEvents on the status page"))
}

#[test]
fn all_pools_restarted_under_load_fail_nothing_with_module_on_and_every_pool_is_on_the_status_page() {
    let work = WorkDir::new("shared-hosting");
    let socket_dir = work.subdir("run");
    let sites = sites::sites(&socket_dir, POOLS);
    let mut fpm = PhpFpm::with_pools(work.path(), &work.docroot(), &sites::sockets(&sites), "static", 1);
    fpm.start();
    fpm.wait_all_accepting();
    let on = apache(&work, "on", &sites, ON);
    let off = apache(&work, "off", &sites, "FcgiResilient Off");
    let hosts: Vec<String> = sites.iter().map(|s| s.host.clone()).collect();

    let epoch = Instant::now();
    let loads = [SpreadLoad::start(&load_on(&on), &hosts, epoch), SpreadLoad::start(&load_on(&off), &hosts, epoch)];
    std::thread::sleep(Duration::from_millis(700));
    fpm.stop();
    fpm.start();
    let up = fpm.wait_all_accepting().duration_since(epoch);
    let [on_load, off_load] = loads;
    let on_records = on_load.stop_after(Duration::from_millis(700));
    let off_records = off_load.stop_after(Duration::ZERO);

    assert_eq!(sites::failed_sites(&on_records), Vec::<usize>::new(), "module On: {}", describe(&on_records, &on));
    assert!(
        !sites::failed_sites(&off_records).is_empty(),
        "module Off failed nothing: the restart did not hit the load\n{}",
        describe(&off_records, &off)
    );
    let held = on_records.iter().filter(|r| r.record.started < up && r.record.ended() > up).count();
    assert!(held > 0, "no request of the On load was in flight when PHP-FPM came back: the test proved nothing");
    let serving = sites::first_answer_after(&on_records, POOLS, up);
    assert!(serving.iter().all(Option::is_some), "a site never answered after the restart: {serving:?}");

    let (listed, untracked) = status_page(&on);
    let missing: Vec<&Site> =
        sites.iter().filter(|site| !listed.contains(&format!("unix:{}", site.socket.display()))).collect();
    assert!(missing.is_empty(), "pools missing from the status page: {missing:?}\nlisted: {listed:?}");
    assert_eq!(untracked, 0);
}
