//! The thundering herd, counted: `strace -c -f` on every Apache child during the restart
//! (inotify instances made and refused, connects, polls), and the module's trace1 lines
//! (probes, and how each wait ended) when the log level asks for them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Tracer {
    strace: Child,
    output: PathBuf,
}

impl Tracer {
    /// Attaches to every child of the Apache whose ServerRoot is `apache_dir`.
    pub fn attach(apache_dir: &Path) -> Tracer {
        let parent = std::fs::read_to_string(apache_dir.join("httpd.pid")).expect("httpd.pid");
        let children = children_of(parent.trim());
        let output = apache_dir.join("strace.txt");
        let mut command = Command::new("strace");
        command.args([
            "-c",
            "-f",
            "-e",
            "trace=inotify_init1,inotify_add_watch,connect,poll,read,write,newfstatat,statx",
        ]);
        command.arg("-o").arg(&output);
        for pid in &children {
            command.args(["-p", pid]);
        }
        let strace =
            command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("strace (apt-get install strace)");
        // strace needs a moment to attach to every thread.
        std::thread::sleep(std::time::Duration::from_millis(300));
        Tracer { strace, output }
    }

    pub fn report(mut self, name: &str) {
        // SAFETY: kill(2) on the strace this handle started; SIGINT makes it print its summary.
        unsafe { libc::kill(self.strace.id() as i32, libc::SIGINT) };
        let _ = self.strace.wait();
        let summary = std::fs::read_to_string(&self.output).unwrap_or_default();
        println!("\nsystem calls of every Apache child from the stop to the end of the load, {name}:\n{summary}");
    }
}

fn children_of(parent: &str) -> Vec<String> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // The field after the parenthesised command name: state, then the parent's pid.
        let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        if after_name.split_whitespace().nth(1) == Some(parent) {
            children.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    children
}

/// Counts the module's trace1 lines, when the run logged them.
pub fn report_trace_log(name: &str, log: &str) {
    let probes = log.matches("probe at").count();
    if probes == 0 {
        return;
    }
    let waits = log.matches("wait of").count();
    let woken = log.matches("SocketDirectoryChanged").count();
    let timed_out = log.matches("ended at").count() - woken - log.matches("ClientGone").count();
    let recovered = log.matches("answered after").count();
    println!(
        "{name}: {recovered} requests waited; {probes} probes ({:.1} per waiting request), {waits} waits: \
         {woken} woken by their socket file, {timed_out} ran their full backoff delay",
        probes as f64 / recovered.max(1) as f64
    );
}

/// Samples, every few milliseconds until stopped, how many inotify instances the Apache
/// children hold together: with one per waiting request the per-user cap (128 by default)
/// shows as a ceiling, and the waiters past it probe on their backoff alone.
pub struct InotifySampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

impl InotifySampler {
    pub fn start(apache_dir: &Path) -> InotifySampler {
        let parent = std::fs::read_to_string(apache_dir.join("httpd.pid")).expect("httpd.pid");
        let children = children_of(parent.trim());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(children.iter().map(|pid| inotify_instances(pid)).sum());
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            peak
        });
        InotifySampler { stop, thread }
    }

    /// The most instances seen at once.
    pub fn finish(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

fn inotify_instances(pid: &str) -> usize {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).into_iter().flatten().flatten();
    fds.filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == "anon_inode:inotify"))
        .count()
}

/// Inotify instances every user of this machine holds now, and the per-user cap.
pub fn inotify_cap() -> String {
    std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances").unwrap_or_default().trim().to_string()
}
