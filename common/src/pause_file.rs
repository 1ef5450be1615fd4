//! The pause file: how `fcgi-resilient-helper pause` tells every Apache child that requests
//! for one backend are to be held, and until when. One file per backend in the pause
//! directory; the helper writes it (a temporary file renamed into place), the module only
//! reads it. This one file, in the crate both link, defines the format for both, so the two
//! can never disagree on a name or a field.
//!
//! ```text
//! fcgi-resilient-pause 1
//! backend unix:/run/php/php8.2-fpm.sock
//! until 1764000000123
//! ```
//!
//! `until` is Unix time in milliseconds: a pause ends by itself then, also when whoever
//! paused never resumes. The file name is the backend's name with `%` and `/` escaped, plus
//! `.pause`; names starting with `.` are temporary files and never read.

use std::fmt;

use crate::backend_address::BackendAddress;

/// Where pauses live unless `FcgiResilientPauseDir` / `--pause-dir` say otherwise.
pub const DEFAULT_PAUSE_DIR: &str = "/run/fcgi-resilient/pause";

const MAGIC: &str = "fcgi-resilient-pause 1";
const SUFFIX: &str = ".pause";
/// A Unix socket path is at most 107 bytes; with escaping the name stays below NAME_MAX.
const LONGEST_BACKEND: usize = 200;

/// One pause: which backend, and when it ends by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseRecord {
    /// As the status page names it: `unix:/path` or `host:port`.
    pub backend: String,
    pub until_unix_ms: u64,
}

impl PauseRecord {
    pub fn render(&self) -> String {
        format!("{MAGIC}\nbackend {}\nuntil {}\n", self.backend, self.until_unix_ms)
    }

    pub fn parse(text: &str) -> Result<PauseRecord, String> {
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(format!("does not start with `{MAGIC}`"));
        }
        let (mut backend, mut until) = (None, None);
        for line in lines {
            match line.split_once(' ') {
                Some(("backend", value)) => backend = Some(value.to_string()),
                Some(("until", value)) => {
                    until = Some(value.parse::<u64>().map_err(|_| format!("`until {value}` is not Unix milliseconds"))?)
                }
                _ => {} // later versions may add fields
            }
        }
        let backend = backend.ok_or("no `backend` line")?;
        let until_unix_ms = until.ok_or("no `until` line")?;
        if backend_name(&backend).as_deref() != Ok(backend.as_str()) {
            return Err(format!("`{backend}` is not a backend name as the status page writes it"));
        }
        Ok(PauseRecord { backend, until_unix_ms })
    }

    pub fn is_over(&self, now_unix_ms: u64) -> bool {
        now_unix_ms >= self.until_unix_ms
    }

    /// The file this pause is written to, inside the pause directory.
    pub fn file_name(&self) -> String {
        file_name_for(&self.backend)
    }
}

/// `%2F` for `/`, `%25` for `%`: a backend name as one file name, reversible by eye.
pub fn file_name_for(backend: &str) -> String {
    let mut name = String::with_capacity(backend.len() + SUFFIX.len());
    for c in backend.chars() {
        match c {
            '%' => name.push_str("%25"),
            '/' => name.push_str("%2F"),
            other => name.push(other),
        }
    }
    name + SUFFIX
}

/// Whether a directory entry is a pause file (not a temporary file, not anything else).
pub fn is_pause_file_name(name: &str) -> bool {
    !name.starts_with('.') && name.ends_with(SUFFIX)
}

/// Why a text is not a backend name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotABackend(pub String);

impl fmt::Display for NotABackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The backend's name as the module's status page writes it (`unix:/path/to.sock`,
/// `127.0.0.1:9000`), from any of the ways `BackendAddress::parse` reads; short enough to be
/// a file name.
pub fn backend_name(text: &str) -> Result<String, NotABackend> {
    let name = BackendAddress::parse(text).map_err(|error| NotABackend(error.to_string()))?.to_string();
    if name.len() > LONGEST_BACKEND {
        return Err(NotABackend(format!("`{}` is longer than {LONGEST_BACKEND} bytes", text.trim())));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_of_writing_a_backend_gives_the_status_page_name() {
        let socket = "unix:/run/php/php8.2-fpm.sock";
        for written in [
            "unix:/run/php/php8.2-fpm.sock",
            "/run/php/php8.2-fpm.sock",
            "unix:/run/php/php8.2-fpm.sock|fcgi://localhost",
            "proxy:unix:/run/php/php8.2-fpm.sock|fcgi://localhost/",
            " UNIX:/run/php/php8.2-fpm.sock ",
        ] {
            assert_eq!(backend_name(written).as_deref(), Ok(socket), "{written}");
        }
        for written in ["127.0.0.1:9000", "fcgi://127.0.0.1:9000", "fcgi://127.0.0.1:9000/var/www/x.php"] {
            assert_eq!(backend_name(written).as_deref(), Ok("127.0.0.1:9000"), "{written}");
        }
        assert_eq!(backend_name("[::1]:9000").as_deref(), Ok("::1:9000"));
        assert_eq!(backend_name("fcgi://[::1]:9000/").as_deref(), Ok("::1:9000"));
        assert_eq!(backend_name("php:9000").as_deref(), Ok("php:9000"));
        assert_eq!(backend_name("fcgi://127.0.0.1").as_deref(), Ok("127.0.0.1:8000"), "mod_proxy_fcgi's default port");
    }

    #[test]
    fn what_is_no_backend_is_refused_with_the_forms_named() {
        for bad in
            ["", "localhost", "host:port", "127.0.0.1:0", "unix:relative.sock", "fcgi://", ":9000", "balancer://x"]
        {
            let error = backend_name(bad).unwrap_err();
            assert!(error.0.contains('`'), "{bad}: {error}");
        }
        assert!(backend_name(&format!("/{}", "x".repeat(300))).is_err());
    }

    #[test]
    fn a_record_survives_its_file() {
        let record = PauseRecord { backend: "unix:/run/php/a b%.sock".into(), until_unix_ms: 1_764_000_000_123 };
        assert_eq!(PauseRecord::parse(&record.render()), Ok(record.clone()));
        assert_eq!(record.file_name(), "unix:%2Frun%2Fphp%2Fa b%25.sock.pause");
        assert!(is_pause_file_name(&record.file_name()));
        assert!(!is_pause_file_name(".unix:%2Fx.pause.tmp.12"));
        assert!(!is_pause_file_name("README"));
    }

    #[test]
    fn broken_files_are_refused() {
        assert!(PauseRecord::parse("").is_err());
        assert!(PauseRecord::parse("fcgi-resilient-pause 1\nbackend 127.0.0.1:9000\n").is_err());
        assert!(PauseRecord::parse("fcgi-resilient-pause 1\nuntil 5\n").is_err());
        assert!(PauseRecord::parse("fcgi-resilient-pause 1\nbackend 127.0.0.1:9000\nuntil soon\n").is_err());
        assert!(PauseRecord::parse("fcgi-resilient-pause 1\nbackend /x.sock\nuntil 5\n").is_err(), "not the name");
        assert!(PauseRecord::parse("fcgi-resilient-pause 2\nbackend 127.0.0.1:9000\nuntil 5\n").is_err());
        let later = "fcgi-resilient-pause 1\nbackend 127.0.0.1:9000\nuntil 5\nby deploy\n";
        assert_eq!(PauseRecord::parse(later).map(|r| r.until_unix_ms), Ok(5), "unknown fields are skipped");
    }

    #[test]
    fn a_pause_is_over_at_its_end() {
        let record = PauseRecord { backend: "127.0.0.1:9000".into(), until_unix_ms: 1000 };
        assert!(!record.is_over(999));
        assert!(record.is_over(1000));
    }
}
