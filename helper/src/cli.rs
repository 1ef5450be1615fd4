//! Hand-written argument parsing: a handful of options does not earn a dependency.

use std::path::PathBuf;
use std::time::Duration;

use crate::duration;
use crate::safe_dir;

pub const USAGE: &str = "\
Usage: fcgi-resilient-helper COMMAND [OPTIONS]

Keeps the PHP-FPM side ready for Apache's mod_proxy_fcgi.

Commands:
  prepare          create each pool's socket directory with the right owner and mode
  check            compare Apache's FastCGI backends with the PHP-FPM pools
  wait             wait until a pool accepts connections (and answers its ping)
  reload-and-wait  gracefully reload PHP-FPM (SIGUSR2) and wait until it answers
  stop             stop PHP-FPM after the requests on its sockets are done (no request cut)
  systemd-dropin   install (or --remove) a drop-in using these for every php*-fpm unit
  socket-keeper    keep PHP-FPM's sockets open across its restarts (systemd; `run` without)
  pause            hold a backend's new requests in Apache until the running ones are done
  resume           let a paused backend's held requests go on at once
  deploy           pause, wait until idle, run a command, wait until the backend answers, resume

Run `fcgi-resilient-helper COMMAND --help` for a command's options.
Exit status: 0 ok, 1 problem found (or timeout), 2 usage error.";

pub const PREPARE_USAGE: &str = "\
Usage: fcgi-resilient-helper prepare [--fpm-config FILE]... [--root DIR] [--mode MODE]
                                     [--fpm-prefix DIR] [--dry-run]

Reads the PHP-FPM main config(s) and the pools they include, and creates each Unix
socket's directory (and missing ancestors, root:root 0755) owned by the pool's
listen.owner/listen.group (else user/group). Fixes a wrong owner or mode. Idempotent.

  --fpm-config FILE  main config (repeatable); default: /etc/php/*/fpm/php-fpm.conf,
                     /etc/php-fpm.conf (or /etc/php-fpm.d/*.conf)
  --root DIR         create the directories below DIR instead of / (for tests, chroots)
  --mode MODE        octal mode of the socket directories (default 0755; o+w refused)
  --fpm-prefix DIR   resolve relative include globs against DIR (like php-fpm -p);
                     default: the including file's directory
  --dry-run          print what would be done, change nothing";

pub const CHECK_USAGE: &str = "\
Usage: fcgi-resilient-helper check [--apache-config FILE]... [--fpm-config FILE]...
                                   [--server-root DIR] [--envvars FILE] [--fpm-prefix DIR]

Lists the FastCGI backends Apache uses (SetHandler proxy:..., ProxyPass, ProxyPassMatch,
<Proxy>, BalancerMember) and reports each one no PHP-FPM pool listens on, or whose
socket Apache's User/Group could not reach, with file:line and a fix.

  --apache-config FILE  main Apache config (repeatable); default /etc/apache2/apache2.conf
                        or /etc/httpd/conf/httpd.conf
  --server-root DIR     ServerRoot for relative Include paths (default: ServerRoot
                        directive, else the main config's directory, or its parent for
                        .../conf/httpd.conf)
  --envvars FILE        shell file defining APACHE_RUN_USER etc. (default SERVERROOT/envvars)
  --fpm-config FILE, --fpm-prefix DIR   as for prepare";

pub const WAIT_USAGE: &str = "\
Usage: fcgi-resilient-helper wait SOCKET|HOST:PORT [--timeout DURATION] [--ping PATH]
                                  [--expect TEXT]

Waits until the pool accepts a connection; with --ping, until a FastCGI request for
PATH (the pool's ping.path) is answered with TEXT (its ping.response, default `pong`).

  --timeout DURATION  give up after DURATION (10s, 500ms, 2m; plain number = seconds;
                      default 30s)
  --ping PATH         send a FastCGI GET for PATH and check the answer
  --expect TEXT       text the ping answer must contain (default: pong)";

pub const RELOAD_USAGE: &str = "\
Usage: fcgi-resilient-helper reload-and-wait [--pid-file FILE | --pid PID]
                                             SOCKET|HOST:PORT [--ping PATH] [--expect TEXT]
                                             [--timeout DURATION] [--fpm-config FILE]

Sends SIGUSR2 (graceful reload) to the PHP-FPM master, waits until it has re-executed
(its old worker processes are all gone and new ones exist) and then until the pool
answers, as `wait` does. Without --pid/--pid-file the `pid` of the --fpm-config's
[global] section is used.";

pub const STOP_USAGE: &str = "\
Usage: fcgi-resilient-helper stop (--pid PID | --pid-file FILE) [--fpm-config FILE]
                                  [--timeout DURATION] [--fpm-prefix DIR]

Stops a PHP-FPM master without cutting a request: moves each pool's Unix socket aside
(new connections wait in mod_fcgi_resilient), waits until no connection to those sockets
is left (queued or in progress) or the timeout passes, then sends SIGTERM and waits until
the master has exited. Pools on TCP cannot be drained this way and are stopped as usual.
If PID is not a php-fpm master, or anything fails before the SIGTERM, php-fpm keeps
running with its sockets in place.

  --pid PID           the master (systemd: --pid=${MAINPID}; empty = nothing to stop)
  --pid-file FILE     file holding the master's pid
  --fpm-config FILE   its main config (default: the one in the master's process title)
  --timeout DURATION  longest wait for the connections (default 30s); then the
                      remaining requests are cut and their number reported
  --fpm-prefix DIR    as for prepare";

pub const SYSTEMD_USAGE: &str = "\
Usage: fcgi-resilient-helper systemd-dropin [--remove] [--root DIR] [--helper PATH]
                                            [--timeout DURATION]

For every installed php*-fpm unit (phpX.Y-fpm.service, php-fpm.service; in
/etc/systemd/system, /usr/lib/systemd/system, /lib/systemd/system) writes
/etc/systemd/system/UNIT.d/fcgi-resilient.conf: prepare before start, wait after
start, reload-and-wait on reload and a lossless `stop` on stop, with the paths of the
unit's own PHP-FPM config. Then runs `systemctl daemon-reload` when systemd runs.

  --remove            take the drop-ins away again
  --root DIR          operate on the tree below DIR instead of / (no daemon-reload)
  --helper PATH       the helper's path in the drop-ins (default: this executable)
  --timeout DURATION  the --timeout of the generated commands (default 30s)";

/// The part of the usage every pause command shares.
macro_rules! backend_options {
    () => {
        "\n\n\
BACKEND: as the module's status page writes it (unix:/run/php/php8.2-fpm.sock,
127.0.0.1:9000), or /run/php/...sock, fcgi://HOST:PORT, unix:/...sock|fcgi://localhost.
It must be a backend Apache's config or a PHP-FPM pool names (else the known ones are listed).

  --pause-dir DIR       pause files (default /run/fcgi-resilient/pause; the module's
                        FcgiResilientPauseDir). Root's: only root may pause
  --apache-config FILE  where to look the backend up (repeatable; default
                        /etc/apache2/apache2.conf or /etc/httpd/conf/httpd.conf)
  --fpm-config FILE     PHP-FPM main config (repeatable; default as for prepare)
  --force               pause a backend no config names"
    };
}

pub const PAUSE_USAGE: &str = concat!(
    "\
Usage: fcgi-resilient-helper pause BACKEND [--for DURATION] [--timeout DURATION] [options]

From now on mod_fcgi_resilient holds new requests for BACKEND in Apache (they wait as for a
refusing backend, within FcgiResilientTimeout); requests already running finish. Returns
once none is running (connections in /proc/net/unix, /proc/net/tcp), or says how many still
run at --timeout (exit 1; the pause stays). The pause ends by itself after --for.

  --for DURATION      how long the pause lasts unless resumed (default 60s, at most 1d)
  --timeout DURATION  longest wait for the running requests (default 30s)",
    backend_options!()
);

pub const RESUME_USAGE: &str = "\
Usage: fcgi-resilient-helper resume BACKEND [--pause-dir DIR]

Ends the pause of BACKEND: the requests held in Apache go on at once.";

pub const DEPLOY_USAGE: &str = concat!(
    "\
Usage: fcgi-resilient-helper deploy BACKEND [--timeout DURATION] [--for DURATION]
                                    [--ping PATH] [--expect TEXT] [options] -- COMMAND [ARGS...]

Pauses BACKEND, waits until no request runs on it, runs COMMAND, waits until BACKEND answers
a FastCGI request again (with --ping, its ping page; else any answer, e.g. a 404), resumes.
Resumes on every path: COMMAND failing, a timeout, SIGINT/SIGTERM/SIGHUP (passed on to
COMMAND). Exit status: COMMAND's; 1 if the backend did not answer or the helper failed.

  --timeout DURATION  bound of each wait (idle, answering; default 30s)
  --for DURATION      the pause's own end, should the helper be killed (default 3 x --timeout)
  --ping PATH         the pool's ping.path; --expect TEXT its ping.response (default pong)",
    backend_options!()
);

/// A backend to pause or resume, and where to look it up.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendOpts {
    pub backend: String,
    pub pause_dir: PathBuf,
    pub apache_configs: Vec<PathBuf>,
    pub fpm_configs: Vec<PathBuf>,
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PauseOpts {
    pub target: BackendOpts,
    pub pause_for: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResumeOpts {
    pub target: BackendOpts,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeployOpts {
    pub target: BackendOpts,
    pub timeout: Duration,
    pub pause_for: Duration,
    pub ping: Option<String>,
    pub expect: String,
    pub command: Vec<String>,
}

/// Where `stop` finds the master's pid.
#[derive(Debug, Clone, PartialEq)]
pub enum PidSource {
    Pid(i32),
    /// `--pid=` with nothing: systemd's $MAINPID of a service whose main process is gone.
    NoMainPid,
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct StopOpts {
    pub pid: PidSource,
    pub fpm_config: Option<PathBuf>,
    pub prefix: Option<PathBuf>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SystemdOpts {
    pub root: PathBuf,
    pub remove: bool,
    pub helper: Option<PathBuf>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PrepareOpts {
    pub fpm_configs: Vec<PathBuf>,
    pub root: PathBuf,
    pub mode: u32,
    pub prefix: Option<PathBuf>,
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckOpts {
    pub apache_configs: Vec<PathBuf>,
    pub fpm_configs: Vec<PathBuf>,
    pub server_root: Option<PathBuf>,
    pub envvars: Option<PathBuf>,
    pub prefix: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WaitOpts {
    pub target: String,
    pub timeout: Duration,
    pub ping: Option<String>,
    pub expect: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReloadOpts {
    pub pid_file: Option<PathBuf>,
    pub pid: Option<i32>,
    pub fpm_configs: Vec<PathBuf>,
    pub wait: WaitOpts,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Help(&'static str),
    Version,
    Prepare(PrepareOpts),
    Check(CheckOpts),
    Wait(WaitOpts),
    ReloadAndWait(ReloadOpts),
    Stop(StopOpts),
    SystemdDropin(SystemdOpts),
    Pause(PauseOpts),
    Resume(ResumeOpts),
    Deploy(DeployOpts),
}

/// Splits `--opt=value` and yields (name, inline value) or positionals.
struct Args {
    items: std::vec::IntoIter<String>,
}

impl Args {
    fn value(&mut self, opt: &str, inline: Option<String>) -> Result<String, String> {
        match inline {
            Some(v) => Ok(v),
            None => self.items.next().ok_or_else(|| format!("option {opt} needs a value")),
        }
    }
}

pub fn parse(argv: Vec<String>) -> Result<Command, String> {
    let mut it = argv.into_iter();
    let cmd = match it.next() {
        None => return Err("missing command".to_string()),
        Some(c) => c,
    };
    let mut args = Args { items: it.collect::<Vec<_>>().into_iter() };
    match cmd.as_str() {
        "-h" | "--help" | "help" => Ok(Command::Help(USAGE)),
        "-V" | "--version" => Ok(Command::Version),
        "prepare" => parse_prepare(&mut args),
        "check" => parse_check(&mut args),
        "wait" => parse_wait(&mut args),
        "reload-and-wait" => parse_reload(&mut args),
        "stop" => parse_stop(&mut args),
        "systemd-dropin" => parse_systemd(&mut args),
        "pause" => parse_pause(&mut args),
        "resume" => parse_resume(&mut args),
        "deploy" => parse_deploy(&mut args),
        other => Err(format!("unknown command `{other}`")),
    }
}

fn split(arg: &str) -> (String, Option<String>) {
    match arg.split_once('=') {
        Some((k, v)) if arg.starts_with("--") => (k.to_string(), Some(v.to_string())),
        _ => (arg.to_string(), None),
    }
}

fn parse_prepare(args: &mut Args) -> Result<Command, String> {
    let mut o =
        PrepareOpts { fpm_configs: vec![], root: PathBuf::from("/"), mode: 0o755, prefix: None, dry_run: false };
    while let Some(a) = args.items.next() {
        let (k, inline) = split(&a);
        match k.as_str() {
            "-h" | "--help" => return Ok(Command::Help(PREPARE_USAGE)),
            "--fpm-config" => o.fpm_configs.push(args.value(&k, inline)?.into()),
            "--root" => o.root = args.value(&k, inline)?.into(),
            "--mode" => o.mode = safe_dir::parse_mode(&args.value(&k, inline)?)?,
            "--fpm-prefix" => o.prefix = Some(args.value(&k, inline)?.into()),
            "-n" | "--dry-run" if inline.is_none() => o.dry_run = true,
            _ => return Err(format!("prepare: unexpected argument `{a}`")),
        }
    }
    Ok(Command::Prepare(o))
}

fn parse_check(args: &mut Args) -> Result<Command, String> {
    let mut o =
        CheckOpts { apache_configs: vec![], fpm_configs: vec![], server_root: None, envvars: None, prefix: None };
    while let Some(a) = args.items.next() {
        let (k, inline) = split(&a);
        match k.as_str() {
            "-h" | "--help" => return Ok(Command::Help(CHECK_USAGE)),
            "--apache-config" => o.apache_configs.push(args.value(&k, inline)?.into()),
            "--fpm-config" => o.fpm_configs.push(args.value(&k, inline)?.into()),
            "--server-root" => o.server_root = Some(args.value(&k, inline)?.into()),
            "--envvars" => o.envvars = Some(args.value(&k, inline)?.into()),
            "--fpm-prefix" => o.prefix = Some(args.value(&k, inline)?.into()),
            _ => return Err(format!("check: unexpected argument `{a}`")),
        }
    }
    Ok(Command::Check(o))
}

/// Options shared by `wait` and `reload-and-wait`; returns false if not one of them.
fn wait_option(o: &mut WaitOpts, k: &str, inline: Option<String>, args: &mut Args) -> Result<bool, String> {
    match k {
        "--timeout" | "-t" => o.timeout = duration::parse(&args.value(k, inline)?)?,
        "--ping" => {
            let p = args.value(k, inline)?;
            if !p.starts_with('/') {
                return Err(format!("--ping path must start with `/` (got `{p}`)"));
            }
            o.ping = Some(p)
        }
        "--expect" => o.expect = args.value(k, inline)?,
        _ => return Ok(false),
    }
    Ok(true)
}

fn empty_wait() -> WaitOpts {
    WaitOpts { target: String::new(), timeout: Duration::from_secs(30), ping: None, expect: "pong".to_string() }
}

fn set_target(o: &mut WaitOpts, a: String, cmd: &str) -> Result<(), String> {
    if a.starts_with('-') && a.len() > 1 {
        return Err(format!("{cmd}: unknown option `{a}`"));
    }
    if !o.target.is_empty() {
        return Err(format!("{cmd}: only one SOCKET|HOST:PORT may be given (got `{}` and `{a}`)", o.target));
    }
    o.target = a;
    Ok(())
}

fn parse_wait(args: &mut Args) -> Result<Command, String> {
    let mut o = empty_wait();
    while let Some(a) = args.items.next() {
        let (k, inline) = split(&a);
        if k == "-h" || k == "--help" {
            return Ok(Command::Help(WAIT_USAGE));
        }
        if !wait_option(&mut o, &k, inline, args)? {
            set_target(&mut o, a, "wait")?;
        }
    }
    if o.target.is_empty() {
        return Err("wait: missing SOCKET|HOST:PORT".to_string());
    }
    Ok(Command::Wait(o))
}

fn parse_pid(v: &str) -> Result<i32, String> {
    let pid: i32 = v.parse().map_err(|_| format!("--pid: `{v}` is not a process id"))?;
    if pid <= 1 {
        return Err(format!("--pid: refusing to signal pid {pid}"));
    }
    Ok(pid)
}

fn parse_stop(args: &mut Args) -> Result<Command, String> {
    let mut pid = None;
    let mut o =
        StopOpts { pid: PidSource::NoMainPid, fpm_config: None, prefix: None, timeout: Duration::from_secs(30) };
    while let Some(a) = args.items.next() {
        let (k, inline) = split(&a);
        let source = match k.as_str() {
            "-h" | "--help" => return Ok(Command::Help(STOP_USAGE)),
            "--pid" => match args.value(&k, inline)?.trim() {
                "" => Some(PidSource::NoMainPid),
                v => Some(PidSource::Pid(parse_pid(v)?)),
            },
            "--pid-file" => Some(PidSource::File(args.value(&k, inline)?.into())),
            "--fpm-config" => {
                o.fpm_config = Some(args.value(&k, inline)?.into());
                None
            }
            "--fpm-prefix" => {
                o.prefix = Some(args.value(&k, inline)?.into());
                None
            }
            "--timeout" | "-t" => {
                o.timeout = duration::parse(&args.value(&k, inline)?)?;
                None
            }
            _ => return Err(format!("stop: unexpected argument `{a}`")),
        };
        if let Some(source) = source {
            if pid.replace(source).is_some() {
                return Err("stop: give one --pid or --pid-file".to_string());
            }
        }
    }
    o.pid = pid.ok_or("stop: --pid PID or --pid-file FILE is required")?;
    Ok(Command::Stop(o))
}

fn parse_systemd(args: &mut Args) -> Result<Command, String> {
    let mut o = SystemdOpts { root: PathBuf::from("/"), remove: false, helper: None, timeout: Duration::from_secs(30) };
    while let Some(a) = args.items.next() {
        let (k, inline) = split(&a);
        match k.as_str() {
            "-h" | "--help" => return Ok(Command::Help(SYSTEMD_USAGE)),
            "--remove" if inline.is_none() => o.remove = true,
            "--root" => o.root = args.value(&k, inline)?.into(),
            "--helper" => o.helper = Some(args.value(&k, inline)?.into()),
            "--timeout" | "-t" => o.timeout = duration::parse(&args.value(&k, inline)?)?,
            _ => return Err(format!("systemd-dropin: unexpected argument `{a}`")),
        }
    }
    Ok(Command::SystemdDropin(o))
}

fn parse_reload(args: &mut Args) -> Result<Command, String> {
    let mut o = ReloadOpts { pid_file: None, pid: None, fpm_configs: vec![], wait: empty_wait() };
    while let Some(a) = args.items.next() {
        let (k, inline) = split(&a);
        match k.as_str() {
            "-h" | "--help" => return Ok(Command::Help(RELOAD_USAGE)),
            "--pid-file" => o.pid_file = Some(args.value(&k, inline)?.into()),
            "--pid" => o.pid = Some(parse_pid(&args.value(&k, inline)?)?),
            "--fpm-config" => o.fpm_configs.push(args.value(&k, inline)?.into()),
            _ => {
                if !wait_option(&mut o.wait, &k, inline, args)? {
                    set_target(&mut o.wait, a, "reload-and-wait")?;
                }
            }
        }
    }
    if o.pid.is_some() && o.pid_file.is_some() {
        return Err("reload-and-wait: give either --pid or --pid-file, not both".to_string());
    }
    if o.wait.target.is_empty() {
        return Err("reload-and-wait: missing SOCKET|HOST:PORT".to_string());
    }
    Ok(Command::ReloadAndWait(o))
}

/// The longest pause `--for` accepts: a day.
const LONGEST_PAUSE: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(60);

fn empty_backend() -> BackendOpts {
    BackendOpts {
        backend: String::new(),
        pause_dir: PathBuf::from(crate::pause_file::DEFAULT_PAUSE_DIR),
        apache_configs: vec![],
        fpm_configs: vec![],
        force: false,
    }
}

/// Options every pause command takes, and BACKEND; returns false if `k` is not one of them.
fn backend_option(o: &mut BackendOpts, a: &str, args: &mut Args, cmd: &str) -> Result<bool, String> {
    let (k, inline) = split(a);
    match k.as_str() {
        "--pause-dir" => o.pause_dir = args.value(&k, inline)?.into(),
        "--apache-config" => o.apache_configs.push(args.value(&k, inline)?.into()),
        "--fpm-config" => o.fpm_configs.push(args.value(&k, inline)?.into()),
        "--force" if inline.is_none() => o.force = true,
        _ if a.starts_with('-') && a.len() > 1 => return Ok(false),
        _ if !o.backend.is_empty() => return Err(format!("{cmd}: one BACKEND only (got `{}` and `{a}`)", o.backend)),
        _ => o.backend = a.to_string(),
    }
    Ok(true)
}

fn pause_length(k: &str, value: &str) -> Result<Duration, String> {
    let length = duration::parse(value)?;
    if length.is_zero() || length > LONGEST_PAUSE {
        return Err(format!("{k}: `{value}` must be longer than 0 and at most 1d"));
    }
    Ok(length)
}

fn require_backend(o: &BackendOpts, cmd: &str) -> Result<(), String> {
    if o.backend.is_empty() {
        return Err(format!("{cmd}: missing BACKEND"));
    }
    Ok(())
}

fn parse_pause(args: &mut Args) -> Result<Command, String> {
    let mut o = PauseOpts { target: empty_backend(), pause_for: DEFAULT_PAUSE, timeout: Duration::from_secs(30) };
    while let Some(a) = args.items.next() {
        if backend_option(&mut o.target, &a, args, "pause")? {
            continue;
        }
        let (k, inline) = split(&a);
        match k.as_str() {
            "-h" | "--help" => return Ok(Command::Help(PAUSE_USAGE)),
            "--for" => o.pause_for = pause_length(&k, &args.value(&k, inline)?)?,
            "--timeout" | "-t" => o.timeout = duration::parse(&args.value(&k, inline)?)?,
            _ => return Err(format!("pause: unexpected argument `{a}`")),
        }
    }
    require_backend(&o.target, "pause")?;
    Ok(Command::Pause(o))
}

fn parse_resume(args: &mut Args) -> Result<Command, String> {
    let mut o = ResumeOpts { target: empty_backend() };
    while let Some(a) = args.items.next() {
        if backend_option(&mut o.target, &a, args, "resume")? {
            continue;
        }
        match split(&a).0.as_str() {
            "-h" | "--help" => return Ok(Command::Help(RESUME_USAGE)),
            _ => return Err(format!("resume: unexpected argument `{a}`")),
        }
    }
    require_backend(&o.target, "resume")?;
    Ok(Command::Resume(o))
}

fn parse_deploy(args: &mut Args) -> Result<Command, String> {
    let mut o = DeployOpts {
        target: empty_backend(),
        timeout: Duration::from_secs(30),
        pause_for: Duration::ZERO,
        ping: None,
        expect: "pong".to_string(),
        command: vec![],
    };
    while let Some(a) = args.items.next() {
        if a == "--" {
            o.command = args.items.by_ref().collect();
            break;
        }
        if backend_option(&mut o.target, &a, args, "deploy")? {
            continue;
        }
        let (k, inline) = split(&a);
        match k.as_str() {
            "-h" | "--help" => return Ok(Command::Help(DEPLOY_USAGE)),
            "--timeout" | "-t" => o.timeout = duration::parse(&args.value(&k, inline)?)?,
            "--for" => o.pause_for = pause_length(&k, &args.value(&k, inline)?)?,
            "--ping" => {
                o.ping = Some(args.value(&k, inline)?)
                    .filter(|p| p.starts_with('/'))
                    .map(Some)
                    .ok_or("--ping path must start with `/`")?
            }
            "--expect" => o.expect = args.value(&k, inline)?,
            _ => return Err(format!("deploy: unexpected argument `{a}`")),
        }
    }
    require_backend(&o.target, "deploy")?;
    if o.command.is_empty() {
        return Err("deploy: missing `-- COMMAND [ARGS...]`".to_string());
    }
    if o.pause_for.is_zero() {
        o.pause_for = crate::deploy::default_pause_for(o.timeout).min(LONGEST_PAUSE);
    }
    Ok(Command::Deploy(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn prepare_options() {
        let Command::Prepare(o) = p(&[
            "prepare",
            "--fpm-config",
            "a.conf",
            "--fpm-config=b.conf",
            "--root",
            "/tmp/r",
            "--dry-run",
            "--mode",
            "0750",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(o.fpm_configs, [PathBuf::from("a.conf"), PathBuf::from("b.conf")]);
        assert_eq!((o.root, o.dry_run, o.mode), (PathBuf::from("/tmp/r"), true, 0o750));
        assert!(p(&["prepare", "--mode", "0777"]).is_err());
        assert!(p(&["prepare", "--bogus"]).is_err());
        assert!(p(&["prepare", "--root"]).unwrap_err().contains("needs a value"));
    }

    #[test]
    fn wait_options() {
        let Command::Wait(o) = p(&["wait", "/run/php/x.sock", "--timeout", "500ms", "--ping=/ping"]).unwrap() else {
            panic!()
        };
        assert_eq!(o.target, "/run/php/x.sock");
        assert_eq!(o.timeout, Duration::from_millis(500));
        assert_eq!(o.ping.as_deref(), Some("/ping"));
        assert_eq!(o.expect, "pong");
        assert!(p(&["wait"]).is_err());
        assert!(p(&["wait", "a", "b"]).is_err());
        assert!(p(&["wait", "a", "--timeout", "soon"]).is_err());
        assert!(p(&["wait", "a", "--ping", "ping"]).is_err());
        assert_eq!(p(&["wait", "--help"]).unwrap(), Command::Help(WAIT_USAGE));
    }

    #[test]
    fn reload_options() {
        let Command::ReloadAndWait(o) = p(&["reload-and-wait", "--pid", "123", "127.0.0.1:9000", "-t", "5"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(o.pid, Some(123));
        assert_eq!(o.wait.target, "127.0.0.1:9000");
        assert!(p(&["reload-and-wait", "--pid", "1", "x"]).is_err());
        assert!(p(&["reload-and-wait", "--pid", "5", "--pid-file", "f", "x"]).is_err());
        assert!(p(&["nope"]).is_err());
    }

    #[test]
    fn stop_options() {
        let Command::Stop(o) = p(&["stop", "--pid=4242", "--timeout", "2s", "--fpm-config", "/f.conf"]).unwrap() else {
            panic!()
        };
        assert_eq!((o.pid, o.timeout), (PidSource::Pid(4242), Duration::from_secs(2)));
        assert_eq!(o.fpm_config, Some(PathBuf::from("/f.conf")));
        let Command::Stop(o) = p(&["stop", "--pid="]).unwrap() else { panic!() };
        assert_eq!((o.pid, o.timeout), (PidSource::NoMainPid, Duration::from_secs(30)));
        let Command::Stop(o) = p(&["stop", "--pid-file", "/run/x.pid"]).unwrap() else { panic!() };
        assert_eq!(o.pid, PidSource::File("/run/x.pid".into()));
        assert!(p(&["stop"]).unwrap_err().contains("required"));
        assert!(p(&["stop", "--pid", "7", "--pid-file", "f"]).is_err());
        assert!(p(&["stop", "--pid", "1"]).is_err());
        assert!(p(&["stop", "--pid", "x"]).is_err());
    }

    #[test]
    fn pause_resume_and_deploy_options() {
        let Command::Pause(o) = p(&["pause", "127.0.0.1:9000", "--for", "2s", "--pause-dir=/tmp/p"]).unwrap() else {
            panic!()
        };
        assert_eq!((o.target.backend.as_str(), o.pause_for), ("127.0.0.1:9000", Duration::from_secs(2)));
        assert_eq!((o.target.pause_dir, o.timeout), (PathBuf::from("/tmp/p"), Duration::from_secs(30)));
        let Command::Pause(o) = p(&["pause", "/run/php/x.sock"]).unwrap() else { panic!() };
        assert_eq!(o.pause_for, DEFAULT_PAUSE);
        assert!(p(&["pause"]).unwrap_err().contains("missing BACKEND"));
        assert!(p(&["pause", "a:1", "b:2"]).unwrap_err().contains("one BACKEND"));
        assert!(p(&["pause", "a:1", "--for", "0"]).is_err());
        assert!(p(&["pause", "a:1", "--for", "2d"]).is_err());
        assert!(p(&["resume", "a:1", "--for", "2s"]).is_err());
        let Command::Resume(o) = p(&["resume", "a:1"]).unwrap() else { panic!() };
        assert_eq!(o.target.backend, "a:1");
        let Command::Deploy(o) =
            p(&["deploy", "a:1", "--timeout", "10s", "--", "systemctl", "restart", "--now", "php8.2-fpm"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(o.command, ["systemctl", "restart", "--now", "php8.2-fpm"], "options after -- are COMMAND's");
        assert_eq!((o.timeout, o.pause_for), (Duration::from_secs(10), Duration::from_secs(30)));
        assert!(p(&["deploy", "a:1"]).unwrap_err().contains("COMMAND"));
        assert!(p(&["deploy", "a:1", "--ping", "ping", "--", "true"]).is_err());
    }

    #[test]
    fn systemd_options() {
        let Command::SystemdDropin(o) = p(&["systemd-dropin", "--root", "/tmp/r", "--remove"]).unwrap() else {
            panic!()
        };
        assert_eq!((o.root, o.remove), (PathBuf::from("/tmp/r"), true));
        assert!(p(&["systemd-dropin", "--remove=yes"]).is_err());
        assert!(p(&[]).is_err());
    }
}
