//! Connections to a listening Unix socket, as /proc/net/unix shows them.
//!
//! Each line is one socket: `Num RefCount Protocol Flags Type St Inode Path`. The kernel
//! gives a server-side socket the listener's address, so every connection to a pool shows
//! up under the pool's socket path even after that path has been unlinked or renamed:
//! * the listener itself: flag __SO_ACCEPTCON (0x10000), state 01 (unconnected);
//! * a connection php-fpm has accepted: state 03 (connected);
//! * a connection still queued in the listen backlog: state 02 (connecting), inode 0;
//! * a queued connection whose client already gave up: state 04 (disconnecting).
//!
//! The client ends (Apache's) are unbound and carry no path. Verified on Linux 6.x with
//! php-fpm 8.2: with 2 workers busy and 6 clients connected, 2 lines in state 03 and 4 in
//! state 02 under the socket's path, next to the listener.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const SO_ACCEPTCON: u32 = 0x0001_0000;
const SS_CONNECTING: u8 = 2;
const SS_CONNECTED: u8 = 3;
const SS_DISCONNECTING: u8 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub listening: bool,
    pub state: u8,
    pub inode: u64,
    pub path: PathBuf,
}

impl Entry {
    /// A request accepted by a worker, or waiting in the backlog for one.
    pub fn is_connection(&self) -> bool {
        !self.listening && matches!(self.state, SS_CONNECTING | SS_CONNECTED | SS_DISCONNECTING)
    }
}

/// The entries with a path; abstract and unbound sockets are of no interest here.
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines().skip(1).filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Entry> {
    let mut fields = line.split_whitespace();
    let _num = fields.next()?;
    let _refcount = fields.next()?;
    let _protocol = fields.next()?;
    let flags = u32::from_str_radix(fields.next()?, 16).ok()?;
    let _type = fields.next()?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    let inode = fields.next()?.parse().ok()?;
    // A path may contain spaces: it is the rest of the line.
    let rest: Vec<&str> = fields.collect();
    let path = rest.join(" ");
    if !path.starts_with('/') {
        return None;
    }
    Some(Entry { listening: flags & SO_ACCEPTCON != 0, state, inode, path: PathBuf::from(path) })
}

/// Connections (accepted or queued) per socket path, for each of `paths`.
pub fn connections(entries: &[Entry], paths: &[PathBuf]) -> BTreeMap<PathBuf, usize> {
    paths
        .iter()
        .map(|p| (p.clone(), entries.iter().filter(|e| e.is_connection() && same_path(&e.path, p)).count()))
        .collect()
}

fn same_path(listed: &Path, wanted: &Path) -> bool {
    listed == wanted
}

/// Reads /proc/net/unix now.
pub fn read() -> Result<Vec<Entry>, String> {
    std::fs::read_to_string("/proc/net/unix").map(|t| parse(&t)).map_err(|e| format!("/proc/net/unix: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured with php-fpm 8.2 (2 workers, both busy) and 6 clients connected.
    const CAPTURED: &str = "\
Num       RefCount Protocol Flags    Type St Inode Path
0000000051dd2ab0: 00000003 00000000 00000000 0001 02     0 /tmp/exp/fpm.sock
00000000b60983f5: 00000003 00000000 00000000 0001 03 19172 /tmp/exp/fpm.sock
00000000b1e5890b: 00000003 00000000 00000000 0001 02     0 /tmp/exp/fpm.sock
00000000a0aacbcf: 00000003 00000000 00000000 0001 02     0 /tmp/exp/fpm.sock
000000009a8fa454: 00000003 00000000 00000000 0001 03 19171 /tmp/exp/fpm.sock
000000006d86de73: 00000003 00000000 00000000 0001 02     0 /tmp/exp/fpm.sock
00000000e0516037: 00000002 00000000 00010000 0001 01 19169 /tmp/exp/fpm.sock
00000000aaaaaaaa: 00000002 00000000 00000000 0001 03 19500
00000000bbbbbbbb: 00000002 00000000 00010000 0001 01 19501 @abstract
00000000cccccccc: 00000002 00000000 00010000 0001 01 19502 /run/other.sock
00000000dddddddd: 00000002 00000000 00000000 0001 03 19503 /run/other.sock
";

    #[test]
    fn counts_accepted_and_queued_connections_not_the_listener() {
        let entries = parse(CAPTURED);
        let count = connections(&entries, &[PathBuf::from("/tmp/exp/fpm.sock"), PathBuf::from("/run/none.sock")]);
        assert_eq!(count[Path::new("/tmp/exp/fpm.sock")], 6);
        assert_eq!(count[Path::new("/run/none.sock")], 0);
        assert_eq!(connections(&entries, &[PathBuf::from("/run/other.sock")])[Path::new("/run/other.sock")], 1);
    }

    #[test]
    fn listener_and_paths_parsed() {
        let entries = parse(CAPTURED);
        let listener = entries.iter().find(|e| e.inode == 19169).unwrap();
        assert!(listener.listening && !listener.is_connection());
        assert!(entries.iter().all(|e| e.path.is_absolute()), "unbound and abstract sockets are skipped");
        let spaced = parse("h\n0000: 00000002 00000000 00000000 0001 03 7 /run/a b.sock\n");
        assert_eq!(spaced[0].path, PathBuf::from("/run/a b.sock"));
    }

    #[test]
    fn reads_this_machine() {
        assert!(read().is_ok());
    }
}
