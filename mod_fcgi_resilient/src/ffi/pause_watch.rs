//! Deliberate pauses in httpd: the `FcgiResilientPauseDir` directive, the pause directory
//! made at start-up, and in every child process one thread that watches the directory with
//! inotify and keeps `PAUSES` current. A request asks `PAUSES` with one atomic load while
//! nothing is paused: no system call and no lock on the happy path.
//!
//! The thread starts in child_init and re-reads the whole directory first, so a pause
//! outlives `apachectl graceful` and child recycling; it is stopped and joined by a cleanup
//! of the child's pool, before the child exits.

use super::log::{self, mark};
use super::{guard::guard, sys};
use crate::pause::{self, PauseDirSetting, PauseSet};
use crate::pause_file::PauseRecord;
use crate::stats::unix_millis_now;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::collections::BTreeSet;
use std::ffi::{c_int, c_void};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::ptr::null;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

/// The backends paused now, as this child's watcher last read them.
static PAUSES: PauseSet = PauseSet::new();

/// What `FcgiResilientPauseDir` said; the default when it is absent. httpd reloads the
/// module at every restart, so a directive taken out of the config is forgotten.
static SETTING: Mutex<Option<PauseDirSetting>> = Mutex::new(None);

struct Watcher {
    /// Closing it wakes the thread for good.
    stop: UnixStream,
    thread: JoinHandle<()>,
}

static WATCHER: Mutex<Option<Watcher>> = Mutex::new(None);

const WARNING: c_int = sys::APLOG_WARNING as c_int;
const NOTICE: c_int = sys::APLOG_NOTICE as c_int;

/// A directory that is missing (or cannot be watched) is looked at again this often.
const RECHECK_WITHOUT_WATCH: Duration = Duration::from_millis(100);
/// With a watch, the thread wakes only for an event, a pause's end, or this.
const LONGEST_SLEEP: Duration = Duration::from_secs(60);

pub fn any() -> bool {
    PAUSES.any()
}

/// When the pause of `backend` (as the status page names it) ends, if it is paused now.
pub fn paused_until(backend: &str) -> Option<u64> {
    PAUSES.paused_until(backend, unix_millis_now())
}

pub fn current() -> Vec<PauseRecord> {
    PAUSES.current(unix_millis_now())
}

fn setting() -> PauseDirSetting {
    SETTING.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone().unwrap_or_default()
}

/// `FcgiResilientPauseDir DIR [OWNER]` (`directives`): in the main server config only, one
/// directory per server, read by every child.
pub fn set_pause_dir(name: &str, values: &[&str]) -> Result<(), String> {
    let uid_of = |user: &str| nix::unistd::User::from_name(user).ok().flatten().map(|user| user.uid.as_raw());
    let parsed = pause::parse_pause_dir(name, values[0], values.get(1).copied(), uid_of)?;
    *SETTING.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(parsed);
    Ok(())
}

pub fn register_hooks() {
    // SAFETY: registering this module's hook function, from register_hooks.
    unsafe { sys::ap_hook_child_init(Some(child_init), null(), null(), sys::APR_HOOK_MIDDLE as c_int) };
}

/// At start-up, as root: the directory exists (root's, 0755) so that every child can watch
/// it from its first moment, and a directory others can write is named in the log once.
pub fn prepare_directory(server: Option<&sys::server_rec>) {
    let setting = setting();
    if !setting.directory.exists() {
        use std::os::unix::fs::DirBuilderExt;
        let made = std::fs::DirBuilder::new().recursive(true).mode(0o755).create(&setting.directory);
        if let Err(error) = made {
            let message = format!(
                "cannot create the pause directory {} ({error}): pauses are seen within {} ms once it exists",
                setting.directory.display(),
                RECHECK_WITHOUT_WATCH.as_millis()
            );
            log::for_server(server, NOTICE, mark!(), &message);
        }
    }
    if let Some(warning) = pause::directory_warning(&setting) {
        log::for_server(server, WARNING, mark!(), &warning);
    }
}

unsafe extern "C" fn child_init(child_pool: *mut sys::apr_pool_t, _server: *mut sys::server_rec) {
    guard("child_init", (), || {
        let Ok((stop, wake)) = UnixStream::pair() else { return };
        let setting = setting();
        let spawned = std::thread::Builder::new().name("fcgi-pause".into()).spawn(move || watch(&setting, &wake));
        let Ok(thread) = spawned else { return };
        *WATCHER.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Watcher { stop, thread });
        // SAFETY: the child's pool lives until the child exits; the cleanup takes no data.
        unsafe {
            sys::apr_pool_cleanup_register(child_pool, null(), Some(stop_watcher), Some(sys::apr_pool_cleanup_null))
        };
    })
}

unsafe extern "C" fn stop_watcher(_: *mut c_void) -> sys::apr_status_t {
    guard("the pause watcher's cleanup", sys::APR_SUCCESS as sys::apr_status_t, || {
        let watcher = WATCHER.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(Watcher { mut stop, thread }) = watcher {
            let _ = stop.write_all(b"x");
            drop(stop);
            let _ = thread.join();
        }
        sys::APR_SUCCESS as sys::apr_status_t
    })
}

fn log_warning(message: &str) {
    log::for_server(log::main_server(), WARNING, mark!(), message);
}

/// The watcher thread: read the directory, publish, sleep until it changes, a pause ends or
/// the child stops.
fn watch(setting: &PauseDirSetting, stop: &UnixStream) {
    let mut reported = BTreeSet::new();
    let mut watch: Option<Inotify> = None;
    loop {
        if watch.is_none() {
            watch = watch_directory(setting);
        }
        let now = unix_millis_now();
        let found = pause::scan(setting, now);
        for message in pause::newly_ignored(&found, &mut reported) {
            log_warning(&message);
        }
        let sleep = match (&watch, found.next_end_unix_ms) {
            (None, _) => RECHECK_WITHOUT_WATCH,
            (Some(_), Some(end)) => Duration::from_millis(end.saturating_sub(now)).min(LONGEST_SLEEP),
            (Some(_), None) => LONGEST_SLEEP,
        };
        PAUSES.replace(found.pauses);
        match wait(stop, watch.as_ref(), sleep) {
            Woken::Stop => break,
            Woken::WatchGone => watch = None,
            Woken::Changed | Woken::Timeout => {}
        }
    }
    PAUSES.replace(Vec::new());
}

fn watch_directory(setting: &PauseDirSetting) -> Option<Inotify> {
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
    let events = AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF;
    inotify.add_watch(&setting.directory, events).ok()?;
    Some(inotify)
}

enum Woken {
    Stop,
    Changed,
    /// The directory was removed or moved: watch it again once it is back.
    WatchGone,
    Timeout,
}

fn wait(stop: &UnixStream, watch: Option<&Inotify>, sleep: Duration) -> Woken {
    let mut entries = vec![libc::pollfd { fd: stop.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
    if let Some(inotify) = watch {
        entries.push(libc::pollfd { fd: inotify.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 });
    }
    let millis = sleep.as_millis().clamp(1, i32::MAX as u128) as c_int;
    // SAFETY: `entries` is a valid array of pollfd records for descriptors owned here.
    let ready = unsafe { libc::poll(entries.as_mut_ptr(), entries.len() as libc::nfds_t, millis) };
    if ready <= 0 {
        return Woken::Timeout;
    }
    if entries[0].revents != 0 {
        return Woken::Stop;
    }
    let mut gone = false;
    while let Some(Ok(events)) = watch.map(Inotify::read_events) {
        if events.is_empty() {
            break;
        }
        gone |= events.iter().any(|event| {
            event
                .mask
                .intersects(AddWatchFlags::IN_IGNORED | AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF)
        });
    }
    if gone {
        Woken::WatchGone
    } else {
        Woken::Changed
    }
}

/// The pauses in force, each with the requests for its backend waiting now (all children).
pub fn paused_backends(report: &crate::stats::TableReport) -> Vec<pause::PausedBackend> {
    let held = |backend: &str| report.backends.iter().find(|b| b.backend == backend).map_or(0, |b| b.waiting);
    current()
        .into_iter()
        .map(|p| pause::PausedBackend { held: held(&p.backend), backend: p.backend, until_unix_ms: p.until_unix_ms })
        .collect()
}
