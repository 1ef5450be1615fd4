//! Creating and fixing socket directories as root without being tricked.
//!
//! Every component is opened relative to the already-verified parent with
//! O_NOFOLLOW|O_DIRECTORY, new directories are made with mkdirat on that fd, and
//! ownership/mode are changed with fchown/fchmod on the fd we hold, so no path is
//! ever re-resolved after it was checked.

use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{fchown, Gid, Uid};

use crate::users::{group_name, user_name};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// Absolute path as configured (not including `--root`).
    pub path: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    CreateAncestor(PathBuf),
    Create { path: PathBuf, uid: u32, gid: u32, mode: u32 },
    Chown { path: PathBuf, from: (u32, u32), to: (u32, u32) },
    Chmod { path: PathBuf, from: u32, to: u32 },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let owner = |u: u32, g: u32| format!("{}:{}", user_name(u), group_name(g));
        match self {
            Change::CreateAncestor(p) => write!(f, "create {} (root:root 0755)", p.display()),
            Change::Create { path, uid, gid, mode } => {
                write!(f, "create {} ({} {:04o})", path.display(), owner(*uid, *gid), mode)
            }
            Change::Chown { path, from, to } => {
                write!(f, "chown {} from {} to {}", path.display(), owner(from.0, from.1), owner(to.0, to.1))
            }
            Change::Chmod { path, from, to } => {
                write!(f, "chmod {} from {:04o} to {:04o}", path.display(), from, to)
            }
        }
    }
}

/// Directories that are shared with the rest of the system: taking them over
/// (chown to a pool user) would be a privilege escalation, whatever a config says.
const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/dev/shm",
    "/etc",
    "/home",
    "/lib",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/run/user",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/var",
    "/var/lib",
    "/var/log",
    "/var/run",
    "/var/tmp",
    "/var/www",
];

/// Refuses modes that would let anyone plant a socket or symlink in the directory.
pub fn validate_mode(mode: u32) -> Result<(), String> {
    if mode & !0o7777 != 0 {
        return Err(format!("invalid mode {mode:o}"));
    }
    if mode & 0o002 != 0 {
        return Err(format!("refusing mode {mode:04o}: a socket directory must not be world-writable"));
    }
    if mode & 0o700 != 0o700 {
        return Err(format!("refusing mode {mode:04o}: the owner needs rwx on the socket directory"));
    }
    Ok(())
}

pub fn parse_mode(s: &str) -> Result<u32, String> {
    let m = u32::from_str_radix(s.trim(), 8).map_err(|_| format!("invalid octal mode `{s}`"))?;
    validate_mode(m)?;
    Ok(m)
}

/// The absolute socket directory's components, refusing `..` so that a config
/// cannot walk us out of `--root`.
fn components(path: &Path) -> Result<Vec<String>, String> {
    if !path.is_absolute() {
        return Err(format!("{} is not an absolute path", path.display()));
    }
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(s) => {
                out.push(s.to_str().ok_or_else(|| format!("{} is not valid UTF-8", path.display()))?.to_string())
            }
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!("refusing {}: it contains `..`", path.display()))
            }
        }
    }
    let normalised: PathBuf = std::iter::once("/".to_string()).chain(out.iter().cloned()).collect();
    if SYSTEM_DIRS.iter().any(|d| Path::new(d) == normalised) {
        return Err(format!(
            "refusing to manage {}: it is a shared system directory; put the socket in a \
             directory of its own (e.g. /run/php/)",
            normalised.display()
        ));
    }
    Ok(out)
}

fn open_dir(parent: Option<&OwnedFd>, name: &Path) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(parent.map(|p| p.as_raw_fd()), name, flags, Mode::empty())?;
    // SAFETY: openat just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Checks a directory we are about to create things in: a non-root owner or a
/// group/other-writable bit (without sticky) would let someone swap entries under us.
fn check_parent(fd: &OwnedFd, shown: &Path) -> Result<(), String> {
    let st = fstat(fd.as_raw_fd()).map_err(|e| format!("{}: fstat: {e}", shown.display()))?;
    let mode = st.st_mode as u32;
    if st.st_uid != 0 {
        return Err(format!(
            "refusing to work below {}: it is owned by {} (uid {}), not root",
            shown.display(),
            user_name(st.st_uid),
            st.st_uid
        ));
    }
    let sticky = mode & 0o1000 != 0;
    let other_w = mode & 0o002 != 0;
    let group_w = mode & 0o020 != 0 && st.st_gid != 0;
    if (other_w || group_w) && !sticky {
        return Err(format!(
            "refusing to work below {}: mode {:04o} lets non-root users write to it",
            shown.display(),
            mode & 0o7777
        ));
    }
    Ok(())
}

fn describe_open_error(parent: &OwnedFd, name: &str, shown: &Path, e: Errno) -> String {
    let st = fstatat(Some(parent.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW);
    match st {
        Ok(st) if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFLNK => {
            format!("refusing {}: it is a symbolic link (not following it)", shown.display())
        }
        Ok(_) if e == Errno::ENOTDIR => format!("{} exists and is not a directory", shown.display()),
        _ => format!("cannot open {}: {e}", shown.display()),
    }
}

/// Makes `want.path` (below `root`) exist with the wanted owner and mode.
/// Ancestors it creates are root:root 0755; existing ancestors are only checked.
/// With `dry_run` nothing is changed and the would-be changes are returned.
pub fn ensure(root: &Path, want: &Wanted, dry_run: bool) -> Result<Vec<Change>, String> {
    validate_mode(want.mode)?;
    let comps = components(&want.path)?;
    let mut changes = Vec::new();
    let root_fd = open_dir(None, root)
        .or_else(|e| if e == Errno::ELOOP { openat_follow(root) } else { Err(e) })
        .map_err(|e| format!("cannot open root {}: {e}", root.display()))?;
    let mut cur = root_fd;
    let mut shown = root.to_path_buf();
    let last = comps.len() - 1; // components() refuses "/", so there is at least one.
    for (i, name) in comps.iter().enumerate() {
        check_parent(&cur, &shown)?;
        shown.push(name);
        let is_leaf = i == last;
        let fd = match open_dir(Some(&cur), Path::new(name)) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                if dry_run {
                    let mut p = shown.clone();
                    for (j, rest) in comps.iter().enumerate().skip(i) {
                        if j > i {
                            p.push(rest);
                        }
                        changes.push(if j == last {
                            Change::Create { path: p.clone(), uid: want.uid, gid: want.gid, mode: want.mode }
                        } else {
                            Change::CreateAncestor(p.clone())
                        });
                    }
                    return Ok(changes);
                }
                // 0700 first: the directory is never visible with a mode or owner we did not intend.
                match mkdirat(Some(cur.as_raw_fd()), name.as_str(), Mode::from_bits_truncate(0o700)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(format!("cannot create {}: {e}", shown.display())),
                }
                let fd =
                    open_dir(Some(&cur), Path::new(name)).map_err(|e| describe_open_error(&cur, name, &shown, e))?;
                if is_leaf {
                    changes.push(Change::Create { path: shown.clone(), uid: want.uid, gid: want.gid, mode: want.mode });
                } else {
                    fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(0o755))
                        .map_err(|e| format!("cannot chmod {}: {e}", shown.display()))?;
                    changes.push(Change::CreateAncestor(shown.clone()));
                }
                fd
            }
            Err(e) => return Err(describe_open_error(&cur, name, &shown, e)),
        };
        cur = fd;
    }
    let st = fstat(cur.as_raw_fd()).map_err(|e| format!("{}: fstat: {e}", shown.display()))?;
    let mode = st.st_mode as u32 & 0o7777;
    let just_created = matches!(changes.last(), Some(Change::Create { .. }));
    if (st.st_uid, st.st_gid) != (want.uid, want.gid) {
        if !just_created {
            changes.push(Change::Chown { path: shown.clone(), from: (st.st_uid, st.st_gid), to: (want.uid, want.gid) });
        }
        if !dry_run {
            fchown(cur.as_raw_fd(), Some(Uid::from_raw(want.uid)), Some(Gid::from_raw(want.gid)))
                .map_err(|e| format!("cannot chown {}: {e}", shown.display()))?;
        }
    }
    // chown clears set-id bits, so the mode is (re)applied after it.
    let mode_after = if dry_run { mode } else { fstat(cur.as_raw_fd()).map(|s| s.st_mode & 0o7777).unwrap_or(mode) };
    if mode_after != want.mode {
        if !just_created {
            changes.push(Change::Chmod { path: shown.clone(), from: mode, to: want.mode });
        }
        if !dry_run {
            fchmod(cur.as_raw_fd(), Mode::from_bits_truncate(want.mode as _))
                .map_err(|e| format!("cannot chmod {}: {e}", shown.display()))?;
        }
    }
    Ok(changes)
}

/// `--root` itself is trusted (the caller chose it), so it may be a symlink.
fn openat_follow(root: &Path) -> nix::Result<OwnedFd> {
    let fd = openat(None, root, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())?;
    // SAFETY: openat just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness::WorkDir;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    fn want(path: &str, uid: u32, gid: u32) -> Wanted {
        Wanted { path: path.into(), uid, gid, mode: 0o755 }
    }

    #[test]
    fn modes() {
        assert!(parse_mode("0755").is_ok());
        assert!(parse_mode("2770").is_ok());
        assert!(parse_mode("0777").unwrap_err().contains("world-writable"));
        assert!(parse_mode("1777").is_err());
        assert!(parse_mode("0644").is_err());
        assert!(parse_mode("9").is_err());
        assert!(parse_mode("17777").is_err());
    }

    #[test]
    fn refuses_dotdot_relative_and_system_dirs() {
        assert!(components(Path::new("/run/php/../../etc")).unwrap_err().contains(".."));
        assert!(components(Path::new("run/php")).is_err());
        for d in ["/tmp", "/run", "/", "/var/run", "/run//", "/etc/."] {
            assert!(components(Path::new(d)).unwrap_err().contains("shared system"), "{d}");
        }
        assert_eq!(components(Path::new("/run/php")).unwrap(), ["run", "php"]);
    }

    #[test]
    fn creates_then_is_idempotent() {
        if !is_root() {
            return;
        }
        let d = WorkDir::new("safe");
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let w = want("/run/php", 33, 33);
        let dry = ensure(d.path(), &w, true).unwrap();
        assert_eq!(dry.len(), 2);
        assert!(!d.path().join("run").exists());
        let c = ensure(d.path(), &w, false).unwrap();
        assert_eq!(c, dry);
        let m = std::fs::metadata(d.path().join("run/php")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (33, 33, 0o755));
        let a = std::fs::metadata(d.path().join("run")).unwrap();
        assert_eq!((a.uid(), a.mode() & 0o7777), (0, 0o755));
        assert!(ensure(d.path(), &w, false).unwrap().is_empty());
    }

    #[test]
    fn refuses_symlink_component_and_untrusted_parent() {
        if !is_root() {
            return;
        }
        let d = WorkDir::new("safe-link");
        let elsewhere = d.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::create_dir(d.path().join("run")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, d.path().join("run/php")).unwrap();
        let e = ensure(d.path(), &want("/run/php/sub", 33, 33), false).unwrap_err();
        assert!(e.contains("symbolic link"), "{e}");
        let e = ensure(d.path(), &want("/run/php", 33, 33), false).unwrap_err();
        assert!(e.contains("symbolic link"), "{e}");
        assert_eq!(std::fs::metadata(&elsewhere).unwrap().uid(), 0);

        std::fs::create_dir(d.path().join("srv")).unwrap();
        nix::unistd::chown(&d.path().join("srv"), Some(Uid::from_raw(33)), None).unwrap();
        let e = ensure(d.path(), &want("/srv/php", 33, 33), false).unwrap_err();
        assert!(e.contains("owned by"), "{e}");
        assert!(!d.path().join("srv/php").exists());

        std::fs::create_dir(d.path().join("gw")).unwrap();
        std::fs::set_permissions(d.path().join("gw"), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = ensure(d.path(), &want("/gw/php", 33, 33), false).unwrap_err();
        assert!(e.contains("lets non-root users write"), "{e}");
    }

    #[test]
    fn fixes_owner_and_mode() {
        if !is_root() {
            return;
        }
        let d = WorkDir::new("safe-fix");
        std::fs::create_dir_all(d.path().join("run/php")).unwrap();
        std::fs::set_permissions(d.path().join("run/php"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let c = ensure(d.path(), &want("/run/php", 33, 33), false).unwrap();
        assert_eq!(c.len(), 2, "{c:?}");
        let m = std::fs::metadata(d.path().join("run/php")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (33, 33, 0o755));
    }
}
