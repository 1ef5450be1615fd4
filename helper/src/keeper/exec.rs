//! `socket-keeper exec`: the ExecStart wrapper. systemd passes the kept sockets as LISTEN_FDS
//! (fd 3 on) named by LISTEN_FDNAMES; PHP-FPM adopts inherited sockets only through
//! `FPM_SOCKETS=key=fd,...` and only under the key it builds from the pool's `listen`. The
//! wrapper checks everything that would otherwise fail silently (a key PHP-FPM would not
//! match: requests hang; a stale fd: workers respawn in a loop; a `listen` changed since the
//! socket unit was generated: front ends and socket disagree), then execs php-fpm, so that
//! php-fpm keeps the unit's main PID (Type=notify, `kill -USR2 $MAINPID`).
//!
//! `socket-keeper verify`: the ExecStartPost check that the keys matched after all (PHP-FPM
//! bound no key path itself).

use std::mem::ManuallyDrop;
use std::os::fd::{BorrowedFd, FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use nix::sys::socket::{getsockname, getsockopt, sockopt, AddressFamily, SockaddrLike, SockaddrStorage};

use super::plan::{self, KEY_DIR};
use crate::fpm_config::{self, Listen, LoadOptions};

/// The first inherited fd (SD_LISTEN_FDS_START).
const FIRST_FD: RawFd = 3;

#[derive(clap::Args, Debug, Clone, PartialEq, Default)]
pub struct ExecOpts {
    /// The unit's own PHP-FPM config
    #[arg(long, value_name = "FILE", required = true)]
    pub fpm_config: PathBuf,
    /// The generated config that sets each pool's `listen` to its key
    #[arg(long, value_name = "FILE", required = true)]
    pub keeper_config: PathBuf,
    /// PHP-FPM's prefix (its --prefix), for relative paths in its config
    #[arg(long = "fpm-prefix", value_name = "DIR")]
    pub prefix: Option<PathBuf>,
    /// A kept pool and the key PHP-FPM must find its socket under (repeatable)
    #[arg(long, value_name = "POOL=KEY", required = true, value_parser = parse_keep)]
    pub keep: Vec<(String, String)>,
    /// PHP-FPM's command line
    #[arg(last = true, required = true, value_name = "PHP-FPM COMMAND")]
    pub command: Vec<String>,
}

#[derive(clap::Args, Debug, Clone, PartialEq, Default)]
pub struct VerifyOpts {
    /// A kept pool and its key (repeatable)
    #[arg(long, value_name = "POOL=KEY", value_parser = parse_keep)]
    pub keep: Vec<(String, String)>,
}

/// Parses `POOL=KEY` (the pool name may not contain `=`; keys may).
pub fn parse_keep(v: &str) -> Result<(String, String), String> {
    let (pool, key) = v.split_once('=').ok_or_else(|| format!("--keep: `{v}` is not POOL=KEY"))?;
    if pool.is_empty() || key.is_empty() {
        return Err(format!("--keep: `{v}` is not POOL=KEY"));
    }
    Ok((pool.to_string(), key.to_string()))
}

/// The key PHP-FPM builds from a `listen` value; None where it depends on a lookup.
pub fn key_of_listen(raw: &str, listen: &Listen) -> Option<String> {
    match listen {
        Listen::Unix(p) => Some(p.display().to_string()),
        Listen::Tcp { host: Some(h), port } => Some(plan::tcp_key(h.parse().ok()?, *port)),
        Listen::Tcp { host: None, port } => {
            let t = raw.trim();
            if t.starts_with("0.0.0.0:") {
                Some(format!("0.0.0.0:{port}"))
            } else if t.starts_with("[::]:") {
                Some(format!(":::{port}"))
            } else {
                // `9000` or `*:9000`: PHP-FPM picks the family at run time.
                None
            }
        }
    }
}

/// An inherited socket: listening, and bound where the pool's real config says.
fn socket_problem(fd: RawFd, public: &Listen) -> Option<String> {
    // SAFETY: `fd` was passed by systemd (LISTEN_FDS) and stays open for the whole call; the
    // borrow does not outlive it and nothing closes it meanwhile.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    match getsockopt(&borrowed, sockopt::AcceptConn) {
        Ok(true) => {}
        Ok(false) => return Some(format!("fd {fd} is a socket but not listening")),
        Err(e) => return Some(format!("fd {fd} is not a usable socket ({e})")),
    }
    let family: Option<AddressFamily> = match getsockname::<SockaddrStorage>(fd) {
        Ok(a) => a.family(),
        Err(e) => return Some(format!("fd {fd}: getsockname: {e}")),
    };
    // The address read through std's listeners, borrowed: never dropped, so the fd stays open.
    let bound = match family {
        Some(AddressFamily::Unix) => {
            // SAFETY: `fd` is an open Unix socket (checked above) that outlives this borrow;
            // ManuallyDrop keeps the listener from closing it.
            let listener = ManuallyDrop::new(unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) });
            match listener.local_addr().ok().and_then(|a| a.as_pathname().map(Path::to_path_buf)) {
                Some(path) => Listen::Unix(path),
                None => return Some(format!("fd {fd} is a Unix socket without a path")),
            }
        }
        Some(AddressFamily::Inet | AddressFamily::Inet6) => {
            // SAFETY: as above, for an open TCP socket.
            let listener = ManuallyDrop::new(unsafe { std::net::TcpListener::from_raw_fd(fd) });
            match listener.local_addr() {
                Ok(a) => Listen::Tcp { host: Some(a.ip().to_string()), port: a.port() },
                Err(e) => return Some(format!("fd {fd}: {e}")),
            }
        }
        other => return Some(format!("fd {fd} is neither Unix nor TCP (family {other:?})")),
    };
    let matches = match (public, &bound) {
        (Listen::Unix(want), Listen::Unix(got)) => want == got,
        (Listen::Tcp { host, port }, Listen::Tcp { host: Some(got), port: got_port }) => {
            let got: Option<std::net::IpAddr> = got.parse().ok();
            port == got_port
                && match host {
                    // Every address: systemd bound [::] (or 0.0.0.0).
                    None => got.is_some_and(|ip| ip.is_unspecified()),
                    Some(h) => h.parse::<std::net::IpAddr>().map_or(true, |want| Some(want) == got),
                }
        }
        _ => false,
    };
    let shown = match &bound {
        Listen::Unix(p) => p.display().to_string(),
        Listen::Tcp { host: Some(h), port } if h.contains(':') => format!("[{h}]:{port}"),
        Listen::Tcp { host, port } => format!("{}:{port}", host.as_deref().unwrap_or("*")),
    };
    (!matches).then(|| format!("fd {fd} is bound to {shown}, but the pool's config says `listen = {public}`"))
}

/// Checks the inherited sockets and the keys; returns the FPM_SOCKETS value.
/// `first_fd` is where systemd's fds start (3; tests pass their own).
pub fn fpm_sockets(o: &ExecOpts, names: &[String], first_fd: RawFd) -> Result<String, Vec<String>> {
    let mut problems = Vec::new();
    let opts = LoadOptions { prefix: o.prefix.clone() };
    let real = fpm_config::load(&o.fpm_config, &opts).map_err(|e| vec![e.to_string()])?;
    let text =
        std::fs::read_to_string(&o.keeper_config).map_err(|e| vec![format!("{}: {e}", o.keeper_config.display())])?;
    let generated = plan::generated_listens(&text, &o.keeper_config).map_err(|e| vec![e])?;
    let mut entries = Vec::new();
    for (pool_name, key) in &o.keep {
        let fd_name = plan::fd_name(pool_name);
        let Some(index) = names.iter().position(|n| *n == fd_name) else {
            problems.push(format!(
                "pool [{pool_name}]: systemd passed no socket named {fd_name} (LISTEN_FDNAMES: {names:?})"
            ));
            continue;
        };
        let fd = first_fd + index as RawFd;
        let Some(pool) = real.pools.iter().find(|p| p.name == *pool_name) else {
            problems.push(format!(
                "pool [{pool_name}] is kept but no longer in {}: run `fcgi-resilient-helper socket-keeper` again",
                o.fpm_config.display()
            ));
            continue;
        };
        let Some((Ok(public), setting)) = pool.listen() else {
            problems.push(format!("pool [{pool_name}] ({}): no valid `listen`", pool.loc()));
            continue;
        };
        if let Some(p) = socket_problem(fd, &public) {
            problems.push(format!(
                "pool [{pool_name}] ({}): {p}; run `fcgi-resilient-helper socket-keeper` again",
                setting.loc()
            ));
            continue;
        }
        // The key PHP-FPM will look for: from the generated config's `listen`, as it reads it.
        let computed = plan::effective_key(&real, &generated, pool_name);
        if computed.as_deref() != Some(key.as_str()) {
            problems.push(format!(
                "pool [{pool_name}]: key mismatch: the socket is handed over as `{key}` but PHP-FPM will look for `{}` \
                 (from {}); it would bind that itself and leave the kept socket unserved (requests hang); \
                 run `fcgi-resilient-helper socket-keeper` again",
                computed.unwrap_or_else(|| "(none)".to_string()),
                o.keeper_config.display()
            ));
            continue;
        }
        entries.push(format!("{key}={fd}"));
    }
    if problems.is_empty() {
        Ok(entries.join(","))
    } else {
        Err(problems)
    }
}

/// Removes what a key path left behind (only below KEY_DIR, only sockets).
fn clear_key_path(key: &str) {
    use std::os::unix::fs::FileTypeExt;
    let path = Path::new(key);
    if path.starts_with(KEY_DIR)
        && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
        && std::fs::remove_file(path).is_ok()
    {
        eprintln!("socket-keeper: removed {key}, left by an earlier start whose key did not match");
    }
}

pub fn run_exec(o: &ExecOpts) -> i32 {
    let pid_ok = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    let count: usize = std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse().ok()).unwrap_or(0);
    if !pid_ok || count == 0 {
        eprintln!(
            "socket-keeper exec: no sockets from systemd (LISTEN_PID/LISTEN_FDS); is the unit's Sockets= \
             socket active? Refusing to start php-fpm without them"
        );
        return 1;
    }
    let names: Vec<String> =
        std::env::var("LISTEN_FDNAMES").unwrap_or_default().split(':').map(str::to_string).collect();
    let names: Vec<String> = names.into_iter().take(count).collect();
    let value = match fpm_sockets(o, &names, FIRST_FD) {
        Ok(v) => v,
        Err(problems) => {
            for p in problems {
                eprintln!("socket-keeper exec: {p}");
            }
            return 1;
        }
    };
    for (_, key) in &o.keep {
        clear_key_path(key);
    }
    let Some((program, args)) = o.command.split_first() else {
        eprintln!("socket-keeper exec: missing `-- PHP-FPM COMMAND`");
        return 2;
    };
    eprintln!("socket-keeper exec: FPM_SOCKETS={value}");
    let error = std::process::Command::new(program)
        .args(args)
        .env("FPM_SOCKETS", value)
        // Not PHP-FPM's to read, nor its workers'.
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES")
        .exec();
    eprintln!("socket-keeper exec: {program}: {error}");
    1
}

/// The ExecStartPost check: a key path that exists was bound by PHP-FPM itself, so its pool's
/// kept socket is not served.
pub fn run_verify(keep: &[(String, String)]) -> i32 {
    let mut failed = false;
    for (pool, key) in keep {
        if key.starts_with('/') && std::fs::symlink_metadata(key).is_ok() {
            eprintln!(
                "socket-keeper verify: pool [{pool}]: PHP-FPM bound {key} itself: the key did not match and \
                 nothing serves the kept socket; run `fcgi-resilient-helper socket-keeper` again"
            );
            failed = true;
        }
    }
    i32::from(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_as_php_fpm_builds_them() {
        let k = |raw: &str| key_of_listen(raw, &fpm_config::parse_listen(raw).unwrap());
        assert_eq!(k("/run/x.sock").as_deref(), Some("/run/x.sock"));
        assert_eq!(k("127.0.0.1:9000").as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(k("[::1]:9000").as_deref(), Some("::1:9000"));
        assert_eq!(k("[::]:9000").as_deref(), Some(":::9000"));
        assert_eq!(k("0.0.0.0:9000").as_deref(), Some("0.0.0.0:9000"));
        assert_eq!(k("9000"), None);
        assert_eq!(parse_keep("www=127.0.0.1:9000").unwrap(), ("www".into(), "127.0.0.1:9000".into()));
        assert!(parse_keep("www").is_err() && parse_keep("=x").is_err());
    }

    fn fixture_opts(dir: &Path) -> ExecOpts {
        ExecOpts {
            fpm_config: dir.join("real.conf"),
            keeper_config: dir.join("gen.conf"),
            prefix: None,
            keep: Vec::new(),
            command: vec![],
        }
    }

    fn fixture(dir: &Path, listen: &Path) -> ExecOpts {
        std::fs::write(dir.join("real.conf"), format!("[www]\nuser = nobody\nlisten = {}\n", listen.display()))
            .unwrap();
        std::fs::write(
            dir.join("gen.conf"),
            format!("include = {}\n[www]\nlisten = {KEY_DIR}/t/www.sock\n", dir.join("real.conf").display()),
        )
        .unwrap();
        ExecOpts {
            fpm_config: dir.join("real.conf"),
            keeper_config: dir.join("gen.conf"),
            prefix: None,
            keep: vec![("www".into(), format!("{KEY_DIR}/t/www.sock"))],
            command: vec![],
        }
    }

    /// The silent mismatch: a key PHP-FPM would not look for is refused before php-fpm runs;
    /// so is a socket bound elsewhere than the pool's `listen` now says, and a missing one.
    #[test]
    fn a_key_php_fpm_would_not_match_is_refused() {
        use std::os::fd::AsRawFd;
        let work = harness::WorkDir::new("keeper-exec-mismatch");
        let dir = work.path();
        let public = dir.join("public.sock");
        let listener = std::os::unix::net::UnixListener::bind(&public).unwrap();
        let fd = listener.as_raw_fd();
        let names = vec!["www".to_string()];
        let mut o = fixture(dir, &public);
        assert_eq!(fpm_sockets(&o, &names, fd), Ok(format!("{KEY_DIR}/t/www.sock={fd}")));
        o.keep[0].1 = format!("{KEY_DIR}/t/other.sock");
        let problems = fpm_sockets(&o, &names, fd).unwrap_err();
        assert!(problems[0].contains("key mismatch"), "{problems:?}");
        let moved = fixture(dir, &dir.join("elsewhere.sock"));
        let problems = fpm_sockets(&moved, &names, fd).unwrap_err();
        assert!(problems[0].contains("is bound to"), "{problems:?}");
        let problems = fpm_sockets(&fixture(dir, &public), &["api".to_string()], fd).unwrap_err();
        assert!(problems[0].contains("no socket named www"), "{problems:?}");
        assert_eq!(run_verify(&o.keep), 0, "no key path on disk");
        // TCP: the key is the address, and the socket must be bound there.
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        std::fs::write(dir.join("real.conf"), format!("[www]\nuser = nobody\nlisten = 127.0.0.1:{port}\n")).unwrap();
        std::fs::write(dir.join("gen.conf"), format!("include = {}\n", dir.join("real.conf").display())).unwrap();
        let mut o = fixture_opts(dir);
        o.keep = vec![("www".into(), format!("127.0.0.1:{port}"))];
        assert_eq!(fpm_sockets(&o, &names, tcp.as_raw_fd()), Ok(format!("127.0.0.1:{port}={}", tcp.as_raw_fd())));
        std::fs::write(dir.join("real.conf"), format!("[www]\nuser = nobody\nlisten = 127.0.0.1:{}\n", port + 1))
            .unwrap();
        let problems = fpm_sockets(&o, &names, tcp.as_raw_fd()).unwrap_err();
        assert!(problems[0].contains(&format!("is bound to 127.0.0.1:{port}")), "{problems:?}");
        let stray = dir.join("stray.sock");
        let _bound = std::os::unix::net::UnixListener::bind(&stray).unwrap();
        assert_eq!(run_verify(&[("www".into(), stray.display().to_string())]), 1, "a key path PHP-FPM bound");
    }
}
