//! What `check` reports about socket keepers: pools without one, keys PHP-FPM would not match,
//! a `listen` changed since the socket unit was written, sockets whose owner or mode differ
//! from the pool's config, a key path PHP-FPM bound itself, a missing Debian link, and socket
//! units systemd has failed.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::exec::parse_keep;
use super::plan::{self, SocketSettings};
use crate::apache_config::ApacheConfig;
use crate::fpm_config::{self, FpmConfig, Listen, LoadOptions};

/// The wrapper's arguments, read back from a drop-in's ExecStart.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Installed {
    pub unit: String,
    pub fpm_config: PathBuf,
    pub keeper_config: PathBuf,
    pub prefix: Option<PathBuf>,
    pub keep: Vec<(String, String)>,
}

pub fn parse_dropin(unit: &str, text: &str) -> Option<Installed> {
    let line =
        text.lines().filter_map(|l| l.strip_prefix("ExecStart=")).find(|l| l.contains(" socket-keeper exec "))?;
    let mut words = line.split_whitespace().skip_while(|w| *w != "exec").skip(1);
    let mut found = Installed { unit: unit.to_string(), ..Default::default() };
    while let Some(w) = words.next() {
        // Undo the unit file escaping of `$` and `%`.
        let mut next = || words.next().map(|v| v.replace("$$", "$").replace("%%", "%"));
        match w {
            "--" => break,
            "--fpm-config" => found.fpm_config = next()?.into(),
            "--keeper-config" => found.keeper_config = next()?.into(),
            "--fpm-prefix" => found.prefix = Some(next()?.into()),
            "--keep" => found.keep.push(parse_keep(&next()?).ok()?),
            _ => {}
        }
    }
    Some(found)
}

/// `Key=value` lines of a socket unit we wrote.
fn socket_settings(text: &str) -> SocketSettings {
    let mut s = SocketSettings::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else { continue };
        let v = v.replace("%%", "%").replace("$$", "$");
        match k {
            "ListenStream" => s.listen_stream = v,
            "SocketUser" => s.user = Some(v),
            "SocketGroup" => s.group = Some(v),
            "SocketMode" => s.mode = Some(v),
            "Symlinks" => s.symlink = Some(v.into()),
            _ => {}
        }
    }
    s
}

/// What the public address of a pool's `listen` is as a ListenStream= value.
fn listen_stream_of(listen: &Listen) -> String {
    match listen {
        Listen::Unix(p) => p.display().to_string(),
        Listen::Tcp { host: Some(h), port } if h.contains(':') => format!("[{h}]:{port}"),
        Listen::Tcp { host: Some(h), port } => format!("{h}:{port}"),
        Listen::Tcp { host: None, port } => format!("[::]:{port}"),
    }
}

fn same_stream(stream: &str, listen: &Listen, raw: &str) -> bool {
    match listen {
        Listen::Tcp { host: None, port } => {
            stream == format!("[::]:{port}")
                || (raw.trim().starts_with("0.0.0.0:") && stream == format!("0.0.0.0:{port}"))
        }
        Listen::Tcp { host: Some(h), .. } if h.parse::<std::net::IpAddr>().is_err() => true, // a name, resolved when written
        _ => stream == listen_stream_of(listen),
    }
}

fn systemd_failed(unit: &str) -> bool {
    Path::new("/run/systemd/system").exists()
        && std::process::Command::new("systemctl")
            .args(["is-failed", "--quiet", unit])
            .status()
            .is_ok_and(|s| s.success())
}

/// Adds to `problems` and `warnings`; `configs` are the PHP-FPM configs `check` loaded.
pub fn report(root: &Path, configs: &[FpmConfig], problems: &mut Vec<String>, warnings: &mut Vec<String>) {
    let dropins = super::installed_dropins(root);
    let mut kept_configs: Vec<PathBuf> = Vec::new();
    for (unit, file) in &dropins {
        let Some(installed) = std::fs::read_to_string(file).ok().and_then(|t| parse_dropin(unit, &t)) else {
            problems.push(format!("{}: not a socket-keeper drop-in this helper can read", file.display()));
            continue;
        };
        kept_configs.push(installed.fpm_config.clone());
        // The generated config sets process_control_timeout where the real one does not: the
        // warning about reloads that cut does not hold for this instance.
        let generated = std::fs::read_to_string(super::below(root, &installed.keeper_config)).unwrap_or_default();
        if generated.lines().any(|l| l.trim_start().starts_with("process_control_timeout")) {
            let real = installed.fpm_config.display().to_string();
            warnings.retain(|w| !(w.starts_with(&real) && w.contains("process_control_timeout")));
        }
        check_service(root, &installed, problems, warnings);
    }
    let unkept: Vec<String> = configs
        .iter()
        .filter(|c| !kept_configs.iter().any(|k| plan_path_eq(k, &c.main)))
        .flat_map(|c| c.pools.iter().map(|p| format!("[{}] ({})", p.name, p.loc())))
        .collect();
    if !unkept.is_empty() {
        println!(
            "{} pool(s) without a socket keeper: {}; their socket closes while PHP-FPM restarts, so front ends \
             without mod_fcgi_resilient see refusals (see `fcgi-resilient-helper socket-keeper`)",
            unkept.len(),
            unkept.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        );
    }
}

/// Apache's wait for an answer (ProxyTimeout, else Timeout, else 60 s) and where it is set.
fn proxy_timeout(cfg: &ApacheConfig) -> (std::time::Duration, String) {
    let setting = cfg.last("ProxyTimeout").or_else(|| cfg.last("Timeout"));
    let value = setting.and_then(|d| crate::duration::parse(&d.args[0]).ok());
    match (setting, value) {
        (Some(d), Some(v)) => (v, format!("{} {} ({})", d.name, d.args[0], d.loc())),
        _ => (std::time::Duration::from_secs(60), "Timeout 60 (httpd's default)".into()),
    }
}

/// With a keeper the connect succeeds at once, so the module's budget (FcgiResilientTimeout) no
/// longer bounds a request while PHP-FPM restarts: mod_proxy_fcgi's wait for the answer does.
/// Said when the module is On and that wait is the longer one. `keepers` says whether any
/// backend here has a keeper.
pub fn timeout_warning(cfg: &ApacheConfig, keepers: bool) -> Option<String> {
    let on = cfg.directives.iter().any(|d| {
        d.name.eq_ignore_ascii_case("FcgiResilient") && d.args.first().is_some_and(|a| a.eq_ignore_ascii_case("on"))
    });
    if !keepers || !on {
        return None;
    }
    let budget = cfg.last("FcgiResilientTimeout").and_then(|d| crate::duration::parse(&d.args[0]).ok());
    let budget = budget.unwrap_or(std::time::Duration::from_secs(10));
    let (wait, where_set) = proxy_timeout(cfg);
    (wait > budget).then(|| {
        format!(
            "socket keepers hold PHP-FPM's sockets, so while it restarts connects succeed and a request waits for \
             its answer up to {where_set}, not FcgiResilientTimeout ({} s); set ProxyTimeout (or the worker's \
             timeout=) to what your longest script may take to bound it",
            budget.as_secs()
        )
    })
}

/// Whether any socket keeper is installed below `root` (systemd units or `socket-keeper run`).
pub fn keepers_installed(root: &Path) -> bool {
    let run_configs = std::fs::read_dir(root.join("run/fcgi-resilient/socket-keeper"))
        .map(|entries| entries.flatten().any(|e| super::starts_with_marker(&e.path(), plan::FPM_MARKER)))
        .unwrap_or(false);
    run_configs || !super::installed_dropins(root).is_empty()
}

fn plan_path_eq(a: &Path, b: &Path) -> bool {
    a == b || std::fs::canonicalize(a).ok().zip(std::fs::canonicalize(b).ok()).is_some_and(|(x, y)| x == y)
}

fn check_service(root: &Path, i: &Installed, problems: &mut Vec<String>, warnings: &mut Vec<String>) {
    let below = |p: &Path| super::below(root, p);
    let opts = LoadOptions { prefix: i.prefix.as_ref().map(|p| below(p)) };
    let real = match fpm_config::load(&below(&i.fpm_config), &opts) {
        Ok(c) => c,
        Err(e) => return problems.push(format!("{}: {e}", i.unit)),
    };
    let generated = match std::fs::read_to_string(below(&i.keeper_config))
        .map_err(|e| e.to_string())
        .and_then(|t| plan::generated_listens(&t, &i.keeper_config))
    {
        Ok(g) => g,
        Err(e) => return problems.push(format!("{}: its keeper config {}: {e}", i.unit, i.keeper_config.display())),
    };
    let base = i.unit.strip_suffix(".service").unwrap_or(&i.unit);
    for pool in &real.pools {
        if !i.keep.iter().any(|(name, _)| *name == pool.name) {
            warnings.push(format!(
                "{}: pool [{}] ({}) has no socket keeper: it binds its own socket, which closes while PHP-FPM \
                 restarts (Apache with the module still waits for it); run `fcgi-resilient-helper socket-keeper` again",
                i.unit,
                pool.name,
                pool.loc()
            ));
        }
    }
    for (name, key) in &i.keep {
        let here = format!("{}: pool [{name}]", i.unit);
        let Some(pool) = real.pools.iter().find(|p| p.name == *name) else {
            problems
                .push(format!("{here} is kept but no longer in {}; run socket-keeper again", i.fpm_config.display()));
            continue;
        };
        let computed = plan::effective_key(&real, &generated, name);
        if computed.as_deref() != Some(key.as_str()) {
            problems.push(format!(
                "{here}: key mismatch: the socket is handed over as `{key}` but PHP-FPM looks for `{}`; \
                 it would not start (or would leave the kept socket unserved); run socket-keeper again",
                computed.unwrap_or_else(|| "(none)".into())
            ));
        }
        if key.starts_with('/') && std::fs::symlink_metadata(below(Path::new(key))).is_ok() {
            problems
                .push(format!("{here}: {key} exists: PHP-FPM bound its key itself, nothing serves the kept socket"));
        }
        let Some((Ok(listen), setting)) = pool.listen() else { continue };
        let socket_unit = format!("{base}-keeper-{}.socket", plan::fd_name(name));
        let unit_file = root.join("etc/systemd/system").join(&socket_unit);
        let Ok(text) = std::fs::read_to_string(&unit_file) else {
            problems.push(format!("{here}: its socket unit {} is missing", unit_file.display()));
            continue;
        };
        let unit_settings = socket_settings(&text);
        if !same_stream(&unit_settings.listen_stream, &listen, &setting.value) {
            problems.push(format!(
                "{here}: `listen = {}` ({}) but its socket unit listens on {}: front ends and PHP-FPM disagree; \
                 run socket-keeper again",
                setting.value,
                setting.loc(),
                unit_settings.listen_stream
            ));
        }
        if systemd_failed(&socket_unit) {
            problems.push(format!(
                "{here}: {socket_unit} has failed (queued connects were reset); \
                 `systemctl reset-failed {socket_unit} && systemctl start {socket_unit} {}`",
                i.unit
            ));
        }
        if let Listen::Unix(path) = &listen {
            check_permissions(&here, pool, &below(path), &unit_settings, problems);
            if let Some(link) = &unit_settings.symlink {
                if std::fs::metadata(below(link)).is_err() && std::fs::symlink_metadata(below(path)).is_ok() {
                    warnings
                        .push(format!("{here}: the php-fpm.sock link {} does not lead to a socket", link.display()));
                }
            }
        }
    }
}

/// The kept socket's owner, group and mode against what the pool's config asks for.
fn check_permissions(
    here: &str,
    pool: &fpm_config::Pool,
    path: &Path,
    unit: &SocketSettings,
    problems: &mut Vec<String>,
) {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return };
    if !meta.file_type().is_socket() {
        problems.push(format!("{here}: {} is not a socket", path.display()));
        return;
    }
    let mut wanted = SocketSettings::default();
    plan::permissions_of(pool, &mut wanted);
    if !wanted.acl.is_empty() {
        return;
    }
    let mode = meta.mode() & 0o7777;
    let wanted_mode = wanted.mode.as_deref().and_then(|m| u32::from_str_radix(m, 8).ok());
    let uid = wanted.user.as_deref().and_then(|u| crate::users::user(u).ok()).map(|u| u.uid.as_raw());
    let gid = wanted.group.as_deref().and_then(|g| crate::users::group(g).ok()).map(|g| g.gid.as_raw());
    let differs = wanted_mode.is_some_and(|m| m != mode)
        || uid.is_some_and(|u| u != meta.uid())
        || gid.is_some_and(|g| g != meta.gid());
    if differs {
        problems.push(format!(
            "{here}: {} is {}:{} mode {mode:04o}, but the pool's config asks for {}:{} mode {} (its socket unit \
             says {}:{} {}): inherited sockets keep what systemd gave them; run socket-keeper again and restart \
             the socket unit",
            path.display(),
            crate::users::user_name(meta.uid()),
            crate::users::group_name(meta.gid()),
            wanted.user.as_deref().unwrap_or("?"),
            wanted.group.as_deref().unwrap_or("?"),
            wanted.mode.as_deref().unwrap_or("?"),
            unit.user.as_deref().unwrap_or("root"),
            unit.group.as_deref().unwrap_or("root"),
            unit.mode.as_deref().unwrap_or("0666"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness::WorkDir;

    /// A tree with one TCP pool and Debian's unit.
    fn fixture(work: &WorkDir) -> PathBuf {
        let root = work.path().to_path_buf();
        let etc = root.join("etc/php/8.2/fpm");
        std::fs::create_dir_all(etc.join("pool.d")).unwrap();
        std::fs::create_dir_all(root.join("lib/systemd/system")).unwrap();
        std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
        std::fs::write(
            etc.join("php-fpm.conf"),
            format!("[global]\npid = /run/x.pid\ninclude={}/pool.d/*.conf\n", etc.display()),
        )
        .unwrap();
        std::fs::write(etc.join("pool.d/www.conf"), "[www]\nuser = nobody\nlisten = 127.0.0.1:9000\n").unwrap();
        std::fs::write(
            root.join("lib/systemd/system/php8.2-fpm.service"),
            "[Service]\nType=notify\nExecStart=/usr/sbin/php-fpm8.2 --nodaemonize --fpm-config /etc/php/8.2/fpm/php-fpm.conf\n",
        )
        .unwrap();
        root
    }

    fn install(root: &Path) {
        let code = super::super::main(vec![
            "--root".into(),
            root.display().to_string(),
            "--helper".into(),
            "/usr/sbin/fcgi-resilient-helper".into(),
        ]);
        assert_eq!(code, 0);
    }

    fn installed(work: &WorkDir) -> PathBuf {
        let root = fixture(work);
        install(&root);
        root
    }

    fn report_of(root: &Path) -> (Vec<String>, Vec<String>) {
        let (mut problems, mut warnings) = (Vec::new(), Vec::new());
        report(root, &[], &mut problems, &mut warnings);
        (problems, warnings)
    }

    #[test]
    fn install_then_check_is_clean_and_remove_restores_the_tree() {
        let work = WorkDir::new("keeper-inspect-clean");
        let root = fixture(&work);
        let before = listing(&root);
        install(&root);
        let (problems, warnings) = report_of(&root);
        assert!(problems.is_empty() && warnings.is_empty(), "{problems:?} {warnings:?}");
        // The generated config sets process_control_timeout: check's warning about it goes.
        let (mut problems, mut warnings) = (
            Vec::new(),
            vec![
                "/etc/php/8.2/fpm/php-fpm.conf: process_control_timeout is not set (PHP-FPM's default is 0)"
                    .to_string(),
                "/etc/php/8.1/fpm/php-fpm.conf: process_control_timeout is not set (PHP-FPM's default is 0)"
                    .to_string(),
            ],
        );
        report(&root, &[], &mut problems, &mut warnings);
        assert_eq!(warnings.len(), 1, "only the kept instance's: {warnings:?}");
        assert!(warnings[0].starts_with("/etc/php/8.1/"));
        assert!(root.join("etc/systemd/system/php8.2-fpm-keeper-www.socket").exists());
        assert!(root.join("etc/systemd/system/sockets.target.wants/php8.2-fpm-keeper-www.socket").is_symlink());
        assert!(root.join("etc/fcgi-resilient/socket-keeper/php8.2-fpm.conf").exists());
        assert_ne!(listing(&root), before);
        assert_eq!(super::super::main(vec!["--remove".into(), "--root".into(), root.display().to_string()]), 0);
        assert_eq!(listing(&root), before, "--remove leaves the tree as it was");
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                out.push(e.path().display().to_string());
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn the_module_budget_against_proxy_timeout_with_a_keeper() {
        let work = WorkDir::new("keeper-inspect-timeout");
        let file = work.path().join("httpd.conf");
        let load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            let opts =
                crate::apache_config::LoadOptions { server_root: Some(work.path().to_path_buf()), envvars: None };
            crate::apache_config::load(&file, &opts).unwrap()
        };
        let cfg = load("FcgiResilient On\n");
        let warning = timeout_warning(&cfg, true).expect("60 s default against 10 s");
        assert!(warning.contains("Timeout 60 (httpd's default)"), "{warning}");
        assert_eq!(timeout_warning(&cfg, false), None, "no keeper, nothing to say");
        assert_eq!(timeout_warning(&load("FcgiResilient On\nProxyTimeout 10\n"), true), None);
        assert_eq!(timeout_warning(&load("FcgiResilient Off\n"), true), None);
        let w = timeout_warning(&load("FcgiResilient On\nFcgiResilientTimeout 5s\nTimeout 30\n"), true).unwrap();
        assert!(w.contains("Timeout 30") && w.contains("(5 s)"), "{w}");
    }

    #[test]
    fn a_tampered_key_a_changed_listen_and_a_new_pool_are_reported() {
        let work = WorkDir::new("keeper-inspect-problems");
        let root = installed(&work);
        let dropin = root.join("etc/systemd/system/php8.2-fpm.service.d").join(plan::DROPIN_NAME);
        let text = std::fs::read_to_string(&dropin).unwrap();
        std::fs::write(&dropin, text.replace("--keep www=127.0.0.1:9000", "--keep www=127.0.0.1:9999")).unwrap();
        let (problems, _) = report_of(&root);
        assert!(problems.iter().any(|p| p.contains("key mismatch")), "{problems:?}");
        std::fs::write(&dropin, text).unwrap();
        let pools = root.join("etc/php/8.2/fpm/pool.d");
        std::fs::write(pools.join("www.conf"), "[www]\nuser = nobody\nlisten = 127.0.0.1:9100\n").unwrap();
        std::fs::write(pools.join("api.conf"), "[api]\nuser = nobody\nlisten = 127.0.0.1:9200\n").unwrap();
        let (problems, warnings) = report_of(&root);
        assert!(problems.iter().any(|p| p.contains("but its socket unit listens on 127.0.0.1:9000")), "{problems:?}");
        assert!(
            problems.iter().any(|p| p.contains("key mismatch")),
            "the key follows the changed listen: {problems:?}"
        );
        assert!(warnings.iter().any(|w| w.contains("pool [api]") && w.contains("no socket keeper")), "{warnings:?}");
    }
}
