//! Looking at the backend from outside mod_proxy: is its socket there, is it the same socket as
//! before, does it accept a connection now? And waiting for it, woken early when the socket
//! file of a Unix-socket backend reappears — or when the client hangs up, since nobody is left
//! to serve then.

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

/// Where a FastCGI backend listens, and the target of a proxy request: defined with the
/// helper, which must name a backend as the status page does.
pub use fcgi_resilient_common::backend_address::{proxy_fcgi_target, BackendAddress};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitEnd {
    DelayPassed,
    SocketDirectoryChanged,
    ClientGone,
}

/// What one probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    Accepting,
    /// Not accepting yet for a reason a restart explains; `recreated` when the socket file
    /// changed inode since the previous probe.
    NotYet {
        errno: Errno,
        recreated: bool,
    },
    /// Waiting cannot help (e.g. EACCES: the socket's permissions exclude Apache's user).
    Unusable {
        errno: Errno,
    },
    /// Not asked: the admin paused the backend (`pause`). Nothing is learnt of it, and nothing
    /// counts as a refusal.
    Held,
}

/// The connect errors a PHP-FPM restart produces: socket file missing, not listening yet,
/// or (Unix sockets) a full accept backlog.
pub fn is_restart_errno(errno: Errno) -> bool {
    matches!(errno, Errno::ECONNREFUSED | Errno::ENOENT | Errno::EAGAIN)
}

pub struct Prober {
    address: BackendAddress,
    last_inode: Option<u64>,
    resolved: Option<Vec<SocketAddr>>,
    socket_appeared: Option<SocketDirWatch>,
    client: Option<ClientWatch>,
}

impl Prober {
    pub fn new(address: BackendAddress) -> Self {
        Prober { address, last_inode: None, resolved: None, socket_appeared: None, client: None }
    }

    /// Waits also end when this client connection is closed by its peer.
    pub fn watch_client(&mut self, client: ClientWatch) {
        self.client = Some(client);
    }

    /// True once the watched client has closed its connection.
    pub fn client_gone(&self) -> bool {
        self.client.as_ref().is_some_and(|client| client.has_hung_up(Duration::ZERO))
    }

    pub fn address(&self) -> &BackendAddress {
        &self.address
    }

    /// `patience` bounds how long a TCP connect may take (the rest of the request's budget).
    pub fn probe(&mut self, patience: Duration) -> ProbeOutcome {
        match self.address.clone() {
            BackendAddress::Unix(path) => self.probe_unix(&path),
            BackendAddress::Tcp { host, port } => self.probe_tcp(&host, port, patience),
        }
    }

    /// Sleeps for `delay`, or less if the Unix socket's directory sees a new entry or the
    /// client hangs up.
    pub fn wait(&mut self, delay: Duration) -> WaitEnd {
        if let BackendAddress::Unix(path) = &self.address {
            if self.socket_appeared.is_none() {
                self.socket_appeared = SocketDirWatch::new(path);
            }
        }
        wait_for_either(self.socket_appeared.as_ref(), self.client.as_ref(), delay)
    }

    fn probe_unix(&mut self, path: &Path) -> ProbeOutcome {
        let inode = match std::fs::metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => meta.ino(),
            Ok(_) => return ProbeOutcome::Unusable { errno: Errno::ENOTSOCK },
            Err(error) => return classify(errno_of(&error), false),
        };
        let recreated = self.last_inode.is_some_and(|previous| previous != inode);
        self.last_inode = Some(inode);
        classify(connect_unix(path).err().unwrap_or(Errno::UnknownErrno), recreated)
    }

    fn probe_tcp(&mut self, host: &str, port: u16, patience: Duration) -> ProbeOutcome {
        if self.resolved.is_none() {
            match (host, port).to_socket_addrs() {
                Ok(addrs) => self.resolved = Some(addrs.collect()),
                Err(_) => return ProbeOutcome::Unusable { errno: Errno::EADDRNOTAVAIL },
            }
        }
        let patience = patience.clamp(Duration::from_millis(1), Duration::from_secs(1));
        let mut last = Errno::EADDRNOTAVAIL;
        for addr in self.resolved.iter().flatten() {
            match TcpStream::connect_timeout(addr, patience) {
                Ok(_) => return ProbeOutcome::Accepting,
                Err(error) if error.kind() == std::io::ErrorKind::TimedOut => last = Errno::EAGAIN,
                Err(error) => last = errno_of(&error),
            }
        }
        classify(last, false)
    }
}

/// `UnknownErrno` stands for "no error" so connect results share one path.
fn classify(errno: Errno, recreated: bool) -> ProbeOutcome {
    if errno == Errno::UnknownErrno {
        ProbeOutcome::Accepting
    } else if is_restart_errno(errno) {
        ProbeOutcome::NotYet { errno, recreated }
    } else {
        ProbeOutcome::Unusable { errno }
    }
}

fn errno_of(error: &std::io::Error) -> Errno {
    error.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO)
}

/// Non-blocking, so a full accept backlog answers EAGAIN instead of blocking the probe.
fn connect_unix(path: &Path) -> Result<(), Errno> {
    let fd = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, None)?;
    let address = UnixAddr::new(path)?;
    connect(fd.as_raw_fd(), &address)
}

/// How a waiting request learns that its client left.
///
/// An HTTP/1.x request watches its connection's socket for the peer closing it: POLLRDHUP
/// (FIN), POLLHUP and POLLERR (RST). It never asks for POLLIN and never reads, so a request
/// body or a pipelined request still unread in the socket is left to httpd. A client that
/// half-closes after sending its request looks gone too; HTTP clients do not do that while
/// awaiting an answer.
///
/// An HTTP/2 stream has no socket of its own (its connection's socket is a placeholder that
/// polls as hung up at once); the server marks it aborted when the client resets the stream
/// or closes the connection, and `Flag` reads that mark.
pub struct ClientWatch {
    signal: ClientSignal,
}

enum ClientSignal {
    Socket(OwnedFd),
    Flag(Box<dyn Fn() -> bool>),
}

const HUNG_UP: i16 = libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR;

impl ClientWatch {
    /// `fd` is a duplicate of the client socket, owned by the watch.
    pub fn new(fd: OwnedFd) -> Self {
        ClientWatch { signal: ClientSignal::Socket(fd) }
    }

    /// `gone` answers, without blocking, whether the client has left.
    pub fn from_flag(gone: impl Fn() -> bool + 'static) -> Self {
        ClientWatch { signal: ClientSignal::Flag(Box::new(gone)) }
    }

    fn poll_entry(&self) -> Option<libc::pollfd> {
        match &self.signal {
            ClientSignal::Socket(fd) => Some(libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLRDHUP, revents: 0 }),
            ClientSignal::Flag(_) => None,
        }
    }

    /// A flag cannot wake a poll: a wait that watches one looks at it between short slices.
    fn needs_slices(&self) -> bool {
        matches!(self.signal, ClientSignal::Flag(_))
    }

    fn flag_says_gone(&self) -> bool {
        match &self.signal {
            ClientSignal::Flag(gone) => gone(),
            ClientSignal::Socket(_) => false,
        }
    }

    /// Whether the client has left, without waiting.
    pub fn has_left(&self) -> bool {
        self.has_hung_up(Duration::ZERO)
    }

    fn has_hung_up(&self, patience: Duration) -> bool {
        match self.poll_entry() {
            Some(entry) => {
                let mut entries = [entry];
                poll_entries(&mut entries, patience) && entries[0].revents & HUNG_UP != 0
            }
            None => self.flag_says_gone(),
        }
    }
}

/// libc's poll rather than nix's: nix cannot report POLLRDHUP, a Linux-only flag.
fn poll_entries(entries: &mut [libc::pollfd], patience: Duration) -> bool {
    // Rounded up, so that a wait never ends before its delay.
    let millis = patience.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
    // SAFETY: `entries` is a valid, exclusively borrowed array of `entries.len()` pollfd
    // records whose descriptors the caller owns for the duration of the call.
    let ready = unsafe { libc::poll(entries.as_mut_ptr(), entries.len() as libc::nfds_t, millis) };
    ready > 0
}

/// Sleeps up to `delay` unless the backend's socket file changes or the client hangs up.
/// Other files of the socket directory (hundreds of pools share /run/php on a shared host,
/// all recreated at one PHP-FPM restart) do not end the wait.
fn wait_for_either(socket_dir: Option<&SocketDirWatch>, client: Option<&ClientWatch>, delay: Duration) -> WaitEnd {
    let delay = delay.max(Duration::from_millis(1));
    if socket_dir.is_none() && client.is_none() {
        std::thread::sleep(delay);
        return WaitEnd::DelayPassed;
    }
    // A waiter blocked in poll does not see an event another waiter has already read, nor a
    // flag: it polls in short slices and looks at both in between.
    let sliced = socket_dir.is_some() || client.is_some_and(ClientWatch::needs_slices);
    let deadline = std::time::Instant::now() + delay;
    loop {
        // Before each poll, not only when it says readable: another waiter of this process
        // may have read the shared instance's events, this socket's among them.
        if socket_dir.is_some_and(SocketDirWatch::socket_changed) {
            return WaitEnd::SocketDirectoryChanged;
        }
        if client.is_some_and(ClientWatch::flag_says_gone) {
            return WaitEnd::ClientGone;
        }
        let remaining = deadline.saturating_duration_since(std::time::Instant::now());
        if remaining.is_zero() {
            return WaitEnd::DelayPassed;
        }
        let slice = if sliced { remaining.min(SHARED_WATCH_SLICE) } else { remaining };
        let client_entry = client.and_then(ClientWatch::poll_entry);
        let mut entries: Vec<libc::pollfd> = socket_dir.map(SocketDirWatch::poll_entry).into_iter().collect();
        entries.extend(client_entry);
        if entries.is_empty() {
            std::thread::sleep(slice);
            continue;
        }
        if !poll_entries(&mut entries, slice) {
            continue;
        }
        let client_revents = client_entry.and_then(|_| entries.last()).map_or(0, |entry| entry.revents);
        if client_revents & HUNG_UP != 0 {
            return WaitEnd::ClientGone;
        }
    }
}

/// The longest a waiter of a shared socket-directory watch may miss a change another waiter
/// read for it.
const SHARED_WATCH_SLICE: Duration = Duration::from_millis(10);

/// An inotify watch on the socket's directory. PHP-FPM's bind() creates the socket file there
/// (IN_CREATE), then it chmods and chowns it (IN_ATTRIB) and only then listens: waking on
/// each step lets the probe follow closely instead of sleeping a whole backoff in between.
///
/// The inotify instance is shared by every waiting request of this process whose socket is
/// in the same directory (see `DirWatch`); this request only looks at its own socket's name.
struct SocketDirWatch {
    shared: Arc<DirWatch>,
    socket_name: OsString,
    /// The changes of the socket file this request has already seen.
    seen: AtomicU64,
}

impl SocketDirWatch {
    fn new(socket_path: &Path) -> Option<Self> {
        let directory = socket_path.parent()?;
        let socket_name = socket_path.file_name()?.to_os_string();
        let shared = DirWatch::for_directory(directory)?;
        let seen = AtomicU64::new(shared.register(&socket_name));
        Some(SocketDirWatch { shared, socket_name, seen })
    }

    fn poll_entry(&self) -> libc::pollfd {
        libc::pollfd { fd: self.shared.inotify.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 }
    }

    /// Reads the events pending on the shared instance; true if the backend's socket file
    /// changed since this request last asked (whichever waiter read that event).
    fn socket_changed(&self) -> bool {
        let changes = self.shared.changes_of(&self.socket_name);
        self.seen.swap(changes, Ordering::Relaxed) != changes
    }
}

impl Drop for SocketDirWatch {
    fn drop(&mut self) {
        self.shared.unregister(&self.socket_name);
    }
}

/// One inotify instance per socket directory and process. Linux caps the instances per user
/// (fs.inotify.max_user_instances, 128 by default) and every Apache child runs as the same
/// user: with an instance per waiting request, a restart of hundreds of pools left the
/// waiters past the cap probing on their backoff. Shared, a child needs one per directory.
struct DirWatch {
    directory: PathBuf,
    inotify: Inotify,
    /// Per socket name that a request of this process waits for: changes seen, waiters.
    names: Mutex<HashMap<OsString, Interest>>,
}

#[derive(Default)]
struct Interest {
    changes: u64,
    waiters: usize,
}

/// The directory watches of this process, held by the requests waiting; dropped with the last.
static DIR_WATCHES: Mutex<Vec<Weak<DirWatch>>> = Mutex::new(Vec::new());

/// A panic while a lock was held leaves usable data behind: recover it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl DirWatch {
    /// The process's watch of `directory`, made on first use. None when no inotify instance
    /// can be had (the per-user cap): waiting then falls back to its backoff alone.
    fn for_directory(directory: &Path) -> Option<Arc<DirWatch>> {
        let mut watches = lock(&DIR_WATCHES);
        watches.retain(|watch| watch.strong_count() > 0);
        let known = watches.iter().filter_map(Weak::upgrade).find(|watch| watch.directory == directory);
        if known.is_some() {
            return known;
        }
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        inotify
            .add_watch(directory, AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_ATTRIB)
            .ok()?;
        let watch =
            Arc::new(DirWatch { directory: directory.to_path_buf(), inotify, names: Mutex::new(HashMap::new()) });
        watches.push(Arc::downgrade(&watch));
        Some(watch)
    }

    /// Starts counting the changes of `name`; returns the count so far.
    fn register(&self, name: &OsStr) -> u64 {
        let mut names = lock(&self.names);
        let interest = names.entry(name.to_os_string()).or_default();
        interest.waiters += 1;
        interest.changes
    }

    fn unregister(&self, name: &OsStr) {
        let mut names = lock(&self.names);
        if let Some(interest) = names.get_mut(name) {
            interest.waiters -= 1;
            if interest.waiters == 0 {
                names.remove(name);
            }
        }
    }

    /// Reads every pending event, counting those that name a watched socket, and returns the
    /// count of `name`. Under the lock, so that no event is read without being counted.
    fn changes_of(&self, name: &OsStr) -> u64 {
        let mut names = lock(&self.names);
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for event in &events {
                if let Some(interest) = event.name.as_deref().and_then(|n| names.get_mut(n)) {
                    interest.changes += 1;
                }
            }
        }
        names.get(name).map_or(0, |interest| interest.changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TempDir;
    use std::os::unix::net::UnixListener;

    fn temp_dir(name: &str) -> TempDir {
        TempDir::new(&format!("probe-{name}"))
    }

    #[test]
    fn missing_socket_is_a_restart_symptom() {
        let dir = temp_dir("missing");
        let mut prober = Prober::new(BackendAddress::Unix(dir.join("php.sock")));
        assert_eq!(
            prober.probe(Duration::from_secs(1)),
            ProbeOutcome::NotYet { errno: Errno::ENOENT, recreated: false }
        );
    }

    #[test]
    fn listening_socket_accepts_and_a_dead_one_refuses() {
        let dir = temp_dir("refuse");
        let path = dir.join("php.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let mut prober = Prober::new(BackendAddress::Unix(path.clone()));
        assert_eq!(prober.probe(Duration::from_secs(1)), ProbeOutcome::Accepting);
        drop(listener); // the file stays, nobody listens: what a killed PHP-FPM leaves behind
        assert!(matches!(
            prober.probe(Duration::from_secs(1)),
            ProbeOutcome::NotYet { errno: Errno::ECONNREFUSED, recreated: false }
        ));
    }

    #[test]
    fn notices_a_recreated_socket() {
        let dir = temp_dir("recreated");
        let path = dir.join("php.sock");
        let first = UnixListener::bind(&path).unwrap();
        let mut prober = Prober::new(BackendAddress::Unix(path.clone()));
        prober.probe(Duration::from_secs(1));
        drop(first);
        // Keep the old inode alive elsewhere so the new file cannot reuse its number.
        std::fs::rename(&path, dir.join("old.sock")).unwrap();
        let _second = UnixListener::bind(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let _third = UnixListener::bind(&path).unwrap();
        assert!(matches!(prober.probe(Duration::from_secs(1)), ProbeOutcome::Accepting));
        drop(_third);
        assert!(matches!(
            prober.probe(Duration::from_secs(1)),
            ProbeOutcome::NotYet { errno: Errno::ECONNREFUSED, recreated: false }
        ));
    }

    #[test]
    fn a_regular_file_is_unusable() {
        let dir = temp_dir("regular");
        let path = dir.join("php.sock");
        std::fs::write(&path, b"").unwrap();
        let mut prober = Prober::new(BackendAddress::Unix(path));
        assert_eq!(prober.probe(Duration::from_secs(1)), ProbeOutcome::Unusable { errno: Errno::ENOTSOCK });
    }

    #[test]
    fn tcp_refusal_and_acceptance() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut prober = Prober::new(BackendAddress::Tcp { host: "127.0.0.1".into(), port });
        assert_eq!(prober.probe(Duration::from_secs(1)), ProbeOutcome::Accepting);
        drop(listener);
        assert!(matches!(
            prober.probe(Duration::from_secs(1)),
            ProbeOutcome::NotYet { errno: Errno::ECONNREFUSED, .. }
        ));
    }

    #[test]
    fn wait_wakes_when_the_socket_appears() {
        let dir = temp_dir("wake");
        let path = dir.join("php.sock");
        let mut prober = Prober::new(BackendAddress::Unix(path.clone()));
        prober.wait(Duration::from_millis(1)); // sets up the watch
        let creator = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            UnixListener::bind(&path).unwrap()
        });
        let end = prober.wait(Duration::from_secs(20));
        let _listener = creator.join().unwrap();
        assert_eq!(end, WaitEnd::SocketDirectoryChanged);
    }

    fn watched_pair() -> (std::os::unix::net::UnixStream, ClientWatch) {
        let (client, server_side) = std::os::unix::net::UnixStream::pair().unwrap();
        (client, ClientWatch::new(OwnedFd::from(server_side)))
    }

    #[test]
    fn a_client_with_unread_data_is_still_there() {
        use std::io::Write;
        let (mut client, watch) = watched_pair();
        client.write_all(b"POST / HTTP/1.1\r\n").unwrap();
        assert!(!watch.has_hung_up(Duration::from_millis(20)));
    }

    #[test]
    fn a_client_that_closed_is_gone_even_with_unread_data() {
        use std::io::Write;
        let (mut client, watch) = watched_pair();
        client.write_all(b"body bytes nobody read").unwrap();
        drop(client);
        assert!(watch.has_hung_up(Duration::ZERO));
    }

    #[test]
    fn a_wait_ends_when_the_client_hangs_up() {
        let dir = temp_dir("client");
        let (client, watch) = watched_pair();
        let mut prober = Prober::new(BackendAddress::Unix(dir.join("php.sock")));
        prober.watch_client(watch);
        assert!(!prober.client_gone());
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(client);
        });
        assert_eq!(prober.wait(Duration::from_secs(20)), WaitEnd::ClientGone);
        closer.join().unwrap();
        assert!(prober.client_gone());
    }

    #[test]
    fn a_tcp_backend_wait_also_ends_when_the_client_hangs_up() {
        let (client, watch) = watched_pair();
        let mut prober = Prober::new(BackendAddress::Tcp { host: "127.0.0.1".into(), port: 9 });
        prober.watch_client(watch);
        drop(client);
        assert_eq!(prober.wait(Duration::from_secs(20)), WaitEnd::ClientGone);
    }

    /// An HTTP/2 stream: no socket, a flag the server sets when the stream is reset.
    fn flag_watch() -> (Arc<std::sync::atomic::AtomicBool>, ClientWatch) {
        let aborted = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = Arc::clone(&aborted);
        (aborted, ClientWatch::from_flag(move || seen.load(Ordering::Relaxed)))
    }

    #[test]
    fn a_flag_watch_reports_the_client_only_once_the_flag_is_set() {
        let (aborted, watch) = flag_watch();
        let mut prober = Prober::new(BackendAddress::Tcp { host: "127.0.0.1".into(), port: 9 });
        prober.watch_client(watch);
        assert!(!prober.client_gone());
        assert_eq!(prober.wait(Duration::from_millis(30)), WaitEnd::DelayPassed);
        aborted.store(true, Ordering::Relaxed);
        assert!(prober.client_gone());
    }

    #[test]
    fn a_wait_on_a_flag_ends_when_it_is_set() {
        let dir = temp_dir("flag");
        let (aborted, watch) = flag_watch();
        let mut prober = Prober::new(BackendAddress::Unix(dir.join("php.sock")));
        prober.watch_client(watch);
        let resetter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            aborted.store(true, Ordering::Relaxed);
        });
        assert_eq!(prober.wait(Duration::from_secs(20)), WaitEnd::ClientGone);
        resetter.join().unwrap();
    }

    #[test]
    fn a_flag_wait_without_a_socket_directory_also_ends() {
        let (aborted, watch) = flag_watch();
        let mut prober = Prober::new(BackendAddress::Tcp { host: "127.0.0.1".into(), port: 9 });
        prober.watch_client(watch);
        aborted.store(true, Ordering::Relaxed);
        assert_eq!(prober.wait(Duration::from_secs(20)), WaitEnd::ClientGone);
    }

    #[test]
    fn waiters_of_one_directory_share_one_inotify_instance() {
        let dir = temp_dir("shared");
        let other = temp_dir("shared-other");
        let a = SocketDirWatch::new(&dir.join("a.sock")).expect("inotify watch");
        let b = SocketDirWatch::new(&dir.join("b.sock")).expect("inotify watch");
        let elsewhere = SocketDirWatch::new(&other.join("a.sock")).expect("inotify watch");
        assert!(Arc::ptr_eq(&a.shared, &b.shared));
        assert!(!Arc::ptr_eq(&a.shared, &elsewhere.shared));
    }

    /// More waiting requests than Linux lets one user have inotify instances (128 by
    /// default; every Apache child runs as the same user): each is still woken by its socket.
    #[test]
    fn more_waiters_than_the_instance_cap_all_get_a_watch() {
        let cap: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances")
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(128);
        let dir = temp_dir("many");
        let waiters = cap.min(4096) + 10;
        let watches: Vec<Option<SocketDirWatch>> =
            (0..waiters).map(|i| SocketDirWatch::new(&dir.join(&format!("site{i}.sock")))).collect();
        let watching = watches.iter().flatten().count();
        assert_eq!(watching, waiters, "only {watching} of {waiters} waiters could watch their socket");
        let last = watches.last().and_then(Option::as_ref).unwrap();
        let _socket = UnixListener::bind(dir.join(&format!("site{}.sock", waiters - 1))).unwrap();
        assert!(last.socket_changed());
        assert!(!watches[0].as_ref().unwrap().socket_changed());
    }

    #[test]
    fn a_change_another_waiter_read_still_ends_this_ones_wait() {
        let dir = temp_dir("read-by-other");
        let mut a = Prober::new(BackendAddress::Unix(dir.join("a.sock")));
        let mut b = Prober::new(BackendAddress::Unix(dir.join("b.sock")));
        a.wait(Duration::from_millis(1)); // sets up the watches
        b.wait(Duration::from_millis(1));
        let _a_socket = UnixListener::bind(dir.join("a.sock")).unwrap();
        assert_eq!(b.wait(Duration::from_millis(20)), WaitEnd::DelayPassed, "b read the events, a's among them");
        let started = std::time::Instant::now();
        assert_eq!(a.wait(Duration::from_secs(20)), WaitEnd::SocketDirectoryChanged);
        assert!(started.elapsed() < Duration::from_secs(10), "a slept its whole delay");
    }

    #[test]
    fn concurrent_waiters_wake_for_their_own_socket_only() {
        let dir = temp_dir("concurrent");
        let waiter = |name: &str, delay| {
            let path = dir.join(name);
            let (ready, watching) = std::sync::mpsc::channel();
            let thread = std::thread::spawn(move || {
                let mut prober = Prober::new(BackendAddress::Unix(path));
                prober.wait(Duration::from_millis(1));
                ready.send(()).unwrap();
                prober.wait(delay)
            });
            watching.recv().unwrap();
            thread
        };
        let a = waiter("a.sock", Duration::from_secs(20));
        let b = waiter("b.sock", Duration::from_millis(300));
        std::thread::sleep(Duration::from_millis(50));
        let _a_socket = UnixListener::bind(dir.join("a.sock")).unwrap();
        assert_eq!(a.join().unwrap(), WaitEnd::SocketDirectoryChanged);
        assert_eq!(b.join().unwrap(), WaitEnd::DelayPassed);
    }

    #[test]
    fn only_the_backends_own_socket_counts_as_a_change() {
        let dir = temp_dir("neighbours");
        let watch = SocketDirWatch::new(&dir.join("site-a.sock")).expect("inotify watch");
        let _neighbour = UnixListener::bind(dir.join("site-b.sock")).unwrap();
        assert!(!watch.socket_changed(), "a neighbour's socket woke the wait");
        let _own = UnixListener::bind(dir.join("site-a.sock")).unwrap();
        assert!(watch.socket_changed());
    }
}
