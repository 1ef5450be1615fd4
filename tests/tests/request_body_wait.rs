//! POST bodies through an outage longer than mod_reqtimeout's body timer (Debian enables
//! mod_reqtimeout): each POST ends in 200 with its body intact, or in an error before PHP
//! received any part of it — PHP never runs a script on a truncated body.
//!
//! Debian's setting is `body=10,MinRate=500` with outages of 12 s; here `body=2` and a
//! 4 s outage keep the test short: what matters is an outage longer than the body timer.

use harness::apache::ApacheConfig;
use harness::status::{self, STATUS_LOCATION};
use harness::uploads::Uploads;
use harness::{http, load, wait_until, Apache, PhpFpm, WorkDir};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const BODY_SIZE: usize = 1_000_000;
const BODY_TIMER: &str = "RequestReadTimeout header=20-40,MinRate=500 body=2,MinRate=500";
/// Twice the body timer.
const OUTAGE_AFTER_THE_FIRST_WAITS: Duration = Duration::from_secs(4);

/// Sends the head and part of a body, then leaves while the request waits.
fn send_part_and_leave(target: SocketAddr, path: &str, announced: usize, sent: &[u8], stay: Duration) {
    let mut stream = TcpStream::connect(target).expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {announced}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(sent).expect("part of the body");
    std::thread::sleep(stay);
}

#[test]
fn posts_survive_an_outage_longer_than_the_body_timer_or_never_reach_php() {
    let work = WorkDir::new("body-wait");
    let uploads = Uploads::install(&work);
    let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
    fpm.start();
    let mut config = ApacheConfig::new(&work.docroot(), &fpm.listen.proxy_handler()).with_server_directives(&format!(
        "{BODY_TIMER}\nFcgiResilient On\nFcgiResilientTimeout 20s\n{STATUS_LOCATION}"
    ));
    config.modules.push("reqtimeout");
    config.log_level = "info fcgi_resilient:debug".to_string();
    let apache = Apache::start(&work.subdir("apache"), config);
    let target = apache.address();
    fpm.stop();

    // First, alone: the first request of a child to meet the outage runs mod_proxy_fcgi's
    // handler (its prefetch starts the body timer); later ones may skip it.
    let expecting = load::body_pattern(BODY_SIZE, 1);
    let sent = expecting.clone();
    let expecting = std::thread::spawn(move || {
        http::post_expecting_continue(target, "/upload.php?id=expect", &sent, Duration::from_secs(60))
    });
    status::wait_for_total(target, "TotalWaiting", 1);
    let plain = load::body_pattern(BODY_SIZE, 2);
    let sent = plain.clone();
    let plain = std::thread::spawn(move || http::post(target, "/upload.php?id=plain", &sent));
    let leaving = std::thread::spawn(move || {
        send_part_and_leave(
            target,
            "/upload.php?id=leaving",
            BODY_SIZE,
            &load::body_pattern(1000, 3),
            Duration::from_secs(1),
        )
    });
    std::thread::sleep(OUTAGE_AFTER_THE_FIRST_WAITS);
    fpm.start();

    for (name, sent, client) in
        [("expect", load::body_pattern(BODY_SIZE, 1), expecting), ("plain", load::body_pattern(BODY_SIZE, 2), plain)]
    {
        let response = client.join().expect("client thread");
        let response = response.unwrap_or_else(|e| panic!("POST {name}: {e}\n{}", apache.error_log()));
        let ran_with = uploads.runs(name);
        assert!(
            ran_with.iter().all(|&length| length == BODY_SIZE),
            "POST {name}: PHP ran with bodies of {ran_with:?} bytes, not {BODY_SIZE}; answered {}\n{}",
            response.status,
            apache.error_log()
        );
        assert_eq!(response.status, 200, "POST {name}: {}\n{}", response.text(), apache.error_log());
        assert_eq!(ran_with.len(), 1, "POST {name} ran {} times", ran_with.len());
        assert!(response.body == sent, "POST {name} came back as {} different bytes", response.body.len());
    }

    leaving.join().expect("leaving client thread");
    wait_until("no request waiting", Duration::from_secs(30), || {
        (status::total(target, "TotalWaiting") == 0).then_some(())
    });
    // A request let through after the wait reaches PHP at once; give it that moment.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(uploads.runs("leaving"), Vec::<usize>::new(), "PHP ran the request whose client left");
}
