//! The command line, declared with clap: each command's options live with the command (its
//! `Args` struct), the ones several share in `options`. This module only names the commands,
//! parses and dispatches; nothing imports it, so there is no circle through it.
//!
//! One more command is one variant here, one line in `run`, and its own module.

use clap::{Parser, Subcommand};

use crate::check::{self, CheckArgs};
use crate::deploy::{self, DeployArgs};
use crate::keeper::{self, SocketKeeperArgs};
use crate::pause::{self, PauseArgs, ResumeArgs};
use crate::prepare::{self, PrepareArgs};
use crate::reload::{self, ReloadArgs};
use crate::stop::{self, StopArgs};
use crate::systemd::{self, SystemdArgs};
use crate::wait::{self, WaitArgs};

/// Keeps the PHP-FPM side ready for Apache's mod_proxy_fcgi.
#[derive(Parser, Debug)]
#[command(
    name = "fcgi-resilient-helper",
    version,
    arg_required_else_help = true,
    after_help = "Exit status: 0 ok, 1 problem found (or timeout), 2 usage error.\n\
                  The manual: man fcgi-resilient-helper (docs/helper.md)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create each pool's socket directory with the right owner and mode
    ///
    /// Reads the PHP-FPM main config(s) and the pools they include, and creates each Unix
    /// socket's directory (and missing ancestors, root:root 0755) owned by the pool's
    /// listen.owner/listen.group (else user/group). Fixes a wrong owner or mode. Idempotent.
    Prepare(PrepareArgs),
    /// Compare Apache's FastCGI backends with the PHP-FPM pools
    ///
    /// Lists the FastCGI backends Apache uses (SetHandler proxy:..., ProxyPass,
    /// ProxyPassMatch, <Proxy>, BalancerMember) and reports each one no PHP-FPM pool listens
    /// on, or whose socket Apache's User/Group could not reach, with file:line and a fix.
    Check(CheckArgs),
    /// Wait until a pool accepts connections (and answers its ping)
    ///
    /// Waits until the pool accepts a connection; with --ping, until a FastCGI request for
    /// PATH (the pool's ping.path) is answered with TEXT (its ping.response, default pong).
    Wait(WaitArgs),
    /// Gracefully reload PHP-FPM (SIGUSR2) and wait until it answers
    ///
    /// Sends SIGUSR2 to the PHP-FPM master, waits until it has re-executed (its old worker
    /// processes are all gone and new ones exist) and then until the pool answers, as `wait`
    /// does. Without --pid/--pid-file the `pid` of the --fpm-config's [global] section is used.
    ReloadAndWait(ReloadArgs),
    /// Stop PHP-FPM after the requests on its sockets are done (no request cut)
    ///
    /// Moves each pool's Unix socket aside (new connections wait in mod_fcgi_resilient),
    /// waits until no connection to those sockets is left or the timeout passes, then sends
    /// SIGTERM and waits until the master has exited. Pools on TCP cannot be drained this way
    /// and are stopped as usual. If PID is not a php-fpm master, or anything fails before the
    /// SIGTERM, php-fpm keeps running with its sockets in place.
    Stop(StopArgs),
    /// Install (or --remove) a drop-in using these for every php*-fpm unit
    ///
    /// For every installed php*-fpm unit writes /etc/systemd/system/UNIT.d/fcgi-resilient.conf:
    /// prepare before start, wait after start, reload-and-wait on reload and a lossless `stop`
    /// on stop, with the paths of the unit's own PHP-FPM config. Then runs `systemctl
    /// daemon-reload` when systemd runs.
    SystemdDropin(SystemdArgs),
    /// Have systemd hold every pool's listening socket across PHP-FPM's restarts
    ///
    /// For every installed php*-fpm unit, makes systemd hold each pool's listening socket (Unix
    /// or TCP) so that it stays open while PHP-FPM restarts, crashes or fails a reload: connects
    /// queue instead of failing, for every front end. Writes, from the pools' real configs, a
    /// socket unit per pool (its address, owner, group, mode, backlog), a service drop-in and a
    /// generated PHP-FPM config that includes the real one and sets each pool's `listen` to a
    /// private key, then runs `systemctl daemon-reload`; `systemctl restart UNIT` hands the
    /// sockets over. `exec` is the drop-in's ExecStart wrapper, `verify` its ExecStartPost check,
    /// `run` the keeper without systemd.
    SocketKeeper(SocketKeeperArgs),
    /// Hold a backend's new requests in Apache until the running ones are done
    ///
    /// From now on mod_fcgi_resilient holds new requests for BACKEND in Apache (they wait as
    /// for a refusing backend, within FcgiResilientTimeout); requests already running finish.
    /// Returns once none is running, or says how many still run at --timeout (exit 1; the
    /// pause stays). The pause ends by itself after --for. BACKEND must be one Apache's config
    /// or a PHP-FPM pool names (else the known ones are listed), unless --force.
    Pause(PauseArgs),
    /// Let a paused backend's held requests go on at once
    ///
    /// Ends the pause of BACKEND: the requests held in Apache go on at once. BACKEND is not
    /// looked up in the configuration, so any pause can be ended.
    Resume(ResumeArgs),
    /// Pause, wait until idle, run a command, wait until the backend answers, resume
    ///
    /// Pauses BACKEND, waits until no request runs on it, runs COMMAND, waits until BACKEND
    /// answers a FastCGI request again (with --ping, its ping page; else any answer, e.g. a
    /// 404), resumes. Resumes on every path: COMMAND failing, a timeout,
    /// SIGINT/SIGTERM/SIGHUP (passed on to COMMAND). Exit status: COMMAND's; 1 if the backend
    /// did not answer or the helper failed.
    Deploy(DeployArgs),
}

impl Command {
    /// Runs the command; its exit status.
    pub fn run(&self) -> i32 {
        match self {
            Command::Prepare(args) => prepare::run(args),
            Command::Check(args) => check::run(args),
            Command::Wait(args) => wait::run(args),
            Command::ReloadAndWait(args) => reload::run(args),
            Command::Stop(args) => stop::run(args),
            Command::SystemdDropin(args) => systemd::run(args),
            Command::SocketKeeper(args) => keeper::run(args),
            Command::Pause(args) => pause::run_pause(args),
            Command::Resume(args) => pause::run_resume(args),
            Command::Deploy(args) => deploy::run(args),
        }
    }
}

#[cfg(test)]
mod tests;
