//! `pause`, `resume` and `deploy` against a real php-fpm behind a real Apache with
//! mod_fcgi_resilient (`FcgiResilient On` and the test's `FcgiResilientPauseDir` only): a
//! restart through `deploy` loses no request where the same restart without it does, for a
//! TCP pool and a Unix-socket pool, GET and 64 KiB POST; a symlink switch plus reload through
//! `deploy` serves only the new code after it; only root may pause, and the module ignores a
//! pause file of anybody else; a pause ends by itself, survives `apachectl graceful`, and the
//! status page shows what it holds.

mod common;

use common::restart_load::{summary, Load, CLIENTS, LEAD};
use common::{require_root, restart_load, run, Run, BIN};
use harness::apache::ApacheConfig;
use harness::http::Connection;
use harness::load::{self, Record};
use harness::{Apache, Listen, PhpFpm, WorkDir};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STATUS_PAGE: &str = "/fcgi-resilient-status";

/// Fields drop in order: Apache and php-fpm stop before their directory goes.
struct Site {
    apache: Apache,
    fpm: PhpFpm,
    pause_dir: PathBuf,
    work: WorkDir,
}

fn pause_dir_in(work: &WorkDir) -> PathBuf {
    let dir = work.join("pause");
    std::fs::create_dir_all(&dir).expect("pause directory");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod pause directory");
    dir
}

fn site_config(docroot: &Path, fpm: &PhpFpm, pause_dir: &Path) -> ApacheConfig {
    let directives = format!(
        "FcgiResilient On\nFcgiResilientPauseDir {}\n<Location {STATUS_PAGE}>\n    SetHandler fcgi-resilient-status\n</Location>",
        pause_dir.display()
    );
    ApacheConfig::new(docroot, &fpm.listen.proxy_handler()).with_server_directives(&directives)
}

fn site(name: &str, listen: impl FnOnce(&WorkDir) -> Listen) -> Site {
    require_root();
    let work = WorkDir::new(name);
    let mut fpm = PhpFpm::new(work.path(), &work.docroot(), listen(&work), 8);
    fpm.start();
    let pause_dir = pause_dir_in(&work);
    let apache = Apache::start(&work.subdir("apache"), site_config(&work.docroot(), &fpm, &pause_dir));
    Site { apache, fpm, pause_dir, work }
}

fn unix_site(name: &str) -> Site {
    site(name, |work| Listen::Unix(work.join("php-fpm.sock")))
}

fn tcp_site(name: &str) -> Site {
    site(name, |_| Listen::Tcp(harness::free_port()))
}

/// `pause`/`resume`/`deploy` arguments naming a backend, the pause directory and the config.
fn helper_args<'a>(command: &'a str, backend: &'a str, dir: &'a str, config: &'a str) -> Vec<&'a str> {
    vec![command, backend, "--pause-dir", dir, "--apache-config", config]
}

impl Site {
    fn apache_config_file(&self) -> String {
        self.work.join("apache/httpd.conf").to_string_lossy().into_owned()
    }

    fn backend(&self) -> String {
        self.fpm.listen.status_name()
    }

    fn helper(&self, command: &str, extra: &[&str]) -> Run {
        let (backend, dir, config) =
            (self.backend(), self.pause_dir.to_string_lossy().into_owned(), self.apache_config_file());
        let mut args = helper_args(command, &backend, &dir, &config);
        args.extend_from_slice(extra);
        run(&args)
    }

    fn status(&self, query: &str) -> String {
        harness::http::get(self.apache.address(), &format!("{STATUS_PAGE}?{query}")).expect("status page").text()
    }
}

/// Runs the restart load against the site, does `event` in the middle.
fn around(site: &mut Site, kind: Load, event: impl FnOnce(&mut Site)) -> Vec<Record> {
    let target = site.apache.address();
    restart_load::around(target, kind, || event(site))
}

/// `deploy` with a COMMAND that hands over to the test: it signals that it runs, and ends
/// when the test has done `event` (the restart the harness does, since it owns php-fpm).
fn through_deploy(site: &mut Site, event: impl FnOnce(&mut PhpFpm)) -> Run {
    let (go, done) = (site.work.join("command-runs"), site.work.join("command-may-end"));
    let _ = (std::fs::remove_file(&go), std::fs::remove_file(&done));
    let script = format!("touch {}; while [ ! -e {} ]; do sleep 0.01; done", go.display(), done.display());
    let (backend, dir, config) =
        (site.backend(), site.pause_dir.to_string_lossy().into_owned(), site.apache_config_file());
    let mut args = helper_args("deploy", &backend, &dir, &config);
    args.extend_from_slice(&["--timeout", "10s", "--", "sh", "-c", &script]);
    let helper = Command::new(BIN).args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("helper");
    harness::wait_until("deploy running its command", Duration::from_secs(30), || go.exists().then_some(()));
    event(&mut site.fpm);
    std::fs::write(&done, "").expect("release the command");
    let output = helper.wait_with_output().expect("deploy");
    let r = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    eprintln!("$ fcgi-resilient-helper {}\n[{}]\n{}{}", args.join(" "), r.code, r.stdout, r.stderr);
    r
}

fn restart(fpm: &mut PhpFpm) {
    fpm.restart_after(Duration::ZERO);
}

/// The same restart plain and through `deploy`, on one site: the plain one must lose
/// requests (the test sees a loss when there is one), through `deploy` none.
fn deploy_loses_nothing_where_a_plain_restart_loses_requests(mut site: Site, transport: &str) {
    for kind in [Load::Get, Load::Post] {
        let plain = around(&mut site, kind, |site| restart(&mut site.fpm));
        let mut deployed_run = None;
        let deployed = around(&mut site, kind, |site| deployed_run = Some(through_deploy(site, restart)));
        let deployed_run = deployed_run.expect("deploy ran");
        eprintln!(
            "FIGURES {transport}: {}\nFIGURES {transport}: {}",
            summary(kind, "plain restart", &plain),
            summary(kind, "restart through deploy", &deployed)
        );
        assert_eq!(deployed_run.code, 0, "{}", deployed_run.stderr);
        assert!(deployed_run.stderr.contains("resumed"), "{}", deployed_run.stderr);
        assert_eq!(
            load::failed_count(&deployed),
            0,
            "{}\n{}",
            summary(kind, "through deploy", &deployed),
            site.apache.error_log()
        );
        assert!(load::failed_count(&plain) > 0, "{transport}: a plain restart cut nothing: the load missed it");
    }
    assert!(site.apache.error_log().contains("is paused until"), "no request was held: the test proved nothing");
}

#[test]
fn tcp_pool_restarted_through_deploy_loses_no_get_or_post() {
    deploy_loses_nothing_where_a_plain_restart_loses_requests(tcp_site("deploy-tcp"), "TCP");
}

#[test]
fn unix_pool_restarted_through_deploy_loses_no_get_or_post() {
    deploy_loses_nothing_where_a_plain_restart_loses_requests(unix_site("deploy-unix"), "Unix");
}

/// One answer of the version load: when it started and ended (since the epoch), and what.
struct Answer {
    started: Duration,
    status: u16,
    body: String,
}

/// Clients asking `path` until `stop`, recording every answer with its body.
fn version_load(target: std::net::SocketAddr, epoch: Instant, stop: Arc<AtomicBool>) -> Vec<Answer> {
    let mut answers = Vec::new();
    let mut connection: Option<Connection> = None;
    while !stop.load(Ordering::Relaxed) {
        let started = epoch.elapsed();
        let open = match connection.take() {
            Some(open) if open.is_open() => Ok(open),
            _ => Connection::open(target, Duration::from_secs(30)),
        };
        let answer = open.and_then(|mut c| {
            let response = c.send("GET", "/current/version.php", "localhost", &[]);
            connection = Some(c);
            response
        });
        match answer {
            Ok(response) => answers.push(Answer { started, status: response.status, body: response.text() }),
            Err(_) => {
                connection = None;
                answers.push(Answer { started, status: 0, body: String::new() });
            }
        }
    }
    answers
}

/// What `systemctl reload` does with the drop-in: SIGUSR2, and back only once the new
/// workers answer (a bare signal returns while the old workers still serve).
fn reload_and_wait(fpm: &mut PhpFpm) {
    let (pid, config) = (fpm.pid().expect("started").to_string(), fpm.config_file().to_string_lossy().into_owned());
    let socket = fpm.listen.address();
    let r = run(&["reload-and-wait", "--pid", &pid, "--fpm-config", &config, &socket, "--timeout", "20s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// A rolling deploy: `current` points at release v1; the deploy's command points it at v2 and
/// reloads PHP-FPM (whose realpath cache would otherwise keep serving v1). Every request
/// held by the pause, or sent after it, runs v2; none fails.
#[test]
fn symlink_switch_and_reload_through_deploy_serves_only_the_new_code_after_it() {
    let mut site = unix_site("deploy-symlink");
    let docroot = site.work.docroot();
    for release in ["v1", "v2"] {
        std::fs::create_dir_all(docroot.join(release)).unwrap();
        let script = format!("<?php usleep(20000); echo \"{release}\\n\";\n");
        std::fs::write(docroot.join(release).join("version.php"), script).unwrap();
    }
    std::os::unix::fs::symlink("v1", docroot.join("current")).unwrap();
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (target, stop) = (site.apache.address(), stop.clone());
            std::thread::spawn(move || version_load(target, epoch, stop))
        })
        .collect();
    std::thread::sleep(LEAD);
    let mut command_started = Duration::ZERO;
    let switched = docroot.clone();
    let r = through_deploy(&mut site, |fpm| {
        command_started = epoch.elapsed();
        std::os::unix::fs::symlink("v2", switched.join("current.new")).unwrap();
        std::fs::rename(switched.join("current.new"), switched.join("current")).unwrap();
        reload_and_wait(fpm);
    });
    std::thread::sleep(LEAD);
    stop.store(true, Ordering::Relaxed);
    let answers: Vec<Answer> = clients.into_iter().flat_map(|c| c.join().expect("client")).collect();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let failed = answers.iter().filter(|a| a.status != 200).count();
    // Requests that began once the command ran were held by the pause (nothing ran then).
    let after: Vec<&Answer> = answers.iter().filter(|a| a.started >= command_started).collect();
    let old_code_after = after.iter().filter(|a| a.body.trim() != "v2").count();
    eprintln!(
        "{} requests, {failed} failed; {} begun after the command started, {old_code_after} of them not v2",
        answers.len(),
        after.len()
    );
    assert_eq!(failed, 0, "{}", site.apache.error_log());
    assert!(!after.is_empty(), "no request was held across the deploy: the test proved nothing");
    assert_eq!(old_code_after, 0, "requests after the deploy ran the old code");
    assert!(answers.iter().any(|a| a.body.trim() == "v1"), "v1 never served: the switch was not seen");
}

/// The pause directory is root's: a local user's pause fails with a clear message, and a
/// pause file a user managed to own is ignored by the module (named in the error log) while
/// the same file owned by root holds the backend.
#[test]
fn only_root_may_pause_and_the_module_ignores_anybody_elses_pause_file() {
    let site = tcp_site("pause-privilege");
    let (backend, dir) = (site.backend(), site.pause_dir.to_string_lossy().into_owned());
    let output = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", BIN, "pause", &backend, "--pause-dir", &dir])
        .arg("--force")
        .output()
        .expect("setpriv");
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("as nobody: [{:?}] {stderr}", output.status.code());
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Permission denied") && stderr.contains("Only root"), "{stderr}");
    assert_eq!(std::fs::read_dir(&site.pause_dir).unwrap().count(), 0, "nothing written");

    // A pause file owned by nobody, as if the directory had been left writable.
    let r = site.helper("pause", &["--for", "30s", "--timeout", "2s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let file = std::fs::read_dir(&site.pause_dir).unwrap().flatten().next().expect("pause file").path();
    harness::wait_until("the module sees root's pause", Duration::from_secs(10), || {
        site.status("auto").contains(&format!("Paused: {backend}")).then_some(())
    });
    let nobody = nix::unistd::User::from_name("nobody").unwrap().expect("user nobody").uid;
    nix::unistd::chown(&file, Some(nobody), None).expect("chown");
    harness::wait_until("the module drops nobody's pause", Duration::from_secs(10), || {
        site.status("auto").contains("PausedBackends: 0").then_some(())
    });
    let response = harness::http::get(site.apache.address(), "/index.php").expect("request");
    assert_eq!(response.status, 200);
    let log = site.apache.error_log();
    assert!(log.contains("ignored: it is owned by uid 65534"), "{log}");
    assert_eq!(site.helper("resume", &[]).code, 0);
}

/// `--for 2s` and no resume: a request sent during the pause is held, then served when the
/// pause ends by itself (the file is still there: nobody took it away).
#[test]
fn a_pause_ends_by_itself_after_its_duration() {
    let site = tcp_site("pause-for");
    let r = site.helper("pause", &["--for", "2s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let target = site.apache.address();
    let held = std::thread::spawn(move || harness::http::get(target, "/index.php"));
    let response = held.join().expect("client").expect("response");
    assert_eq!(response.status, 200, "{}", site.apache.error_log());
    assert!(site.apache.error_log().contains("is paused until"), "the request was not held");
    assert_eq!(std::fs::read_dir(&site.pause_dir).unwrap().count(), 1, "the file stays; the pause ended by time");
    assert!(site.status("auto").contains("PausedBackends: 0"));
}

/// A pause outlives `apachectl graceful` (new children read the directory at start), the
/// status page and the metrics show it with the request it holds, and `resume` lets that
/// request go on.
#[test]
fn a_pause_survives_graceful_shows_on_the_status_page_and_resume_releases_it() {
    let mut site = unix_site("pause-graceful");
    let backend = site.backend();
    let r = site.helper("pause", &["--for", "60s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    site.apache.graceful();
    let target = site.apache.address();
    let held = std::thread::spawn(move || harness::http::get(target, "/index.php"));
    harness::wait_until("the status page shows the held request", Duration::from_secs(10), || {
        let auto = site.status("auto");
        (auto.contains(&format!("Paused: {backend}")) && auto.contains("Held: 1")).then_some(())
    });
    let metrics = site.status("format=prometheus");
    assert!(metrics.contains(&format!("fcgi_resilient_paused{{backend=\"{backend}\"}} 1")), "{metrics}");
    assert!(metrics.contains(&format!("fcgi_resilient_held_requests{{backend=\"{backend}\"}} 1")), "{metrics}");
    assert!(site.status("").contains("Requests held now"));
    assert!(!held.is_finished(), "served while paused");
    assert_eq!(site.helper("resume", &[]).code, 0);
    let response = held.join().expect("client").expect("response");
    assert_eq!(response.status, 200);
    assert!(site.status("auto").contains("PausedBackends: 0"));
}

/// An unknown backend is refused, naming the ones Apache's config has.
#[test]
fn an_unknown_backend_is_refused_naming_the_known_ones() {
    let site = tcp_site("pause-unknown");
    let (dir, config) = (site.pause_dir.to_string_lossy().into_owned(), site.apache_config_file());
    let r = run(&["pause", "127.0.0.1:1", "--pause-dir", &dir, "--apache-config", &config]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains(&format!("known: {}", site.backend())), "{}", r.stderr);
    assert_eq!(std::fs::read_dir(&site.pause_dir).unwrap().count(), 0);
}

/// A pause holds requests over HTTP/1.1, TLS, h2c and h2 alike, and `resume` lets all of them
/// go on; where `FcgiResilient Off` applies, requests are not held at all.
#[test]
fn a_pause_holds_every_transport_and_not_where_the_module_is_off() {
    use harness::transport::{curl, serve_every_transport, CurlRequest, Transport};
    require_root();
    let work = WorkDir::new("pause-transports");
    let mut fpm = PhpFpm::new(work.path(), &work.docroot(), Listen::Tcp(harness::free_port()), 8);
    fpm.start();
    let pause_dir = pause_dir_in(&work);
    let off = work.docroot().join("off");
    std::fs::create_dir_all(&off).unwrap();
    std::fs::copy(work.docroot().join("index.php"), off.join("index.php")).unwrap();
    let mut config = site_config(&work.docroot(), &fpm, &pause_dir);
    config.site += &format!("<Directory {}>\n    FcgiResilient Off\n</Directory>\n", off.display());
    let apache_dir = work.subdir("apache");
    let (config, ports) = serve_every_transport(config, &apache_dir);
    let apache = Apache::start(&apache_dir, config);
    let site = Site { apache, fpm, pause_dir, work };
    let r = site.helper("pause", &["--for", "60s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let held: Vec<_> = Transport::ALL
        .into_iter()
        .map(|transport| {
            std::thread::spawn(move || (transport, curl(&ports, transport, "/index.php", &CurlRequest::default())))
        })
        .collect();
    harness::wait_until("every transport's request held", Duration::from_secs(20), || {
        site.status("auto").contains(&format!("Held: {}", Transport::ALL.len())).then_some(())
    });
    let not_held = harness::http::get(site.apache.address(), "/off/index.php").expect("request where Off");
    assert_eq!(not_held.status, 200, "FcgiResilient Off: served during the pause");
    assert!(held.iter().all(|h| !h.is_finished()), "a request was served while paused");
    assert_eq!(site.helper("resume", &[]).code, 0);
    for thread in held {
        let (transport, answer) = thread.join().expect("curl");
        assert!(answer.is_ok_over(transport), "{}: {answer:?}", transport.name());
        assert_eq!(String::from_utf8_lossy(&answer.body), "hello from php-fpm\n");
    }
}
