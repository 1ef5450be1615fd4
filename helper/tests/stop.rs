//! `stop` and reloads against a real php-fpm behind a real Apache with mod_fcgi_resilient at
//! its defaults (`FcgiResilient On` only): draining first loses no request, a plain SIGTERM
//! does, and a reload with `process_control_timeout` set loses none either.

mod common;

use common::restart_load::{summary, Load};
use common::{require_root, restart_load, run, Run};
use harness::apache::ApacheConfig;
use harness::load::{self, Record};
use harness::{Apache, PhpFpm, WorkDir};
use std::time::Duration;

/// Fields drop in order: Apache and php-fpm stop before their directory goes.
struct Site {
    apache: Apache,
    fpm: PhpFpm,
    _work: WorkDir,
}

fn site(name: &str) -> Site {
    require_root();
    let work = WorkDir::new(name);
    let mut fpm = PhpFpm::new(work.path(), &work.docroot(), harness::Listen::Unix(work.join("php-fpm.sock")), 8);
    fpm.start();
    let config =
        ApacheConfig::new(&work.docroot(), &fpm.listen.proxy_handler()).with_server_directives("FcgiResilient On");
    let apache = Apache::start(&work.subdir("apache"), config);
    Site { apache, fpm, _work: work }
}

/// Runs the restart load against the site, does `event` on its php-fpm in the middle.
fn around(site: &mut Site, kind: Load, event: impl FnOnce(&mut PhpFpm)) -> Vec<Record> {
    let target = site.apache.address();
    restart_load::around(target, kind, || event(&mut site.fpm))
}

fn helper_stop(fpm: &PhpFpm, timeout: &str) -> Run {
    let pid = fpm.pid().expect("php-fpm started").to_string();
    let config = fpm.config_file().to_string_lossy().into_owned();
    run(&["stop", "--pid", &pid, "--fpm-config", &config, "--timeout", timeout])
}

/// The helper's stop, then the start systemd would do.
fn stop_through_helper_and_start(fpm: &mut PhpFpm) {
    let r = helper_stop(fpm, "10s");
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Requests were running when the socket went: what the drain waited for.
    let drained: usize = r
        .stderr
        .split("drained ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no drain reported: {}", r.stderr));
    assert!(drained > 0, "no connection was open at the stop: the test proved nothing\n{}", r.stderr);
    fpm.stop(); // reaps the exited master
    fpm.start();
}

/// Through the helper nothing fails; with a plain SIGTERM on the same site, something does.
fn helper_stop_loses_nothing_where_sigterm_loses_requests(kind: Load) {
    let mut site = site(&format!("stop-{kind:?}"));
    let drained = around(&mut site, kind, stop_through_helper_and_start);
    let cut = around(&mut site, kind, |fpm| {
        fpm.restart_after(Duration::ZERO);
    });
    eprintln!("{}\n{}", summary(kind, "helper stop + start", &drained), summary(kind, "SIGTERM + start", &cut));
    assert_eq!(
        load::failed_count(&drained),
        0,
        "{}\n{}",
        summary(kind, "helper stop + start", &drained),
        site.apache.error_log()
    );
    assert!(load::failed_count(&cut) > 0, "a plain SIGTERM cut nothing: the load did not hit PHP-FPM");
}

#[test]
fn get_load_helper_stop_loses_nothing_plain_sigterm_does() {
    helper_stop_loses_nothing_where_sigterm_loses_requests(Load::Get);
}

#[test]
fn post_64k_load_helper_stop_loses_nothing_plain_sigterm_does() {
    helper_stop_loses_nothing_where_sigterm_loses_requests(Load::Post);
}

/// A request longer than --timeout: stop reports it, then stops anyway (the request is cut).
#[test]
fn request_longer_than_the_timeout_is_reported() {
    let mut site = site("stop-timeout");
    let target = site.apache.address();
    let slow = std::thread::spawn(move || harness::http::get(target, "/sleep.php?ms=4000"));
    std::thread::sleep(Duration::from_millis(500));
    let r = helper_stop(&site.fpm, "700ms");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("1 connection(s) still open after 700ms"), "{}", r.stderr);
    let response = slow.join().expect("client thread");
    assert!(response.map_or(true, |r| r.status >= 500), "the cut request cannot have succeeded");
    site.fpm.stop();
}

fn accepting(fpm: &PhpFpm) -> bool {
    fpm.listen.accepts()
}

/// The master's children, e.g. to pick a worker's pid.
fn worker_of(master: i32) -> i32 {
    let ppid = |pid: i32| -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat[stat.rfind(')')? + 1..].split_whitespace().nth(1)?.parse().ok()
    };
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|&pid| ppid(pid) == Some(master))
        .expect("a php-fpm worker")
}

/// Not a master, no pid, an interrupted drain: php-fpm keeps running with its socket in place.
#[test]
fn refuses_what_is_not_a_php_fpm_master_and_puts_the_socket_back_when_interrupted() {
    let site = site("stop-refuse");
    let config = site.fpm.config_file().to_string_lossy().into_owned();
    let me = std::process::id().to_string();
    let r = run(&["stop", "--pid", &me, "--fpm-config", &config]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not a php-fpm master"), "{}", r.stderr);
    let worker = worker_of(site.fpm.pid().expect("started")).to_string();
    let r = run(&["stop", "--pid", &worker, "--fpm-config", &config]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("worker"), "{}", r.stderr);
    assert!(accepting(&site.fpm), "php-fpm must still serve on its socket");
    let r = run(&["stop", "--pid="]);
    assert_eq!(r.code, 0, "systemd's empty $MAINPID: nothing to stop");

    // A request keeps the drain waiting; the helper is killed meanwhile.
    let target = site.apache.address();
    let slow = std::thread::spawn(move || harness::http::get(target, "/sleep.php?ms=2000"));
    std::thread::sleep(Duration::from_millis(300));
    let pid = site.fpm.pid().expect("started").to_string();
    let helper = std::process::Command::new(common::BIN)
        .args(["stop", "--pid", &pid, "--timeout", "20s"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("helper");
    harness::wait_until("the socket moved aside", Duration::from_secs(10), || (!accepting(&site.fpm)).then_some(()));
    // SAFETY: kill(2) on the helper this test started and has not reaped.
    unsafe { libc::kill(helper.id() as i32, libc::SIGTERM) };
    let out = helper.wait_with_output().expect("helper output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("put back"), "{stderr}");
    assert!(accepting(&site.fpm), "after an interrupted stop php-fpm must serve again");
    let response = slow.join().expect("client").expect("response");
    assert_eq!(response.status, 200, "the request in flight finishes normally");
}

fn reload_and_wait(fpm: &PhpFpm) -> Run {
    let pid = fpm.pid().expect("started").to_string();
    let config = fpm.config_file().to_string_lossy().into_owned();
    let socket = fpm.listen.address();
    run(&["reload-and-wait", "--pid", &pid, "--fpm-config", &config, &socket, "--timeout", "20s"])
}

/// USR2 with process_control_timeout 0 (PHP-FPM's default) cuts the requests in flight; with
/// it set, as `check` and `reload-and-wait` recommend, nothing is lost.
#[test]
fn reload_loses_nothing_with_process_control_timeout_set() {
    let mut site = site("reload-pct");
    let mut warned = String::new();
    let cut = around(&mut site, Load::Get, |fpm| warned = reload_and_wait(fpm).stderr);
    assert!(warned.contains("process_control_timeout"), "reload-and-wait must warn about it: {warned}");
    site.fpm.set_global("process_control_timeout", "10s");
    // This reload still runs with the old value (it governs how the old workers stop).
    assert_eq!(reload_and_wait(&site.fpm).code, 0);
    let get = around(&mut site, Load::Get, |fpm| assert_eq!(reload_and_wait(fpm).code, 0));
    let post = around(&mut site, Load::Post, |fpm| assert_eq!(reload_and_wait(fpm).code, 0));
    eprintln!(
        "{}\n{}\n{}",
        summary(Load::Get, "reload, process_control_timeout 0", &cut),
        summary(Load::Get, "reload, process_control_timeout 10s", &get),
        summary(Load::Post, "reload, process_control_timeout 10s", &post)
    );
    assert!(load::failed_count(&cut) > 0, "process_control_timeout 0 cut nothing: the reload did not hit the load");
    assert_eq!(load::failed_count(&get), 0, "{}", summary(Load::Get, "reload", &get));
    assert_eq!(load::failed_count(&post), 0, "{}", summary(Load::Post, "reload", &post));
}

/// A TCP pool cannot be drained: said plainly, and php-fpm is stopped as usual.
#[test]
fn tcp_pool_is_named_and_stopped_as_usual() {
    require_root();
    let work = WorkDir::new("stop-tcp");
    let mut fpm = PhpFpm::new(work.path(), &work.docroot(), harness::Listen::Tcp(harness::free_port()), 2);
    fpm.start();
    let r = helper_stop(&fpm, "5s");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("listens on TCP") && r.stderr.contains("not drained"), "{}", r.stderr);
    assert!(!fpm.listen.accepts(), "php-fpm must be stopped");
    fpm.stop();
}
