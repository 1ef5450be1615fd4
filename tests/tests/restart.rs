//! PHP-FPM restarted under load: with the module On no request fails, with it Off some do.

use harness::apache::ApacheConfig;
use harness::load::{self, LoadSpec, Record};
use harness::{Apache, Listen, PhpFpm, WorkDir};
use std::time::{Duration, Instant};

const CLIENTS: usize = 16;

fn load_on(apache: &Apache) -> LoadSpec {
    LoadSpec::new(apache.address(), "/index.php", CLIENTS)
}

/// SIGTERM makes PHP-FPM cut the requests it is running; those GETs are repeated only with
/// RetryIdempotent, so a load of GETs needs it to see no failure at all.
const ON: &str = "FcgiResilient On\nFcgiResilientRetryIdempotent On";

fn apache(work: &WorkDir, name: &str, fpm: &PhpFpm, directives: &str) -> Apache {
    let config = ApacheConfig::new(&work.docroot(), &fpm.listen.proxy_handler()).with_server_directives(directives);
    Apache::start(&work.subdir(name), config)
}

fn describe(name: &str, records: &[Record], apache: &Apache) -> String {
    format!(
        "{name}: {} requests, failures by status {:?}\nerror log:\n{}",
        records.len(),
        load::failures(records),
        apache.error_log()
    )
}

/// Requests in flight at the moment PHP-FPM accepted again after it was stopped: each either
/// started during the outage or was cut by the stop and repeated, so each needed the module.
/// (Counting only requests that *started* in the outage is not enough: with a short outage
/// every client may already be waiting on a request it sent before the stop.)
fn held_over_outage(records: &[Record], epoch: Instant, accepting: Instant) -> usize {
    let accepting = accepting - epoch;
    records.iter().filter(|r| r.started <= accepting && r.ended() >= accepting).count()
}

#[derive(Clone, Copy)]
enum Transport {
    UnixSocket,
    Tcp,
}

fn restart_under_load(transport: Transport, gap: Duration) {
    let work = WorkDir::new("restart");
    let listen = match transport {
        Transport::UnixSocket => Listen::Unix(work.join("php-fpm.sock")),
        Transport::Tcp => Listen::Tcp(harness::free_port()),
    };
    let mut fpm = PhpFpm::new(work.path(), &work.docroot(), listen, 8);
    fpm.start();
    let off = apache(&work, "off", &fpm, "FcgiResilient Off");
    let on = apache(&work, "on", &fpm, ON);
    let epoch = Instant::now();
    let mut outage = (epoch, epoch);
    let results =
        load::around(&[load_on(&on), load_on(&off)], Duration::from_millis(700), Duration::from_millis(700), || {
            let stopped = Instant::now();
            let accepting = fpm.restart_after(gap);
            outage = (stopped, accepting);
        });
    let (on_records, off_records) = (&results[0], &results[1]);
    eprintln!(
        "outage {:?}; on: {} requests; off: {:?}",
        outage.1 - outage.0,
        on_records.len(),
        load::failures(off_records)
    );
    assert_eq!(load::failed_count(on_records), 0, "{}", describe("module On", on_records, &on));
    assert!(
        load::failed_count(off_records) > 0,
        "module Off failed nothing: the restart did not hit the load\n{}",
        describe("Off", off_records, &off)
    );
    assert!(
        held_over_outage(on_records, epoch, outage.1) > 0,
        "no request of the On load was in flight when PHP-FPM came back: the test proved nothing"
    );
}

#[test]
fn unix_socket_restart_under_load_fails_nothing_with_module_on_and_some_with_it_off() {
    restart_under_load(Transport::UnixSocket, Duration::ZERO);
}

#[test]
fn two_second_outage_requests_wait_and_succeed() {
    restart_under_load(Transport::UnixSocket, Duration::from_secs(2));
}

#[test]
fn tcp_backend_restart_under_load_fails_nothing() {
    restart_under_load(Transport::Tcp, Duration::ZERO);
}

/// The same restart through each of Debian's MPMs: the module's waiting and its shared
/// counters must not depend on threads.
#[test]
fn restart_is_survived_under_every_mpm() {
    for mpm in ["prefork", "worker", "event"] {
        let work = WorkDir::new(&format!("mpm-{mpm}"));
        let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
        fpm.start();
        let mut config = ApacheConfig::new(&work.docroot(), &fpm.listen.proxy_handler()).with_server_directives(ON);
        config.mpm = mpm;
        if mpm == "prefork" {
            config.processes = harness::apache::Processes {
                start_servers: CLIENTS as u32,
                server_limit: 2 * CLIENTS as u32,
                threads_per_child: 1,
            };
        }
        let apache = Apache::start(&work.subdir("apache"), config);
        let results = load::around(&[load_on(&apache)], Duration::from_millis(500), Duration::from_millis(500), || {
            fpm.restart_after(Duration::from_millis(300));
        });
        assert_eq!(load::failed_count(&results[0]), 0, "{}", describe(mpm, &results[0], &apache));
    }
}
