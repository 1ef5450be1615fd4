//! Just enough HTTP/1.1 for the tests and the load: one request per call on a connection the
//! caller may keep alive, responses read whole (Content-Length, chunked, or until close).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn keeps_connection(&self) -> bool {
        !self.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// One request on a new connection.
pub fn get(target: SocketAddr, path: &str) -> std::io::Result<Response> {
    request(target, "GET", path, &[], Duration::from_secs(60))
}

pub fn post(target: SocketAddr, path: &str, body: &[u8]) -> std::io::Result<Response> {
    request(target, "POST", path, body, Duration::from_secs(60))
}

pub fn request(
    target: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<Response> {
    let mut connection = Connection::open(target, timeout)?;
    connection.send(method, path, "localhost", body)
}

/// A POST whose body waits for the server's `100 Continue` ([`Connection::send_expecting_continue`]).
pub fn post_expecting_continue(
    target: SocketAddr,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<Response> {
    let mut connection = Connection::open(target, timeout)?;
    connection.send_expecting_continue("POST", path, "localhost", body)
}

pub(crate) fn request_head(method: &str, path: &str, host: &str, body: &[u8], extra_headers: &str) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: fcgi-resilient-tests\r\n");
    if !body.is_empty() || method == "POST" {
        head += &format!("Content-Type: application/octet-stream\r\nContent-Length: {}\r\n", body.len());
    }
    head + extra_headers + "\r\n"
}

/// A 1xx answer: no body, and the final answer still to come.
fn is_interim(status: u16) -> bool {
    (100..200).contains(&status)
}

/// A client connection, kept alive across requests.
pub struct Connection {
    reader: BufReader<TcpStream>,
    open: bool,
}

impl Connection {
    pub fn open(target: SocketAddr, timeout: Duration) -> std::io::Result<Connection> {
        let stream = TcpStream::connect_timeout(&target, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Connection { reader: BufReader::new(stream), open: true })
    }

    /// Whether the server left the connection open for another request.
    pub fn is_open(&self) -> bool {
        self.open
    }

    pub fn send(&mut self, method: &str, path: &str, host: &str, body: &[u8]) -> std::io::Result<Response> {
        let head = request_head(method, path, host, body, "");
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let response = read_response(&mut self.reader, method == "HEAD");
        self.open = response.as_ref().is_ok_and(|r| r.0);
        response.map(|(_, response)| response)
    }

    /// Sends the head with `Expect: 100-continue` and the body only once the server answers
    /// `100 Continue`, as curl does (but without curl's 1 s fallback: a server that never says
    /// `100 Continue` never gets the body). A final answer instead ends the request unsent.
    pub fn send_expecting_continue(
        &mut self,
        method: &str,
        path: &str,
        host: &str,
        body: &[u8],
    ) -> std::io::Result<Response> {
        let head = request_head(method, path, host, body, "Expect: 100-continue\r\n");
        self.reader.get_mut().write_all(head.as_bytes())?;
        let (keep_alive, first) = read_response(&mut self.reader, false)?;
        if first.status != 100 {
            self.open = keep_alive;
            return Ok(first);
        }
        self.reader.get_mut().write_all(body)?;
        loop {
            let (keep_alive, response) = read_response(&mut self.reader, method == "HEAD")?;
            if !is_interim(response.status) {
                self.open = keep_alive;
                return Ok(response);
            }
        }
    }
}

fn bad(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_string())
}

/// What reading a response says when the server closed the connection before answering.
pub const CLOSED_BEFORE_STATUS: &str = "connection closed before the status line";

/// Reads one response; also says whether the connection stays usable.
pub(crate) fn read_response(reader: &mut impl BufRead, head_only: bool) -> std::io::Result<(bool, Response)> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(bad(CLOSED_BEFORE_STATUS));
    }
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status"))?;
    let headers = read_headers(reader)?;
    let mut response = Response { status, headers, body: Vec::new() };
    let mut keep_alive = response.keeps_connection();
    let length = response.header("content-length").and_then(|v| v.parse::<u64>().ok());
    let chunked = response.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if head_only || status == 204 || status == 304 || is_interim(status) {
    } else if chunked {
        response.body = read_chunked_body(reader)?;
    } else if let Some(length) = length {
        reader.take(length).read_to_end(&mut response.body)?;
        if (response.body.len() as u64) < length {
            return Err(bad("connection closed in the body"));
        }
    } else {
        reader.read_to_end(&mut response.body)?;
        keep_alive = false;
    }
    Ok((keep_alive, response))
}

fn read_headers(reader: &mut impl BufRead) -> std::io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("connection closed in the headers"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            return Ok(headers);
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
}

fn read_chunked_body(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size =
            u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16).map_err(|_| bad("chunk size"))?;
        if size == 0 {
            read_headers(reader)?; // trailers
            return Ok(body);
        }
        reader.take(size).read_to_end(&mut body)?;
        line.clear();
        reader.read_line(&mut line)?; // the CRLF closing the chunk
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> (bool, Response) {
        read_response(&mut std::io::Cursor::new(raw.as_bytes().to_vec()), false).expect("a response")
    }

    #[test]
    fn reads_content_length_body_and_keeps_the_connection() {
        let (keep, response) = parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nRetry-After: 5\r\n\r\nhelloEXTRA");
        assert!(keep);
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"hello");
        assert_eq!(response.header("retry-after"), Some("5"));
    }

    #[test]
    fn reads_chunked_body_with_trailers() {
        let (_, response) = parse(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
        );
        assert_eq!(response.body, b"abcde");
    }

    #[test]
    fn body_until_close_ends_the_connection() {
        let (keep, response) = parse("HTTP/1.0 503 Service Unavailable\r\n\r\ngone");
        assert!(!keep);
        assert_eq!(response.status, 503);
        assert_eq!(response.body, b"gone");
    }

    #[test]
    fn an_interim_answer_has_no_body() {
        let (keep, response) = parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n");
        assert!(keep);
        assert_eq!(response.status, 100);
        assert!(response.body.is_empty());
    }

    #[test]
    fn short_body_is_an_error() {
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
        assert!(read_response(&mut std::io::Cursor::new(raw.as_bytes().to_vec()), false).is_err());
    }
}
