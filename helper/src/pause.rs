//! `pause` and `resume`: hold a backend's new requests in Apache (mod_fcgi_resilient reads a
//! pause file and treats the backend as refusing) while the requests it runs finish.
//!
//! The pause is a file in a root-owned directory, written atomically (temporary file, then
//! rename), holding the backend and when the pause ends by itself. Who may pause is whoever
//! may write that directory: root, or the user the admin gave it (`FcgiResilientPauseDir DIR
//! USER`); the module ignores a file of anybody else. The requests still running are counted
//! where the kernel shows them, never by asking Apache: connections to the backend's Unix
//! socket in /proc/net/unix, or from this host to its address in /proc/net/tcp and tcp6.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use fcgi_resilient_common::clock::unix_millis_now;
use fcgi_resilient_common::pause_file::{file_name_for, PauseRecord};
use fcgi_resilient_common::BackendAddress;

use crate::apache_config;
use crate::fpm_config;
use crate::options::{duration_value, pause_length, BackendArgs, DEFAULT_TIMEOUT};
use crate::stop::{self, Drained};
use crate::{tcp_sockets, unix_sockets};

const PREFIX: &str = "fcgi-resilient-helper";

/// How long a pause lasts unless resumed: a forgotten one must not keep a site down.
const DEFAULT_PAUSE: &str = "60s";

#[derive(Args, Debug, Clone, PartialEq)]
pub struct PauseArgs {
    #[command(flatten)]
    pub target: BackendArgs,
    /// How long the pause lasts unless resumed (at most 1d)
    #[arg(long = "for", value_name = "DURATION", default_value = DEFAULT_PAUSE, value_parser = pause_length)]
    pub pause_for: Duration,
    /// Longest wait for the running requests (at most --for)
    #[arg(long, short = 't', value_name = "DURATION", default_value = DEFAULT_TIMEOUT, value_parser = duration_value)]
    pub timeout: Duration,
}

#[derive(Args, Debug, Clone, PartialEq)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub target: BackendArgs,
}

/// The module learns of a pause within milliseconds (inotify; 100 ms where it must poll): a
/// request that passed its check just before has connected by the end of this.
const SETTLE: Duration = Duration::from_millis(200);

/// The backend, checked against the backends the configs name (by the status page's name:
/// `fcgi://127.0.0.1/...` in Apache's config is `127.0.0.1:8000` on both sides).
pub fn resolve(target: &BackendArgs) -> Result<BackendAddress, String> {
    let address = parsed_backend(&target.backend)?;
    if target.force {
        return Ok(address);
    }
    let (known, read) = known_backends(target);
    let backend = address.to_string();
    if known.contains(&backend) {
        return Ok(address);
    }
    if read.is_empty() {
        return Err(format!(
            "cannot tell whether {backend} is a backend: no Apache or PHP-FPM configuration could be read \
             (--apache-config FILE, --fpm-config FILE); --force pauses it anyway"
        ));
    }
    Err(format!(
        "{backend} is not a backend of {}; known: {}. Write it as the module's status page does, or use --force",
        read.join(", "),
        if known.is_empty() { "none".to_string() } else { known.join(", ") }
    ))
}

/// BACKEND as written, and refused if its name could not be a pause file's.
pub fn parsed_backend(written: &str) -> Result<BackendAddress, String> {
    let address = BackendAddress::parse(written).map_err(|e| e.to_string())?;
    fcgi_resilient_common::pause_file::backend_name(&address.to_string()).map_err(|e| e.to_string())?;
    Ok(address)
}

/// `resolve`, saying why not on stderr.
pub fn resolve_or_say(target: &BackendArgs, command: &str) -> Option<BackendAddress> {
    resolve(target).map_err(|e| eprintln!("{PREFIX}: {command}: {e}")).ok()
}

/// The backends Apache's SetHandler/ProxyPass/BalancerMember lines name and the PHP-FPM
/// pools listen on, by status-page name; and which configs were read.
fn known_backends(target: &BackendArgs) -> (Vec<String>, Vec<String>) {
    let mut known = Vec::new();
    let mut read = Vec::new();
    for file in &target.apache.files_or_default() {
        let options = apache_config::LoadOptions { server_root: None, envvars: None };
        let Ok(config) = apache_config::load(file, &options) else { continue };
        read.push(file.display().to_string());
        known.extend(config.backends().iter().map(|backend| backend.addr.to_string()));
    }
    for file in &target.fpm.files_or_default() {
        let Ok(config) = fpm_config::load(file, &target.fpm.load_options()) else { continue };
        read.push(file.display().to_string());
        known.extend(config.pools.iter().filter_map(|pool| Some(pool.listen()?.0.ok()?.backend_address().to_string())));
    }
    known.sort();
    known.dedup();
    (known, read)
}

/// Writes the pause file atomically; the directory is made root's 0755 when missing.
pub fn write_pause(dir: &Path, record: &PauseRecord) -> Result<(), String> {
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o755).create(dir).map_err(|e| refused(dir, "create", e))?;
    }
    let temporary = dir.join(format!(".{}.tmp.{}", record.file_name(), std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temporary)
        .map_err(|e| refused(dir, "write to", e))?;
    let written = file.write_all(record.render().as_bytes()).and_then(|()| file.sync_all());
    let placed = written.and_then(|()| std::fs::rename(&temporary, dir.join(record.file_name())));
    placed.map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        format!("cannot write the pause file in {}: {e}", dir.display())
    })
}

/// Removes the pause of `backend`; false when there was none.
pub fn remove_pause(dir: &Path, backend: &str) -> Result<bool, String> {
    match std::fs::remove_file(dir.join(file_name_for(backend))) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(refused(dir, "remove a file from", e)),
    }
}

fn refused(dir: &Path, action: &str, error: std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::PermissionDenied {
        return format!(
            "cannot {action} {}: {error}. Only root, or the user the admin named in `FcgiResilientPauseDir \
             DIR USER` and gave the directory to, may pause or resume",
            dir.display()
        );
    }
    format!("cannot {action} {}: {error}", dir.display())
}

/// Where a backend's running requests show in /proc/net.
pub enum Connections {
    Unix(PathBuf),
    Tcp(Vec<SocketAddr>),
}

impl Connections {
    pub fn of(backend: &BackendAddress) -> Result<Connections, String> {
        match backend {
            BackendAddress::Unix(path) => Ok(Connections::Unix(path.clone())),
            BackendAddress::Tcp { host, .. } => {
                let addresses = backend.socket_addrs().map_err(|e| format!("cannot resolve {host}: {e}"))?;
                Ok(Connections::Tcp(addresses))
            }
        }
    }

    /// Connections open now: requests running (or pooled connections, see enablereuse).
    pub fn open(&self) -> Result<usize, String> {
        match self {
            Connections::Unix(path) => {
                Ok(unix_sockets::connections(&unix_sockets::read()?, std::slice::from_ref(path)).values().sum())
            }
            Connections::Tcp(addresses) => Ok(tcp_sockets::connections_to(&tcp_sockets::read()?, addresses)),
        }
    }
}

/// Lets the module see the pause, then waits until no request is left running on the
/// backend. Ok(true) when none is; Ok(false) at the timeout (said on stderr).
pub fn wait_until_idle(address: &BackendAddress, timeout: Duration) -> Result<bool, String> {
    let connections = Connections::of(address)?;
    let backend = address.to_string();
    let start = Instant::now();
    std::thread::sleep(SETTLE.min(timeout));
    match stop::drain(&backend, || connections.open(), timeout, start)? {
        Drained::Empty(_) => Ok(true),
        Drained::TimedOut(n) => {
            eprintln!(
                "{PREFIX}: {backend}: {n} connection(s) still open after {timeout:?}: requests longer than that, or \
                 connections Apache keeps open between requests (enablereuse=on on the worker: they never close \
                 by themselves; turn it off for the backend, or treat them as idle)"
            );
            Ok(false)
        }
        Drained::Interrupted => Err("interrupted".to_string()),
    }
}

pub fn run_pause(o: &PauseArgs) -> i32 {
    let Some(address) = resolve_or_say(&o.target, "pause") else { return 1 };
    let backend = address.to_string();
    let record =
        PauseRecord { backend: backend.clone(), until_unix_ms: unix_millis_now() + o.pause_for.as_millis() as u64 };
    if let Err(e) = write_pause(&o.target.pause_dir, &record) {
        eprintln!("{PREFIX}: pause: {e}");
        return 1;
    }
    eprintln!("{PREFIX}: {backend} paused for {:?} (until `resume`): new requests wait in Apache", o.pause_for);
    stop::catch_interrupts();
    match wait_until_idle(&address, o.timeout.min(o.pause_for)) {
        Ok(true) => {
            println!("{backend}: paused, no request running");
            0
        }
        Ok(false) => 1,
        Err(e) => {
            eprintln!("{PREFIX}: pause: {e}; the pause stays until `resume` or its end");
            1
        }
    }
}

pub fn run_resume(o: &ResumeArgs) -> i32 {
    let backend = match parsed_backend(&o.target.backend) {
        Ok(address) => address.to_string(),
        Err(e) => {
            eprintln!("{PREFIX}: resume: {e}");
            return 2;
        }
    };
    match remove_pause(&o.target.pause_dir, &backend) {
        Ok(true) => {
            println!("{backend}: resumed");
            0
        }
        Ok(false) => {
            println!("{backend}: was not paused");
            0
        }
        Err(e) => {
            eprintln!("{PREFIX}: resume: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{ApacheConfigs, FpmConfigs};

    fn target(backend: &str, dir: &Path, apache: &Path) -> BackendArgs {
        BackendArgs {
            backend: backend.into(),
            pause_dir: dir.to_path_buf(),
            apache: ApacheConfigs { files: vec![apache.to_path_buf()] },
            fpm: FpmConfigs { files: vec![dir.join("no-such-fpm.conf")], prefix: None },
            force: false,
        }
    }

    #[test]
    fn a_backend_is_known_from_apaches_config_and_an_unknown_one_is_named_with_the_known() {
        let dir = harness::WorkDir::new("pause-known");
        let apache = dir.join("httpd.conf");
        std::fs::write(
            &apache,
            "<FilesMatch \\.php$>\nSetHandler \"proxy:unix:/run/php/a.sock|fcgi://localhost\"\n</FilesMatch>\n\
             ProxyPassMatch ^/(.*\\.php)$ fcgi://127.0.0.1:9000/var/www/$1\n",
        )
        .unwrap();
        let name = |backend: &str| resolve(&target(backend, dir.path(), &apache)).map(|address| address.to_string());
        assert_eq!(name("/run/php/a.sock").unwrap(), "unix:/run/php/a.sock");
        assert_eq!(name("fcgi://127.0.0.1:9000").unwrap(), "127.0.0.1:9000");
        let error = resolve(&target("127.0.0.1:9001", dir.path(), &apache)).unwrap_err();
        assert!(error.contains("known: 127.0.0.1:9000, unix:/run/php/a.sock"), "{error}");
        let forced = BackendArgs { force: true, ..target("127.0.0.1:9001", dir.path(), &apache) };
        assert_eq!(resolve(&forced).unwrap().to_string(), "127.0.0.1:9001");
        let none = target("127.0.0.1:9001", dir.path(), &dir.join("missing.conf"));
        assert!(resolve(&none).unwrap_err().contains("--force"));
    }

    #[test]
    fn a_pause_is_written_whole_and_removed() {
        let dir = harness::WorkDir::new("pause-write");
        let pauses = dir.join("run/pause");
        let record = PauseRecord { backend: "127.0.0.1:9000".into(), until_unix_ms: 42 };
        write_pause(&pauses, &record).unwrap();
        let files: Vec<String> =
            std::fs::read_dir(&pauses).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into()).collect();
        assert_eq!(files, [record.file_name()], "no temporary file left");
        let text = std::fs::read_to_string(pauses.join(record.file_name())).unwrap();
        assert_eq!(PauseRecord::parse(&text), Ok(record.clone()));
        write_pause(&pauses, &PauseRecord { until_unix_ms: 43, ..record.clone() }).unwrap();
        assert!(remove_pause(&pauses, "127.0.0.1:9000").unwrap());
        assert!(!remove_pause(&pauses, "127.0.0.1:9000").unwrap());
    }
}
