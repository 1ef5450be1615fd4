//! The HTTP/2 load: nghttp2's h2load, bounded in time (`-D`), with its per-request log, so
//! that an HTTP/2 run gets the same per-request records (start, latency, status) as the
//! harness's HTTP/1.1 client, besides h2load's own counts of failed and errored streams.

use harness::load::Record;
use harness::transport::{parse_h2load, H2loadSummary, Ports, Transport};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct Http2LoadSpec {
    pub connections: usize,
    /// Concurrent streams per connection.
    pub streams: usize,
    pub duration: Duration,
}

/// What one h2load run gave.
pub struct Http2Outcome {
    pub summary: H2loadSummary,
    /// The protocol h2load says it spoke ("h2c", "h2"), or "?" if it connected nowhere.
    pub protocol: String,
    pub records: Vec<Record>,
    /// h2load's own summary, for the raw results.
    pub output: String,
}

pub struct RunningHttp2Load {
    child: Child,
    log_file: PathBuf,
    /// h2load logs wall-clock start times; the run's epoch in the same clock.
    epoch: SystemTime,
}

impl RunningHttp2Load {
    pub fn start(
        ports: &Ports,
        transport: Transport,
        spec: &Http2LoadSpec,
        log_file: &Path,
        epoch: SystemTime,
    ) -> RunningHttp2Load {
        let child = Command::new("h2load")
            .args(["-c", &spec.connections.to_string(), "-m", &spec.streams.to_string()])
            .args(["-D", &format!("{}ms", spec.duration.as_millis())])
            // As the HTTP/1.1 client's per-request limit: a stream silent for 30 s has failed.
            .args(["-N", "30s"])
            .arg("--log-file")
            .arg(log_file)
            .arg(ports.url(transport, "/index.php"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run h2load (Debian package nghttp2-client)");
        RunningHttp2Load { child, log_file: log_file.to_path_buf(), epoch }
    }

    pub fn finish(self) -> Http2Outcome {
        let output = self.child.wait_with_output().expect("h2load");
        let output = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        // Its start-up progress says nothing about the run.
        let output: String =
            output.lines().filter(|line| !line.starts_with("progress:")).map(|line| format!("{line}\n")).collect();
        let log = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        let since_unix_epoch = self.epoch.duration_since(UNIX_EPOCH).expect("clock after 1970");
        Http2Outcome {
            summary: parse_h2load(&output),
            protocol: negotiated_protocol(&output).unwrap_or("?").to_string(),
            records: log.lines().filter_map(|line| parse_log_line(line, since_unix_epoch)).collect(),
            output,
        }
    }
}

/// h2load's "Application protocol: h2" line.
fn negotiated_protocol(output: &str) -> Option<&str> {
    output.lines().find_map(|line| line.strip_prefix("Application protocol:")).map(str::trim)
}

/// One line of h2load's `--log-file`: start (µs since 1970), status (-1 for a stream that
/// ended without an answer), µs until the end of the answer; as a record since `epoch`.
fn parse_log_line(line: &str, epoch: Duration) -> Option<Record> {
    let mut fields = line.split('\t');
    let started = Duration::from_micros(fields.next()?.trim().parse().ok()?);
    let status: i64 = fields.next()?.trim().parse().ok()?;
    let latency = Duration::from_micros(fields.next()?.trim().parse().ok()?);
    Some(Record {
        started: started.saturating_sub(epoch),
        latency,
        // The harness's records say 0 for a request that got no answer.
        status: u16::try_from(status).unwrap_or(0),
        // h2load never resends.
        resent: false,
    })
}
