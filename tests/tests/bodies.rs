//! Request bodies through an outage: every byte reaches PHP once, in order; a request PHP
//! already started is never run again, except a bodiless GET when RetryIdempotent asks for it.

use harness::apache::ApacheConfig;
use harness::status::{self, STATUS_LOCATION};
use harness::{http, load, wait_until, Apache, PhpFpm, WorkDir};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// Around mod_proxy_fcgi's 16 KB read-ahead, and far past it.
const SIZES: &[usize] = &[0, 1, 1000, 16_383, 16_384, 16_385, 65_543, 1_000_000];

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y).or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

fn apache(work: &WorkDir, fpm: &PhpFpm, directives: &str) -> Apache {
    let config = ApacheConfig::new(&work.docroot(), &fpm.listen.proxy_handler())
        .with_server_directives(&format!("{directives}\n{STATUS_LOCATION}"));
    Apache::start(&work.subdir("apache"), config)
}

#[test]
fn post_bodies_sent_during_an_outage_reach_php_byte_identical() {
    let work = WorkDir::new("bodies");
    let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
    fpm.start();
    let apache = apache(&work, &fpm, "FcgiResilient On\nFcgiResilientTimeout 60s");
    let target = apache.address();
    fpm.stop();
    let senders: Vec<_> = SIZES
        .iter()
        .map(|&size| {
            let body = load::body_pattern(size, size as u64 + 7);
            std::thread::spawn(move || {
                let response = http::post(target, "/echo.php", &body);
                (body, response)
            })
        })
        .collect();
    status::wait_for_total(target, "TotalWaiting", SIZES.len() as u64);
    fpm.start();
    for sender in senders {
        let (sent, response) = sender.join().expect("sender thread");
        let response = response.unwrap_or_else(|e| panic!("POST of {} bytes: {e}", sent.len()));
        assert_eq!(response.status, 200, "POST of {} bytes: {}\n{}", sent.len(), response.text(), apache.error_log());
        assert_eq!(
            first_difference(&sent, &response.body),
            None,
            "POST of {} bytes came back as {} bytes",
            sent.len(),
            response.body.len()
        );
    }
    assert_eq!(status::total(target, "TotalRecovered"), SIZES.len() as u64);
}

/// Counts its runs in a file, then takes long enough for the test to stop PHP-FPM under it.
const COUNTING_SCRIPT: &str = "<?php\n\
    file_put_contents(__DIR__ . '/../runs/' . basename($_GET['id']), \"run\\n\", FILE_APPEND);\n\
    sleep(2);\n\
    echo \"finished\\n\";\n";

fn runs(dir: &Path, id: &str) -> usize {
    std::fs::read_to_string(dir.join(id)).map(|text| text.lines().count()).unwrap_or(0)
}

/// Sends `method` to the counting script, stops PHP-FPM once the script runs, starts it
/// again; returns the response status and how many times the script ran.
fn cut_mid_request(directives: &str, method: &'static str, id: &'static str) -> (u16, usize) {
    let work = WorkDir::new("cut");
    let runs_dir = work.subdir("runs");
    std::os::unix::fs::chown(&runs_dir, Some(33), Some(33)).expect("chown runs to www-data");
    std::fs::set_permissions(&runs_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod runs");
    std::fs::write(work.docroot().join("count.php"), COUNTING_SCRIPT).expect("count.php");
    let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
    fpm.start();
    let apache = apache(&work, &fpm, directives);
    let target = apache.address();
    let path = format!("/count.php?id={id}");
    let client = std::thread::spawn(move || http::request(target, method, &path, b"", Duration::from_secs(60)));
    wait_until("the script running", Duration::from_secs(30), || (runs(&runs_dir, id) > 0).then_some(()));
    fpm.restart_after(Duration::from_millis(200));
    let response = client.join().expect("client thread").expect("a response");
    // A repeated run would have written its line before answering.
    (response.status, runs(&runs_dir, id))
}

#[test]
fn post_cut_by_a_stop_is_never_repeated_even_with_retry_idempotent() {
    let (status, runs) = cut_mid_request("FcgiResilient On\nFcgiResilientRetryIdempotent On", "POST", "post");
    assert_eq!(runs, 1, "the POST reached PHP {runs} times");
    assert!(status >= 500, "a POST PHP-FPM dropped must fail, not be repeated; got {status}");
}

#[test]
fn get_cut_by_a_stop_is_repeated_only_with_retry_idempotent() {
    let (status, runs) = cut_mid_request("FcgiResilient On\nFcgiResilientRetryIdempotent On", "GET", "get-on");
    assert_eq!((status, runs), (200, 2), "with RetryIdempotent On the dropped GET runs again and succeeds");
    let (status, runs) = cut_mid_request("FcgiResilient On", "GET", "get-off");
    assert_eq!(runs, 1, "without RetryIdempotent the dropped GET must not run again");
    assert!(status >= 500, "got {status}");
}
