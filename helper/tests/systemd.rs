//! `systemd-dropin` in a temp tree: a drop-in per php*-fpm unit with that unit's config,
//! valid for systemd (`systemd-analyze verify`, where installed), and `--remove`.

mod common;

use common::{run, BIN};
use harness::{PhpFpm, WorkDir};
use std::path::Path;

fn write(root: &Path, file: &str, text: &str) {
    let path = root.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Debian's php8.2-fpm.service and RHEL's php-fpm.service (no --fpm-config: /etc/php-fpm.conf),
/// both starting the real php-fpm so that systemd finds the executable.
fn installed_units(root: &Path) {
    let fpm = PhpFpm::binary();
    let fpm = fpm.display();
    write(
        root,
        "lib/systemd/system/php8.2-fpm.service",
        &format!(
            "[Unit]\nDescription=The PHP 8.2 FastCGI Process Manager\n\n[Service]\nType=notify\n\
             ExecStart={fpm} --nodaemonize --fpm-config /etc/php/8.2/fpm/php-fpm.conf\n\
             ExecReload=/bin/kill -USR2 $MAINPID\n\n[Install]\nWantedBy=multi-user.target\n"
        ),
    );
    write(root, "etc/php/8.2/fpm/php-fpm.conf", "[global]\npid = /run/php/php8.2-fpm.pid\ninclude = pool.d/*.conf\n");
    write(root, "etc/php/8.2/fpm/pool.d/www.conf", "[www]\nlisten = /run/php/php8.2-fpm.sock\n");
    write(root, "etc/php/8.2/fpm/pool.d/api.conf", "[api]\nlisten = 127.0.0.1:9001\n");
    write(
        root,
        "usr/lib/systemd/system/php-fpm.service",
        &format!(
            "[Unit]\nDescription=The PHP FastCGI Process Manager\n\n[Service]\nType=notify\n\
             ExecStart={fpm} --nodaemonize\nExecReload=/bin/kill -USR2 $MAINPID\n\n[Install]\nWantedBy=multi-user.target\n"
        ),
    );
    write(root, "etc/php-fpm.conf", "[global]\npid = /run/php-fpm/php-fpm.pid\ninclude = php-fpm.d/*.conf\n");
    write(root, "etc/php-fpm.d/www.conf", "[www]\nlisten = /run/php-fpm/www.sock\n");
    write(root, "lib/systemd/system/phpsessionclean.service", "[Service]\nExecStart=/bin/true\n");
    // Masked: not installed as far as systemd is concerned.
    std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    std::os::unix::fs::symlink("/dev/null", root.join("etc/systemd/system/php7.4-fpm.service")).unwrap();
}

fn dropin(root: &Path, unit: &str) -> std::path::PathBuf {
    root.join("etc/systemd/system").join(format!("{unit}.d/fcgi-resilient.conf"))
}

/// `systemd-analyze verify` of the units with their drop-ins, the temp tree first in the
/// unit path (the system's directories after it provide sysinit.target and the like).
fn verify(root: &Path, units: &[&str]) {
    let unit_path = ["etc/systemd/system", "usr/lib/systemd/system", "lib/systemd/system"]
        .map(|d| root.join(d).display().to_string())
        .join(":")
        + ":";
    let out = match std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args(units)
        .env("SYSTEMD_UNIT_PATH", unit_path)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("NOTE: systemd-analyze not available ({e}): generated units not verified");
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("systemd-analyze verify {units:?}: {:?}\n{stderr}", out.status.code());
    assert!(out.status.success(), "systemd-analyze verify failed:\n{stderr}");
    assert!(!stderr.contains("fcgi-resilient.conf"), "systemd complains about the drop-in:\n{stderr}");
}

#[test]
fn a_drop_in_per_fpm_unit_with_its_own_config_verified_and_removed() {
    let work = WorkDir::new("systemd");
    let root = work.join("root");
    installed_units(&root);
    let root_s = root.to_string_lossy();
    let r = run(&["systemd-dropin", "--root", &root_s, "--helper", BIN]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let debian = std::fs::read_to_string(dropin(&root, "php8.2-fpm.service")).expect("php8.2-fpm drop-in");
    let config = "--fpm-config /etc/php/8.2/fpm/php-fpm.conf";
    for line in [
        format!("ExecStop={BIN} stop --pid=${{MAINPID}} {config} --timeout 30s\n"),
        format!("ExecStartPre={BIN} prepare {config}\n"),
        format!("ExecStartPost={BIN} wait /run/php/php8.2-fpm.sock --timeout 30s\n"),
        format!("ExecStartPost={BIN} wait 127.0.0.1:9001 --timeout 30s\n"),
        format!(
            "ExecReload={BIN} reload-and-wait --pid ${{MAINPID}} {config} /run/php/php8.2-fpm.sock --timeout 30s\n"
        ),
    ] {
        assert!(debian.contains(&line), "missing {line:?} in\n{debian}");
    }
    let rhel = std::fs::read_to_string(dropin(&root, "php-fpm.service")).expect("php-fpm drop-in");
    assert!(rhel.contains("stop --pid=${MAINPID} --fpm-config /etc/php-fpm.conf"), "{rhel}");
    assert!(rhel.contains("wait /run/php-fpm/www.sock"), "{rhel}");
    assert!(!dropin(&root, "php7.4-fpm.service").exists(), "a masked unit gets no drop-in");
    assert!(!dropin(&root, "phpsessionclean.service").exists());
    verify(&root, &["php8.2-fpm.service", "php-fpm.service"]);

    // Again: replaces its own files. A hand-made drop-in of the same name is left alone.
    write(&root, "etc/systemd/system/php8.1-fpm.service.d/fcgi-resilient.conf", "[Service]\nNice=5\n");
    assert_eq!(run(&["systemd-dropin", "--root", &root_s, "--helper", BIN]).code, 0);
    let r = run(&["systemd-dropin", "--root", &root_s, "--remove"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!dropin(&root, "php8.2-fpm.service").exists() && !dropin(&root, "php-fpm.service").exists());
    assert!(!root.join("etc/systemd/system/php8.2-fpm.service.d").exists(), "the emptied directory goes too");
    assert!(dropin(&root, "php8.1-fpm.service").exists(), "a drop-in we did not write stays");
    assert!(r.stderr.contains("not written by this command"), "{}", r.stderr);
}
