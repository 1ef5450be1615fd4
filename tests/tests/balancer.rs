//! A balancer member is put in error state for `retry=` seconds when it refuses; the module
//! must bring it back as soon as PHP-FPM accepts again, or every later request would fail.

use harness::apache::ApacheConfig;
use harness::load::{self, LoadSpec};
use harness::{http, Apache, PhpFpm, WorkDir};
use std::time::Duration;

#[test]
fn balancer_member_recovers_as_soon_as_the_backend_accepts() {
    let work = WorkDir::new("balancer");
    let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
    fpm.start();
    let members = format!(
        "FcgiResilient On\nFcgiResilientRetryIdempotent On\n\
         <Proxy balancer://php>\n    BalancerMember \"unix:{}|fcgi://localhost\" retry=60\n</Proxy>\n",
        work.join("php-fpm.sock").display()
    );
    let mut config = ApacheConfig::new(&work.docroot(), "proxy:balancer://php").with_server_directives(&members);
    config.modules.extend(["slotmem_shm", "proxy_balancer", "lbmethod_byrequests"]);
    let apache = Apache::start(&work.subdir("apache"), config);
    let spec = LoadSpec::new(apache.address(), "/index.php", 16);
    let results = load::around(&[spec], Duration::from_millis(500), Duration::from_millis(500), || {
        fpm.restart_after(Duration::from_millis(300));
    });
    assert_eq!(load::failed_count(&results[0]), 0, "{:?}\n{}", load::failures(&results[0]), apache.error_log());
    // Well inside retry=60: a member still in error state would answer 503 here.
    let response = http::get(apache.address(), "/index.php").expect("a response");
    assert_eq!(response.status, 200, "{}", apache.error_log());
}
