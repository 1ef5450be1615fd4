//! A hostile HTTP/1.1 client, in the clear or over TLS: connections that leave at every phase
//! of a request — inside the headers, right after them, before and right after `100 Continue`,
//! with the body sent in the same write as an `Expect` head, mid-body, after the body, while
//! the request waits, while the answer is written, behind pipelined requests, reading slowly —
//! each by a reset (`SO_LINGER {1, 0}`, then close) or a half-close (`shutdown(Write)`, then
//! whatever the server still sends, for a moment). An [`Attack`] runs them from a bounded number
//! of threads, for a bounded number of connections and time.
//!
//! What the server answers these clients is not judged (a reset client has no answer to judge):
//! the tests look at what the server does to everyone else. [`Target::request`] is the
//! well-behaved client of the same transport, for the requests that are judged.

use crate::http::{self, Response};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A PHP script the backend answers quickly.
pub const PHP: &str = "/index.php";
/// A PHP script that echoes the request body.
pub const ECHO: &str = "/echo.php";
/// A PHP script with a large answer (see [`install_documents`]).
pub const LARGE_PHP: &str = "/large.php";
/// A large static file (see [`install_documents`]).
pub const LARGE_FILE: &str = "/large.txt";
const LARGE_SIZE: usize = 1 << 20;

/// Puts the large answers the attack asks for into a document root.
pub fn install_documents(docroot: &Path) {
    let script = format!(
        "<?php header('Content-Type: text/plain'); echo str_repeat('0123456789abcdef', {});\n",
        LARGE_SIZE / 16
    );
    std::fs::write(docroot.join(&LARGE_PHP[1..]), script).expect("large.php");
    std::fs::write(docroot.join(&LARGE_FILE[1..]), "0123456789abcdef".repeat(LARGE_SIZE / 16)).expect("large.txt");
}

/// Where the client connects: a plain HTTP/1.1 port, or a TLS one.
#[derive(Clone)]
pub struct Target {
    address: SocketAddr,
    /// TLS 1.3 and TLS 1.2 (each hostile connection draws one); none in the clear.
    tls: Vec<Arc<ClientConfig>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.name(), self.address)
    }
}

impl Target {
    pub fn plain(address: SocketAddr) -> Target {
        Target { address, tls: Vec::new() }
    }

    /// TLS to a server whose certificate is exactly the one (PEM) in `certificate`, as a test
    /// makes it (`transport::make_certificate`): self-signed, so no chain is built; the
    /// handshake's signatures are still checked against it.
    pub fn tls(address: SocketAddr, certificate: &Path) -> Target {
        let der = CertificateDer::from_pem_file(certificate).expect("the test's certificate (PEM)");
        // Deprecated for lacking post-quantum key exchange, which a loopback test needs no
        // more than Apache's mod_ssl offers it; ring builds without cmake.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(ThisCertificate { der, provider: provider.clone() });
        let config = |version: &'static rustls::SupportedProtocolVersion| {
            let config = ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[version])
                .expect("a TLS version ring supports")
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone())
                .with_no_client_auth();
            Arc::new(config)
        };
        Target { address, tls: vec![config(&rustls::version::TLS13), config(&rustls::version::TLS12)] }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn name(&self) -> &'static str {
        if self.is_tls() {
            "HTTP/1.1 over TLS"
        } else {
            "HTTP/1.1"
        }
    }

    pub fn is_tls(&self) -> bool {
        !self.tls.is_empty()
    }

    /// A TCP connection with `timeout` on every read and write.
    fn open(&self, timeout: Duration) -> std::io::Result<TcpStream> {
        let socket = TcpStream::connect_timeout(&self.address, timeout)?;
        socket.set_nodelay(true)?;
        socket.set_read_timeout(Some(timeout))?;
        socket.set_write_timeout(Some(timeout))?;
        Ok(socket)
    }

    /// A TLS session (of version `variant`: even TLS 1.3, odd TLS 1.2) not begun yet.
    fn session(&self, variant: u64, socket: TcpStream) -> std::io::Result<StreamOwned<ClientConnection, TcpStream>> {
        let config = self.tls[variant as usize % self.tls.len()].clone();
        // An IP address: no SNI, as a client that was given the address would send.
        let session =
            ClientConnection::new(config, ServerName::from(self.address.ip())).map_err(std::io::Error::other)?;
        Ok(StreamOwned::new(session, socket))
    }

    /// A connection ready for HTTP: over TLS, with the handshake done and, in TLS 1.3, the
    /// session tickets the server sends after it read, so that a reset meant for a phase of
    /// the request does not meet the server still writing its tickets instead (with them read,
    /// in one run 653 rather than 571 of 2,117 `Expect` POSTs sent with their body reached the
    /// module).
    fn connect(&self, timeout: Duration, variant: u64) -> std::io::Result<Wire> {
        let socket = self.open(timeout)?;
        if !self.is_tls() {
            return Ok(Wire::Plain(socket));
        }
        let mut stream = self.session(variant, socket)?;
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        if stream.conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
            stream.sock.set_read_timeout(Some(TICKETS))?;
            if stream.conn.read_tls(&mut stream.sock).is_ok() {
                stream.conn.process_new_packets().map_err(std::io::Error::other)?;
            }
            stream.sock.set_read_timeout(Some(timeout))?;
        }
        Ok(Wire::Tls(Box::new(stream)))
    }

    /// A well-behaved request: `method path` with `body` on a new connection, its answer read
    /// whole; every read and write allowed `timeout`.
    pub fn request(&self, method: &str, path: &str, body: &[u8], timeout: Duration) -> std::io::Result<Response> {
        let mut wire = self.connect(timeout, 0)?;
        let mut message = http::request_head(method, path, "localhost", body, "").into_bytes();
        message.extend_from_slice(body);
        wire.write_all(&message)?;
        wire.flush()?;
        let mut reader = BufReader::new(wire);
        http::read_response(&mut reader, method == "HEAD").map(|(_, response)| response)
    }
}

/// Longest wait for the TLS 1.3 session tickets a server sends after the handshake.
const TICKETS: Duration = Duration::from_millis(500);

/// Accepts the one certificate the test made, and checks the handshake's signatures with it.
#[derive(Debug)]
struct ThisCertificate {
    der: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ThisCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.der.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// One connection, in the clear or under TLS.
enum Wire {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Wire {
    fn socket(&self) -> &TcpStream {
        match self {
            Wire::Plain(socket) => socket,
            Wire::Tls(stream) => &stream.sock,
        }
    }

    /// Leaves as `how` says. A half-closed connection is read for at most `drain` (whatever
    /// the server still sends), then closed.
    fn leave(mut self, how: Leave, drain: Duration) {
        match how {
            Leave::Reset => reset(self.socket()),
            Leave::HalfClose => {
                let _ = self.socket().shutdown(Shutdown::Write);
                let _ = read_for(&mut self, usize::MAX, drain, None);
            }
        }
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Wire::Plain(socket) => socket.read(buf),
            Wire::Tls(stream) => stream.read(buf),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Wire::Plain(socket) => socket.write(buf),
            Wire::Tls(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Wire::Plain(socket) => socket.flush(),
            Wire::Tls(stream) => stream.flush(),
        }
    }
}

/// `SO_LINGER {1, 0}`: the close that follows sends a reset and drops whatever is unsent.
fn reset(socket: &TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt(2) on a descriptor `socket` owns and keeps open for the call, with a
    // pointer to a linger struct and its exact size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
}

/// Reads up to `limit` bytes for at most `budget`, stopping at the end of the stream, an error,
/// or once `until` has been read; returns what was read.
fn read_for(wire: &mut Wire, limit: usize, budget: Duration, until: Option<&[u8]>) -> Vec<u8> {
    let deadline = Instant::now() + budget;
    let mut read = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    while read.len() < limit {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || wire.socket().set_read_timeout(Some(left)).is_err() {
            break;
        }
        let want = buffer.len().min(limit - read.len());
        match wire.read(&mut buffer[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => read.extend_from_slice(&buffer[..n]),
        }
        if until.is_some_and(|needle| read.windows(needle.len()).any(|w| w == needle)) {
            break;
        }
    }
    read
}

/// How a hostile connection leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Leave {
    /// `SO_LINGER {1, 0}` then close: a TCP reset.
    Reset,
    /// `shutdown(Write)`, a moment's reading, then close.
    HalfClose,
}

/// Where in a request a hostile connection leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Before the request line is whole (over TLS: right after the ClientHello).
    InRequestLine,
    /// Inside the headers of a GET.
    InHeaders,
    /// Right after the whole head of a GET.
    AfterHeaders,
    /// A POST head with `Expect: 100-continue`, left before `100 Continue` could arrive.
    BeforeContinue,
    /// A POST head with `Expect: 100-continue`, left as soon as `100 Continue` arrives.
    AfterContinue,
    /// A POST head with `Expect: 100-continue` and its body in one write, left at once: the
    /// server's `100 Continue` meets a reset socket while the body is already there to read.
    ExpectWithBody,
    /// Part of a POST body sent.
    MidBody,
    /// A whole POST sent, left a moment later.
    AfterBody,
    /// A GET or POST left while it is being served or waits (suspended).
    WhileWaiting,
    /// A GET of a large answer; a few bytes of it read.
    DuringAnswer,
    /// A waiting GET with more requests pipelined behind it, left a moment later.
    Pipelined,
    /// A large answer read a few hundred bytes at a time, then left.
    SlowReader,
}

impl Phase {
    pub const ALL: [Phase; 12] = [
        Phase::InRequestLine,
        Phase::InHeaders,
        Phase::AfterHeaders,
        Phase::BeforeContinue,
        Phase::AfterContinue,
        Phase::ExpectWithBody,
        Phase::MidBody,
        Phase::AfterBody,
        Phase::WhileWaiting,
        Phase::DuringAnswer,
        Phase::Pipelined,
        Phase::SlowReader,
    ];
}

/// A small deterministic generator: every connection's choices follow from its number.
struct Dice(u64);

impl Dice {
    fn new(seed: u64) -> Dice {
        Dice(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }

    fn millis(&mut self, below: u64) -> Duration {
        Duration::from_millis(self.below(below))
    }
}

fn post_head(path: &str, length: usize, expect: bool) -> String {
    let expect = if expect { "Expect: 100-continue\r\n" } else { "" };
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {length}\r\n{expect}\r\n"
    )
}

fn get_head(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: hostile\r\n\r\n")
}

/// Longest a hostile connection waits for anything, so that every one ends soon.
const PATIENCE: Duration = Duration::from_secs(2);

/// One hostile connection. Errors (a server that reset first, a refused connect) end it early;
/// false when it could not connect at all.
fn attack_once(target: &Target, phase: Phase, leave: Leave, seed: u64) -> bool {
    let mut dice = Dice::new(seed);
    let tls_version = dice.below(2);
    if phase == Phase::InRequestLine && target.is_tls() {
        return hello_and_leave(target, leave, tls_version);
    }
    let Ok(mut wire) = target.connect(Duration::from_secs(10), tls_version) else { return false };
    let _ = play(&mut wire, phase, &mut dice);
    wire.leave(leave, PATIENCE);
    true
}

/// The part of `phase` before the client leaves.
fn play(wire: &mut Wire, phase: Phase, dice: &mut Dice) -> std::io::Result<()> {
    match phase {
        Phase::InRequestLine => {
            let line = b"GET /index.php HTTP/1.1\r\n";
            wire.write_all(&line[..1 + dice.below(line.len() as u64 - 2) as usize])?;
        }
        Phase::InHeaders => {
            let head = get_head(PHP);
            let cut = head.find("Host").unwrap_or(0) + dice.below(20) as usize;
            wire.write_all(&head.as_bytes()[..cut])?;
            std::thread::sleep(dice.millis(5));
        }
        Phase::AfterHeaders => {
            let path = [PHP, "/static.txt", LARGE_PHP][dice.below(3) as usize];
            wire.write_all(get_head(path).as_bytes())?;
            std::thread::sleep(dice.millis(3));
        }
        Phase::BeforeContinue => {
            let path = [PHP, ECHO][dice.below(2) as usize];
            wire.write_all(post_head(path, 10, true).as_bytes())?;
        }
        Phase::AfterContinue => {
            wire.write_all(post_head(ECHO, 10, true).as_bytes())?;
            read_for(wire, 4096, PATIENCE, Some(b"\r\n\r\n"));
        }
        Phase::ExpectWithBody => {
            let mut message = post_head(PHP, 10, true).into_bytes();
            message.extend_from_slice(b"0123456789");
            wire.write_all(&message)?;
        }
        Phase::MidBody => {
            let mut message = post_head(ECHO, 8192, dice.below(2) == 0).into_bytes();
            message.extend(std::iter::repeat_n(b'x', 1 + dice.below(8000) as usize));
            wire.write_all(&message)?;
            std::thread::sleep(dice.millis(20));
        }
        Phase::AfterBody => {
            let size = 1 + dice.below(20_000) as usize;
            wire.write_all(post_head(ECHO, size, false).as_bytes())?;
            wire.write_all(&vec![b'y'; size])?;
            std::thread::sleep(dice.millis(20));
        }
        Phase::WhileWaiting => {
            if dice.below(2) == 0 {
                wire.write_all(get_head(PHP).as_bytes())?;
            } else {
                let mut message = post_head(ECHO, 100, false).into_bytes();
                message.extend_from_slice(&[b'z'; 100]);
                wire.write_all(&message)?;
            }
            std::thread::sleep(dice.millis(300));
        }
        Phase::DuringAnswer => {
            wire.write_all(get_head(LARGE_PHP).as_bytes())?;
            read_for(wire, 1 + dice.below(3000) as usize, PATIENCE, None);
        }
        Phase::Pipelined => {
            let mut message = get_head(PHP).into_bytes();
            message.extend_from_slice(get_head("/static.txt").as_bytes());
            message.extend_from_slice(post_head(ECHO, 5, false).as_bytes());
            message.extend_from_slice(b"hello");
            message.extend_from_slice(get_head(PHP).as_bytes());
            wire.write_all(&message)?;
            let budget = dice.millis(500);
            read_for(wire, usize::MAX, budget, None);
        }
        Phase::SlowReader => {
            let path = [LARGE_PHP, LARGE_FILE][dice.below(2) as usize];
            wire.write_all(get_head(path).as_bytes())?;
            let deadline = Instant::now() + PATIENCE;
            for _ in 0..dice.below(40) {
                if read_for(wire, 256, deadline.saturating_duration_since(Instant::now()), None).is_empty() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    wire.flush()
}

/// Over TLS, the earliest phase: a ClientHello, and gone.
fn hello_and_leave(target: &Target, leave: Leave, tls_version: u64) -> bool {
    let Ok(socket) = target.open(Duration::from_secs(10)) else { return false };
    let Ok(mut stream) = target.session(tls_version, socket) else { return false };
    let _ = stream.conn.write_tls(&mut stream.sock);
    Wire::Tls(Box::new(stream)).leave(leave, PATIENCE);
    true
}

/// What an attack is made of.
#[derive(Debug, Clone)]
pub struct AttackSpec {
    pub target: Target,
    /// Threads, each with one connection at a time.
    pub clients: usize,
    /// Connections in all, at most.
    pub connections: usize,
    /// The attack stops after this long even if it has not made every connection.
    pub limit: Duration,
    /// Phases and their weights; each phase's connections alternate between the two ways
    /// to leave.
    pub mix: Vec<(Phase, usize)>,
}

impl AttackSpec {
    /// Every phase with the same weight.
    pub fn every_phase(target: Target, clients: usize, connections: usize, limit: Duration) -> AttackSpec {
        AttackSpec { target, clients, connections, limit, mix: Phase::ALL.iter().map(|phase| (*phase, 1)).collect() }
    }

    /// Gives `phase` the weight `weight`.
    pub fn weigh(mut self, phase: Phase, weight: usize) -> AttackSpec {
        self.mix.retain(|(p, _)| *p != phase);
        self.mix.push((phase, weight));
        self
    }

    fn schedule(&self) -> Vec<Phase> {
        self.mix.iter().flat_map(|(phase, weight)| std::iter::repeat_n(*phase, *weight)).collect()
    }
}

/// Connections made, by phase and way of leaving; and connects that failed.
#[derive(Debug, Clone, Default)]
pub struct AttackReport {
    pub made: BTreeMap<(Phase, Leave), usize>,
    pub not_connected: usize,
}

impl AttackReport {
    pub fn connections(&self) -> usize {
        self.made.values().sum()
    }

    fn add(&mut self, other: AttackReport) {
        for (key, count) in other.made {
            *self.made.entry(key).or_default() += count;
        }
        self.not_connected += other.not_connected;
    }
}

impl std::fmt::Display for AttackReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} connections ({} could not connect):", self.connections(), self.not_connected)?;
        for ((phase, leave), count) in &self.made {
            write!(f, " {phase:?}/{leave:?} {count},")?;
        }
        Ok(())
    }
}

/// An attack running in the background; `finish` waits for its end. Dropped unfinished (a test
/// that panicked), it stops its clients and waits for them.
pub struct Attack {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<AttackReport>>,
}

impl Attack {
    pub fn start(spec: &AttackSpec) -> Attack {
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicUsize::new(0));
        let schedule: Arc<[Phase]> = spec.schedule().into();
        assert!(!schedule.is_empty(), "an attack of no phase");
        let deadline = Instant::now() + spec.limit;
        let clients = (0..spec.clients)
            .map(|_| {
                let (stop, next, schedule, spec) = (stop.clone(), next.clone(), schedule.clone(), spec.clone());
                std::thread::spawn(move || {
                    let mut report = AttackReport::default();
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= spec.connections {
                            break;
                        }
                        let (round, slot) = (index / schedule.len(), index % schedule.len());
                        let phase = schedule[slot];
                        // Each slot leaves the other way in the next round.
                        let leave = if (round + slot) % 2 == 0 { Leave::Reset } else { Leave::HalfClose };
                        if attack_once(&spec.target, phase, leave, index as u64) {
                            *report.made.entry((phase, leave)).or_default() += 1;
                        } else {
                            report.not_connected += 1;
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                    report
                })
            })
            .collect();
        Attack { stop, clients }
    }

    /// Whether every client has ended (all connections made, or the time limit reached).
    pub fn is_over(&self) -> bool {
        self.clients.iter().all(JoinHandle::is_finished)
    }

    /// Waits for the attack's end.
    pub fn finish(mut self) -> AttackReport {
        self.join()
    }

    fn join(&mut self) -> AttackReport {
        let mut report = AttackReport::default();
        for client in self.clients.drain(..) {
            report.add(client.join().unwrap_or_default());
        }
        report
    }
}

impl Drop for Attack {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.join();
    }
}
