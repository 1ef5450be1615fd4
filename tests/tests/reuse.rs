//! `enablereuse=on`: mod_proxy keeps backend connections open between requests, so a
//! PHP-FPM restart meets requests on connections PHP-FPM already closed, not only refused
//! connects. With RetryIdempotent On, a restart under load still fails nothing.

use harness::apache::{ApacheConfig, Processes};
use harness::load::{self, LoadSpec};
use harness::{Apache, Listen, PhpFpm, WorkDir};
use std::time::Duration;

const CLIENTS: usize = 16;

fn restart_with_reused_connections(gap: Duration) {
    let work = WorkDir::new("reuse");
    let socket = work.join("php-fpm.sock");
    // A reused connection keeps its PHP-FPM child (FCGI_KEEP_CONN) even while idle, so the
    // pool needs a child for every Apache thread that may hold one, or new connections
    // queue forever behind idle ones: 2 x 24 threads, 50 children. (Threads to spare: the
    // event MPM closes kept-alive client connections when a child has no idle thread.)
    let mut fpm = PhpFpm::new(work.path(), &work.docroot(), Listen::Unix(socket.clone()), 50);
    fpm.start();
    let directives = format!(
        "FcgiResilient On\nFcgiResilientRetryIdempotent On\n\
         <Proxy \"unix:{}|fcgi://localhost\">\n    ProxySet enablereuse=on\n</Proxy>",
        socket.display()
    );
    let mut config =
        ApacheConfig::new(&work.docroot(), &fpm.listen.proxy_handler()).with_server_directives(&directives);
    config.processes = Processes { start_servers: 2, server_limit: 2, threads_per_child: 24 };
    let apache = Apache::start(&work.subdir("apache"), config);
    let spec = LoadSpec::new(apache.address(), "/index.php", CLIENTS);
    let results = load::around(&[spec], Duration::from_millis(700), Duration::from_millis(700), || {
        fpm.restart_after(gap);
    });
    let records = &results[0];
    eprintln!("gap {gap:?}: {} requests, failures by status {:?}", records.len(), load::failures(records));
    for failed in records.iter().filter(|r| r.failed()) {
        eprintln!("failed: {failed:?}");
    }
    assert!(!records.is_empty());
    assert_eq!(
        load::failed_count(records),
        0,
        "failures by status {:?}\n{}",
        load::failures(records),
        apache.error_log().lines().rev().take(30).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn restart_under_load_with_reused_backend_connections_fails_nothing() {
    restart_with_reused_connections(Duration::ZERO);
}

#[test]
fn outage_under_load_with_reused_backend_connections_fails_nothing() {
    restart_with_reused_connections(Duration::from_secs(2));
}
