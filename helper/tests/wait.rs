//! `wait` and `reload-and-wait` against a real php-fpm (skipped without one or as non-root).

mod common;

use common::{free_port, fpm_conf, is_root, php_fpm, run, wait_for_path, Fpm, TempDir};
use std::time::{Duration, Instant};

fn have_fpm() -> bool {
    if !is_root() || php_fpm().is_none() {
        eprintln!("skipped: needs root and /usr/sbin/php-fpm*");
        return false;
    }
    true
}

/// Waits before php-fpm is up (must time out), then with php-fpm started ~1 s
/// into the wait (must succeed with the ping).
fn timeout_then_ready(dir: &TempDir, listen: &str, target: &str) {
    let conf = fpm_conf(dir.path(), listen);
    let t = Instant::now();
    let r = run(&["wait", target, "--timeout", "700ms", "--ping", "/ping"]);
    assert_eq!(r.code, 1, "wait must time out with nothing listening");
    assert!(r.stderr.contains("not ready"), "{}", r.stderr);
    assert!(t.elapsed() < Duration::from_secs(20));

    let conf2 = conf.clone();
    let starter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        Fpm::start(&conf2)
    });
    let r = run(&["wait", target, "--timeout", "30s", "--ping", "/ping"]);
    let fpm = starter.join().expect("starter thread");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("ready"), "{}", r.stdout);

    // Wrong expectation: the answer is checked, not just the connection.
    let r = run(&["wait", target, "--timeout", "1s", "--ping", "/ping", "--expect", "definitely-not-pong"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("expected"), "{}", r.stderr);
    // An unknown ping path is reported as such.
    let r = run(&["wait", target, "--timeout", "1s", "--ping", "/nope"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("404"), "{}", r.stderr);
    drop(fpm);
}

#[test]
fn wait_unix_socket() {
    if !have_fpm() {
        return;
    }
    let d = TempDir::new("wait-unix");
    let sock = d.path().join("fpm.sock");
    let s = sock.to_string_lossy().into_owned();
    timeout_then_ready(&d, &s, &s);
}

#[test]
fn wait_tcp() {
    if !have_fpm() {
        return;
    }
    let d = TempDir::new("wait-tcp");
    let addr = format!("127.0.0.1:{}", free_port());
    timeout_then_ready(&d, &addr, &addr);
}

#[test]
fn reload_and_wait_real_fpm() {
    if !have_fpm() {
        return;
    }
    let d = TempDir::new("reload");
    let sock = d.path().join("fpm.sock");
    let conf = fpm_conf(d.path(), &sock.to_string_lossy());
    let fpm = Fpm::start(&conf);
    let pid_file = d.path().join("fpm.pid");
    assert!(wait_for_path(&pid_file, Duration::from_secs(20)), "php-fpm did not write its pid file");
    let s = sock.to_string_lossy().into_owned();
    assert_eq!(run(&["wait", &s, "--timeout", "20s", "--ping", "/ping"]).code, 0);
    let r = run(&["reload-and-wait", "--pid-file", &pid_file.to_string_lossy(), &s, "--ping", "/ping", "--timeout", "30s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("reloaded"), "{}", r.stdout);
    let log = std::fs::read_to_string(d.path().join("fpm-error.log")).unwrap_or_default();
    assert!(log.contains("reloading"), "php-fpm did not log a reload: {log}");
    // Same pid after the in-place re-exec, and it still answers.
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap().trim(), fpm.pid().to_string());

    // Refuses to signal something that is not php-fpm.
    let me = std::process::id().to_string();
    let r = run(&["reload-and-wait", "--pid", &me, &s, "--timeout", "1s"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not php-fpm"), "{}", r.stderr);
    drop(fpm);
}
