//! `systemd-dropin`: a drop-in for every installed php*-fpm unit, so that `systemctl
//! restart/stop/reload` loses no request, written with the unit's own PHP-FPM config.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use fcgi_resilient_common::duration::format_duration;

use crate::fpm_config::{self, Listen, LoadOptions};
use crate::options::{duration_value, UnitFiles, DEFAULT_TIMEOUT};

#[derive(Args, Debug, Clone, PartialEq)]
pub struct SystemdArgs {
    /// Take the drop-ins away again
    #[arg(long)]
    pub remove: bool,
    #[command(flatten)]
    pub units: UnitFiles,
    /// The --timeout of the generated commands; TimeoutStopSec is 30 s more
    #[arg(long, short = 't', value_name = "DURATION", default_value = DEFAULT_TIMEOUT, value_parser = duration_value)]
    pub timeout: Duration,
}

const DROPIN_NAME: &str = "fcgi-resilient.conf";
/// First line of every drop-in we write: only such files are replaced or removed.
const MARKER: &str = "# Written by `fcgi-resilient-helper systemd-dropin`";
/// Highest precedence first, as systemd searches them.
const UNIT_DIRS: &[&str] = &["etc/systemd/system", "usr/lib/systemd/system", "lib/systemd/system"];

#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub name: String,
    pub file: PathBuf,
}

fn is_fpm_unit(name: &str) -> bool {
    name.starts_with("php") && name.ends_with("-fpm.service")
}

/// Installed php*-fpm units (a masked one, linked to /dev/null, is left out).
pub fn find_units(root: &Path) -> Vec<Unit> {
    let mut units: Vec<Unit> = Vec::new();
    for dir in UNIT_DIRS {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        let mut names: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        for name in names.into_iter().filter(|n| is_fpm_unit(n)) {
            let file = root.join(dir).join(&name);
            let masked = std::fs::read_link(&file).is_ok_and(|t| t == Path::new("/dev/null"));
            if !masked && file.is_file() && !units.iter().any(|u| u.name == name) {
                units.push(Unit { name, file });
            }
        }
    }
    units
}

/// What a unit's ExecStart tells: the php-fpm binary, its config and prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct FpmStart {
    pub binary: PathBuf,
    pub config: PathBuf,
    pub prefix: Option<PathBuf>,
}

/// The last ExecStart= of the unit file, as php-fpm would read its options.
pub fn parse_exec_start(unit_text: &str) -> Option<FpmStart> {
    let line = unit_text.lines().rev().filter_map(|l| l.trim().strip_prefix("ExecStart=")).find(|v| !v.is_empty())?;
    let mut words = line.split_whitespace();
    let binary = PathBuf::from(words.next()?.trim_start_matches(['-', '@', '+', '!', ':']));
    let (mut config, mut prefix) = (None, None);
    while let Some(w) = words.next() {
        let mut take = |opt_short: &str, opt_long: &str| -> Option<PathBuf> {
            if w == opt_short || w == opt_long {
                return words.next().map(PathBuf::from);
            }
            let inline = w.strip_prefix(&format!("{opt_long}=")).or_else(|| w.strip_prefix(opt_short))?;
            Some(PathBuf::from(inline))
        };
        if let Some(c) = take("-y", "--fpm-config") {
            config = Some(c);
        } else if let Some(p) = take("-p", "--prefix") {
            prefix = Some(p);
        }
    }
    let config = config.unwrap_or_else(|| default_config(&binary));
    Some(FpmStart { binary, config, prefix })
}

/// php-fpm's compiled-in config when ExecStart names none: RHEL's /etc/php-fpm.conf, or
/// Remi's software collections' /etc/opt/remi/phpXY/php-fpm.conf.
fn default_config(binary: &Path) -> PathBuf {
    let text = binary.to_string_lossy();
    if let Some(rest) = text.strip_prefix("/opt/remi/") {
        if let Some(collection) = rest.split('/').next() {
            return PathBuf::from(format!("/etc/opt/remi/{collection}/php-fpm.conf"));
        }
    }
    PathBuf::from("/etc/php-fpm.conf")
}

/// An argument as systemd reads it literally: `%` starts a specifier, `$` a variable.
fn escape(arg: &str) -> String {
    arg.replace('%', "%%").replace('$', "$$")
}

/// Where `wait` and `reload-and-wait` look for a pool.
fn wait_target(listen: &Listen) -> String {
    listen.backend_address().connect_form()
}

/// The drop-in's text for one unit whose pools listen on `targets`.
pub fn render(unit: &str, start: &FpmStart, targets: &[String], helper: &Path, timeout: Duration) -> String {
    let helper = escape(&helper.display().to_string());
    let config = escape(&start.config.display().to_string());
    let prefix = start.prefix.as_ref().map(|p| format!(" --fpm-prefix {}", escape(&p.display().to_string())));
    let prefix = prefix.unwrap_or_default();
    let t = format_duration(timeout);
    let mut text = format!(
        "{MARKER} for {unit}\n\
         # (PHP-FPM config {config}). Run it again after changing the pools' `listen`;\n\
         # `fcgi-resilient-helper systemd-dropin --remove` takes it away.\n\
         [Service]\n\
         ExecStartPre={helper} prepare --fpm-config {config}{prefix}\n"
    );
    for target in targets {
        text += &format!("ExecStartPost={helper} wait {} --timeout {t}\n", escape(target));
    }
    // Any pool answering shows the reloaded master is up; a local socket is the surest.
    if let Some(first) = targets.iter().find(|t| t.starts_with('/')).or(targets.first()) {
        text += &format!(
            "ExecReload=\nExecReload={helper} reload-and-wait --pid ${{MAINPID}} --fpm-config {config}{prefix} {} \
             --timeout {t}\n",
            escape(first)
        );
    }
    // `--pid=${MAINPID}` stays one (possibly empty) word when the main process is gone.
    text += &format!(
        "ExecStop=\nExecStop={helper} stop --pid=${{MAINPID}} --fpm-config {config}{prefix} --timeout {t}\n\
         # Room for the drain before systemd kills what is left.\nTimeoutStopSec={}s\n",
        timeout.as_secs() + 30
    );
    text
}

/// The wait targets of the config's pools, read below `root`.
fn pool_targets(root: &Path, start: &FpmStart) -> Result<Vec<String>, String> {
    let file = root.join(start.config.strip_prefix("/").unwrap_or(&start.config));
    let opts = LoadOptions { prefix: start.prefix.as_ref().map(|p| root.join(p.strip_prefix("/").unwrap_or(p))) };
    let cfg = fpm_config::load(&file, &opts).map_err(|e| e.to_string())?;
    let mut targets = Vec::new();
    for pool in &cfg.pools {
        if let Some((Ok(listen), _)) = pool.listen() {
            let t = wait_target(&listen);
            if !targets.contains(&t) {
                targets.push(t);
            }
        }
    }
    Ok(targets)
}

fn dropin_path(root: &Path, unit: &str) -> PathBuf {
    root.join("etc/systemd/system").join(format!("{unit}.d")).join(DROPIN_NAME)
}

/// Ours: written by us, or a link to the example the package ships.
fn is_ours(file: &Path) -> bool {
    if let Ok(target) = std::fs::read_link(file) {
        return target.to_string_lossy().contains("fcgi-resilient-helper");
    }
    std::fs::read_to_string(file).is_ok_and(|t| t.starts_with(MARKER))
}

fn install_one(o: &SystemdArgs, unit: &Unit, helper: &Path) -> Result<PathBuf, String> {
    let text = std::fs::read_to_string(&unit.file).map_err(|e| format!("{}: {e}", unit.file.display()))?;
    let start = parse_exec_start(&text).ok_or_else(|| format!("{}: no ExecStart=", unit.file.display()))?;
    let targets = match pool_targets(&o.units.root, &start) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: {e}; its drop-in stops and prepares but cannot wait for a pool", unit.name);
            Vec::new()
        }
    };
    let path = dropin_path(&o.units.root, &unit.name);
    if std::fs::symlink_metadata(&path).is_ok() {
        if !is_ours(&path) {
            return Err(format!("{} exists and was not written by this command; not replacing it", path.display()));
        }
        std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let body = render(&unit.name, &start, &targets, helper, o.timeout);
    std::fs::write(&path, body).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Our drop-ins under ROOT/etc/systemd/system, whether or not their unit is still installed.
fn installed_dropins(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root.join("etc/systemd/system")) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".d")).is_some_and(is_fpm_unit))
        .map(|e| e.path().join(DROPIN_NAME))
        .filter(|f| std::fs::symlink_metadata(f).is_ok())
        .collect();
    found.sort();
    found
}

fn remove(o: &SystemdArgs) -> i32 {
    let mut failed = false;
    let dropins = installed_dropins(&o.units.root);
    for file in &dropins {
        if !is_ours(file) {
            eprintln!("{}: not written by this command; left in place", file.display());
            continue;
        }
        match std::fs::remove_file(file) {
            Ok(()) => {
                println!("removed {}", file.display());
                // Only if empty: other drop-ins of the unit stay.
                let _ = file.parent().map(std::fs::remove_dir);
            }
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                failed = true;
            }
        }
    }
    if dropins.is_empty() {
        println!("no fcgi-resilient drop-in installed");
    }
    i32::from(failed)
}

fn install(o: &SystemdArgs) -> i32 {
    let units = find_units(&o.units.root);
    if units.is_empty() {
        eprintln!("no php*-fpm systemd unit found below {}", o.units.root.display());
        return 1;
    }
    let Some(helper) = o.units.helper_path() else { return 1 };
    let mut failed = false;
    for unit in &units {
        match install_one(o, unit, &helper) {
            Ok(path) => println!("{}: wrote {}", unit.name, path.display()),
            Err(e) => {
                eprintln!("{}: {e}", unit.name);
                failed = true;
            }
        }
    }
    i32::from(failed)
}

/// Makes systemd read the change, when it is this system's systemd that runs.
fn daemon_reload(o: &SystemdArgs) {
    if o.units.root != Path::new("/") {
        return;
    }
    if !Path::new("/run/systemd/system").exists() {
        println!("systemd is not running here: nothing to reload");
        return;
    }
    match std::process::Command::new("systemctl").arg("daemon-reload").status() {
        Ok(s) if s.success() => println!("systemctl daemon-reload: done"),
        _ => eprintln!("`systemctl daemon-reload` failed; run it before the next restart"),
    }
}

pub fn run(o: &SystemdArgs) -> i32 {
    let code = if o.remove { remove(o) } else { install(o) };
    daemon_reload(o);
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_rhel_and_remi_exec_start() {
        let debian = "[Service]\nType=notify\nExecStart=/usr/sbin/php-fpm8.2 --nodaemonize --fpm-config \
                      /etc/php/8.2/fpm/php-fpm.conf\nExecReload=/bin/kill -USR2 $MAINPID\n";
        let s = parse_exec_start(debian).unwrap();
        assert_eq!(s.binary, PathBuf::from("/usr/sbin/php-fpm8.2"));
        assert_eq!(s.config, PathBuf::from("/etc/php/8.2/fpm/php-fpm.conf"));
        let rhel = parse_exec_start("ExecStart=/usr/sbin/php-fpm --nodaemonize\n").unwrap();
        assert_eq!(rhel.config, PathBuf::from("/etc/php-fpm.conf"));
        let remi = parse_exec_start("ExecStart=/opt/remi/php74/root/usr/sbin/php-fpm --nodaemonize\n").unwrap();
        assert_eq!(remi.config, PathBuf::from("/etc/opt/remi/php74/php-fpm.conf"));
        let inline = parse_exec_start("ExecStart=-/usr/sbin/php-fpm -y/etc/f.conf -p /srv\n").unwrap();
        assert_eq!((inline.config, inline.prefix), (PathBuf::from("/etc/f.conf"), Some(PathBuf::from("/srv"))));
        let eq = parse_exec_start("ExecStart=/usr/sbin/php-fpm --fpm-config=/etc/g.conf\n").unwrap();
        assert_eq!(eq.config, PathBuf::from("/etc/g.conf"));
        assert_eq!(parse_exec_start("[Service]\nExecStart=\n"), None);
    }

    #[test]
    fn unit_names() {
        assert!(is_fpm_unit("php8.2-fpm.service") && is_fpm_unit("php-fpm.service"));
        assert!(!is_fpm_unit("phpsessionclean.service") && !is_fpm_unit("php8.2-fpm.socket"));
    }

    #[test]
    fn rendered_lines() {
        let start = FpmStart {
            binary: "/usr/sbin/php-fpm8.2".into(),
            config: "/etc/php/8.2/fpm/php-fpm.conf".into(),
            prefix: None,
        };
        let targets = vec!["/run/php/php8.2-fpm.sock".to_string(), "127.0.0.1:9000".to_string()];
        let text = render(
            "php8.2-fpm.service",
            &start,
            &targets,
            Path::new("/usr/sbin/fcgi-resilient-helper"),
            Duration::from_secs(30),
        );
        assert!(text.starts_with(MARKER));
        assert!(text.contains(
            "ExecStop=/usr/sbin/fcgi-resilient-helper stop --pid=${MAINPID} --fpm-config /etc/php/8.2/fpm/php-fpm.conf --timeout 30s\n"
        ));
        assert!(text.contains("ExecStartPost=/usr/sbin/fcgi-resilient-helper wait 127.0.0.1:9000 --timeout 30s\n"));
        assert!(text.contains(
            "reload-and-wait --pid ${MAINPID} --fpm-config /etc/php/8.2/fpm/php-fpm.conf /run/php/php8.2-fpm.sock"
        ));
        assert!(text.contains("TimeoutStopSec=60s"));
        assert_eq!(escape("/run/50%$x"), "/run/50%%$$x");
    }
}
