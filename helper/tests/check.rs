//! `check` against temp Apache and PHP-FPM configs: backends without a pool, and what
//! Apache's User/Group may do with the socket directory and the socket.

mod common;

use common::{require_root, run, Run};
use harness::WorkDir;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Line of the `SetHandler` in the site file `write_configs` writes.
const SETHANDLER_LINE: usize = 3;

struct Configs {
    apache: PathBuf,
    site: PathBuf,
    fpm: PathBuf,
}

/// An Apache config running as `User www-data` / `Group www-data` whose one vhost hands
/// PHP to `sock` (site.conf line 3), and a PHP-FPM config whose pool `[www]` (line 1)
/// listens on `sock`, followed by `pool_settings`.
fn write_configs(d: &WorkDir, sock: &Path, pool_settings: &str) -> Configs {
    let ap = d.join("apache");
    std::fs::create_dir_all(&ap).unwrap();
    let apache = ap.join("apache2.conf");
    std::fs::write(&apache, "ServerName localhost\nUser www-data\nGroup www-data\nInclude site.conf\n").unwrap();
    let site = ap.join("site.conf");
    std::fs::write(
        &site,
        format!(
            "<VirtualHost *:80>\n  <FilesMatch \\.php$>\n    SetHandler \"proxy:unix:{}|fcgi://localhost\"\n  </FilesMatch>\n</VirtualHost>\n",
            sock.display()
        ),
    )
    .unwrap();
    let fpm = d.join("php-fpm.conf");
    std::fs::write(&fpm, format!("[www]\nlisten = {}\n{pool_settings}", sock.display())).unwrap();
    Configs { apache, site, fpm }
}

fn check(c: &Configs) -> Run {
    run(&["check", "--apache-config", &c.apache.to_string_lossy(), "--fpm-config", &c.fpm.to_string_lossy()])
}

fn mkdir(path: &Path, mode: u32) {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A work dir with `sock/` (mode 0755) in it, and the socket path `sock/php.sock`.
fn socket_in_searchable_dir(name: &str) -> (WorkDir, PathBuf) {
    let d = WorkDir::new(name);
    let sockdir = d.join("sock");
    mkdir(&sockdir, 0o755);
    let sock = sockdir.join("php.sock");
    (d, sock)
}

const GOOD_POOL: &str =
    "user = www-data\ngroup = www-data\nlisten.owner = www-data\nlisten.group = www-data\nlisten.mode = 0660\n";

#[test]
fn check_socket_dir_not_searchable_by_apache_user() {
    require_root(); // the directories below are root-owned
    let d = WorkDir::new("check-dir");
    let sockdir = d.join("sock");
    mkdir(&sockdir, 0o700);
    let sock = sockdir.join("php.sock");
    let c = write_configs(&d, &sock, GOOD_POOL);
    let r = check(&c);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let want = format!(
        "{}:{SETHANDLER_LINE}: Apache runs as www-data but cannot enter {} (mode 0700, root:root); fix: chmod o+x {}",
        c.site.display(),
        sockdir.display(),
        sockdir.display()
    );
    assert!(r.stderr.contains(&want), "want {want:?} in:\n{}", r.stderr);
    assert!(r.stdout.contains(": 1 problem(s)"), "only the directory is reported:\n{}{}", r.stdout, r.stderr);

    // An ancestor on the way is reported by its own name, not the (fine) socket directory.
    let d = WorkDir::new("check-ancestor");
    let outer = d.join("outer");
    mkdir(&outer, 0o750);
    let sockdir = outer.join("php");
    mkdir(&sockdir, 0o755);
    let c = write_configs(&d, &sockdir.join("php.sock"), GOOD_POOL);
    let r = check(&c);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let want = format!(
        "{}:{SETHANDLER_LINE}: Apache runs as www-data but cannot enter {} (mode 0750, root:root); fix: chmod o+x {}",
        c.site.display(),
        outer.display(),
        outer.display()
    );
    assert!(r.stderr.contains(&want), "want {want:?} in:\n{}", r.stderr);

    // Fixed the way the message says: no problem left.
    std::fs::set_permissions(&outer, std::fs::Permissions::from_mode(0o751)).unwrap();
    let r = check(&c);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn check_pool_socket_owner_not_usable_by_apache_user() {
    let (d, sock) = socket_in_searchable_dir("check-owner");
    let c = write_configs(
        &d,
        &sock,
        "user = www-data\ngroup = www-data\nlisten.owner = nobody\nlisten.group = nogroup\nlisten.mode = 0660\n",
    );
    let r = check(&c);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let want = format!(
        "{}:{SETHANDLER_LINE}: pool [www] will create {} as nobody:nogroup mode 0660, which Apache (www-data) \
         cannot connect to; fix: set listen.owner/listen.group = www-data in {}:1",
        c.site.display(),
        sock.display(),
        c.fpm.display()
    );
    assert!(r.stderr.contains(&want), "want {want:?} in:\n{}", r.stderr);
    assert!(r.stdout.contains(": 1 problem(s)"), "{}{}", r.stdout, r.stderr);

    // Without listen.group FPM gives the socket listen.owner's group (nogroup), not the
    // pool's `group`: still unreachable for www-data.
    let c = write_configs(&d, &sock, "user = www-data\ngroup = www-data\nlisten.owner = nobody\nlisten.mode = 0660\n");
    let r = check(&c);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("as nobody:nogroup mode 0660, which Apache (www-data) cannot connect to"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("fix: set listen.owner/listen.group = www-data in {}:1", c.fpm.display())),
        "{}",
        r.stderr
    );

    // Group access is enough; a mode without group write is not.
    let c =
        write_configs(&d, &sock, "user = nobody\nlisten.owner = nobody\nlisten.group = www-data\nlisten.mode = 0660\n");
    let r = check(&c);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let c =
        write_configs(&d, &sock, "user = nobody\nlisten.owner = nobody\nlisten.group = www-data\nlisten.mode = 0640\n");
    let r = check(&c);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("as nobody:www-data mode 0640, which Apache (www-data) cannot connect to"),
        "{}",
        r.stderr
    );

    // listen.acl_users replaces the mode bits: not judged.
    let c = write_configs(
        &d,
        &sock,
        "user = nobody\nlisten.owner = nobody\nlisten.group = nogroup\nlisten.acl_users = www-data\n",
    );
    let r = check(&c);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn check_everything_right_is_ok() {
    let (d, sock) = socket_in_searchable_dir("check-ok");
    let c = write_configs(&d, &sock, "user = www-data\nlisten.owner = www-data\nlisten.mode = 0660\n");
    let pool = std::fs::read_to_string(&c.fpm).unwrap();
    std::fs::write(&c.fpm, format!("process_control_timeout = 30s\n{pool}")).unwrap();
    let r = check(&c);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    assert!(
        r.stdout.contains("1 FastCGI backend(s) checked against 1 pool(s): 0 problem(s), 0 warning(s)"),
        "{}",
        r.stdout
    );
}

/// What makes a reload or a restart lose requests is warned about with file:line; the
/// configuration still works, so the exit status stays 0.
#[test]
fn check_warns_about_reloads_that_cut_and_a_short_backlog() {
    let (d, sock) = socket_in_searchable_dir("check-warn");
    let c = write_configs(&d, &sock, "user = www-data\nlisten.owner = www-data\nlisten.backlog = 64\n");
    let pool = std::fs::read_to_string(&c.fpm).unwrap();
    std::fs::write(&c.fpm, format!("[global]\nprocess_control_timeout = 0\n{pool}")).unwrap();
    let apache = std::fs::read_to_string(&c.apache).unwrap();
    std::fs::write(&c.apache, format!("{apache}MaxRequestWorkers 400\n")).unwrap();
    let r = check(&c);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let fpm = c.fpm.display();
    assert!(r.stderr.contains(&format!("warning: {fpm}:2: process_control_timeout = 0: a reload")), "{}", r.stderr);
    // [global] and process_control_timeout push the pool's `listen.backlog` to line 7.
    assert!(
        r.stderr.contains(&format!(
            "warning: {fpm}:7: listen.backlog = 64: backlog 64 is below Apache's MaxRequestWorkers 400 ({}:5)",
            c.apache.display()
        )),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("0 problem(s), 2 warning(s)"), "{}", r.stdout);
    let _ = &c.site;
}

#[test]
fn check_existing_socket_permissions() {
    require_root(); // chown of the socket
    let (d, sock) = socket_in_searchable_dir("check-sock");
    // The pool's settings would be fine: the socket that exists is what counts.
    let c = write_configs(&d, &sock, GOOD_POOL);
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o660)).unwrap();
    let r = check(&c);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let want = format!(
        "{}:{SETHANDLER_LINE}: Apache runs as www-data but cannot connect to {} (mode 0660, root:root): \
         13 Permission denied; fix: set listen.owner/listen.group = www-data (or listen.mode = 0666) in pool [www] ({}:1)",
        c.site.display(),
        sock.display(),
        c.fpm.display()
    );
    assert!(r.stderr.contains(&want), "want {want:?} in:\n{}", r.stderr);

    let www = nix::unistd::User::from_name("www-data").unwrap().unwrap();
    nix::unistd::chown(&sock, None, Some(www.gid)).unwrap();
    let r = check(&c);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn check_reports_mismatch_with_file_and_line() {
    let d = WorkDir::new("check");
    let fpm = d.path().join("php-fpm.conf");
    std::fs::write(&fpm, "[global]\n\n[www]\nuser = www-data\ngroup = www-data\nlisten = /run/php/php8.2-fpm.sock\n")
        .unwrap();
    let ap = d.path().join("apache");
    std::fs::create_dir_all(ap.join("sites-enabled")).unwrap();
    std::fs::write(ap.join("envvars"), "export APACHE_RUN_USER=www-data\nexport APACHE_RUN_GROUP=www-data\n").unwrap();
    std::fs::write(
        ap.join("apache2.conf"),
        "User ${APACHE_RUN_USER}\nGroup ${APACHE_RUN_GROUP}\nIncludeOptional sites-enabled/*.conf\n",
    )
    .unwrap();
    std::fs::write(
        ap.join("sites-enabled/x.conf"),
        "<VirtualHost *:80>\n  DocumentRoot /var/www\n  <FilesMatch \\.php$>\n    SetHandler \"proxy:unix:/run/php/php8.1-fpm.sock|fcgi://localhost\"\n  </FilesMatch>\n</VirtualHost>\n",
    )
    .unwrap();
    let r = run(&[
        "check",
        "--apache-config",
        &ap.join("apache2.conf").to_string_lossy(),
        "--fpm-config",
        &fpm.to_string_lossy(),
    ]);
    assert_eq!(r.code, 1);
    let want = format!(
        "{}:4: SetHandler points at /run/php/php8.1-fpm.sock but no PHP-FPM pool listens there; \
         pools listen on /run/php/php8.2-fpm.sock ({}:6)",
        ap.join("sites-enabled/x.conf").display(),
        fpm.display()
    );
    assert!(r.stderr.contains(&want), "{}", r.stderr);

    // Pointing at a pool whose socket Apache can reach: no problem.
    let sockdir = d.path().join("sock");
    std::fs::create_dir(&sockdir).unwrap();
    std::fs::write(
        &fpm,
        format!(
            "[www]\nuser = www-data\ngroup = www-data\nlisten = {}/php.sock\nlisten.owner = www-data\n",
            sockdir.display()
        ),
    )
    .unwrap();
    std::fs::write(
        ap.join("sites-enabled/x.conf"),
        format!("ProxyPassMatch ^/(.*\\.php)$ unix:{}/php.sock|fcgi://localhost/var/www/$1\n", sockdir.display()),
    )
    .unwrap();
    let ok = run(&[
        "check",
        "--apache-config",
        &ap.join("apache2.conf").to_string_lossy(),
        "--fpm-config",
        &fpm.to_string_lossy(),
    ]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
}

/// A shared host: 300 pools, one vhost each, and three vhosts still naming an old socket.
/// Each problem is one line that names the likeliest pool, not all 300 of them.
#[test]
fn check_with_hundreds_of_pools_prints_one_short_line_per_problem() {
    const POOLS: usize = 300;
    let d = WorkDir::new("check-many");
    let sockdir = d.join("sock");
    mkdir(&sockdir, 0o755);
    let socket = |i: usize| sockdir.join(format!("site{i:04}.sock"));
    let pools: String =
        (0..POOLS).map(|i| format!("[site{i:04}]\nlisten = {}\n{GOOD_POOL}", socket(i).display())).collect();
    let fpm = d.join("php-fpm.conf");
    std::fs::write(&fpm, pools).unwrap();
    let stale = [7, 150, 299];
    let vhosts: String = (0..POOLS)
        .map(|i| {
            let target =
                if stale.contains(&i) { sockdir.join(format!("php8.1-site{i:04}.sock")) } else { socket(i) };
            format!(
                "<VirtualHost *:80>\n  <FilesMatch \\.php$>\n    SetHandler \"proxy:unix:{}|fcgi://localhost\"\n  </FilesMatch>\n</VirtualHost>\n",
                target.display()
            )
        })
        .collect();
    let apache = d.join("apache2.conf");
    std::fs::write(&apache, format!("User www-data\nGroup www-data\n{vhosts}")).unwrap();
    let r = run(&["check", "--apache-config", &apache.to_string_lossy(), "--fpm-config", &fpm.to_string_lossy()]);
    assert_eq!(r.code, 1);
    let lines: Vec<&str> = r.stderr.lines().filter(|line| !line.starts_with("warning: ")).collect();
    assert_eq!(lines.len(), stale.len(), "one line per problem:\n{}", r.stderr);
    for (line, i) in lines.iter().zip(stale) {
        assert!(line.len() < 1000, "a problem line of {} characters", line.len());
        let likeliest = format!("pools listen on {} (", socket(i).display());
        assert!(line.contains(&likeliest), "{likeliest:?} first in {line}");
        assert!(line.ends_with(&format!("and {} other place(s)", POOLS - 3)), "{line}");
    }
    assert!(r.stdout.contains(&format!("{POOLS} FastCGI backend(s) checked against {POOLS} pool(s): 3 problem(s)")));
}
