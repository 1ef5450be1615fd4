//! `check`: does every FastCGI backend Apache names have a pool behind it that
//! Apache's User/Group can actually connect to?

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use fcgi_resilient_common::BackendAddress;

use crate::apache_config::{self, Backend};
use crate::fpm_config::{self, Listen, Pool, Setting};
use crate::options::{ApacheConfigs, FpmConfigs};
use crate::users::{self, Identity};

struct PoolListen<'a> {
    pool: &'a Pool,
    listen: Listen,
    setting: Setting,
}

#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct CheckArgs {
    #[command(flatten)]
    pub apache: ApacheConfigs,
    #[command(flatten)]
    pub fpm: FpmConfigs,
    /// ServerRoot for relative Include paths (default: the ServerRoot directive, else the main
    /// config's directory, or its parent for .../conf/httpd.conf)
    #[arg(long, value_name = "DIR")]
    pub server_root: Option<PathBuf>,
    /// Shell file defining APACHE_RUN_USER etc. (default: SERVERROOT/envvars)
    #[arg(long, value_name = "FILE")]
    pub envvars: Option<PathBuf>,
}

/// The socket path with its directory resolved, when the directory exists.
fn resolved_socket(path: &Path) -> Option<PathBuf> {
    Some(std::fs::canonicalize(path.parent()?).ok()?.join(path.file_name()?))
}

/// The pools' Unix sockets, each resolved once: a shared host has hundreds of pools and as
/// many sites, and resolving both paths of every pair took seconds.
struct UnixSockets {
    resolved: Vec<Option<PathBuf>>,
}

impl UnixSockets {
    fn new(pools: &[PoolListen]) -> Self {
        let resolve = |p: &PoolListen| match &p.listen {
            Listen::Unix(path) => resolved_socket(path),
            Listen::Tcp { .. } => None,
        };
        UnixSockets { resolved: pools.iter().map(resolve).collect() }
    }

    /// The pool listening on `sock`: by the text first; then, since /var/run is usually a
    /// symlink to /run, by what the paths resolve to when the directories exist.
    fn find<'p, 'a>(&self, pools: &'p [PoolListen<'a>], sock: &Path) -> Option<&'p PoolListen<'a>> {
        let by_text = pools.iter().find(|p| matches!(&p.listen, Listen::Unix(l) if l == sock));
        by_text.or_else(|| {
            let wanted = resolved_socket(sock)?;
            let index = self.resolved.iter().position(|r| r.as_ref() == Some(&wanted))?;
            pools.get(index)
        })
    }
}

fn is_local(host: &str) -> bool {
    matches!(host, "localhost" | "::1" | "0.0.0.0" | "::") || host.starts_with("127.")
}

fn tcp_matches(pool_host: &Option<String>, pool_port: u16, host: &str, port: u16) -> bool {
    pool_port == port
        && match pool_host {
            None => true,
            Some(h) => h == host || (is_local(h) && is_local(host) && h != "::1" && host != "::1"),
        }
}

/// How many pools a "no pool listens there" line names: with hundreds of pools the whole
/// list made one line of tens of thousands of characters.
const POOLS_NAMED: usize = 3;

/// Where the pools listen, the likeliest meant first (see `likeness`), at most
/// `POOLS_NAMED` of them.
fn describe_pools(pools: &[PoolListen], wanted: &str) -> String {
    if pools.is_empty() {
        return "no pool listens anywhere".to_string();
    }
    let mut ranked: Vec<&PoolListen> = pools.iter().collect();
    // Stable: among equally likely pools, the config's order.
    ranked.sort_by_key(|p| std::cmp::Reverse(likeness(&p.listen.to_string(), wanted)));
    let list: Vec<String> =
        ranked.iter().take(POOLS_NAMED).map(|p| format!("{} ({})", p.listen, p.setting.loc())).collect();
    match pools.len().saturating_sub(POOLS_NAMED) {
        0 => format!("pools listen on {}", list.join(", ")),
        rest => format!("pools listen on {} and {rest} other place(s)", list.join(", ")),
    }
}

/// Characters two addresses share at the start and at the end: /run/php/php8.2-fpm.sock
/// is the likely meaning of /run/php/php8.1-fpm.sock, site0049.sock of php8.1-site0049.sock.
fn likeness(a: &str, b: &str) -> usize {
    let prefix = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let suffix = a.bytes().rev().zip(b.bytes().rev()).take_while(|(x, y)| x == y).count();
    (prefix + suffix).min(a.len().min(b.len()))
}

fn apache_identity(cfg: &apache_config::ApacheConfig, problems: &mut Vec<String>) -> Option<Identity> {
    let debian = cfg.server_root.join("envvars").exists() || cfg.server_root.starts_with("/etc/apache2");
    let fallback = if debian { "www-data" } else { "apache" };
    let user = cfg.last("User");
    let group = cfg.last("Group");
    let uname = user.map(|d| d.args[0].clone()).unwrap_or_else(|| fallback.to_string());
    let gname = group.map(|d| d.args[0].clone());
    if uname.contains("${") {
        problems.push(format!(
            "{}: User {uname}: variable not defined (looked in {}/envvars and the environment); use --envvars",
            user.map(|d| d.loc()).unwrap_or_default(),
            cfg.server_root.display()
        ));
        return None;
    }
    match Identity::new(&uname, gname.as_deref().filter(|g| !g.contains("${"))) {
        Ok(id) => Some(id),
        Err(e) => {
            let loc = user.or(group).map(|d| format!("{}: ", d.loc())).unwrap_or_default();
            problems.push(format!("{loc}Apache's User/Group: {e}"));
            None
        }
    }
}

/// uid/gid FPM will give the pool's socket when it creates it. FPM: "If the group is
/// not set, the owner's group is used", so with `listen.owner` but no `listen.group`
/// the group is listen.owner's primary group, not the pool's `group`. Without
/// `listen.owner` we keep assuming `user`/`group` (as `prepare` does), and a missing
/// group means the owner's primary group. None if a name does not resolve.
fn predicted_socket_owner(pool: &Pool) -> Option<(u32, u32)> {
    let owner = pool.socket_owner().and_then(|s| users::user(&s.value).ok())?;
    let has_listen_owner = pool.get("listen.owner").is_some_and(|s| !s.value.is_empty());
    let group = match pool.get("listen.group").filter(|s| !s.value.is_empty()) {
        Some(g) => Some(g),
        None if has_listen_owner => None,
        None => pool.socket_group(),
    };
    let gid = match group {
        Some(g) => users::group(&g.value).ok()?.gid,
        None => owner.gid,
    };
    Some((owner.uid.as_raw(), gid.as_raw()))
}

fn check_unix(b: &Backend, sock: &Path, pl: &PoolListen, id: &Identity, problems: &mut Vec<String>) {
    let here = b.directive.loc();
    let Some(dir) = sock.parent() else { return };
    let mut cur = PathBuf::from("/");
    let comps: Vec<_> = dir.components().skip(1).collect();
    for c in std::iter::once(None).chain(comps.into_iter().map(Some)) {
        if let Some(c) = c {
            cur.push(c);
        }
        match std::fs::metadata(&cur) {
            Err(_) => {
                problems.push(format!(
                    "{here}: socket directory {} does not exist (missing {}); PHP-FPM cannot bind {}; \
                     fix: run `fcgi-resilient-helper prepare` before php-fpm starts (systemd drop-in or tmpfiles.d)",
                    dir.display(),
                    cur.display(),
                    sock.display()
                ));
                return;
            }
            Ok(m) => {
                if !id.may(m.mode(), m.uid(), m.gid(), 1) {
                    problems.push(format!(
                        "{here}: Apache runs as {} but cannot enter {} (mode {:04o}, {}:{}); \
                         fix: chmod o+x {} or run `fcgi-resilient-helper prepare`",
                        id.name,
                        cur.display(),
                        m.mode() & 0o7777,
                        users::user_name(m.uid()),
                        users::group_name(m.gid()),
                        cur.display()
                    ));
                    return;
                }
            }
        }
    }
    let pool = pl.pool;
    match std::fs::symlink_metadata(sock) {
        Ok(m) if !m.file_type().is_socket() => {
            problems.push(format!("{here}: {} exists but is not a socket", sock.display()))
        }
        Ok(m) => {
            if !id.may(m.mode(), m.uid(), m.gid(), 2) {
                problems.push(format!(
                    "{here}: Apache runs as {} but cannot connect to {} (mode {:04o}, {}:{}): 13 Permission denied; \
                     fix: set listen.owner/listen.group = {} (or listen.mode = 0666) in pool [{}] ({})",
                    id.name,
                    sock.display(),
                    m.mode() & 0o7777,
                    users::user_name(m.uid()),
                    users::group_name(m.gid()),
                    id.name,
                    pool.name,
                    pool.loc()
                ));
            }
        }
        Err(_) => {
            // Not running: predict the socket FPM will create.
            if pool.get("listen.acl_users").is_some() || pool.get("listen.acl_groups").is_some() {
                return;
            }
            let mode =
                pool.get("listen.mode").and_then(|s| u32::from_str_radix(s.value.trim(), 8).ok()).unwrap_or(0o660);
            if let Some((uid, gid)) = predicted_socket_owner(pool) {
                if !id.may(mode, uid, gid, 2) {
                    problems.push(format!(
                        "{here}: pool [{}] will create {} as {}:{} mode {:04o}, which Apache ({}) cannot connect to; \
                         fix: set listen.owner/listen.group = {} in {}",
                        pool.name,
                        sock.display(),
                        users::user_name(uid),
                        users::group_name(gid),
                        mode,
                        id.name,
                        id.name,
                        pool.loc()
                    ));
                }
            }
        }
    }
}

/// The kernel's cap on every listen backlog (per network namespace).
fn somaxconn() -> Option<i64> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn").ok()?.trim().parse().ok()
}

/// The backlog the pool's socket really gets, and what to blame: `listen.backlog` (unset or
/// -1 means "as many as allowed": php-fpm 8.2 on Linux prints `listen.backlog = -1` with
/// `-tt`; older versions defaulted to 511), capped by net.core.somaxconn.
fn effective_backlog(pool: &Pool, somaxconn: i64) -> (i64, String) {
    let setting = pool.get("listen.backlog");
    let asked = setting.as_ref().and_then(|s| s.value.trim().parse::<i64>().ok()).unwrap_or(-1);
    let place = match &setting {
        Some(s) => format!("{}: listen.backlog = {}", s.loc(), s.value),
        None => format!("{}: pool [{}] (listen.backlog unset)", pool.loc(), pool.name),
    };
    if asked < 0 || asked > somaxconn {
        return (somaxconn, format!("{place}, capped by net.core.somaxconn = {somaxconn}"));
    }
    (asked, place)
}

/// Apache's concurrency: every worker may wait on one pool at once.
fn max_request_workers(cfg: &apache_config::ApacheConfig) -> Option<(i64, String)> {
    let d = cfg.last("MaxRequestWorkers").or_else(|| cfg.last("MaxClients"))?;
    Some((d.args[0].parse().ok()?, d.loc()))
}

/// A backlog smaller than Apache's workers: during a restart or a burst the connections past
/// it are refused instead of queued.
fn backlog_warning(pool: &Pool, workers: i64, workers_at: &str, somaxconn: i64) -> Option<String> {
    let (backlog, place) = effective_backlog(pool, somaxconn);
    (backlog < workers).then(|| {
        format!(
            "{place}: backlog {backlog} is below Apache's MaxRequestWorkers {workers} ({workers_at}); while the pool \
             is busy or restarting, connections past the backlog are refused instead of queued; fix: \
             listen.backlog = -1 (or >= {workers}) and sysctl net.core.somaxconn >= {workers}"
        )
    })
}

pub fn run(o: &CheckArgs) -> i32 {
    let mut problems = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let apache_files = o.apache.files_or_default();
    if apache_files.is_empty() {
        eprintln!("fcgi-resilient-helper: no Apache configuration found; use --apache-config FILE");
        return 1;
    }
    let fpm = match fpm_config::load_all(&o.fpm.files, &o.fpm.load_options()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fcgi-resilient-helper: {e}");
            return 1;
        }
    };
    warnings.extend(fpm.iter().filter_map(|c| c.reload_cut_warning()));
    let mut pools = Vec::new();
    for cfg in &fpm {
        for pool in &cfg.pools {
            match pool.listen() {
                Some((Ok(listen), setting)) => pools.push(PoolListen { pool, listen, setting }),
                Some((Err(e), setting)) => problems.push(format!("{}: {e}", setting.loc())),
                None => problems.push(format!("{}: pool [{}] has no `listen` setting", pool.loc(), pool.name)),
            }
        }
    }
    for (i, a) in pools.iter().enumerate() {
        for b in &pools[..i] {
            if a.listen == b.listen {
                problems.push(format!(
                    "{}: pool [{}] listens on {} like pool [{}] ({}); one of them will fail to start",
                    a.setting.loc(),
                    a.pool.name,
                    a.listen,
                    b.pool.name,
                    b.setting.loc()
                ));
            }
        }
    }
    let unix_sockets = UnixSockets::new(&pools);
    let mut checked = 0;
    for file in &apache_files {
        let opts = apache_config::LoadOptions { server_root: o.server_root.clone(), envvars: o.envvars.clone() };
        let cfg = match apache_config::load(file, &opts) {
            Ok(c) => c,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        problems.extend(cfg.problems.iter().cloned());
        let id = apache_identity(&cfg, &mut problems);
        let workers = max_request_workers(&cfg);
        // With socket keepers the module's budget no longer bounds a wait: said when it is longer.
        warnings.extend(crate::keeper::inspect::timeout_warning(
            &cfg,
            crate::keeper::inspect::keepers_installed(Path::new("/")),
        ));
        if workers.is_none() {
            println!("{}: no MaxRequestWorkers found: listen backlogs not compared with it", file.display());
        }
        let mut backlog_checked: Vec<String> = Vec::new();
        let mut check_backlog = |pool: &Pool, warnings: &mut Vec<String>| {
            let (Some((n, at)), Some(cap)) = (&workers, somaxconn()) else { return };
            if backlog_checked.contains(&pool.name) {
                return;
            }
            backlog_checked.push(pool.name.clone());
            warnings.extend(backlog_warning(pool, *n, at, cap));
        };
        for b in cfg.backends() {
            checked += 1;
            let here = b.directive.loc();
            let what = &b.directive.name;
            match &b.addr {
                BackendAddress::Unix(sock) => {
                    let found = unix_sockets.find(&pools, sock);
                    match (found, &id) {
                        (None, _) => problems.push(format!(
                            "{here}: {what} points at {} but no PHP-FPM pool listens there; {}",
                            sock.display(),
                            describe_pools(&pools, &sock.display().to_string())
                        )),
                        (Some(pl), Some(id)) => {
                            check_unix(&b, sock, pl, id, &mut problems);
                            check_backlog(pl.pool, &mut warnings);
                        }
                        (Some(pl), None) => check_backlog(pl.pool, &mut warnings),
                    }
                }
                BackendAddress::Tcp { host, port } => {
                    if !is_local(host) {
                        println!("{here}: {what} points at {host}:{port}, not on this host: not checked");
                        continue;
                    }
                    let found = pools.iter().find(
                        |p| matches!(&p.listen, Listen::Tcp { host: h, port: pp } if tcp_matches(h, *pp, host, *port)),
                    );
                    match found {
                        None => problems.push(format!(
                            "{here}: {what} points at {host}:{port} but no PHP-FPM pool listens there; {}",
                            describe_pools(&pools, &format!("{host}:{port}"))
                        )),
                        Some(pl) => {
                            check_backlog(pl.pool, &mut warnings);
                            if let Some(allowed) = pl.pool.get("listen.allowed_clients") {
                                let ok =
                                    allowed.value.split(',').map(str::trim).any(|a| {
                                        a == host || (host == "localhost" && a == "127.0.0.1") || a.is_empty()
                                    });
                                if !ok {
                                    problems.push(format!(
                                        "{here}: {what} connects from {host} but pool [{}] only allows {} ({})",
                                        pl.pool.name,
                                        allowed.value,
                                        allowed.loc()
                                    ));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    // Socket keepers: pools without one, keys that do not match, sockets unlike their pool's config.
    crate::keeper::inspect::report(Path::new("/"), &fpm, &mut problems, &mut warnings);
    for p in &problems {
        eprintln!("{p}");
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "{checked} FastCGI backend(s) checked against {} pool(s): {} problem(s), {} warning(s)",
        pools.len(),
        problems.len(),
        warnings.len()
    );
    if problems.is_empty() {
        0
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn pool(settings: &[(&str, &str)]) -> Pool {
        let settings: BTreeMap<String, Setting> = settings
            .iter()
            .enumerate()
            .map(|(i, (k, v))| {
                (k.to_string(), Setting { value: v.to_string(), file: PathBuf::from("/p.conf"), line: i + 2 })
            })
            .collect();
        Pool { name: "www".into(), file: PathBuf::from("/p.conf"), line: 1, settings }
    }

    fn ids(user: &str) -> (u32, u32) {
        let u = users::user(user).unwrap();
        (u.uid.as_raw(), u.gid.as_raw())
    }

    fn unix_pool(path: &str) -> Pool {
        pool(&[("listen", path)])
    }

    fn listening_pools<'a>(pools: &'a [Pool]) -> Vec<PoolListen<'a>> {
        pools
            .iter()
            .map(|pool| {
                let (listen, setting) = pool.listen().unwrap();
                PoolListen { pool, listen: listen.unwrap(), setting }
            })
            .collect()
    }

    #[test]
    fn a_missing_socket_names_the_likeliest_pools_not_all_of_them() {
        let pools: Vec<Pool> = (0..500).map(|i| unix_pool(&format!("/run/php/site{i:04}.sock"))).collect();
        let listening = listening_pools(&pools);
        let text = describe_pools(&listening, "/run/php/php8.1-site0042.sock");
        assert!(text.starts_with("pools listen on /run/php/site0042.sock (/p.conf:2), "), "{text}");
        assert!(text.ends_with(" and 497 other place(s)"), "{text}");
        let few: Vec<Pool> = ["/run/php/php8.2-fpm.sock", "/run/php/other.sock"].map(unix_pool).into();
        let text = describe_pools(&listening_pools(&few), "/run/php/php8.1-fpm.sock");
        assert_eq!(text, "pools listen on /run/php/php8.2-fpm.sock (/p.conf:2), /run/php/other.sock (/p.conf:2)");
    }

    #[test]
    fn sockets_are_found_by_text_and_through_a_symlinked_directory() {
        let dir = std::env::temp_dir().join(format!("fcgi-resilient-check-sockets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("run/php")).unwrap();
        std::os::unix::fs::symlink(dir.join("run"), dir.join("var-run")).unwrap();
        let pools: Vec<Pool> =
            ["a.sock", "b.sock"].map(|n| unix_pool(&dir.join("run/php").join(n).to_string_lossy())).into();
        let listening = listening_pools(&pools);
        let sockets = UnixSockets::new(&listening);
        let found = |path: PathBuf| sockets.find(&listening, &path).map(|p| p.listen.to_string());
        let b = dir.join("run/php/b.sock").display().to_string();
        assert_eq!(found(dir.join("run/php/b.sock")), Some(b.clone()));
        assert_eq!(found(dir.join("var-run/php/b.sock")), Some(b));
        assert_eq!(found(dir.join("var-run/php/c.sock")), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn backlog_against_max_request_workers() {
        let unset = pool(&[]);
        assert_eq!(effective_backlog(&unset, 4096).0, 4096, "unset is -1: somaxconn");
        assert!(backlog_warning(&unset, 400, "a:1", 4096).is_none());
        let w = backlog_warning(&unset, 400, "a:1", 128).unwrap();
        assert!(w.contains("capped by net.core.somaxconn = 128") && w.contains("MaxRequestWorkers 400"), "{w}");
        let small = pool(&[("listen.backlog", "64")]);
        let w = backlog_warning(&small, 400, "apache2.conf:7", 4096).unwrap();
        assert!(w.starts_with("/p.conf:2: listen.backlog = 64: backlog 64"), "{w}");
        assert!(backlog_warning(&pool(&[("listen.backlog", "511")]), 400, "a:1", 4096).is_none());
    }

    #[test]
    fn socket_owner_prediction() {
        let www = ids("www-data");
        let nobody = ids("nobody");
        let nogroup = users::group("nogroup").unwrap().gid.as_raw();
        // listen.owner without listen.group: FPM uses the owner's group, not `group`.
        let p = pool(&[("listen.owner", "nobody"), ("group", "www-data")]);
        assert_eq!(predicted_socket_owner(&p), Some((nobody.0, nobody.1)));
        let p = pool(&[("listen.owner", "www-data")]);
        assert_eq!(predicted_socket_owner(&p), Some(www), "no group anywhere: still checked");
        let p = pool(&[("listen.owner", "nobody"), ("listen.group", "www-data"), ("group", "nogroup")]);
        assert_eq!(predicted_socket_owner(&p), Some((nobody.0, www.1)));
        // No listen.owner: user/group, as before.
        let p = pool(&[("user", "www-data"), ("group", "nogroup")]);
        assert_eq!(predicted_socket_owner(&p), Some((www.0, nogroup)));
        let p = pool(&[("user", "nobody")]);
        assert_eq!(predicted_socket_owner(&p), Some(nobody));
        assert_eq!(predicted_socket_owner(&pool(&[])), None);
        assert_eq!(predicted_socket_owner(&pool(&[("listen.owner", "no-such-user-4711")])), None);
        assert_eq!(
            predicted_socket_owner(&pool(&[("user", "www-data"), ("listen.group", "no-such-group-4711")])),
            None
        );
    }
}
