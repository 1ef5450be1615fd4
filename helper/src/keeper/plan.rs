//! What `socket-keeper` generates for one php*-fpm unit, computed from the unit and the
//! pools of its real PHP-FPM config: one socket unit per pool (its public address, owner,
//! group, mode, backlog), a generated PHP-FPM main config that includes the real one and
//! sets each kept pool's `listen` to its private key, and a service drop-in. Plain text in,
//! plain text out: the unit tests check the generated files from fixture configs.

use std::net::{IpAddr, Ipv6Addr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use crate::fpm_config::{self, FpmConfig, Listen, Pool};
use crate::systemd::FpmStart;

/// First line of every file `socket-keeper` writes: only such files are replaced or removed.
pub const MARKER: &str = "# Written by `fcgi-resilient-helper socket-keeper`";
/// The same for the generated PHP-FPM config, whose comments start with `;`.
pub const FPM_MARKER: &str = "; Written by `fcgi-resilient-helper socket-keeper`";
/// Sorts after `fcgi-resilient.conf` (the drain drop-in of `systemd-dropin`), so that where
/// both are installed this one's ExecStart/ExecStop/ExecReload are the ones systemd uses.
pub const DROPIN_NAME: &str = "fcgi-resilient.socket-keeper.conf";
/// Where the generated PHP-FPM configs live (one per unit).
pub const CONFIG_DIR: &str = "etc/fcgi-resilient/socket-keeper";
/// Parent of the private keys. Never created by anyone: a pool whose inherited socket was not
/// matched would have PHP-FPM bind its key path itself, and with no such directory that bind
/// fails with ENOENT and PHP-FPM exits, so the start fails loudly instead of hanging requests.
pub const KEY_DIR: &str = "/run/fcgi-resilient/socket-keeper.keys";
/// process_control_timeout set in the generated config when the real one has none (or 0): the
/// graceful stop (SIGQUIT) and reload (SIGUSR2) let running requests finish only when it is > 0.
pub const PROCESS_CONTROL_TIMEOUT_SECONDS: u64 = 30;
/// The longest Unix socket path (sun_path is 108 bytes with its NUL).
const SUN_PATH_MAX: usize = 107;

/// One pool whose listening socket systemd keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptPool {
    pub pool: String,
    /// Where the pool's config says it listens (`file:line`), for messages.
    pub listen_at: String,
    /// The address front ends use: the pool's `listen`, now systemd's socket.
    pub public: Listen,
    /// FileDescriptorName= of its socket, the name in LISTEN_FDNAMES.
    pub fd_name: String,
    pub socket_unit: String,
    /// What the generated config sets `listen` to, when the pool's own text would not give a
    /// key PHP-FPM computes the same way every time (Unix paths always: see KEY_DIR).
    pub listen_override: Option<String>,
    /// The FPM_SOCKETS key PHP-FPM builds from the (overridden) `listen`.
    pub key: String,
    pub socket: SocketSettings,
}

/// The [Socket] settings that give the socket what PHP-FPM would have given it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SocketSettings {
    pub listen_stream: String,
    pub bind_ipv6_only_both: bool,
    pub user: Option<String>,
    pub group: Option<String>,
    pub mode: Option<String>,
    pub backlog: Option<i64>,
    /// setfacl entries (`u:apache:rw`) for listen.acl_users/acl_groups.
    pub acl: Vec<String>,
    /// Debian's /run/php/php-fpm.sock (the php-fpm.sock alternative), made by systemd now.
    pub symlink: Option<PathBuf>,
}

/// Everything generated for one unit.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePlan {
    pub unit: String,
    /// The unit's name without `.service`: php8.2-fpm, php-fpm.
    pub base: String,
    pub start: FpmStart,
    /// The unit's ExecStart= line (the value), rewritten to use the generated config.
    pub exec_start: String,
    pub generated_config: PathBuf,
    pub pools: Vec<KeptPool>,
    /// Pools left with their own socket, and why.
    pub skipped: Vec<String>,
    pub set_process_control_timeout: bool,
}

/// A FileDescriptorName= and unit-name friendly form of a pool name.
pub fn fd_name(pool: &str) -> String {
    let cleaned: String =
        pool.chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '_' }).collect();
    cleaned.chars().take(200).collect()
}

/// The key PHP-FPM builds for an inherited TCP socket: inet_ntop of the address, `:`, port
/// (fpm_sockets_hash_op in sapi/fpm/fpm/fpm_sockets.c; no brackets around IPv6).
pub fn tcp_key(ip: IpAddr, port: u16) -> String {
    format!("{ip}:{port}")
}

/// The key of a Unix pool: a path below KEY_DIR that never exists on disk.
pub fn unix_key(base: &str, fd_name: &str) -> String {
    format!("{KEY_DIR}/{base}/{fd_name}.sock")
}

/// The public address, the `listen` override and the key for one pool's `listen` text.
fn addresses(
    base: &str,
    name: &str,
    raw: &str,
    listen: &Listen,
) -> Result<(Option<String>, String, String, bool), String> {
    match listen {
        Listen::Unix(path) => {
            let key = unix_key(base, name);
            if key.len() > SUN_PATH_MAX {
                return Err(format!("its key {key} would be longer than a Unix socket path may be"));
            }
            Ok((Some(key.clone()), key, path.display().to_string(), false))
        }
        Listen::Tcp { host: Some(host), port } => {
            let literal = host.parse::<IpAddr>().ok();
            let ip = match literal {
                Some(ip) => ip,
                // A name: resolved now, and written as the address, so PHP-FPM and systemd bind
                // the same one and the key does not depend on a later lookup.
                None => (host.as_str(), *port)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .map(|a| a.ip())
                    .ok_or_else(|| format!("cannot resolve `{host}`"))?,
            };
            let stream = match ip {
                IpAddr::V4(v4) => format!("{v4}:{port}"),
                IpAddr::V6(v6) => format!("[{v6}]:{port}"),
            };
            let override_listen = literal.is_none().then(|| stream.clone());
            Ok((override_listen, tcp_key(ip, *port), stream, false))
        }
        Listen::Tcp { host: None, port } => {
            if raw.trim().starts_with("0.0.0.0:") {
                let ip = IpAddr::from([0, 0, 0, 0]);
                return Ok((None, tcp_key(ip, *port), format!("0.0.0.0:{port}"), false));
            }
            // `9000`, `*:9000`, `[::]:9000`: every address, IPv6 and IPv4, written explicitly so
            // that the key is always `:::PORT`.
            let any = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
            let stream = format!("[::]:{port}");
            Ok((Some(stream.clone()), tcp_key(any, *port), stream, true))
        }
    }
}

/// The socket's owner, group and mode as PHP-FPM would set them (fpm_unix_resolve_socket_premissions):
/// listen.owner, else the pool's user; listen.group, else (with listen.owner) the owner's
/// primary group, else the pool's group; listen.mode, else 0660. With listen.acl_users or
/// acl_groups PHP-FPM ignores owner and group and sets ACL entries instead.
pub fn permissions_of(pool: &Pool, settings: &mut SocketSettings) {
    let value = |key: &str| pool.get(key).map(|s| s.value.trim().to_string()).filter(|v| !v.is_empty());
    settings.mode = Some(value("listen.mode").unwrap_or_else(|| "0660".to_string()));
    let acl_users = value("listen.acl_users");
    let acl_groups = value("listen.acl_groups");
    if acl_users.is_some() || acl_groups.is_some() {
        let users = acl_users.iter().flat_map(|v| v.split(',')).map(|u| format!("u:{}:rw", u.trim()));
        let groups = acl_groups.iter().flat_map(|v| v.split(',')).map(|g| format!("g:{}:rw", g.trim()));
        settings.acl = users.chain(groups).collect();
        return;
    }
    let owner = value("listen.owner");
    let user = owner.clone().or_else(|| value("user"));
    let group = match value("listen.group") {
        Some(g) => Some(g),
        None if owner.is_some() => None,
        None => value("group"),
    };
    // No group: the owner's primary group, named explicitly (systemd would leave it root's).
    let group = group.or_else(|| {
        let u = crate::users::user(user.as_deref()?).ok()?;
        Some(crate::users::group_name(u.gid.as_raw()))
    });
    settings.user = user;
    settings.group = group;
}

/// Plans one unit from its ExecStart and its loaded config. `debian_link` is the
/// php-fpm.sock alternative this unit's `socket_helper_pool` file would have made.
pub fn plan_service(
    unit: &str,
    exec_start: &str,
    start: &FpmStart,
    config: &FpmConfig,
    generated_config: &Path,
    debian_link: Option<(&Path, &Path)>,
) -> ServicePlan {
    let base = unit.strip_suffix(".service").unwrap_or(unit).to_string();
    let mut pools: Vec<KeptPool> = Vec::new();
    let mut skipped = Vec::new();
    for pool in &config.pools {
        let Some((Ok(listen), setting)) = pool.listen() else {
            skipped.push(format!("pool [{}] ({}): no valid `listen`", pool.name, pool.loc()));
            continue;
        };
        // The wrapper finds a pool's fd by this name: it must be the pool's alone.
        let name = fd_name(&pool.name);
        if let Some(other) = pools.iter().find(|p| p.fd_name == name) {
            skipped.push(format!(
                "pool [{}] ({}): its name gives the same socket name `{name}` as pool [{}]; rename one",
                pool.name,
                pool.loc(),
                other.pool
            ));
            continue;
        }
        let (listen_override, key, stream, dual) = match addresses(&base, &name, &setting.value, &listen) {
            Ok(a) => a,
            Err(e) => {
                skipped.push(format!("pool [{}] ({}): {e}", pool.name, setting.loc()));
                continue;
            }
        };
        let mut socket = SocketSettings { listen_stream: stream, bind_ipv6_only_both: dual, ..Default::default() };
        if matches!(listen, Listen::Unix(_)) {
            // Owner, group, mode and ACLs are a Unix socket's; the backlog is every socket's.
            permissions_of(pool, &mut socket);
            if let Some((link, file)) = debian_link {
                if pool.file == file || setting.file == file {
                    socket.symlink = Some(link.to_path_buf());
                }
            }
        }
        // -1 (PHP-FPM's default on Linux) means as many as allowed: systemd's default too.
        socket.backlog =
            pool.get("listen.backlog").and_then(|b| b.value.trim().parse::<i64>().ok()).filter(|n| *n >= 0);
        pools.push(KeptPool {
            pool: pool.name.clone(),
            listen_at: setting.loc(),
            public: listen,
            socket_unit: format!("{base}-keeper-{name}.socket"),
            fd_name: name,
            listen_override,
            key,
            socket,
        });
    }
    let timeout = config.global.get("process_control_timeout").and_then(|s| fpm_config::parse_seconds(&s.value));
    ServicePlan {
        unit: unit.to_string(),
        exec_start: rewrite_exec_start(exec_start, generated_config),
        base,
        start: start.clone(),
        generated_config: generated_config.to_path_buf(),
        pools,
        skipped,
        set_process_control_timeout: !matches!(timeout, Some(t) if t > 0),
    }
}

/// The ExecStart value with the config option pointing at `generated` (appended when the
/// unit names none, as Fedora's `php-fpm --nodaemonize`).
pub fn rewrite_exec_start(exec_start: &str, generated: &Path) -> String {
    let generated = generated.display().to_string();
    let mut words: Vec<String> = Vec::new();
    let mut replaced = false;
    let mut iter = exec_start.split_whitespace().peekable();
    while let Some(w) = iter.next() {
        if w == "-y" || w == "--fpm-config" {
            iter.next();
            words.push("--fpm-config".to_string());
            words.push(generated.clone());
            replaced = true;
        } else if w.starts_with("--fpm-config=") || (w.starts_with("-y") && w.len() > 2) {
            words.push("--fpm-config".to_string());
            words.push(generated.clone());
            replaced = true;
        } else {
            words.push(w.to_string());
        }
    }
    if !replaced {
        words.push("--fpm-config".to_string());
        words.push(generated);
    }
    words.join(" ")
}

/// An argument as systemd reads it literally: `%` starts a specifier, `$` a variable.
fn escape(arg: &str) -> String {
    arg.replace('%', "%%").replace('$', "$$")
}

pub fn render_socket(plan: &ServicePlan, pool: &KeptPool) -> String {
    let s = &pool.socket;
    let mut text = format!(
        "{MARKER} for pool [{}] of {}\n\
         # (`listen` at {}). Generated from the pool's config; run `fcgi-resilient-helper socket-keeper`\n\
         # again after changing it, `fcgi-resilient-helper socket-keeper --remove` takes it away.\n\
         # To stop PHP-FPM for good, stop this socket too: a connect to it starts {} again.\n\
         [Unit]\n\
         Description=Socket of PHP-FPM pool {} ({}), kept open across its restarts\n\
         # No PartOf=: a restart of PHP-FPM must not close the socket, or its queued connects.\n\n\
         [Socket]\n\
         ListenStream={}\n\
         FileDescriptorName={}\n\
         Service={}\n",
        pool.pool,
        plan.unit,
        pool.listen_at,
        plan.unit,
        pool.pool,
        plan.unit,
        escape(&s.listen_stream),
        pool.fd_name,
        plan.unit
    );
    if s.bind_ipv6_only_both {
        text += "BindIPv6Only=both\n";
    }
    if let Some(u) = &s.user {
        text += &format!("SocketUser={}\n", escape(u));
    }
    if let Some(g) = &s.group {
        text += &format!("SocketGroup={}\n", escape(g));
    }
    if let Some(m) = &s.mode {
        text += &format!("SocketMode={m}\n");
    }
    if let Some(b) = s.backlog {
        text += &format!("Backlog={b}\n");
    }
    if matches!(pool.public, Listen::Unix(_)) {
        // The path goes with the socket when it is stopped for good (--remove), so PHP-FPM can
        // bind it again; the Debian link too.
        text += "RemoveOnStop=yes\n";
    }
    if let Some(link) = &s.symlink {
        text += &format!(
            "# Debian's php-fpm.sock link (its php-fpm-socket-helper no longer runs: the drop-in replaces it).\n\
             Symlinks={}\n",
            escape(&link.display().to_string())
        );
    }
    if !s.acl.is_empty() {
        text += &format!(
            "# listen.acl_users/acl_groups: PHP-FPM sets no ACL on an inherited socket.\n\
             ExecStartPost=/usr/bin/setfacl -m {} {}\n",
            s.acl.join(","),
            escape(&s.listen_stream)
        );
    }
    text += "\n[Install]\nWantedBy=sockets.target\n";
    text
}

/// `--keep POOL=KEY` arguments of the wrapper and of the start check.
fn keep_args(plan: &ServicePlan) -> String {
    plan.pools.iter().map(|p| format!(" --keep {}", escape(&format!("{}={}", p.pool, p.key)))).collect()
}

pub fn render_dropin(plan: &ServicePlan, helper: &Path) -> String {
    let helper = escape(&helper.display().to_string());
    let real = escape(&plan.start.config.display().to_string());
    let generated = escape(&plan.generated_config.display().to_string());
    let prefix = plan.start.prefix.as_ref().map(|p| escape(&p.display().to_string()));
    let prefix_arg = prefix.as_ref().map(|p| format!(" --fpm-prefix {p}")).unwrap_or_default();
    let php_prefix = prefix.as_ref().map(|p| format!(" --prefix {p}")).unwrap_or_default();
    let sockets: Vec<&str> = plan.pools.iter().map(|p| p.socket_unit.as_str()).collect();
    let sockets = sockets.join(" ");
    let keep = keep_args(plan);
    let binary = escape(&plan.start.binary.display().to_string());
    let stop_seconds = PROCESS_CONTROL_TIMEOUT_SECONDS + 15;
    format!(
        "{MARKER} for {unit}\n\
         # PHP-FPM gets its listening sockets from systemd (socket units {sockets}), which keeps them\n\
         # open across restarts, crashes and broken reloads: connects queue instead of failing.\n\
         # Run `fcgi-resilient-helper socket-keeper` again after adding a pool or changing a `listen`;\n\
         # `fcgi-resilient-helper socket-keeper --remove` takes it away.\n\
         [Unit]\n\
         Requires={sockets}\n\
         After={sockets}\n\
         # A broken config is retried (Restart=) for as long as it takes: hitting the start limit\n\
         # would fail the socket units too and reset every queued connect.\n\
         StartLimitIntervalSec=0\n\n\
         [Service]\n\
         Sockets={sockets}\n\
         # The wrapper checks the keys and turns LISTEN_FDS into FPM_SOCKETS, then execs php-fpm\n\
         # (same PID: Type=notify and USR2 keep working) with the generated config {generated}.\n\
         ExecStart=\n\
         ExecStart={helper} socket-keeper exec --fpm-config {real}{prefix_arg} --keeper-config {generated}{keep} -- {exec}\n\
         # Debian's php-fpm-socket-helper does nothing for a socket PHP-FPM did not create and would\n\
         # remove the php-fpm.sock link at every stop; the socket unit makes the link instead.\n\
         ExecStartPost=\n\
         ExecStartPost={helper} socket-keeper verify{keep}\n\
         ExecStopPost=\n\
         # A reload with a broken config fails here and the running master keeps serving.\n\
         ExecReload=\n\
         ExecReload={binary}{php_prefix} --test --fpm-config {generated}\n\
         ExecReload=/bin/kill -USR2 $MAINPID\n\
         # A graceful stop: SIGQUIT to the master only, which lets the workers finish their requests\n\
         # (process_control_timeout) while new connects queue on the kept sockets.\n\
         ExecStop=\n\
         KillMode=mixed\n\
         KillSignal=SIGQUIT\n\
         TimeoutStopSec={stop_seconds}s\n\
         Restart=on-failure\n\
         RestartSec=500ms\n",
        unit = plan.unit,
        exec = escape(&plan.exec_start),
    )
}

pub fn render_config(plan: &ServicePlan) -> String {
    let mut text = format!(
        "{FPM_MARKER} for {unit}:\n\
         ; PHP-FPM's own config, with each kept pool's `listen` replaced by the key under which its\n\
         ; socket is inherited from systemd. Edit the pools in the included files, not here; run\n\
         ; `fcgi-resilient-helper socket-keeper` again after adding a pool or changing a `listen`.\n\
         include = {real}\n",
        unit = plan.unit,
        real = plan.start.config.display()
    );
    // Read by the module's status page (which backends have a keeper) for `socket-keeper run`.
    for pool in &plan.pools {
        text += &format!("; kept: {}\n", pool.socket.listen_stream);
    }
    for pool in &plan.pools {
        if let Some(listen) = &pool.listen_override {
            text += &format!(
                "\n; public address {} (socket unit {})\n[{}]\nlisten = {}\n",
                pool.socket.listen_stream, pool.socket_unit, pool.pool, listen
            );
        }
    }
    if plan.set_process_control_timeout {
        text += &format!(
            "\n; Unset or 0 in {}: a graceful stop or reload would cut the requests in flight.\n\
             [global]\nprocess_control_timeout = {PROCESS_CONTROL_TIMEOUT_SECONDS}s\n",
            plan.start.config.display()
        );
    }
    text
}

/// The `listen` values the generated config sets, by pool: its own sections only (its
/// `include` is the real config, read separately), so that `--root` trees read their own files.
pub fn generated_listens(text: &str, file: &Path) -> Result<Vec<(String, String)>, String> {
    let lines = fpm_config::parse_text(text, file, &|_| None).map_err(|e| e.to_string())?;
    let mut section = String::new();
    let mut out = Vec::new();
    for (_, line) in lines {
        match line {
            fpm_config::Line::Section(name) => section = name,
            fpm_config::Line::Entry { key, value } if key.eq_ignore_ascii_case("listen") && section != "global" => {
                out.retain(|(p, _): &(String, String)| *p != section);
                out.push((section.clone(), value));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The key PHP-FPM will look for in pool `name`: from the generated config's override, else
/// from the pool's own `listen` in the real config.
pub fn effective_key(real: &FpmConfig, generated: &[(String, String)], name: &str) -> Option<String> {
    let raw = match generated.iter().find(|(p, _)| p == name) {
        Some((_, v)) => v.replace("$pool", name),
        None => real.pools.iter().find(|p| p.name == name)?.get("listen")?.value,
    };
    let listen = fpm_config::parse_listen(&raw).ok()?;
    super::exec::key_of_listen(&raw, &listen)
}

/// Debian's ExecStartPost `php-fpm-socket-helper install LINK POOL_FILE PRIORITY`.
pub fn debian_socket_helper(unit_text: &str) -> Option<(PathBuf, PathBuf, u32)> {
    let line = unit_text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ExecStartPost="))
        .find(|l| l.contains("php-fpm-socket-helper"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "install")?;
    Some((words.get(at + 1)?.into(), words.get(at + 2)?.into(), words.get(at + 3)?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fpm_config::LoadOptions;
    use harness::WorkDir;

    fn load(dir: &Path, main: &str, pools: &[(&str, &str)]) -> FpmConfig {
        std::fs::create_dir_all(dir.join("pool.d")).unwrap();
        std::fs::write(dir.join("php-fpm.conf"), format!("{main}\ninclude={}/pool.d/*.conf\n", dir.display())).unwrap();
        for (name, text) in pools {
            std::fs::write(dir.join("pool.d").join(format!("{name}.conf")), text).unwrap();
        }
        fpm_config::load(&dir.join("php-fpm.conf"), &LoadOptions::default()).unwrap()
    }

    fn start(dir: &Path) -> FpmStart {
        FpmStart { binary: "/usr/sbin/php-fpm8.2".into(), config: dir.join("php-fpm.conf"), prefix: None }
    }

    const DEBIAN_EXEC: &str = "/usr/sbin/php-fpm8.2 --nodaemonize --fpm-config /etc/php/8.2/fpm/php-fpm.conf";

    #[test]
    fn debian_unix_pool_gets_a_socket_unit_with_its_owner_mode_and_backlog() {
        let work = WorkDir::new("keeper-plan-unix");
        let dir = work.path();
        let www = "[www]\nuser = www-data\ngroup = www-data\nlisten = /run/php/php8.2-fpm.sock\n\
                   listen.owner = www-data\nlisten.group = www-data\nlisten.mode = 0666\nlisten.backlog = 511\n";
        let cfg = load(dir, "[global]\npid = /run/php/php8.2-fpm.pid\n", &[("www", www)]);
        let www_file = dir.join("pool.d/www.conf");
        let plan = plan_service(
            "php8.2-fpm.service",
            DEBIAN_EXEC,
            &start(dir),
            &cfg,
            Path::new("/etc/fcgi-resilient/socket-keeper/php8.2-fpm.conf"),
            Some((Path::new("/run/php/php-fpm.sock"), &www_file)),
        );
        assert!(plan.skipped.is_empty(), "{:?}", plan.skipped);
        let pool = &plan.pools[0];
        assert_eq!(pool.key, "/run/fcgi-resilient/socket-keeper.keys/php8.2-fpm/www.sock");
        assert_eq!(pool.listen_override.as_deref(), Some(pool.key.as_str()));
        let socket = render_socket(&plan, pool);
        for line in [
            "ListenStream=/run/php/php8.2-fpm.sock\n",
            "FileDescriptorName=www\n",
            "Service=php8.2-fpm.service\n",
            "SocketUser=www-data\n",
            "SocketGroup=www-data\n",
            "SocketMode=0666\n",
            "Backlog=511\n",
            "Symlinks=/run/php/php-fpm.sock\n",
            "RemoveOnStop=yes\n",
        ] {
            assert!(socket.contains(line), "missing {line:?} in\n{socket}");
        }
        assert_eq!(pool.socket_unit, "php8.2-fpm-keeper-www.socket");
        let config = render_config(&plan);
        assert!(config.contains(&format!("include = {}\n", dir.join("php-fpm.conf").display())));
        assert!(config.contains("[www]\nlisten = /run/fcgi-resilient/socket-keeper.keys/php8.2-fpm/www.sock\n"));
        assert!(config.contains("; kept: /run/php/php8.2-fpm.sock\n"), "for the module's status page");
        assert!(config.contains("[global]\nprocess_control_timeout = 30s\n"), "{config}");
        let dropin = render_dropin(&plan, Path::new("/usr/sbin/fcgi-resilient-helper"));
        for line in [
            "Sockets=php8.2-fpm-keeper-www.socket\n",
            "Requires=php8.2-fpm-keeper-www.socket\n",
            "ExecStart=\n",
            "--keeper-config /etc/fcgi-resilient/socket-keeper/php8.2-fpm.conf --keep www=/run/fcgi-resilient/socket-keeper.keys/php8.2-fpm/www.sock -- /usr/sbin/php-fpm8.2 --nodaemonize --fpm-config /etc/fcgi-resilient/socket-keeper/php8.2-fpm.conf\n",
            "ExecReload=/usr/sbin/php-fpm8.2 --test --fpm-config /etc/fcgi-resilient/socket-keeper/php8.2-fpm.conf\n",
            "ExecReload=/bin/kill -USR2 $MAINPID\n",
            "KillMode=mixed\n",
            "KillSignal=SIGQUIT\n",
            "ExecStopPost=\n",
            "StartLimitIntervalSec=0\n",
        ] {
            assert!(dropin.contains(line), "missing {line:?} in\n{dropin}");
        }
    }

    #[test]
    fn tcp_pools_keep_their_address_as_key_and_every_address_is_made_explicit() {
        let work = WorkDir::new("keeper-plan-tcp");
        let dir = work.path();
        let cfg = load(
            dir,
            "[global]\nprocess_control_timeout = 10s\n",
            &[
                ("a", "[a]\nuser = nobody\nlisten = 127.0.0.1:9001\nlisten.backlog = 100\n"),
                ("b", "[b]\nuser = nobody\nlisten = 9002\n"),
                ("c", "[c]\nuser = nobody\nlisten = [::1]:9003\n"),
                ("d", "[d]\nuser = nobody\nlisten = 0.0.0.0:9004\n"),
            ],
        );
        let plan = plan_service(
            "php-fpm.service",
            "/usr/sbin/php-fpm --nodaemonize",
            &start(dir),
            &cfg,
            Path::new("/g.conf"),
            None,
        );
        let keys: Vec<(&str, &str, Option<&str>)> = plan
            .pools
            .iter()
            .map(|p| (p.key.as_str(), p.socket.listen_stream.as_str(), p.listen_override.as_deref()))
            .collect();
        assert_eq!(
            keys,
            [
                ("127.0.0.1:9001", "127.0.0.1:9001", None),
                (":::9002", "[::]:9002", Some("[::]:9002")),
                ("::1:9003", "[::1]:9003", None),
                ("0.0.0.0:9004", "0.0.0.0:9004", None),
            ]
        );
        assert!(render_socket(&plan, &plan.pools[0]).contains("Backlog=100\n"));
        assert!(!render_socket(&plan, &plan.pools[0]).contains("SocketUser"), "owner applies to Unix sockets only");
        assert!(render_socket(&plan, &plan.pools[1]).contains("BindIPv6Only=both\n"));
        assert!(!plan.set_process_control_timeout);
        assert_eq!(plan.exec_start, "/usr/sbin/php-fpm --nodaemonize --fpm-config /g.conf", "Fedora names no config");
        let config = render_config(&plan);
        assert!(!config.contains("[a]"), "a literal address needs no override:\n{config}");
        assert!(config.contains("[b]\nlisten = [::]:9002\n"));
    }

    #[test]
    fn fedora_acl_pool_gets_its_acl_back_and_names_are_cleaned() {
        let work = WorkDir::new("keeper-plan-acl");
        let dir = work.path();
        let cfg = load(
            dir,
            "",
            &[
                ("www", "[my pool]\nuser = nobody\nlisten = /run/php-fpm/www.sock\nlisten.acl_users = apache,nginx\n"),
                ("x", "[my_pool]\nuser = nobody\nlisten = /run/php-fpm/x.sock\n"),
            ],
        );
        let plan = plan_service(
            "php-fpm.service",
            "/usr/sbin/php-fpm --nodaemonize",
            &start(dir),
            &cfg,
            Path::new("/g.conf"),
            None,
        );
        let pool = &plan.pools[0];
        assert_eq!(pool.fd_name, "my_pool");
        assert_eq!(plan.pools.len(), 1, "a second pool cleaned to the same socket name is left alone");
        assert!(plan.skipped[0].contains("same socket name `my_pool`"), "{:?}", plan.skipped);
        let socket = render_socket(&plan, pool);
        assert!(
            socket.contains("ExecStartPost=/usr/bin/setfacl -m u:apache:rw,u:nginx:rw /run/php-fpm/www.sock\n"),
            "{socket}"
        );
        assert!(!socket.contains("SocketUser"), "PHP-FPM ignores owner and group with ACLs");
        assert!(socket.contains("SocketMode=0660\n"));
        assert!(render_config(&plan).contains("[my pool]\nlisten = "));
    }

    #[test]
    fn exec_start_rewrites_and_debian_helper_line() {
        let g = Path::new("/g.conf");
        assert_eq!(rewrite_exec_start("/x -y /a.conf -R", g), "/x --fpm-config /g.conf -R");
        assert_eq!(rewrite_exec_start("/x --fpm-config=/a.conf", g), "/x --fpm-config /g.conf");
        let unit = "ExecStartPost=-/usr/lib/php/php-fpm-socket-helper install /run/php/php-fpm.sock /etc/php/8.2/fpm/pool.d/www.conf 82\n";
        assert_eq!(
            debian_socket_helper(unit),
            Some(("/run/php/php-fpm.sock".into(), "/etc/php/8.2/fpm/pool.d/www.conf".into(), 82))
        );
        assert_eq!(debian_socket_helper("ExecStartPost=/bin/true\n"), None);
    }
}
