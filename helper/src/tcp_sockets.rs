//! Connections from this host to a TCP address, as /proc/net/tcp and /proc/net/tcp6 show
//! them: how `pause` and `deploy` count the requests Apache still runs on a TCP backend,
//! without asking Apache (local or remote backend alike: Apache's end of each connection is
//! on this host).
//!
//! Each line: `sl local_address rem_address st ...`, an address as the kernel's 32-bit words
//! in hexadecimal, each in the machine's byte order (`0100007F:2328` is 127.0.0.1:9000 on
//! x86), the port in plain hexadecimal. Apache's end of a connection to the backend has the
//! backend as `rem_address`; a local backend's own end has it as `local_address` and is not
//! counted, so nothing counts twice.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const ESTABLISHED: u8 = 0x01;
const SYN_SENT: u8 = 0x02;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: u8,
}

impl Entry {
    /// Connecting or connected: a request that may be running. After the backend has
    /// answered and closed, Apache's end is in CLOSE_WAIT for a moment: done.
    fn is_open(&self) -> bool {
        matches!(self.state, ESTABLISHED | SYN_SENT)
    }
}

pub fn parse(text: &str) -> Vec<Entry> {
    text.lines().skip(1).filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Entry> {
    let mut fields = line.split_whitespace();
    let _slot = fields.next()?;
    let local = parse_address(fields.next()?)?;
    let remote = parse_address(fields.next()?)?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    Some(Entry { local, remote, state })
}

fn parse_address(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Option<Vec<u32>> =
        (0..ip.len() / 8).map(|i| ip.get(i * 8..i * 8 + 8).and_then(|w| u32::from_str_radix(w, 16).ok())).collect();
    let bytes: Vec<u8> = words?.iter().flat_map(|word| word.to_ne_bytes()).collect();
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes.as_slice()).ok()?)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// An IPv4 peer of an IPv6 socket shows as ::ffff:a.b.c.d.
fn same_address(listed: &SocketAddr, wanted: &SocketAddr) -> bool {
    let canonical = |a: &SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    canonical(listed) == canonical(wanted)
}

/// Open connections whose far end is one of `targets`.
pub fn connections_to(entries: &[Entry], targets: &[SocketAddr]) -> usize {
    entries.iter().filter(|e| e.is_open() && targets.iter().any(|t| same_address(&e.remote, t))).count()
}

/// Reads /proc/net/tcp and /proc/net/tcp6 now (tcp6 may be missing: IPv6 disabled).
pub fn read() -> Result<Vec<Entry>, String> {
    let v4 = std::fs::read_to_string("/proc/net/tcp").map_err(|e| format!("/proc/net/tcp: {e}"))?;
    let v6 = std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    Ok(parse(&v4).into_iter().chain(parse(&v6)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// php-fpm on 127.0.0.1:9000 (0x2328) with Apache connected twice, one connection of
    /// which the backend already closed (CLOSE_WAIT on Apache's end), and a listener.
    const TCP: &str = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2328 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0
   1: 0100007F:9C40 0100007F:2328 01 00000000:00000000 00:00000000 00000000    33        0 1002 1 0 20 4 30 10 -1
   2: 0100007F:2328 0100007F:9C40 01 00000000:00000000 00:00000000 00000000    33        0 1003 1 0 20 4 30 10 -1
   3: 0100007F:9C41 0100007F:2328 08 00000000:00000000 00:00000000 00000000    33        0 1004 1 0 20 4 30 10 -1
   4: 0100007F:9C42 0100007F:2329 01 00000000:00000000 00:00000000 00000000    33        0 1005 1 0 20 4 30 10 -1
   5: 0A00000A:9C43 0100000A:2328 02 00000000:00000000 00:00000000 00000000    33        0 1006 1 0 20 4 30 10 -1
";

    const TCP6: &str = "\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:9C44 00000000000000000000000001000000:2328 01 00000000:00000000 00:00000000 00000000    33        0 2001 1 0 20 4 30 10 -1
   1: 0000000000000000FFFF00000100007F:9C45 0000000000000000FFFF00000100007F:2328 01 00000000:00000000 00:00000000 00000000    33        0 2002 1 0 20 4 30 10 -1
";

    fn at(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn counts_apaches_open_ends_only() {
        let entries = parse(TCP);
        assert_eq!(entries.len(), 6);
        assert_eq!(entries[0].local, at("127.0.0.1:9000"));
        assert_eq!(connections_to(&entries, &[at("127.0.0.1:9000")]), 1, "listener, php's end, CLOSE_WAIT: not");
        assert_eq!(connections_to(&entries, &[at("10.0.0.1:9000")]), 1, "a remote backend, still connecting");
        assert_eq!(connections_to(&entries, &[at("127.0.0.1:9002")]), 0);
    }

    #[test]
    fn ipv6_and_mapped_ipv4_peers() {
        let entries = parse(TCP6);
        assert_eq!(entries[0].remote, at("[::1]:9000"));
        assert_eq!(connections_to(&entries, &[at("[::1]:9000")]), 1);
        assert_eq!(connections_to(&entries, &[at("127.0.0.1:9000")]), 1, "::ffff:127.0.0.1 is 127.0.0.1");
    }

    #[test]
    fn reads_this_machine() {
        assert!(read().is_ok());
    }
}
