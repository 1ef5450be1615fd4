//! `socket-keeper`: PHP-FPM's listening sockets held by systemd, so that they outlive every
//! restart, crash and broken reload of PHP-FPM and connects queue instead of failing, for
//! every front end. For each installed php*-fpm unit: a socket unit per pool, a generated
//! PHP-FPM config that includes the real one and sets each pool's `listen` to its private key,
//! and a service drop-in whose ExecStart wrapper (`socket-keeper exec`) hands the sockets to
//! PHP-FPM. See docs/helper.md#socket-keeper for the design and its limits.
//!

pub mod exec;
pub mod inspect;
pub mod plan;
pub mod run;

use std::path::{Path, PathBuf};

use crate::fpm_config::{self, LoadOptions};
use crate::options::UnitFiles;
use crate::systemd::{self, Unit};
use plan::{ServicePlan, CONFIG_DIR, DROPIN_NAME, FPM_MARKER, MARKER};

/// `socket-keeper`: install (or `--remove`) the keeper for every installed php*-fpm unit, or
/// one of the parts its units run.
#[derive(clap::Args, Debug, Clone, PartialEq, Default)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SocketKeeperArgs {
    #[command(subcommand)]
    pub part: Option<Part>,
    /// Take everything away again, stop the sockets and restart PHP-FPM on its own sockets
    #[arg(long)]
    pub remove: bool,
    #[command(flatten)]
    pub units: UnitFiles,
    /// Print the files, change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

/// What the keeper's units run, and the keeper without systemd.
#[derive(clap::Subcommand, Debug, Clone, PartialEq)]
pub enum Part {
    /// The drop-in's ExecStart wrapper: hands systemd's sockets to PHP-FPM (FPM_SOCKETS) and
    /// execs it, after checking every socket and key
    Exec(exec::ExecOpts),
    /// The drop-in's ExecStartPost check: fails the start when a pool's private key exists on
    /// disk (PHP-FPM bound it itself: its key did not match)
    Verify(exec::VerifyOpts),
    /// The keeper without systemd (containers, sysvinit): binds the pools' sockets itself and
    /// runs PHP-FPM under them, starting it again whenever it exits. SIGUSR2: reload (after
    /// php-fpm --test), SIGHUP: graceful restart, SIGTERM/SIGINT/SIGQUIT: graceful stop
    Run(run::RunOpts),
}

/// `socket-keeper ...`; its exit status.
pub fn run(args: &SocketKeeperArgs) -> i32 {
    match &args.part {
        Some(Part::Exec(o)) => exec::run_exec(o),
        Some(Part::Verify(o)) => exec::run_verify(&o.keep),
        Some(Part::Run(o)) => run::run(o),
        None if args.remove => remove(args),
        None => install(args),
    }
}

/// `socket-keeper ARGS...` as the command line would run it: for the tests.
#[cfg(test)]
pub fn main(argv: Vec<String>) -> i32 {
    use clap::Parser;
    let words = ["fcgi-resilient-helper".to_string(), "socket-keeper".to_string()].into_iter().chain(argv);
    match crate::cli::Cli::try_parse_from(words) {
        Ok(cli) => cli.command.run(),
        Err(error) => {
            eprintln!("{error}");
            2
        }
    }
}

/// A path below the root given as absolute.
fn below(root: &Path, absolute: &Path) -> PathBuf {
    root.join(absolute.strip_prefix("/").unwrap_or(absolute))
}

/// The last non-empty ExecStart= value of a unit.
pub fn exec_start_line(unit_text: &str) -> Option<String> {
    unit_text
        .lines()
        .rev()
        .filter_map(|l| l.trim().strip_prefix("ExecStart="))
        .find(|v| !v.is_empty())
        .map(String::from)
}

pub fn generated_config_path(base: &str) -> PathBuf {
    Path::new("/").join(CONFIG_DIR).join(format!("{base}.conf"))
}

/// Plans every installed unit; Debian's php-fpm.sock link goes to the highest-priority version,
/// as update-alternatives would have chosen.
pub fn plan_all(root: &Path) -> (Vec<ServicePlan>, Vec<String>) {
    let mut problems = Vec::new();
    let units: Vec<(Unit, String)> = systemd::find_units(root)
        .into_iter()
        .filter_map(|u| std::fs::read_to_string(&u.file).ok().map(|t| (u, t)))
        .collect();
    let best_link =
        units.iter().filter_map(|(_, t)| plan::debian_socket_helper(t)).max_by_key(|(_, _, priority)| *priority);
    let mut plans = Vec::new();
    for (unit, text) in &units {
        let (Some(start), Some(line)) = (systemd::parse_exec_start(text), exec_start_line(text)) else {
            problems.push(format!("{}: no ExecStart=", unit.file.display()));
            continue;
        };
        let opts = LoadOptions { prefix: start.prefix.as_ref().map(|p| below(root, p)) };
        let config = match fpm_config::load(&below(root, &start.config), &opts) {
            Ok(c) => c,
            Err(e) => {
                problems.push(format!("{}: {e}", unit.name));
                continue;
            }
        };
        let link = plan::debian_socket_helper(text)
            .filter(|mine| best_link.as_ref().is_some_and(|b| b.2 == mine.2))
            .map(|(link, file, _)| (link, below(root, &file)));
        let base = unit.name.strip_suffix(".service").unwrap_or(&unit.name);
        let plan = plan::plan_service(
            &unit.name,
            &line,
            &start,
            &config,
            &generated_config_path(base),
            link.as_ref().map(|(l, f)| (l.as_path(), f.as_path())),
        );
        plans.push(plan);
    }
    (plans, problems)
}

fn unit_dir(root: &Path) -> PathBuf {
    root.join("etc/systemd/system")
}

pub(crate) fn starts_with_marker(file: &Path, marker: &str) -> bool {
    std::fs::read_to_string(file).is_ok_and(|t| t.starts_with(marker))
}

/// Writes `text` to `path` unless a file not written by us is there.
fn write_ours(path: &Path, text: &str, marker: &str) -> Result<(), String> {
    if std::fs::symlink_metadata(path).is_ok() && !starts_with_marker(path, marker) {
        return Err(format!("{} exists and was not written by socket-keeper; not replacing it", path.display()));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Socket units we wrote below ROOT/etc/systemd/system.
pub fn installed_sockets(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(unit_dir(root)) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "socket") && starts_with_marker(p, MARKER))
        .collect();
    found.sort();
    found
}

/// Our drop-ins: (unit name, file).
pub fn installed_dropins(root: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(unit_dir(root)) else { return Vec::new() };
    let mut found: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.strip_suffix(".d")?.to_string();
            let file = e.path().join(DROPIN_NAME);
            starts_with_marker(&file, MARKER).then_some((name, file))
        })
        .collect();
    found.sort();
    found
}

fn systemd_runs(root: &Path) -> bool {
    root == Path::new("/") && Path::new("/run/systemd/system").exists()
}

fn systemctl(args: &[&str]) -> bool {
    let ok = std::process::Command::new("systemctl").args(args).status().is_ok_and(|s| s.success());
    if !ok {
        eprintln!("`systemctl {}` failed", args.join(" "));
    }
    ok
}

fn install(o: &SocketKeeperArgs) -> i32 {
    let (plans, problems) = plan_all(&o.units.root);
    let mut failed = !problems.is_empty();
    for p in &problems {
        eprintln!("{p}");
    }
    if plans.is_empty() {
        eprintln!("no php*-fpm systemd unit found below {}", o.units.root.display());
        return 1;
    }
    let Some(helper) = o.units.helper_path() else { return 1 };
    let units = unit_dir(&o.units.root);
    let mut restart = Vec::new();
    for plan in &plans {
        for s in &plan.skipped {
            eprintln!("{}: {s}; left with its own socket", plan.unit);
        }
        if plan.pools.is_empty() {
            eprintln!("{}: no pool to keep a socket for", plan.unit);
            failed = true;
            continue;
        }
        let mut files: Vec<(PathBuf, String, &str)> =
            plan.pools.iter().map(|p| (units.join(&p.socket_unit), plan::render_socket(plan, p), MARKER)).collect();
        files.push((below(&o.units.root, &plan.generated_config), plan::render_config(plan), FPM_MARKER));
        files.push((
            units.join(format!("{}.d", plan.unit)).join(DROPIN_NAME),
            plan::render_dropin(plan, &helper),
            MARKER,
        ));
        if o.dry_run {
            for (path, text, _) in &files {
                println!("==> {} <==\n{text}", path.display());
            }
            continue;
        }
        // Socket units of pools that are gone.
        let prefix = format!("{}-keeper-", plan.base);
        for stale in installed_sockets(&o.units.root) {
            let name = stale.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.starts_with(&prefix) && !plan.pools.iter().any(|p| p.socket_unit == name) {
                let _ = std::fs::remove_file(units.join("sockets.target.wants").join(&name));
                if std::fs::remove_file(&stale).is_ok() {
                    println!("{}: removed {} (its pool is gone)", plan.unit, stale.display());
                }
            }
        }
        for (path, text, marker) in &files {
            match write_ours(path, text, marker) {
                Ok(()) => println!("{}: wrote {}", plan.unit, path.display()),
                Err(e) => {
                    eprintln!("{}: {e}", plan.unit);
                    failed = true;
                }
            }
        }
        // Enabled like `systemctl enable` would: the sockets come up at boot before the web servers.
        let wants = units.join("sockets.target.wants");
        let _ = std::fs::create_dir_all(&wants);
        for p in &plan.pools {
            let link = wants.join(&p.socket_unit);
            let _ = std::fs::remove_file(&link);
            if let Err(e) = std::os::unix::fs::symlink(Path::new("/etc/systemd/system").join(&p.socket_unit), &link) {
                eprintln!("{}: {e}", link.display());
                failed = true;
            }
        }
        restart.push(plan.unit.clone());
    }
    if !o.dry_run && systemd_runs(&o.units.root) {
        failed |= !systemctl(&["daemon-reload"]);
    }
    if !restart.is_empty() && !o.dry_run {
        println!(
            "To hand the sockets over (one last ordinary restart): systemctl restart {}\n\
             To stop PHP-FPM for good from now on, stop its sockets too: systemctl stop {}",
            restart.join(" "),
            plans.iter().flat_map(|p| p.pools.iter().map(|k| k.socket_unit.clone())).collect::<Vec<_>>().join(" ")
        );
    }
    i32::from(failed)
}

fn remove(o: &SocketKeeperArgs) -> i32 {
    let mut failed = false;
    let units = unit_dir(&o.units.root);
    let sockets = installed_sockets(&o.units.root);
    let dropins = installed_dropins(&o.units.root);
    let socket_names: Vec<String> =
        sockets.iter().filter_map(|s| s.file_name().map(|n| n.to_string_lossy().into_owned())).collect();
    let mut remove_file = |path: &Path| match std::fs::remove_file(path) {
        Ok(()) => println!("removed {}", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            failed = true;
        }
    };
    for name in &socket_names {
        remove_file(&units.join("sockets.target.wants").join(name));
        remove_file(&units.join(name));
    }
    for (_, file) in &dropins {
        remove_file(file);
        let _ = file.parent().map(std::fs::remove_dir);
    }
    let config_dir = o.units.root.join(CONFIG_DIR);
    if let Ok(entries) = std::fs::read_dir(&config_dir) {
        for e in entries.flatten() {
            if starts_with_marker(&e.path(), FPM_MARKER) {
                remove_file(&e.path());
            }
        }
    }
    // Only when empty: whatever else is there is not ours.
    let _ = std::fs::remove_dir(&config_dir);
    let _ = config_dir.parent().map(std::fs::remove_dir);
    let _ = std::fs::remove_dir(units.join("sockets.target.wants"));
    if sockets.is_empty() && dropins.is_empty() {
        println!("no socket keeper installed");
    }
    if systemd_runs(&o.units.root) && !(sockets.is_empty() && dropins.is_empty()) {
        failed |= !systemctl(&["daemon-reload"]);
        // The sockets first: a PHP-FPM started while systemd still listens on its path refuses
        // to start ("another FPM instance seems to already listen").
        let mut stop = vec!["stop"];
        stop.extend(socket_names.iter().map(String::as_str));
        if socket_names.is_empty() || systemctl(&stop) {
            for (unit, _) in &dropins {
                let active = std::process::Command::new("systemctl")
                    .args(["is-active", "--quiet", unit])
                    .status()
                    .is_ok_and(|s| s.success());
                if active {
                    println!("restarting {unit} on its own sockets");
                    failed |= !systemctl(&["restart", unit]);
                }
            }
        } else {
            failed = true;
        }
    }
    i32::from(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness::WorkDir;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn install_below(root: &Path) -> i32 {
        main(vec![
            "--root".into(),
            root.display().to_string(),
            "--helper".into(),
            "/usr/sbin/fcgi-resilient-helper".into(),
        ])
    }

    /// Fedora's layout: php-fpm.service naming no config (/etc/php-fpm.conf), pools in
    /// /etc/php-fpm.d with ACLs instead of an owner.
    #[test]
    fn fedora_layout() {
        let work = WorkDir::new("keeper-fedora");
        let root = work.path();
        write(
            &root.join("usr/lib/systemd/system/php-fpm.service"),
            "[Service]\nType=notify\nExecStart=/usr/sbin/php-fpm --nodaemonize\nExecReload=/bin/kill -USR2 $MAINPID\n",
        );
        write(
            &root.join("etc/php-fpm.conf"),
            &format!("include={}/etc/php-fpm.d/*.conf\n[global]\npid = /run/php-fpm/php-fpm.pid\n", root.display()),
        );
        write(
            &root.join("etc/php-fpm.d/www.conf"),
            "[www]\nuser = apache\ngroup = apache\nlisten = /run/php-fpm/www.sock\nlisten.acl_users = apache,nginx\nlisten.allowed_clients = 127.0.0.1\n",
        );
        assert_eq!(install_below(root), 0);
        let socket = std::fs::read_to_string(root.join("etc/systemd/system/php-fpm-keeper-www.socket")).unwrap();
        assert!(socket.contains("ListenStream=/run/php-fpm/www.sock\n"), "{socket}");
        assert!(socket.contains("setfacl -m u:apache:rw,u:nginx:rw /run/php-fpm/www.sock"), "{socket}");
        let dropin =
            std::fs::read_to_string(root.join("etc/systemd/system/php-fpm.service.d").join(DROPIN_NAME)).unwrap();
        assert!(
            dropin.contains(
                "--fpm-config /etc/php-fpm.conf --keeper-config /etc/fcgi-resilient/socket-keeper/php-fpm.conf \
                 --keep www=/run/fcgi-resilient/socket-keeper.keys/php-fpm/www.sock -- /usr/sbin/php-fpm --nodaemonize \
                 --fpm-config /etc/fcgi-resilient/socket-keeper/php-fpm.conf\n"
            ),
            "{dropin}"
        );
        assert!(root.join("etc/fcgi-resilient/socket-keeper/php-fpm.conf").exists());
    }

    /// Two Debian versions: the php-fpm.sock link goes with the one update-alternatives preferred
    /// (the higher priority), once; a file of that name we did not write is left alone.
    #[test]
    fn debian_versions_and_files_not_ours() {
        let work = WorkDir::new("keeper-debian-versions");
        let root = work.path();
        for (version, priority) in [("8.1", 81), ("8.2", 82)] {
            write(
                &root.join(format!("lib/systemd/system/php{version}-fpm.service")),
                &format!(
                    "[Service]\nType=notify\nExecStart=/usr/sbin/php-fpm{version} --nodaemonize --fpm-config \
                     /etc/php/{version}/fpm/php-fpm.conf\nExecStartPost=-/usr/lib/php/php-fpm-socket-helper install \
                     /run/php/php-fpm.sock /etc/php/{version}/fpm/pool.d/www.conf {priority}\n"
                ),
            );
            let etc = root.join(format!("etc/php/{version}/fpm"));
            write(&etc.join("php-fpm.conf"), &format!("include={}/pool.d/*.conf\n", etc.display()));
            write(
                &etc.join("pool.d/www.conf"),
                &format!("[www]\nuser = www-data\ngroup = www-data\nlisten = /run/php/php{version}-fpm.sock\n"),
            );
        }
        assert_eq!(install_below(root), 0);
        let unit = |v: &str| {
            std::fs::read_to_string(root.join(format!("etc/systemd/system/php{v}-fpm-keeper-www.socket"))).unwrap()
        };
        assert!(unit("8.2").contains("Symlinks=/run/php/php-fpm.sock\n"));
        assert!(!unit("8.1").contains("Symlinks="), "one link, the preferred version's");
        // A drop-in of ours is replaced on the next run; someone else's file is not.
        std::fs::write(root.join("etc/systemd/system/php8.1-fpm-keeper-www.socket"), "[Socket]\nListenStream=/x\n")
            .unwrap();
        assert_eq!(install_below(root), 1, "refuses to replace a file it did not write");
        assert_eq!(unit("8.1"), "[Socket]\nListenStream=/x\n");
        assert_eq!(main(vec!["--remove".into(), "--root".into(), root.display().to_string()]), 0);
        assert!(root.join("etc/systemd/system/php8.1-fpm-keeper-www.socket").exists(), "not ours: left");
        assert!(!root.join("etc/systemd/system/php8.2-fpm-keeper-www.socket").exists());
    }
}
