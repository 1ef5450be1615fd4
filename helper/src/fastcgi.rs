//! FastCGI 1.0 records: just enough of a client to ask a PHP-FPM pool for its
//! ping page and understand the answer.

use std::fmt;
use std::io::Read;

pub const VERSION_1: u8 = 1;
pub const HEADER_LEN: usize = 8;
pub const MAX_CONTENT: usize = 0xffff;

pub const BEGIN_REQUEST: u8 = 1;
pub const END_REQUEST: u8 = 3;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
pub const STDOUT: u8 = 6;
pub const STDERR: u8 = 7;

pub const ROLE_RESPONDER: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub rtype: u8,
    pub request_id: u16,
    pub content: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    BadVersion(u8),
    Truncated {
        have: usize,
        need: usize,
    },
    /// Only the decoder of name-value pairs (which checks the encoder) produces this.
    #[cfg_attr(not(test), allow(dead_code))]
    BadParams(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadVersion(v) => {
                write!(f, "not a FastCGI peer (record version {v}, expected 1)")
            }
            DecodeError::Truncated { have, need } => {
                write!(f, "connection closed inside a FastCGI record ({have} of {need} bytes)")
            }
            DecodeError::BadParams(m) => write!(f, "malformed FastCGI name-value pairs: {m}"),
        }
    }
}

/// Pads to a multiple of 8, which the spec recommends and php-fpm does too.
pub fn padding_for(len: usize) -> u8 {
    ((8 - len % 8) % 8) as u8
}

/// One record; `content` must fit in 16 bits (use `encode_stream` for more).
pub fn encode_record(out: &mut Vec<u8>, rtype: u8, request_id: u16, content: &[u8]) {
    debug_assert!(content.len() <= MAX_CONTENT);
    let pad = padding_for(content.len());
    let [id_hi, id_lo] = request_id.to_be_bytes();
    let [len_hi, len_lo] = (content.len() as u16).to_be_bytes();
    out.extend_from_slice(&[VERSION_1, rtype, id_hi, id_lo, len_hi, len_lo, pad, 0]);
    out.extend_from_slice(content);
    out.extend(std::iter::repeat_n(0u8, pad as usize));
}

/// A stream (PARAMS, STDIN...) split into records, then its empty terminator.
pub fn encode_stream(out: &mut Vec<u8>, rtype: u8, request_id: u16, data: &[u8]) {
    for chunk in data.chunks(MAX_CONTENT) {
        encode_record(out, rtype, request_id, chunk);
    }
    encode_record(out, rtype, request_id, &[]);
}

fn encode_len(out: &mut Vec<u8>, n: usize) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        out.extend_from_slice(&((n as u32) | 0x8000_0000).to_be_bytes());
    }
}

pub fn encode_params<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        let (k, v) = (k.as_ref(), v.as_ref());
        encode_len(&mut out, k.len());
        encode_len(&mut out, v.len());
        out.extend_from_slice(k);
        out.extend_from_slice(v);
    }
    out
}

pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The inverse of `encode_params`; a client never receives PARAMS, the tests use it.
#[cfg_attr(not(test), allow(dead_code))]
pub fn decode_params(mut b: &[u8]) -> Result<Pairs, DecodeError> {
    fn len(b: &mut &[u8]) -> Result<usize, DecodeError> {
        let first = *b.first().ok_or_else(|| DecodeError::BadParams("missing length".into()))?;
        if first & 0x80 == 0 {
            *b = &b[1..];
            Ok(first as usize)
        } else {
            if b.len() < 4 {
                return Err(DecodeError::BadParams("truncated 4-byte length".into()));
            }
            let n = u32::from_be_bytes([b[0] & 0x7f, b[1], b[2], b[3]]) as usize;
            *b = &b[4..];
            Ok(n)
        }
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let kl = len(&mut b)?;
        let vl = len(&mut b)?;
        if b.len() < kl + vl {
            return Err(DecodeError::BadParams("name or value longer than the data".into()));
        }
        out.push((b[..kl].to_vec(), b[kl..kl + vl].to_vec()));
        b = &b[kl + vl..];
    }
    Ok(out)
}

/// BEGIN_REQUEST (responder, no keep-alive), PARAMS, empty PARAMS, empty STDIN.
pub fn encode_request<K: AsRef<[u8]>, V: AsRef<[u8]>>(request_id: u16, params: &[(K, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    let [r_hi, r_lo] = ROLE_RESPONDER.to_be_bytes();
    encode_record(&mut out, BEGIN_REQUEST, request_id, &[r_hi, r_lo, 0, 0, 0, 0, 0, 0]);
    encode_stream(&mut out, PARAMS, request_id, &encode_params(params));
    encode_stream(&mut out, STDIN, request_id, &[]);
    out
}

/// Incremental decoder: bytes may arrive split anywhere, records come out whole.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    pub fn next_record(&mut self) -> Result<Option<Record>, DecodeError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let h = &self.buf[..HEADER_LEN];
        if h[0] != VERSION_1 {
            return Err(DecodeError::BadVersion(h[0]));
        }
        let content_len = u16::from_be_bytes([h[4], h[5]]) as usize;
        let total = HEADER_LEN + content_len + h[6] as usize;
        if self.buf.len() < total {
            return Ok(None);
        }
        let rec = Record {
            rtype: h[1],
            request_id: u16::from_be_bytes([h[2], h[3]]),
            content: self.buf[HEADER_LEN..HEADER_LEN + content_len].to_vec(),
        };
        self.buf.drain(..total);
        Ok(Some(rec))
    }

    /// Bytes held back waiting for the rest of a record.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndRequest {
    pub app_status: u32,
    pub protocol_status: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub end: EndRequest,
}

impl Response {
    /// The body after the CGI headers (or everything if there are none).
    pub fn body(&self) -> &[u8] {
        let s = &self.stdout;
        for (sep, n) in [(&b"\r\n\r\n"[..], 4), (&b"\n\n"[..], 2)] {
            if let Some(i) = s.windows(n).position(|w| w == sep) {
                return &s[i + n..];
            }
        }
        s
    }

    /// `Status:` header if the application sent one; CGI's default is 200.
    pub fn status(&self) -> u16 {
        let head_end = self.stdout.len() - self.body().len();
        let head = String::from_utf8_lossy(&self.stdout[..head_end]);
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                if !k.trim().eq_ignore_ascii_case("status") {
                    return None;
                }
                v.split_whitespace().next()?.parse().ok()
            })
            .unwrap_or(200)
    }
}

/// Reads records for `request_id` until END_REQUEST.
pub fn read_response<R: Read>(r: &mut R, request_id: u16) -> Result<Response, String> {
    let mut dec = Decoder::default();
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        while let Some(rec) = dec.next_record().map_err(|e| e.to_string())? {
            if rec.request_id != request_id {
                continue;
            }
            match rec.rtype {
                STDOUT => stdout.extend_from_slice(&rec.content),
                STDERR => stderr.extend_from_slice(&rec.content),
                END_REQUEST => {
                    let c = &rec.content;
                    if c.len() < 5 {
                        return Err("short END_REQUEST record".to_string());
                    }
                    let end =
                        EndRequest { app_status: u32::from_be_bytes([c[0], c[1], c[2], c[3]]), protocol_status: c[4] };
                    return Ok(Response { stdout, stderr, end });
                }
                _ => {}
            }
        }
        let n = r.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(if dec.pending() > 0 {
                DecodeError::Truncated { have: dec.pending(), need: 0 }.to_string()
            } else {
                "connection closed before END_REQUEST".to_string()
            });
        }
        dec.push(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PING: &[u8] = include_bytes!("../tests/fixtures/php-fpm8.2-ping-response.bin");
    const NOT_FOUND: &[u8] = include_bytes!("../tests/fixtures/php-fpm8.2-notfound-response.bin");

    #[test]
    fn record_header_and_padding() {
        let mut out = Vec::new();
        encode_record(&mut out, STDOUT, 0x0102, b"abc");
        assert_eq!(out, [1, 6, 1, 2, 0, 3, 5, 0, b'a', b'b', b'c', 0, 0, 0, 0, 0]);
        let mut out = Vec::new();
        encode_record(&mut out, STDIN, 1, &[]);
        assert_eq!(out, [1, 5, 0, 1, 0, 0, 0, 0]);
        let mut out = Vec::new();
        encode_record(&mut out, STDOUT, 1, &[7; 8]);
        assert_eq!(out.len(), 16, "already aligned: no padding");
        assert_eq!(padding_for(0), 0);
        assert_eq!(padding_for(1), 7);
        assert_eq!(padding_for(175), 1);
    }

    #[test]
    fn params_roundtrip_short_and_long() {
        let long = vec![b'x'; 300];
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"SCRIPT_NAME".to_vec(), b"/ping".to_vec()),
            (b"LONG".to_vec(), long.clone()),
            (vec![b'k'; 128], vec![]),
        ];
        let enc = encode_params(&pairs);
        assert_eq!(&enc[..2], &[11, 5]);
        assert_eq!(&enc[18..24], &[4, 0x80, 0, 1, 44, b'L']);
        assert_eq!(decode_params(&enc).unwrap(), pairs);
        assert!(decode_params(&[5, 5, b'a']).is_err());
        assert!(decode_params(&[0x80, 0]).is_err());
    }

    #[test]
    fn stream_splits_large_content() {
        let mut out = Vec::new();
        encode_stream(&mut out, STDIN, 1, &vec![0u8; MAX_CONTENT + 10]);
        let mut d = Decoder::default();
        d.push(&out);
        let a = d.next_record().unwrap().unwrap();
        let b = d.next_record().unwrap().unwrap();
        let c = d.next_record().unwrap().unwrap();
        assert_eq!((a.content.len(), b.content.len(), c.content.len()), (MAX_CONTENT, 10, 0));
        assert_eq!(d.next_record().unwrap(), None);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn request_layout() {
        let req = encode_request(1, &[("SCRIPT_NAME", "/ping")]);
        let mut d = Decoder::default();
        d.push(&req);
        let recs: Vec<Record> = std::iter::from_fn(|| d.next_record().unwrap()).collect();
        let types: Vec<u8> = recs.iter().map(|r| r.rtype).collect();
        assert_eq!(types, [BEGIN_REQUEST, PARAMS, PARAMS, STDIN]);
        assert_eq!(recs[0].content, [0, 1, 0, 0, 0, 0, 0, 0]);
        assert!(recs[2].content.is_empty() && recs[3].content.is_empty());
        assert_eq!(decode_params(&recs[1].content).unwrap()[0].1, b"/ping");
    }

    #[test]
    fn decodes_captured_php_fpm_ping_byte_by_byte() {
        // Feeding one byte at a time covers every possible split point.
        let mut d = Decoder::default();
        let mut recs = Vec::new();
        for b in PING {
            d.push(&[*b]);
            while let Some(r) = d.next_record().unwrap() {
                recs.push(r);
            }
        }
        assert_eq!(d.pending(), 0);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].rtype, STDOUT);
        assert!(recs[0].content.ends_with(b"\r\n\r\npong"));
        assert_eq!(recs[1].rtype, END_REQUEST);
        assert_eq!(recs[1].content, [0, 0, 0, 0, 0, 0, 0, 0]);
    }

    /// Reader that hands out at most `n` bytes per read, like a slow socket.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn read_response_on_captured_bytes() {
        for chunk in [1, 3, 7, 8192] {
            let r = read_response(&mut Trickle(PING, chunk), 1).unwrap();
            assert_eq!(r.body(), b"pong");
            assert_eq!(r.status(), 200);
            assert_eq!(r.end, EndRequest { app_status: 0, protocol_status: 0 });
        }
        let r = read_response(&mut Trickle(NOT_FOUND, 5), 1).unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(r.stderr, b"Primary script unknown");
        assert_eq!(r.body(), b"File not found.\n");
    }

    #[test]
    fn truncated_and_garbage_input() {
        let e = read_response(&mut Trickle(&PING[..PING.len() - 3], 64), 1).unwrap_err();
        assert!(e.contains("closed inside"), "{e}");
        let e = read_response(&mut Trickle(b"HTTP/1.1 400 Bad Request\r\n\r\n", 64), 1).unwrap_err();
        assert!(e.contains("not a FastCGI peer"), "{e}");
        let e = read_response(&mut Trickle(b"", 64), 1).unwrap_err();
        assert!(e.contains("before END_REQUEST"), "{e}");
    }

    #[test]
    fn other_request_ids_are_skipped() {
        let mut bytes = Vec::new();
        encode_record(&mut bytes, STDOUT, 9, b"noise");
        bytes.extend_from_slice(PING);
        let r = read_response(&mut Trickle(&bytes, 100), 1).unwrap();
        assert_eq!(r.body(), b"pong");
    }
}
