//! Hostile clients cannot crash Apache, nor cost anyone else an answer, while requests wait
//! for a restarting PHP-FPM (issue 22, point 2).
//!
//! Under the event MPM a waiting request is suspended: its connection belongs for a while to
//! the module's waiting thread instead of the MPM, and whichever side frees it while the other
//! still uses it crashes the child (AH00052 "exit signal"), taking every connection of that
//! child with it. A client decides when its connection ends, so this is attacked from outside:
//! per transport (HTTP/1.1 and HTTP/1.1 over TLS) thousands of connections leave by a reset or
//! a half-close at every phase of a request (`harness::hostile::Phase`), among them the known
//! crash (an `Expect: 100-continue` POST with its body in the same write, then a reset), while
//! PHP-FPM is stopped and started again and again, with twice as many busy threads as cores.
//! Meanwhile patient clients (GETs, POSTs with bodies, one with `Expect: 100-continue`) must
//! each get their right answer once PHP-FPM is back, static requests must all be 200, no child
//! may die, and once it is over nothing may be left waiting or connected.
//!
//! What the hostile connections get is not judged (a reset client has no answer to judge), and
//! nothing here depends on how fast the machine is: the patient clients have a 30 s budget and
//! each outage lasts a second or two.
//!
//! On the module of commit 9358947 the HTTP/1.1 test fails on its first assertion (54 to 64
//! children died per run, most by the `Expect` reset). Over TLS that case cannot reach the
//! module (mod_ssl's input filter refuses to read once the failed `100 Continue` write has set
//! `c->aborted`), so the TLS test guards the other phases and the TLS paths of the same code.

use harness::apache::Processes;
use harness::contention::CpuContention;
use harness::hostile::{self, Attack, AttackSpec, Phase, Target};
use harness::status::{self, assert_nothing_left};
use harness::transport::Outage;
use harness::{http, load, wait_until};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Hostile client threads, each with one connection at a time.
const HOSTILE_CLIENTS: usize = 48;
/// Hostile connections per transport.
const HOSTILE_CONNECTIONS: usize = 6_000;
/// The attack stops after this long even if it has not made every connection (a safety net on
/// a slow machine, not a timing assertion).
const ATTACK_LIMIT: Duration = Duration::from_secs(90);
/// Patient clients per outage.
const PATIENTS: usize = 9;
/// PHP-FPM stays stopped this long each time, with patient requests waiting, then up this long.
const DOWN: Duration = Duration::from_millis(1500);
const UP: Duration = Duration::from_millis(700);
/// Outages at most per transport; the attack usually ends first.
const MAX_OUTAGES: usize = 40;
const HELLO: &str = "hello from php-fpm\n";

#[test]
fn hostile_http1_clients_crash_nothing_and_cost_nobody_an_answer() {
    under_attack("hostile-http1", false);
}

#[test]
fn hostile_tls_clients_crash_nothing_and_cost_nobody_an_answer() {
    under_attack("hostile-tls", true);
}

fn under_attack(name: &str, tls: bool) {
    let began = Instant::now();
    // Two children of 25 threads, as Debian's event MPM runs by default.
    let mut outage = Outage::begin_with(
        name,
        "FcgiResilientTimeout 30s\nFcgiResilientMaxWaiting 4000\nAsyncRequestWorkerFactor 64",
        |config| {
            config.processes = Processes { start_servers: 2, server_limit: 2, threads_per_child: 25 };
            status::serve_server_status(config);
        },
    );
    hostile::install_documents(&outage.work.docroot());
    let plain = outage.ports.plain;
    let target = if tls {
        Target::tls(outage.ports.tls, &outage.work.join("apache").join("localhost.crt"))
    } else {
        Target::plain(plain)
    };
    let contention = CpuContention::twice_the_cores(ATTACK_LIMIT + Duration::from_secs(60));

    // PHP-FPM is down: the first patients wait, and teach the children that it is down.
    let mut waiting = patients(&target, plain, 0);
    wait_until("a patient request waiting", Duration::from_secs(30), || {
        (status::total(plain, "TotalWaiting") >= 1).then_some(())
    });
    let statics = Statics::start(target.clone());
    let spec = AttackSpec::every_phase(target.clone(), HOSTILE_CLIENTS, HOSTILE_CONNECTIONS, ATTACK_LIMIT)
        .weigh(Phase::ExpectWithBody, 6);
    let attack = Attack::start(&spec);
    let mut answers = Vec::new();
    let mut outages = 1;
    loop {
        std::thread::sleep(DOWN);
        outage.fpm.start();
        answers.extend(waiting.drain(..).map(|patient| patient.join().expect("patient thread")));
        if attack.is_over() || outages == MAX_OUTAGES {
            break;
        }
        std::thread::sleep(UP);
        outage.fpm.stop();
        waiting = patients(&target, plain, outages);
        outages += 1;
    }
    let report = attack.finish();
    let statics = statics.finish();
    drop(contention);

    let log = outage.apache.error_log();
    let crashes = status::crashes(&log);
    let wrong: Vec<&String> = answers.iter().filter_map(|answer| answer.as_ref().err()).collect();
    eprintln!(
        "{}: {report}\n{outages} outages; {} patient requests, {} wrong; {} static requests, {} not 200; \
         {} children crashed; {:.1} s",
        target.name(),
        answers.len(),
        wrong.len(),
        statics.requests,
        statics.failures.len(),
        crashes.len(),
        began.elapsed().as_secs_f64()
    );
    assert!(
        crashes.is_empty(),
        "{}: {} `exit signal` lines in the error log (children crashed), under {report}:\n{}",
        target.name(),
        crashes.len(),
        crashes.join("\n")
    );
    assert!(wrong.is_empty(), "{} of {} patient requests went wrong: {wrong:#?}", wrong.len(), answers.len());
    assert!(
        statics.failures.is_empty(),
        "{} of {} static requests were not 200: {:#?}",
        statics.failures.len(),
        statics.requests,
        statics.failures
    );
    assert!(report.connections() > 0 && statics.requests > 0);
    assert_nothing_left(plain, &outage.apache);
}

/// Well-behaved clients of one outage, over the transport under attack: GETs, POSTs with
/// bodies, and (in the clear) POSTs that send their body only after `100 Continue`.
fn patients(target: &Target, plain: SocketAddr, outage: usize) -> Vec<JoinHandle<Result<(), String>>> {
    (0..PATIENTS)
        .map(|index| {
            let target = target.clone();
            std::thread::spawn(move || {
                let timeout = Duration::from_secs(60);
                let body = load::body_pattern(20_000 + index, (outage * PATIENTS + index) as u64);
                let (what, answer, expected) = match index % 3 {
                    0 => ("GET", target.request("GET", "/index.php", &[], timeout), HELLO.as_bytes().to_vec()),
                    1 => ("POST", target.request("POST", "/echo.php", &body, timeout), body),
                    _ => ("Expect POST", http::post_expecting_continue(plain, "/echo.php", &body, timeout), body),
                };
                match answer {
                    Ok(response) if response.status == 200 && response.body == expected => Ok(()),
                    Ok(response) => Err(format!(
                        "outage {outage}, {what} {index}: {} with {} bytes ({:?}…)",
                        response.status,
                        response.body.len(),
                        String::from_utf8_lossy(&response.body[..response.body.len().min(80)])
                    )),
                    Err(error) => Err(format!("outage {outage}, {what} {index}: {error}")),
                }
            })
        })
        .collect()
}

/// Static requests, one after another on new connections, for the whole attack; stopped when
/// dropped.
struct Statics {
    stop: Arc<AtomicBool>,
    client: Option<JoinHandle<StaticResults>>,
}

#[derive(Default)]
struct StaticResults {
    requests: usize,
    failures: Vec<String>,
}

impl Statics {
    fn start(target: Target) -> Statics {
        let stop = Arc::new(AtomicBool::new(false));
        let client = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let mut results = StaticResults::default();
                while !stop.load(Ordering::Relaxed) {
                    results.requests += 1;
                    match target.request("GET", "/static.txt", &[], Duration::from_secs(30)) {
                        Ok(response) if response.status == 200 && response.body == b"static content\n" => {}
                        Ok(response) => results.failures.push(format!("{} {:?}", response.status, response.text())),
                        Err(error) => results.failures.push(error.to_string()),
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                results
            }
        });
        Statics { stop, client: Some(client) }
    }

    fn finish(mut self) -> StaticResults {
        self.stop.store(true, Ordering::Relaxed);
        self.client.take().map(|client| client.join().expect("static client")).unwrap_or_default()
    }
}

impl Drop for Statics {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(client) = self.client.take() {
            let _ = client.join();
        }
    }
}
