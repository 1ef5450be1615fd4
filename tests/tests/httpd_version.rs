//! The load-time check of the running httpd (mod_fcgi_resilient/src/httpd_version.rs, unit
//! tested there for every version it decides on) on this machine's Apache: it reads the
//! versions right, `apachectl configtest` stays quiet, nothing alarming is logged, and
//! requests are still suspended under the event MPM.
//!
//! Debian 12's apache2 here is 2.4.71, the newest httpd whose event MPM was checked for
//! suspending requests. If an apache2 update brings a newer one, `suspension_stays_on…`
//! fails on purpose: read that release's server/mpm/event/event.c against the facts listed
//! in httpd_version.rs, then raise `NEWEST_CHECKED`.

use harness::apache::{configtest, ApacheConfig};
use harness::{Apache, Listen, WorkDir};
use std::process::Command;

fn config(work: &WorkDir) -> ApacheConfig {
    let socket = Listen::Unix(work.join("php-fpm.sock"));
    ApacheConfig::new(&work.docroot(), &socket.proxy_handler()).with_server_directives("FcgiResilient On")
}

/// "2.4.71" from `apache2 -v`'s "Server version: Apache/2.4.71 (Debian)".
fn apache_version() -> String {
    let output = Command::new("/usr/sbin/apache2").arg("-v").output().expect("apache2 -v");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let version = text.split("Apache/").nth(1).and_then(|rest| rest.split_whitespace().next());
    version.unwrap_or_else(|| panic!("no version in apache2 -v: {text}")).to_string()
}

/// The version ap_release.h in `apxs -q INCLUDEDIR` names: the headers the module was built against.
fn headers_version() -> String {
    let output = Command::new("apxs").args(["-q", "INCLUDEDIR"]).output().expect("apxs -q INCLUDEDIR");
    let dir = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let release = std::fs::read_to_string(format!("{dir}/ap_release.h")).expect("ap_release.h");
    let number = |name: &str| {
        release
            .lines()
            .find_map(|line| line.strip_prefix("#define ")?.trim().strip_prefix(name)?.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {name} in ap_release.h"))
            .to_string()
    };
    ["AP_SERVER_MAJORVERSION_NUMBER", "AP_SERVER_MINORVERSION_NUMBER", "AP_SERVER_PATCHLEVEL_NUMBER"]
        .map(number)
        .join(".")
}

/// The module's lines at warn level or worse, and crashes.
fn alarming(log: &str) -> Vec<&str> {
    let levels = ["warn", "error", "crit", "alert", "emerg"];
    log.lines()
        .filter(|line| {
            levels.iter().any(|level| line.contains(&format!("[fcgi_resilient:{level}]")))
                || line.contains("exit signal")
                || line.contains("cannot run in this httpd")
        })
        .collect()
}

#[test]
fn configtest_passes_and_says_nothing_about_versions() {
    let work = WorkDir::new("httpd-version-configtest");
    let (passed, output) = configtest(work.path(), &config(&work));
    assert!(passed, "{output}");
    assert_eq!(output.trim(), "Syntax OK", "configtest printed more than Syntax OK:\n{output}");
}

#[test]
fn suspension_stays_on_under_the_event_mpm_of_this_checked_httpd() {
    let work = WorkDir::new("httpd-version-event");
    let apache = Apache::start(&work.subdir("apache"), config(&work));
    let log = apache.error_log();
    apache.stop();
    let (running, headers) = (apache_version(), headers_version());
    let expected =
        format!("httpd {running}, built against the headers of httpd {headers}, event MPM: requests may be suspended");
    assert!(
        log.contains(&expected),
        "expected {expected:?} (if this httpd is newer than the newest checked, see this file's comment):\n{log}"
    );
    assert!(log.contains("are suspended while they wait"), "the mode line says suspension is off:\n{log}");
    assert!(!log.contains("hold their worker thread"), "a notice that requests are not suspended:\n{log}");
    let bad = alarming(&log);
    assert!(bad.is_empty(), "alarming lines: {bad:#?}");
}

#[test]
fn prefork_says_nothing_about_the_event_mpm() {
    let work = WorkDir::new("httpd-version-prefork");
    let mut config = config(&work);
    config.mpm = "prefork";
    let apache = Apache::start(&work.subdir("apache"), config);
    let log = apache.error_log();
    apache.stop();
    assert!(log.contains("prefork MPM: no suspension"), "{log}");
    assert!(log.contains("this MPM cannot suspend requests"), "{log}");
    let bad = alarming(&log);
    assert!(bad.is_empty(), "alarming lines: {bad:#?}");
}

/// ap_hook_child_stopping (httpd 2.4.49) is looked up at load time, not linked: an older
/// httpd loads the module and its pre_config names the versions, rather than dlopen failing
/// with "undefined symbol" (as mod_proxy's functions, which are looked up too).
#[test]
fn the_module_links_no_symbol_an_older_httpd_lacks() {
    let output = Command::new("nm")
        .args(["-D", "--undefined-only"])
        .arg(harness::apache::module_path())
        .output()
        .expect("nm (binutils)");
    let imports = String::from_utf8_lossy(&output.stdout);
    for symbol in ["ap_hook_child_stopping", "proxy_hook_scheme_handler"] {
        assert!(!imports.contains(symbol), "{symbol} is linked:\n{imports}");
    }
}
