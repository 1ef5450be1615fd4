//! `prepare` in a temp root, with real users, against real file systems.

mod common;

use common::{require_root, run};
use harness::WorkDir;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn uid_gid(name: &str) -> (u32, u32) {
    let u = nix::unistd::User::from_name(name).unwrap().unwrap();
    (u.uid.as_raw(), u.gid.as_raw())
}

fn write_configs(dir: &Path) -> String {
    let pd = dir.join("etc/pool.d");
    std::fs::create_dir_all(&pd).unwrap();
    let main = dir.join("etc/php-fpm.conf");
    std::fs::write(&main, "[global]\npid = /run/php/fpm.pid\ninclude=pool.d/*.conf\n").unwrap();
    std::fs::write(
        pd.join("www.conf"),
        "; Debian-like\n[www]\nuser = www-data\ngroup = www-data\nlisten = /run/php/php-fpm.sock\n\
         listen.owner = www-data\nlisten.group = www-data\n",
    )
    .unwrap();
    std::fs::write(
        pd.join("other.conf"),
        "[other]\nuser = nobody\nlisten = \"/run/php-$pool/$pool.sock\" ; quoted, $pool\n\n[tcp]\nuser=nobody\nlisten = 127.0.0.1:9000\n",
    )
    .unwrap();
    main.to_string_lossy().into_owned()
}

#[test]
fn prepare_creates_is_idempotent_and_fixes() {
    require_root();
    let d = WorkDir::new("prepare");
    let root = d.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let main = write_configs(d.path());
    let root_s = root.to_string_lossy().into_owned();

    let dry = run(&["prepare", "--fpm-config", &main, "--root", &root_s, "--dry-run"]);
    assert_eq!(dry.code, 0);
    assert!(dry.stdout.contains("would create"), "{}", dry.stdout);
    assert!(!root.join("run").exists(), "--dry-run created something");

    let r = run(&["prepare", "--fpm-config", &main, "--root", &root_s]);
    assert_eq!(r.code, 0);
    let www = uid_gid("www-data");
    let nobody = uid_gid("nobody");
    let m = std::fs::metadata(root.join("run/php")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (www.0, www.1, 0o755));
    let m = std::fs::metadata(root.join("run/php-other")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (nobody.0, nobody.1, 0o755), "user's primary group");
    let m = std::fs::metadata(root.join("run")).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (0, 0o755));

    let again = run(&["prepare", "--fpm-config", &main, "--root", &root_s]);
    assert_eq!(again.code, 0);
    assert!(!again.stdout.contains("create") && !again.stdout.contains("chown"), "{}", again.stdout);

    // Wrong owner and mode get fixed.
    nix::unistd::chown(&root.join("run/php"), Some(nix::unistd::Uid::from_raw(0)), Some(nix::unistd::Gid::from_raw(0)))
        .unwrap();
    std::fs::set_permissions(root.join("run/php"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let fix = run(&["prepare", "--fpm-config", &main, "--root", &root_s]);
    assert_eq!(fix.code, 0);
    assert!(fix.stdout.contains("chown") && fix.stdout.contains("chmod"), "{}", fix.stdout);
    let m = std::fs::metadata(root.join("run/php")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (www.0, www.1, 0o755));
}

#[test]
fn prepare_refuses_symlinked_socket_dir() {
    require_root();
    let d = WorkDir::new("symlink");
    let root = d.path().join("root");
    std::fs::create_dir_all(root.join("run")).unwrap();
    let target = d.path().join("precious");
    std::fs::create_dir(&target).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&target, root.join("run/php")).unwrap();
    let main = write_configs(d.path());
    let r = run(&["prepare", "--fpm-config", &main, "--root", &root.to_string_lossy()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("symbolic link"), "{}", r.stderr);
    let m = std::fs::metadata(&target).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, 0, 0o700), "symlink target touched");

    // A symlinked ancestor is refused too.
    std::fs::remove_dir_all(root.join("run")).unwrap();
    std::os::unix::fs::symlink(&target, root.join("run")).unwrap();
    let r = run(&["prepare", "--fpm-config", &main, "--root", &root.to_string_lossy()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("symbolic link"), "{}", r.stderr);
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0, "created inside the symlink target");
}

/// Runs `prepare` on `fpm_conf` in an empty temp root; it must fail (exit 1), create nothing
/// under the root, and its stderr is returned.
fn prepare_refused(name: &str, fpm_conf: &str) -> String {
    let d = WorkDir::new(name);
    let conf = d.path().join("fpm.conf");
    std::fs::write(&conf, fpm_conf).unwrap();
    let root = d.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let r = run(&["prepare", "--fpm-config", &conf.to_string_lossy(), "--root", &root.to_string_lossy()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(!root.join("run").exists(), "created directories although it failed");
    r.stderr
}

#[test]
fn prepare_unknown_user_is_a_clear_error() {
    let stderr = prepare_refused("nouser", "[x]\nuser = no-such-user-4711\nlisten = /run/php/x.sock\n");
    assert!(stderr.contains("fpm.conf:2: user `no-such-user-4711` does not exist"), "{stderr}");
}

#[test]
fn prepare_malformed_config_changes_nothing() {
    let stderr =
        prepare_refused("malformed", "[x]\nuser = www-data\nlisten = /run/php/x.sock\nlisten.owner \"www-data\n");
    assert!(stderr.contains("fpm.conf:4: "), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&[]).code, 2);
    assert_eq!(run(&["frobnicate"]).code, 2);
    assert_eq!(run(&["prepare", "--mode", "0777"]).code, 2);
    assert_eq!(run(&["wait"]).code, 2);
    let h = run(&["--help"]);
    assert_eq!(h.code, 0);
    assert!(h.stdout.contains("reload-and-wait"));
    assert_eq!(run(&["prepare", "--help"]).code, 0);
}
