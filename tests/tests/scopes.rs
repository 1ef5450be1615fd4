//! Directives per virtual host and directory: an inner section overrides what it sets and
//! inherits the rest.

use harness::apache::ApacheConfig;
use harness::http::Connection;
use harness::status::{self, STATUS_LOCATION};
use harness::{Apache, PhpFpm, WorkDir};
use std::net::SocketAddr;
use std::time::Duration;

fn get(target: SocketAddr, host: &str, path: &str) -> u16 {
    let mut connection = Connection::open(target, Duration::from_secs(60)).expect("connect");
    connection.send("GET", path, host, b"").expect("a response").status
}

#[test]
fn off_in_one_vhost_or_directory_while_on_in_others() {
    let work = WorkDir::new("scopes");
    std::fs::create_dir_all(work.docroot().join("legacy")).expect("legacy dir");
    std::fs::write(work.docroot().join("legacy/index.php"), "<?php echo 1;\n").expect("legacy/index.php");
    let mut fpm = PhpFpm::unix(work.path(), &work.docroot());
    let mut config = ApacheConfig::new(&work.docroot(), &fpm.listen.proxy_handler());
    let port = config.port;
    let vhosts = format!(
        "FcgiResilient On\nFcgiResilientTimeout 60s\n{STATUS_LOCATION}\
         <VirtualHost 127.0.0.1:{port}>\n    ServerName on.test\n    <Directory {docroot}/legacy>\n        FcgiResilient Off\n    </Directory>\n</VirtualHost>\n\
         <VirtualHost 127.0.0.1:{port}>\n    ServerName off.test\n    FcgiResilient Off\n</VirtualHost>\n\
         <VirtualHost 127.0.0.1:{port}>\n    ServerName inherits.test\n    FcgiResilientTimeout 50s\n</VirtualHost>\n",
        docroot = work.docroot().display()
    );
    config = config.with_server_directives(&vhosts);
    let apache = Apache::start(&work.subdir("apache"), config);
    let target = apache.address();

    // PHP-FPM is down: what is On waits, what is Off fails at once.
    let waiting: Vec<_> = [("on.test", "/index.php"), ("inherits.test", "/index.php")]
        .into_iter()
        .map(|(host, path)| std::thread::spawn(move || (host, get(target, host, path))))
        .collect();
    assert_eq!(get(target, "off.test", "/index.php"), 503, "FcgiResilient Off in the vhost");
    assert_eq!(get(target, "on.test", "/legacy/index.php"), 503, "FcgiResilient Off in the directory");
    status::wait_for_total(target, "TotalWaiting", 2);
    fpm.start();
    for request in waiting {
        let (host, status) = request.join().expect("client thread");
        assert_eq!(status, 200, "{host} waited for PHP-FPM:\n{}", apache.error_log());
    }
    assert_eq!(get(target, "off.test", "/index.php"), 200, "and Off serves normally when the backend is up");
}
