//! Deliberate pauses, free of Apache: which backends are paused now (`PauseSet`, read by
//! every request with one atomic load while nothing is paused), reading the pause directory
//! (`scan`: only files owned by root or the uid the admin named count), the
//! `FcgiResilientPauseDir` directive, and the paused backends' lines on the status page.
//!
//! Who may pause is decided by the kernel: the directory is root's (0755), so only root (or
//! the owner the admin gave it) can create a file there, and a file anybody else managed to
//! put there (a directory made group-writable by mistake) is ignored and named in the log.

use crate::pause_file::{self, PauseRecord};
use crate::prometheus::escape_label_value;
use crate::status_page::escape_html;
use std::collections::BTreeSet;
use std::fmt::Write;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The backends paused now in this process, as the watcher last read them.
pub struct PauseSet {
    any: AtomicBool,
    records: Mutex<Vec<PauseRecord>>,
}

impl Default for PauseSet {
    fn default() -> Self {
        Self::new()
    }
}

impl PauseSet {
    pub const fn new() -> Self {
        PauseSet { any: AtomicBool::new(false), records: Mutex::new(Vec::new()) }
    }

    /// The happy path's only cost: false while nothing is paused.
    pub fn any(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    pub fn replace(&self, records: Vec<PauseRecord>) {
        let mut current = self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.any.store(!records.is_empty(), Ordering::Release);
        *current = records;
    }

    /// When the pause of `backend` ends, if it is paused at `now_unix_ms`.
    pub fn paused_until(&self, backend: &str, now_unix_ms: u64) -> Option<u64> {
        if !self.any() {
            return None;
        }
        let records = self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        records.iter().find(|r| r.backend == backend && !r.is_over(now_unix_ms)).map(|r| r.until_unix_ms)
    }

    /// The pauses not over at `now_unix_ms`, for the status page.
    pub fn current(&self, now_unix_ms: u64) -> Vec<PauseRecord> {
        if !self.any() {
            return Vec::new();
        }
        let records = self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        records.iter().filter(|r| !r.is_over(now_unix_ms)).cloned().collect()
    }
}

/// `FcgiResilientPauseDir DIR [OWNER]`: where pause files are read, and who besides root may
/// write them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseDirSetting {
    pub directory: PathBuf,
    /// Owners whose pause files count: root, and the uid the admin named.
    pub owners: Vec<u32>,
}

impl Default for PauseDirSetting {
    fn default() -> Self {
        PauseDirSetting { directory: PathBuf::from(pause_file::DEFAULT_PAUSE_DIR), owners: vec![0] }
    }
}

/// Parses the directive's arguments; `uid_of` resolves a user name (None: no such user).
pub fn parse_pause_dir(
    directive: &str,
    directory: &str,
    owner: Option<&str>,
    uid_of: impl Fn(&str) -> Option<u32>,
) -> Result<PauseDirSetting, String> {
    if !directory.starts_with('/') {
        return Err(format!("{directive}: '{directory}' must be an absolute path"));
    }
    let mut owners = vec![0];
    if let Some(owner) = owner {
        let uid = owner.parse::<u32>().ok().or_else(|| uid_of(owner));
        match uid {
            Some(uid) if !owners.contains(&uid) => owners.push(uid),
            Some(_) => {}
            None => return Err(format!("{directive}: '{owner}' is no user name or uid")),
        }
    }
    Ok(PauseDirSetting { directory: PathBuf::from(directory), owners })
}

/// What one read of the pause directory found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub pauses: Vec<PauseRecord>,
    /// Files that do not count, each with the reason (for one log line per file and reason).
    pub ignored: Vec<(String, String)>,
    /// The earliest end of a pause found, when the set must be read again at the latest.
    pub next_end_unix_ms: Option<u64>,
}

/// Reads every pause file of `setting.directory` that is in force at `now_unix_ms`. A missing
/// directory is no pause.
pub fn scan(setting: &PauseDirSetting, now_unix_ms: u64) -> Scan {
    let mut found = Scan::default();
    let Ok(entries) = std::fs::read_dir(&setting.directory) else { return found };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !pause_file::is_pause_file_name(&name) {
            continue;
        }
        match read_pause(&entry.path(), &name, &setting.owners) {
            Ok(record) if record.is_over(now_unix_ms) => {}
            Ok(record) => {
                found.next_end_unix_ms =
                    Some(found.next_end_unix_ms.map_or(record.until_unix_ms, |end| end.min(record.until_unix_ms)));
                found.pauses.push(record);
            }
            Err(reason) => found.ignored.push((name, reason)),
        }
    }
    found.pauses.sort_by(|a, b| a.backend.cmp(&b.backend));
    found
}

/// Pause files are small; anything larger is not one.
const LONGEST_FILE: u64 = 4096;

fn read_pause(path: &Path, name: &str, owners: &[u32]) -> Result<PauseRecord, String> {
    // O_NOFOLLOW: a symlink planted in the directory leads nowhere.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot be opened: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    if !owners.contains(&meta.uid()) {
        return Err(format!("is owned by uid {}, and only {} may pause", meta.uid(), describe_owners(owners)));
    }
    let mut text = String::new();
    file.take(LONGEST_FILE).read_to_string(&mut text).map_err(|e| format!("cannot be read: {e}"))?;
    let record = PauseRecord::parse(&text)?;
    if record.file_name() != name {
        return Err(format!("names backend {} but its file name is another backend's", record.backend));
    }
    Ok(record)
}

fn describe_owners(owners: &[u32]) -> String {
    let names: Vec<String> =
        owners.iter().map(|uid| if *uid == 0 { "root".into() } else { format!("uid {uid}") }).collect();
    names.join(" or ")
}

/// The problems with the directory itself worth a warning: anyone but its owners able to
/// write there could remove a pause (never make one: their files are ignored).
pub fn directory_warning(setting: &PauseDirSetting) -> Option<String> {
    let meta = std::fs::metadata(&setting.directory).ok()?;
    let dir = setting.directory.display();
    if !setting.owners.contains(&meta.uid()) {
        return Some(format!(
            "pause directory {dir} is owned by uid {}, not {}",
            meta.uid(),
            describe_owners(&setting.owners)
        ));
    }
    (meta.mode() & 0o022 != 0).then(|| {
        format!(
            "pause directory {dir} is writable by group or others (mode {:o}): they can end pauses",
            meta.mode() & 0o7777
        )
    })
}

/// The ignored files not reported yet; remembers them so each is said once.
pub fn newly_ignored(scan: &Scan, reported: &mut BTreeSet<(String, String)>) -> Vec<String> {
    scan.ignored
        .iter()
        .filter(|entry| reported.insert((*entry).clone()))
        .map(|(name, reason)| format!("pause file {name} ignored: it {reason}"))
        .collect()
}

/// A paused backend as the status page shows it: with the requests it holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PausedBackend {
    pub backend: String,
    pub until_unix_ms: u64,
    /// Requests for it waiting now, all children together.
    pub held: u64,
}

pub fn render_auto(paused: &[PausedBackend]) -> String {
    let mut page = format!("PausedBackends: {}\n", paused.len());
    for pause in paused {
        let _ = writeln!(page, "Paused: {}", pause.backend);
        let _ = writeln!(page, "PausedUntil: {}", pause.until_unix_ms / 1000);
        let _ = writeln!(page, "Held: {}", pause.held);
    }
    page
}

/// The HTML page with a section for the pauses before its end.
pub fn add_to_html(page: String, paused: &[PausedBackend]) -> String {
    if paused.is_empty() {
        return page;
    }
    let mut section = String::from(
        "<h2>Paused (fcgi-resilient-helper pause)</h2>\n<table border=\"1\">\n\
         <tr><th>Backend</th><th>Until (Unix time)</th><th>Requests held now</th></tr>\n",
    );
    for pause in paused {
        let backend = escape_html(&pause.backend);
        let _ = writeln!(
            section,
            "<tr><td>{backend}</td><td>{}</td><td>{}</td></tr>",
            pause.until_unix_ms / 1000,
            pause.held
        );
    }
    section.push_str("</table>\n");
    match page.rfind("</body>") {
        Some(end) => format!("{}{section}{}", &page[..end], &page[end..]),
        None => page + &section,
    }
}

pub fn render_prometheus(paused: &[PausedBackend]) -> String {
    let mut page = String::from(
        "# HELP fcgi_resilient_paused Backend paused by fcgi-resilient-helper: its new requests are held in Apache.\n\
         # TYPE fcgi_resilient_paused gauge\n",
    );
    for pause in paused {
        let _ = writeln!(page, "fcgi_resilient_paused{{backend=\"{}\"}} 1", escape_label_value(&pause.backend));
    }
    page.push_str(
        "# HELP fcgi_resilient_paused_until_timestamp_seconds When the backend's pause ends by itself (Unix time).\n\
         # TYPE fcgi_resilient_paused_until_timestamp_seconds gauge\n",
    );
    for pause in paused {
        let (label, ms) = (escape_label_value(&pause.backend), pause.until_unix_ms);
        let _ = writeln!(
            page,
            "fcgi_resilient_paused_until_timestamp_seconds{{backend=\"{label}\"}} {}.{:03}",
            ms / 1000,
            ms % 1000
        );
    }
    page.push_str(
        "# HELP fcgi_resilient_held_requests Requests for a paused backend waiting now.\n\
         # TYPE fcgi_resilient_held_requests gauge\n",
    );
    for pause in paused {
        let _ = writeln!(
            page,
            "fcgi_resilient_held_requests{{backend=\"{}\"}} {}",
            escape_label_value(&pause.backend),
            pause.held
        );
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TempDir;
    use std::os::unix::fs::PermissionsExt;

    fn record(backend: &str, until: u64) -> PauseRecord {
        PauseRecord { backend: backend.into(), until_unix_ms: until }
    }

    #[test]
    fn nothing_paused_costs_one_load_and_answers_no() {
        let set = PauseSet::new();
        assert!(!set.any());
        assert_eq!(set.paused_until("127.0.0.1:9000", 0), None);
        set.replace(vec![record("127.0.0.1:9000", 2000)]);
        assert!(set.any());
        assert_eq!(set.paused_until("127.0.0.1:9000", 1000), Some(2000));
        assert_eq!(set.paused_until("127.0.0.1:9001", 1000), None);
        assert_eq!(set.paused_until("127.0.0.1:9000", 2000), None, "over at its end, whether or not re-read");
        assert_eq!(set.current(1000).len(), 1);
        set.replace(Vec::new());
        assert!(!set.any());
    }

    #[test]
    fn the_directive_takes_an_absolute_directory_and_an_owner() {
        let no_users = |_: &str| None;
        assert_eq!(parse_pause_dir("FcgiResilientPauseDir", "/run/p", None, no_users).unwrap().owners, vec![0]);
        let deploy = parse_pause_dir("FcgiResilientPauseDir", "/run/p", Some("deploy"), |_| Some(1001)).unwrap();
        assert_eq!(deploy.owners, vec![0, 1001]);
        assert_eq!(parse_pause_dir("X", "/run/p", Some("1002"), no_users).unwrap().owners, vec![0, 1002]);
        let error = parse_pause_dir("FcgiResilientPauseDir", "run/p", None, no_users).unwrap_err();
        assert!(error.starts_with("FcgiResilientPauseDir:") && error.contains("'run/p'"), "{error}");
        let error = parse_pause_dir("FcgiResilientPauseDir", "/run/p", Some("nobody-here"), no_users).unwrap_err();
        assert!(error.contains("'nobody-here'"), "{error}");
    }

    fn temp_dir(name: &str) -> TempDir {
        TempDir::new(&format!("pause-{name}"))
    }

    fn write(dir: &Path, pause: &PauseRecord) -> PathBuf {
        let path = dir.join(pause.file_name());
        std::fs::write(&path, pause.render()).unwrap();
        path
    }

    #[test]
    fn a_scan_keeps_what_is_in_force_and_says_why_the_rest_is_ignored() {
        let dir = temp_dir("scan");
        let me = nix_uid();
        let setting = PauseDirSetting { directory: dir.path().to_path_buf(), owners: vec![me] };
        write(dir.path(), &record("unix:/run/a.sock", 5000));
        write(dir.path(), &record("127.0.0.1:9000", 3000));
        write(dir.path(), &record("127.0.0.1:9001", 500)); // over
        std::fs::write(dir.join(".127.0.0.1:9002.pause.tmp.1"), "half written").unwrap();
        std::fs::write(dir.join("127.0.0.1:9003.pause"), record("127.0.0.1:9004", 5000).render()).unwrap();
        std::fs::write(dir.join("garbage.pause"), "hello").unwrap();
        std::os::unix::fs::symlink(dir.join("garbage.pause"), dir.join("link.pause")).unwrap();
        let found = scan(&setting, 1000);
        let backends: Vec<&str> = found.pauses.iter().map(|p| p.backend.as_str()).collect();
        assert_eq!(backends, ["127.0.0.1:9000", "unix:/run/a.sock"]);
        assert_eq!(found.next_end_unix_ms, Some(3000));
        let ignored: Vec<&str> = found.ignored.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(ignored.len(), 3, "{:?}", found.ignored);
        for name in ["127.0.0.1:9003.pause", "garbage.pause", "link.pause"] {
            assert!(ignored.contains(&name), "{name} in {:?}", found.ignored);
        }
        let mut reported = BTreeSet::new();
        assert_eq!(newly_ignored(&found, &mut reported).len(), 3);
        assert!(newly_ignored(&scan(&setting, 1000), &mut reported).is_empty(), "each said once");
        let missing = PauseDirSetting { directory: dir.join("none"), owners: vec![me] };
        assert_eq!(scan(&missing, 1000), Scan::default());
    }

    #[test]
    fn a_file_of_another_owner_is_ignored() {
        let dir = temp_dir("owner");
        write(dir.path(), &record("127.0.0.1:9000", 5000));
        let someone_else = nix_uid().wrapping_add(1);
        let setting = PauseDirSetting { directory: dir.path().to_path_buf(), owners: vec![someone_else] };
        let found = scan(&setting, 1000);
        assert!(found.pauses.is_empty());
        assert!(found.ignored[0].1.contains(&format!("owned by uid {}", nix_uid())), "{:?}", found.ignored);
    }

    #[test]
    fn a_directory_others_can_write_is_warned_about() {
        let dir = temp_dir("mode");
        let setting = PauseDirSetting { directory: dir.path().to_path_buf(), owners: vec![nix_uid()] };
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(directory_warning(&setting), None);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(directory_warning(&setting).unwrap().contains("mode 777"));
    }

    fn nix_uid() -> u32 {
        // SAFETY: getuid cannot fail and touches no memory.
        unsafe { libc::getuid() }
    }

    fn paused() -> Vec<PausedBackend> {
        vec![PausedBackend { backend: "unix:/run/php/<x>.sock".into(), until_unix_ms: 1_764_000_000_123, held: 3 }]
    }

    #[test]
    fn the_status_pages_show_the_pause_and_what_it_holds() {
        let auto = render_auto(&paused());
        for line in ["PausedBackends: 1", "Paused: unix:/run/php/<x>.sock", "PausedUntil: 1764000000", "Held: 3"] {
            assert!(auto.lines().any(|l| l == line), "{line} in\n{auto}");
        }
        assert_eq!(render_auto(&[]), "PausedBackends: 0\n");
        let html = add_to_html("<html><body>\n</body></html>\n".into(), &paused());
        assert!(html.contains("<td>unix:/run/php/&lt;x&gt;.sock</td><td>1764000000</td><td>3</td>"), "{html}");
        assert!(html.ends_with("</table>\n</body></html>\n"), "{html}");
        let metrics = render_prometheus(&paused());
        assert!(metrics.contains("fcgi_resilient_paused{backend=\"unix:/run/php/<x>.sock\"} 1\n"), "{metrics}");
        assert!(metrics.contains("fcgi_resilient_held_requests{backend=\"unix:/run/php/<x>.sock\"} 3\n"));
        assert!(metrics.contains(
            "fcgi_resilient_paused_until_timestamp_seconds{backend=\"unix:/run/php/<x>.sock\"} 1764000000.123\n"
        ));
    }
}
