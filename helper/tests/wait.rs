//! `wait` and `reload-and-wait` against a real php-fpm.

mod common;

use common::{require_root, run};
use harness::{Listen, PhpFpm, WorkDir};
use std::time::Duration;

/// Waits before php-fpm is up (must time out), then with php-fpm started ~1 s into the wait
/// (must succeed with the ping).
fn timeout_then_ready(work: &WorkDir, listen: Listen) {
    require_root();
    let target = listen.address();
    let mut fpm = PhpFpm::new(work.path(), &work.docroot(), listen, 2);
    let r = run(&["wait", &target, "--timeout", "700ms", "--ping", "/ping"]);
    assert_eq!(r.code, 1, "wait must time out with nothing listening");
    assert!(r.stderr.contains("not ready"), "{}", r.stderr);

    let starter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        fpm.start();
        fpm
    });
    let r = run(&["wait", &target, "--timeout", "30s", "--ping", "/ping"]);
    let fpm = starter.join().expect("starter thread");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("ready"), "{}", r.stdout);

    // Wrong expectation: the answer is checked, not just the connection.
    let r = run(&["wait", &target, "--timeout", "1s", "--ping", "/ping", "--expect", "definitely-not-pong"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("expected"), "{}", r.stderr);
    // An unknown ping path is reported as such.
    let r = run(&["wait", &target, "--timeout", "1s", "--ping", "/nope"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("404"), "{}", r.stderr);
    drop(fpm);
}

#[test]
fn wait_unix_socket() {
    let work = WorkDir::new("wait-unix");
    let socket = work.join("fpm.sock");
    timeout_then_ready(&work, Listen::Unix(socket));
}

#[test]
fn wait_tcp() {
    let work = WorkDir::new("wait-tcp");
    timeout_then_ready(&work, Listen::Tcp(harness::free_port()));
}

#[test]
fn reload_and_wait_real_fpm() {
    require_root();
    let work = WorkDir::new("reload");
    let mut fpm = PhpFpm::new(work.path(), &work.docroot(), Listen::Unix(work.join("fpm.sock")), 2);
    fpm.start();
    let pid_file = fpm.pid_file();
    harness::wait_until("php-fpm's pid file", Duration::from_secs(20), || pid_file.exists().then_some(()));
    let socket = fpm.listen.address();
    assert_eq!(run(&["wait", &socket, "--timeout", "20s", "--ping", "/ping"]).code, 0);
    let r = run(&[
        "reload-and-wait",
        "--pid-file",
        &pid_file.to_string_lossy(),
        &socket,
        "--ping",
        "/ping",
        "--timeout",
        "30s",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("reloaded"), "{}", r.stdout);
    assert!(fpm.log().contains("reloading"), "php-fpm did not log a reload: {}", fpm.log());
    // Same pid after the in-place re-exec, and it still answers.
    let pid = std::fs::read_to_string(&pid_file).expect("pid file");
    assert_eq!(pid.trim(), fpm.pid().expect("started").to_string());

    // Refuses to signal something that is not php-fpm.
    let me = std::process::id().to_string();
    let r = run(&["reload-and-wait", "--pid", &me, &socket, "--timeout", "1s"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not php-fpm"), "{}", r.stderr);
}

/// On a terminal, `wait` shows one progress line at most once a second; piped, none.
/// The terminal is a pty from util-linux's `script`, which Debian always has.
#[test]
fn progress_line_only_on_a_terminal_and_at_most_once_a_second() {
    let work = WorkDir::new("wait-tty");
    let missing = work.join("never.sock");
    let missing = missing.to_string_lossy();
    let piped = run(&["wait", &missing, "--timeout", "2500ms"]);
    assert_eq!(piped.code, 1);
    assert!(!piped.stderr.contains("waiting for"), "progress line without a terminal: {}", piped.stderr);

    let command = format!("{} wait {missing} --timeout 2500ms", common::BIN);
    let out = std::process::Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .output()
        .expect("script(1) from util-linux");
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{transcript}");
    let updates = transcript.matches("waiting for").count();
    // Shown at once, then only when a second has passed: a 2.5 s wait has room for 3 at most.
    assert!((1..=3).contains(&updates), "{updates} progress updates in 2.5 s:\n{transcript:?}");
    assert!(transcript.contains("not ready"), "the final error still ends the wait:\n{transcript:?}");
}
