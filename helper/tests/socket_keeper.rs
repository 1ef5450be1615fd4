//! `socket-keeper` under a real systemd (Debian's php8.2-fpm.service, booted in systemd-nspawn
//! on an overlay, see harness::nspawn) with Apache *without* mod_fcgi_resilient in front: GETs
//! and 64 KiB POSTs through `systemctl restart`, `kill -9` of the master and a reload with a
//! broken config (then a restart while it is broken, then fixed) meet no failed connect; a key
//! PHP-FPM would not match makes the start fail loudly and `check` report it; `--remove` gives
//! PHP-FPM its own socket back. Skipped, saying why, where systemd-nspawn is missing.

// Only BIN is used here.
#[allow(dead_code)]
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use harness::apache::{ApacheConfig, ModulePlacement};
use harness::load::{failed_count, failures, LoadSpec, Record, RunningLoad};
use harness::nspawn::Container;
use harness::WorkDir;

const UNIT: &str = "php8.2-fpm";
const SOCKET: &str = "/run/php/php8.2-fpm.sock";
const PORT: u16 = 8080;
const STATUS_PORT: u16 = 8081;
/// Workers of the pool (pm = static): at most this many requests are in PHP at once, the most
/// a `kill -9` of the master can lose.
const WORKERS: usize = 8;

struct Setup {
    work: WorkDir,
    container: Container,
    helper: String,
    /// Whether an Apache with the module (and its status page) runs on STATUS_PORT.
    status_page: bool,
}

fn skip_reason() -> Option<String> {
    if let Some(why) = harness::nspawn::unavailable() {
        return Some(why);
    }
    if !Path::new("/lib/systemd/system/php8.2-fpm.service").exists() {
        return Some("php8.2-fpm is not installed".into());
    }
    None
}

fn boot() -> Option<Setup> {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED socket_keeper: no real systemd to test under: {why}");
        return None;
    }
    let work = WorkDir::new("socket-keeper");
    let helper = work.join("fcgi-resilient-helper");
    std::fs::copy(common::BIN, &helper).expect("copy the helper");
    let container = Container::boot(work.path());
    let helper = helper.display().to_string();
    container.sh_ok(&format!(
        "sed -i -e 's/^pm = .*/pm = static/' -e 's/^pm.max_children = .*/pm.max_children = {WORKERS}/' \
         /etc/php/8.2/fpm/pool.d/www.conf"
    ));
    // Two TCP pools besides Debian's www: one on an address, one on every address (its key
    // then `:::9002`), to see PHP-FPM take the keys the helper computes for TCP.
    for (pool, listen) in [("api", "127.0.0.1:9001"), ("any", "9002")] {
        container.sh_ok(&format!(
            "printf '[{pool}]\\nuser = www-data\\ngroup = www-data\\nlisten = {listen}\\npm = static\\n\
             pm.max_children = 1\\nping.path = /ping\\n' > /etc/php/8.2/fpm/pool.d/{pool}.conf"
        ));
    }
    let out = container.sh_ok(&format!("{helper} socket-keeper --helper {helper} && systemctl start {UNIT}"));
    eprintln!("{out}");
    // Apache without the module: the keeper alone must keep its connects from failing.
    let server_root = work.subdir("apache");
    let mut config = ApacheConfig::new(&work.docroot(), &format!("proxy:unix:{SOCKET}|fcgi://localhost"));
    config.port = PORT;
    config.module = ModulePlacement::NotLoaded;
    config.log_level = "warn".into();
    std::fs::write(server_root.join("httpd.conf"), config.render(&server_root)).expect("apache config");
    container.sh_ok(&format!("apache2 -f {}/httpd.conf -k start", server_root.display()));
    // Apache with the module too, where it is built: its status page names the kept backends.
    let module = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().map(|d| d.join("libmod_fcgi_resilient.so")).find(|m| m.exists()));
    match &module {
        Some(module) => {
            let server_root = work.subdir("apache-module");
            std::fs::copy(module, server_root.join("mod_fcgi_resilient.so")).expect("copy the module");
            let mut config = ApacheConfig::new(&work.docroot(), &format!("proxy:unix:{SOCKET}|fcgi://localhost"))
                .with_server_directives(
                    "FcgiResilient On\n<Location /fcgi-resilient-status>\n    SetHandler fcgi-resilient-status\n</Location>",
                );
            config.port = STATUS_PORT;
            config.module_file = Some(server_root.join("mod_fcgi_resilient.so"));
            std::fs::write(server_root.join("httpd.conf"), config.render(&server_root)).expect("apache config");
            container.sh_ok(&format!("apache2 -f {}/httpd.conf -k start", server_root.display()));
        }
        None => eprintln!("mod_fcgi_resilient is not built: the status page is not checked (cargo build first)"),
    }
    let setup = Setup { work, container, helper, status_page: module.is_some() };
    let answered = setup.container.in_network(|| {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if harness::http::get(address(), "/index.php").is_ok_and(|r| r.status == 200) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    });
    assert!(answered, "Apache → PHP-FPM does not answer: {}", setup.error_log());
    Some(setup)
}

fn address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], PORT))
}

impl Setup {
    fn error_log(&self) -> String {
        std::fs::read_to_string(self.work.join("apache/error.log")).unwrap_or_default()
    }

    /// Apache's failed connects to PHP-FPM so far (mod_proxy's AH02454/AH00957).
    fn failed_connects(&self) -> usize {
        self.error_log().lines().filter(|l| l.contains("AH02454") || l.contains("AH00957")).count()
    }

    /// The status page's `?auto` text, when an Apache with the module runs.
    fn status(&self) -> Option<String> {
        if !self.status_page {
            return None;
        }
        let target = SocketAddr::from(([127, 0, 0, 1], STATUS_PORT));
        let page = self.container.in_network(|| harness::http::get(target, "/fcgi-resilient-status?auto"));
        Some(page.expect("status page").text())
    }

    fn main_pid(&self) -> String {
        self.container.sh_ok(&format!("systemctl show -p MainPID --value {UNIT}")).trim().to_string()
    }

    /// GETs of a 20 ms page and 64 KiB POSTs echoed back, with `event` run inside the
    /// container a second in; returns (GETs, POSTs, failed connects during the run).
    fn around(&self, name: &str, event: &str) -> (Vec<Record>, Vec<Record>, usize) {
        let before = self.failed_connects();
        let (gets, posts) = self.container.in_network(|| {
            let epoch = Instant::now();
            let spec = |path: &str, clients| LoadSpec {
                target: address(),
                path: path.into(),
                clients,
                duration: Duration::ZERO,
                timeout: Duration::from_secs(30),
            };
            let gets = RunningLoad::start(&spec("/sleep.php?ms=20", 12), epoch);
            let posts = RunningLoad::start_posts(&spec("/slow-echo.php", 4), epoch, 64 * 1024);
            std::thread::sleep(Duration::from_secs(1));
            let out = self.container.sh(event);
            eprintln!(
                "{name}: `{event}` → {}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (gets.stop_after(Duration::from_secs(2)), posts.stop_after(Duration::ZERO))
        });
        let connects = self.failed_connects() - before;
        eprintln!(
            "{name}: {} GETs ({:?} failed), {} POSTs ({:?} failed), {connects} failed connects",
            gets.len(),
            failures(&gets),
            posts.len(),
            failures(&posts)
        );
        (gets, posts, connects)
    }
}

fn journal(setup: &Setup) -> String {
    setup.container.sh_ok(&format!("journalctl -u {UNIT} --no-pager -n 40"))
}

#[test]
fn restarts_crashes_and_broken_reloads_meet_no_failed_connect_and_a_wrong_key_fails_loudly() {
    let Some(setup) = boot() else { return };
    let c = &setup.container;
    assert!(c.sh_ok(&format!("test -S {SOCKET} && stat -c '%U:%G %a' {SOCKET}")).contains("www-data:www-data 660"));

    if let Some(page) = setup.status() {
        assert!(
            page.contains(&format!(
                "SocketKeepers: 3\nSocketKeeper: 127.0.0.1:9001\nSocketKeeper: :::9002\nSocketKeeper: unix:{SOCKET}\n"
            )),
            "{page}"
        );
    }
    let triggered = c.sh_ok(&format!("systemctl show -p TriggeredBy --value {UNIT}"));
    for socket in ["php8.2-fpm-keeper-www.socket", "php8.2-fpm-keeper-api.socket", "php8.2-fpm-keeper-any.socket"] {
        assert!(triggered.contains(socket), "{socket} not the unit's: {triggered}");
    }
    // The units as systemd reads them, and every pool on its inherited socket, TCP ones too.
    c.sh_ok(
        "systemd-analyze verify /etc/systemd/system/php8.2-fpm-keeper-*.socket /lib/systemd/system/php8.2-fpm.service",
    );
    let log = journal(&setup);
    for key in ["\"127.0.0.1:9001\"", "\":::9002\"", "\"/run/fcgi-resilient/socket-keeper.keys/php8.2-fpm/www.sock\""] {
        assert!(
            log.lines().any(|l| l.contains("using inherited socket") && l.contains(key)),
            "{key} not inherited:\n{log}"
        );
    }
    c.sh_ok(&format!(
        "{0} wait 127.0.0.1:9001 --ping /ping --timeout 5s && {0} wait 127.0.0.1:9002 --ping /ping --timeout 5s && \
         {0} wait '[::1]:9002' --ping /ping --timeout 5s",
        setup.helper
    ));

    // 1. systemctl restart: graceful stop, queued connects served by the new master.
    let (gets, posts, connects) = setup.around("restart", &format!("systemctl restart {UNIT}"));
    assert!(gets.len() > 100 && posts.len() > 20, "too little load to tell");
    assert_eq!((connects, failed_count(&gets), failed_count(&posts)), (0, 0, 0), "{}", setup.error_log());

    // 2. kill -9 of the master: systemd restarts it (Restart=on-failure); the socket stays, so
    // only the requests PHP was running are lost.
    let pid = setup.main_pid();
    let (gets, posts, connects) =
        setup.around("kill -9", &format!("kill -9 {pid}; sleep 1.5; systemctl is-active {UNIT}"));
    assert_ne!(setup.main_pid(), pid, "a new master");
    assert_eq!(connects, 0, "{}", setup.error_log());
    assert!(failed_count(&gets) + failed_count(&posts) <= WORKERS, "more lost than were in PHP");

    // 3. A broken config: the reload fails (php-fpm --test) and the running master serves on;
    // a restart while it is broken leaves connects queued on the kept socket until it is fixed.
    let www = "/etc/php/8.2/fpm/pool.d/www.conf";
    let pid = setup.main_pid();
    let broken = format!(
        "cp {www} /root/www.good && echo 'pm = broken' >> {www} && \
         if systemctl reload {UNIT}; then echo RELOAD-ACCEPTED; fi; \
         systemctl show -p MainPID --value {UNIT}"
    );
    let out = c.sh_ok(&broken);
    assert!(!out.contains("RELOAD-ACCEPTED"), "a broken reload must fail: {out}");
    assert_eq!(out.lines().last().unwrap_or_default(), pid, "the old master serves on");
    let event = format!(
        "systemctl restart {UNIT} && echo RESTART-ACCEPTED; sleep 1; cp /root/www.good {www}; \
         for i in $(seq 50); do systemctl is-active --quiet {UNIT} && break; sleep 0.1; done; systemctl is-active {UNIT}"
    );
    let (gets, posts, connects) = setup.around("broken config, restart, fixed", &event);
    assert_eq!((connects, failed_count(&gets), failed_count(&posts)), (0, 0, 0), "{}", setup.error_log());
    assert!(c
        .sh_ok(&format!("systemctl is-active {UNIT}; systemctl is-active php8.2-fpm-keeper-www.socket"))
        .lines()
        .all(|l| l == "active"));

    // 4. A key PHP-FPM would not match: the start fails, saying so, and check reports it.
    let dropin = "/etc/systemd/system/php8.2-fpm.service.d/fcgi-resilient.socket-keeper.conf";
    c.sh_ok(&format!(
        "sed -i 's|--keep www=[^ ]*|--keep www=/run/fcgi-resilient/socket-keeper.keys/php8.2-fpm/wrong.sock|g' {dropin} \
         && systemctl daemon-reload"
    ));
    let restart = c.sh(&format!("systemctl restart {UNIT}"));
    assert!(!restart.status.success(), "a key mismatch must fail the start");
    let log = journal(&setup);
    assert!(log.contains("key mismatch"), "the journal says why:\n{log}");
    let check =
        c.sh(&format!("{} check --apache-config {}/httpd.conf", setup.helper, setup.work.join("apache").display()));
    let said = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success() && said.contains("key mismatch"), "check reports it:\n{said}");
    // Generated again, it serves again.
    c.sh_ok(&format!("systemctl stop {UNIT}; {0} socket-keeper --helper {0} && systemctl reset-failed {UNIT}; systemctl restart {UNIT}", setup.helper));
    let check =
        c.sh(&format!("{} check --apache-config {}/httpd.conf", setup.helper, setup.work.join("apache").display()));
    assert!(
        !String::from_utf8_lossy(&check.stderr).contains("key mismatch"),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // A pool added later, without running socket-keeper again: it binds its own socket (the
    // module's ordinary protection) and check says it has no keeper.
    c.sh_ok(&format!(
        "printf '[late]\\nuser = www-data\\ngroup = www-data\\nlisten = /run/php/late.sock\\nlisten.owner = www-data\\n\
         pm = static\\npm.max_children = 1\\nping.path = /ping\\n' > /etc/php/8.2/fpm/pool.d/late.conf && \
         systemctl reload {UNIT} && {0} wait /run/php/late.sock --ping /ping --timeout 10s",
        setup.helper
    ));
    let check =
        c.sh(&format!("{} check --apache-config {}/httpd.conf", setup.helper, setup.work.join("apache").display()));
    let said = String::from_utf8_lossy(&check.stderr);
    assert!(said.contains("pool [late]") && said.contains("has no socket keeper"), "{said}");

    // 5. --remove: PHP-FPM on its own socket again, Debian's link back, nothing of ours left.
    let out = c.sh_ok(&format!("{} socket-keeper --remove", setup.helper));
    eprintln!("{out}");
    let state = c.sh_ok(&format!(
        "systemctl is-active {UNIT}; ls /etc/systemd/system | grep -c keeper || true; \
         test -e /etc/fcgi-resilient && echo LEFT; test -S /run/php/php-fpm.sock && echo LINK; \
         echo \"triggered=[$(systemctl show -p TriggeredBy --value {UNIT})]\""
    ));
    let lines: Vec<&str> = state.lines().collect();
    assert_eq!(lines, ["active", "0", "LINK", "triggered=[]"], "{state}");
    if let Some(page) = setup.status() {
        assert!(page.contains("SocketKeepers: 0\n"), "{page}");
    }
    let served = c.in_network(|| harness::http::get(address(), "/index.php").map(|r| r.status).unwrap_or(0));
    assert_eq!(served, 200, "{}", setup.error_log());
}
