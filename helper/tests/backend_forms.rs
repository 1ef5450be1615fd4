//! `pause`, `resume`, `deploy` and `wait` take a backend in every form the module's status page
//! or Apache's configuration shows it, and agree with the module on its name. The case that
//! failed (issue 24): Apache with `ProxyPassMatch "^/(.*\.php)$" "fcgi://127.0.0.1/var/www/$1"`,
//! mod_proxy_fcgi's default port 8000, which the status page names `127.0.0.1:8000`.
//!
//! No Apache and no php-fpm run here: the backends have no connection open, so a pause is
//! idle at once, and `wait` is pointed at a listener of the test's own.

mod common;

use common::run;
use harness::WorkDir;
use std::path::Path;

/// The guides' way of writing a TCP pool, a Unix-socket pool and an IPv6 pool.
const APACHE_CONFIG: &str = r#"
ProxyPassMatch "^/(.*\.php)$" "fcgi://127.0.0.1/var/www/$1"
<FilesMatch "\.php$">
    SetHandler "proxy:unix:/run/php/php8.2-fpm.sock|fcgi://localhost"
</FilesMatch>
ProxyPass "/v6/" "fcgi://[::1]:9001/srv/v6/"
"#;

struct Setup {
    work: WorkDir,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let work = WorkDir::new(name);
        std::fs::write(work.join("that.conf"), APACHE_CONFIG).unwrap();
        Setup { work }
    }

    fn pause_dir(&self) -> String {
        self.work.join("pause").to_string_lossy().into_owned()
    }

    fn config(&self) -> String {
        self.work.join("that.conf").to_string_lossy().into_owned()
    }

    /// COMMAND BACKEND with the test's pause directory and config (and no PHP-FPM config).
    fn helper(&self, command: &str, backend: &str, extra: &[&str]) -> common::Run {
        let (dir, config) = (self.pause_dir(), self.config());
        let no_fpm = self.work.join("no-php-fpm.conf").to_string_lossy().into_owned();
        let mut args = vec![command, backend, "--pause-dir", &dir, "--apache-config", &config, "--fpm-config", &no_fpm];
        args.extend_from_slice(extra);
        run(&args)
    }

    fn pause_files(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.pause_dir()) else { return Vec::new() };
        let mut names: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }
}

fn pause_file_backend(dir: &Path, file: &str) -> String {
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    fcgi_resilient_common::pause_file::PauseRecord::parse(&text).unwrap().backend
}

/// Each written form, and the name the status page (and so the pause file) gives it.
const FORMS: &[(&str, &str)] = &[
    ("127.0.0.1:8000", "127.0.0.1:8000"),
    ("fcgi://127.0.0.1", "127.0.0.1:8000"),
    ("fcgi://127.0.0.1/var/www/$1", "127.0.0.1:8000"),
    ("fcgi://127.0.0.1:8000/", "127.0.0.1:8000"),
    ("proxy:fcgi://127.0.0.1", "127.0.0.1:8000"),
    ("unix:/run/php/php8.2-fpm.sock", "unix:/run/php/php8.2-fpm.sock"),
    ("/run/php/php8.2-fpm.sock", "unix:/run/php/php8.2-fpm.sock"),
    ("unix:/run/php/php8.2-fpm.sock|fcgi://localhost", "unix:/run/php/php8.2-fpm.sock"),
    ("proxy:unix:/run/php/php8.2-fpm.sock|fcgi://localhost", "unix:/run/php/php8.2-fpm.sock"),
    ("[::1]:9001", "::1:9001"),
    ("::1:9001", "::1:9001"),
    ("fcgi://[::1]:9001/srv/v6/", "::1:9001"),
];

#[test]
fn pause_and_resume_take_every_form_of_a_configured_backend() {
    let setup = Setup::new("forms-pause");
    for (written, name) in FORMS {
        let paused = setup.helper("pause", written, &["--timeout", "2s"]);
        assert_eq!(paused.code, 0, "pause {written}: {}", paused.stderr);
        let files = setup.pause_files();
        assert_eq!(files.len(), 1, "pause {written}: {files:?}");
        assert_eq!(pause_file_backend(Path::new(&setup.pause_dir()), &files[0]), *name, "pause {written}");
        let resumed = setup.helper("resume", written, &[]);
        assert_eq!(resumed.code, 0, "resume {written}: {}", resumed.stderr);
        assert_eq!(resumed.stdout.trim(), format!("{name}: resumed"), "resume {written}");
        assert!(setup.pause_files().is_empty(), "resume {written} left {:?}", setup.pause_files());
    }
}

/// The exact report of the issue: the backend the status page names `127.0.0.1:8000`.
#[test]
fn the_default_fcgi_port_of_a_proxypassmatch_is_a_known_backend() {
    let setup = Setup::new("forms-default-port");
    let refused = setup.helper("pause", "127.0.0.1:9000", &[]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("known: 127.0.0.1:8000, ::1:9001, unix:/run/php/php8.2-fpm.sock"),
        "{}",
        refused.stderr
    );
    for written in ["127.0.0.1:8000", "fcgi://127.0.0.1"] {
        let paused = setup.helper("pause", written, &[]);
        assert_eq!(paused.code, 0, "{written}: {}", paused.stderr);
        assert_eq!(paused.stdout.trim(), "127.0.0.1:8000: paused, no request running");
        assert_eq!(setup.helper("resume", written, &[]).code, 0);
    }
}

/// `deploy` takes the forms too: it pauses, runs COMMAND (here one that fails, so it resumes
/// at once without waiting for an answer) and resumes.
#[test]
fn deploy_takes_every_form_of_a_configured_backend() {
    let setup = Setup::new("forms-deploy");
    for (written, name) in FORMS {
        let deployed = setup.helper("deploy", written, &["--timeout", "2s", "--", "sh", "-c", "exit 7"]);
        assert_eq!(deployed.code, 7, "deploy {written}: COMMAND's status; {}", deployed.stderr);
        assert!(deployed.stderr.contains(&format!("{name} paused and idle")), "deploy {written}: {}", deployed.stderr);
        assert!(deployed.stderr.contains(&format!("{name} resumed")), "deploy {written}: {}", deployed.stderr);
        assert!(setup.pause_files().is_empty(), "deploy {written} left {:?}", setup.pause_files());
    }
}

/// `wait` connects to every form, the status page's IPv6 name included.
#[test]
fn wait_takes_every_form() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let work = WorkDir::new("forms-wait");
    let socket = work.join("php.sock");
    let _unix_listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let socket = socket.display().to_string();
    let mut forms = vec![
        format!("127.0.0.1:{port}"),
        format!("fcgi://127.0.0.1:{port}/var/www/$1"),
        format!("proxy:fcgi://127.0.0.1:{port}"),
        port.to_string(),
        socket.clone(),
        format!("unix:{socket}"),
        format!("unix:{socket}|fcgi://localhost"),
    ];
    if let Ok(v6) = std::net::TcpListener::bind("[::1]:0") {
        let v6_port = v6.local_addr().unwrap().port();
        forms.extend([format!("[::1]:{v6_port}"), format!("::1:{v6_port}"), format!("fcgi://[::1]:{v6_port}/")]);
        std::mem::forget(v6); // listening until the test process ends
    }
    for written in &forms {
        let waited = run(&["wait", written, "--timeout", "2s"]);
        assert_eq!(waited.code, 0, "wait {written}: {}", waited.stderr);
        assert!(waited.stdout.contains("ready"), "wait {written}: {}", waited.stdout);
    }
    // The default port: whether anything listens on 8000 here is not the test's to decide, but
    // the form is read (a usage error would be exit 2), and named as the module names it.
    let waited = run(&["wait", "fcgi://127.0.0.1", "--timeout", "200ms"]);
    assert_ne!(waited.code, 2, "{}", waited.stderr);
    assert!(format!("{}{}", waited.stdout, waited.stderr).contains("127.0.0.1:8000"), "{}", waited.stderr);
}
