//! PHP-FPM configuration: the INI dialect FPM accepts (via PHP's INI scanner),
//! `include=` globs, `[global]` and pool sections, `$pool` substitution.
//!
//! Choices, documented in docs/helper.md:
//! * Entries before any section belong to `[global]`, as in FPM.
//! * A relative `include` glob is resolved against `--fpm-prefix` when given
//!   (what `php-fpm -p` does), otherwise against the including file's directory.
//! * An included file continues the section that was current where `include`
//!   appeared, and a section re-opened later merges into the same pool, as FPM does.
//! * A quoted value must end on its line; PHP would accept a multi-line string but
//!   no FPM setting needs one, and a stray quote is far more often a typo.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use fcgi_resilient_common::BackendAddress;

use crate::fpm_glob::{self, fpm_include, GlobError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    pub file: PathBuf,
    pub line: usize,
    pub msg: String,
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.msg)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.msg)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    pub file: PathBuf,
    pub line: usize,
}

impl Setting {
    pub fn loc(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Section(String),
    Entry { key: String, value: String },
}

/// Parses one file's text. `env` resolves `${NAME}` (PHP expands environment
/// variables in INI values; an unset one becomes empty).
pub fn parse_text(
    text: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(usize, Line)>, ConfError> {
    let mut out = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let err = |msg: String| ConfError { file: file.to_path_buf(), line: lineno, msg };
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        if line.starts_with('#') {
            return Err(err("`#` comments are not accepted by PHP-FPM (PHP 7+); use `;`".to_string()));
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(end) = rest.find(']') else {
                return Err(err(format!("unterminated section header `{line}`: missing `]`")));
            };
            let name = rest[..end].trim();
            let after = rest[end + 1..].trim();
            if name.is_empty() {
                return Err(err("empty section name `[]`".to_string()));
            }
            if !after.is_empty() && !after.starts_with(';') {
                return Err(err(format!("unexpected text `{after}` after section header")));
            }
            out.push((lineno, Line::Section(name.to_string())));
            continue;
        }
        let Some(eq) = line.find('=') else {
            return Err(err(format!("expected `key = value`, found `{line}`")));
        };
        let key = line[..eq].trim();
        if key.is_empty() {
            return Err(err("missing key before `=`".to_string()));
        }
        if key.contains(['"', '\'', ';', ' ', '\t']) && !key.contains('[') {
            return Err(err(format!("invalid key `{key}`")));
        }
        let value = parse_value(&line[eq + 1..], env).map_err(err)?;
        out.push((lineno, Line::Entry { key: key.to_string(), value }));
    }
    Ok(out)
}

fn parse_value(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    // Trailing blanks of an unquoted part are not part of the value, but blanks
    // inside quotes are: remember how much of `out` is protected.
    let mut protected_len = 0;
    while let Some(c) = chars.next() {
        match c {
            ';' => break,
            '"' => {
                let mut closed = false;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' if matches!(chars.peek(), Some('"') | Some('\\')) => {
                            if let Some(n) = chars.next() {
                                out.push(n);
                            }
                        }
                        '$' if chars.peek() == Some(&'{') => expand_var(&mut chars, &mut out, env)?,
                        other => out.push(other),
                    }
                }
                if !closed {
                    return Err("unterminated double-quoted value".to_string());
                }
                protected_len = out.len();
            }
            '\'' => {
                let mut closed = false;
                for q in chars.by_ref() {
                    if q == '\'' {
                        closed = true;
                        break;
                    }
                    out.push(q);
                }
                if !closed {
                    return Err("unterminated single-quoted value".to_string());
                }
                protected_len = out.len();
            }
            '$' if chars.peek() == Some(&'{') => {
                expand_var(&mut chars, &mut out, env)?;
            }
            c if c.is_whitespace() && out.len() == protected_len && out.is_empty() => {}
            other => out.push(other),
        }
    }
    let keep = out.trim_end().len().max(protected_len);
    out.truncate(keep);
    Ok(out)
}

fn expand_var(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    out: &mut String,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    chars.next(); // '{'
    let mut name = String::new();
    for c in chars.by_ref() {
        if c == '}' {
            if let Some(v) = env(&name) {
                out.push_str(&v);
            }
            return Ok(());
        }
        name.push(c);
    }
    Err(format!("unterminated `${{{name}`"))
}

#[derive(Debug, Clone)]
pub struct Pool {
    pub name: String,
    pub file: PathBuf,
    pub line: usize,
    /// Keys lower-cased: FPM matches option names case-insensitively.
    pub settings: BTreeMap<String, Setting>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Unix(PathBuf),
    /// `host` None means "all addresses" (`listen = 9000`, `*:9000`, `[::]:9000`).
    Tcp {
        host: Option<String>,
        port: u16,
    },
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Unix(p) => write!(f, "{}", p.display()),
            Listen::Tcp { host: None, port } => write!(f, "port {port} (all addresses)"),
            Listen::Tcp { host: Some(h), port } if h.contains(':') => write!(f, "[{h}]:{port}"),
            Listen::Tcp { host: Some(h), port } => write!(f, "{h}:{port}"),
        }
    }
}

/// FPM's own rule (fpm_sockets_domain_from_address): a colon or all digits means TCP,
/// anything else is a Unix socket path. `HOST:PORT` and `[v6]:PORT` are split as the module
/// splits them; `*`, `0.0.0.0`, `::` and no host mean every address.
pub fn parse_listen(s: &str) -> Result<Listen, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty listen address".to_string());
    }
    if s.contains(':') {
        let invalid =
            || format!("invalid listen address `{s}`: expected HOST:PORT, [IPv6]:PORT, PORT or a socket path");
        let all_addresses = s.strip_prefix(':').map(|port| format!("*:{port}"));
        return match BackendAddress::parse(all_addresses.as_deref().unwrap_or(s)).map_err(|_| invalid())? {
            BackendAddress::Tcp { host, port } => {
                let host = match host.as_str() {
                    "*" | "0.0.0.0" | "::" => None,
                    _ => Some(host),
                };
                Ok(Listen::Tcp { host, port })
            }
            BackendAddress::Unix(_) => Err(invalid()),
        };
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let port: u16 = s.parse().map_err(|_| format!("invalid port `{s}`"))?;
        return Ok(Listen::Tcp { host: None, port });
    }
    Ok(Listen::Unix(PathBuf::from(s)))
}

impl Listen {
    /// The backend Apache reaches this pool at, by the status page's name: a pool on every
    /// address is reached on 127.0.0.1.
    pub fn backend_address(&self) -> BackendAddress {
        match self {
            Listen::Unix(path) => BackendAddress::Unix(path.clone()),
            Listen::Tcp { host, port } => {
                BackendAddress::Tcp { host: host.clone().unwrap_or_else(|| "127.0.0.1".to_string()), port: *port }
            }
        }
    }
}

impl Pool {
    /// A setting with `$pool` replaced by the pool name, as FPM does for pool values.
    pub fn get(&self, key: &str) -> Option<Setting> {
        self.settings.get(key).map(|s| Setting {
            value: s.value.replace("$pool", &self.name),
            file: s.file.clone(),
            line: s.line,
        })
    }

    pub fn listen(&self) -> Option<(Result<Listen, String>, Setting)> {
        self.get("listen").map(|s| (parse_listen(&s.value), s))
    }

    pub fn socket_owner(&self) -> Option<Setting> {
        self.get("listen.owner").filter(|s| !s.value.is_empty()).or_else(|| self.get("user"))
    }

    pub fn socket_group(&self) -> Option<Setting> {
        self.get("listen.group").filter(|s| !s.value.is_empty()).or_else(|| self.get("group"))
    }

    pub fn loc(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

#[derive(Debug, Clone, Default)]
pub struct FpmConfig {
    pub main: PathBuf,
    pub global: BTreeMap<String, Setting>,
    pub pools: Vec<Pool>,
    pub files: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub prefix: Option<PathBuf>,
}

const MAX_INCLUDE_DEPTH: usize = 16;

enum Current {
    Global,
    Pool(usize),
}

struct Loader<'a> {
    opts: &'a LoadOptions,
    cfg: FpmConfig,
    current: Current,
    stack: Vec<PathBuf>,
}

pub fn load(main: &Path, opts: &LoadOptions) -> Result<FpmConfig, ConfError> {
    let mut l = Loader {
        opts,
        cfg: FpmConfig { main: main.to_path_buf(), ..Default::default() },
        current: Current::Global,
        stack: Vec::new(),
    };
    l.load_file(main, None)?;
    Ok(l.cfg)
}

impl Loader<'_> {
    fn load_file(&mut self, file: &Path, from: Option<(&Path, usize)>) -> Result<(), ConfError> {
        let here = |msg: String| match from {
            Some((f, l)) => ConfError { file: f.to_path_buf(), line: l, msg },
            None => ConfError { file: file.to_path_buf(), line: 0, msg },
        };
        if self.stack.len() >= MAX_INCLUDE_DEPTH || self.stack.iter().any(|p| p == file) {
            return Err(here(format!("include loop or nesting too deep at {}", file.display())));
        }
        let text = std::fs::read_to_string(file).map_err(|e| here(format!("cannot read {}: {e}", file.display())))?;
        let env = |name: &str| std::env::var(name).ok();
        let lines = parse_text(&text, file, &env)?;
        self.cfg.files.push(file.to_path_buf());
        self.stack.push(file.to_path_buf());
        for (lineno, line) in lines {
            match line {
                Line::Section(name) if name.eq_ignore_ascii_case("global") => self.current = Current::Global,
                Line::Section(name) => {
                    let idx = match self.cfg.pools.iter().position(|p| p.name == name) {
                        Some(i) => i,
                        None => {
                            self.cfg.pools.push(Pool {
                                name,
                                file: file.to_path_buf(),
                                line: lineno,
                                settings: BTreeMap::new(),
                            });
                            self.cfg.pools.len() - 1
                        }
                    };
                    self.current = Current::Pool(idx);
                }
                Line::Entry { key, value } if key.eq_ignore_ascii_case("include") => {
                    self.include(&value, file, lineno)?;
                }
                Line::Entry { key, value } => {
                    let setting = Setting { value, file: file.to_path_buf(), line: lineno };
                    let key = normalise_key(&key);
                    match self.current {
                        Current::Global => self.cfg.global.insert(key, setting),
                        Current::Pool(i) => self.cfg.pools[i].settings.insert(key, setting),
                    };
                }
            }
        }
        self.stack.pop();
        Ok(())
    }

    fn include(&mut self, pattern: &str, file: &Path, lineno: usize) -> Result<(), ConfError> {
        if pattern.is_empty() {
            return Err(ConfError { file: file.to_path_buf(), line: lineno, msg: "empty include".to_string() });
        }
        let p = Path::new(pattern);
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else if let Some(prefix) = &self.opts.prefix {
            prefix.join(p)
        } else {
            file.parent().unwrap_or(Path::new("/")).join(p)
        };
        let matches = match fpm_include(&full) {
            Ok(matches) => matches,
            // FPM only warns here, so do we: an empty pool.d is legal.
            Err(GlobError::NoMatch) => {
                self.cfg.warnings.push(format!(
                    "{}:{}: nothing matches the include pattern {}",
                    file.display(),
                    lineno,
                    full.display()
                ));
                Vec::new()
            }
            Err(GlobError::Failed(why)) => {
                return Err(ConfError { file: file.to_path_buf(), line: lineno, msg: format!("include: {why}") })
            }
        };
        for m in matches {
            self.load_file(&m, Some((file, lineno)))?;
        }
        Ok(())
    }
}

fn normalise_key(key: &str) -> String {
    // `env[Name]`/`php_value[name]` keep the case of what is in brackets.
    match key.find('[') {
        Some(i) => format!("{}{}", key[..i].trim().to_ascii_lowercase(), &key[i..]),
        None => key.to_ascii_lowercase(),
    }
}

/// FPM's time values (`process_control_timeout`...): a number of seconds, or with an
/// `s`, `m`, `h` or `d` suffix.
pub fn parse_seconds(value: &str) -> Option<u64> {
    let v = value.trim();
    let (num, factor) = match v.char_indices().last()? {
        (i, 's') => (&v[..i], 1),
        (i, 'm') => (&v[..i], 60),
        (i, 'h') => (&v[..i], 3600),
        (i, 'd') => (&v[..i], 86400),
        _ => (v, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(factor)
}

/// What `check` and `reload-and-wait` recommend: long enough for any normal request.
pub const RECOMMENDED_PROCESS_CONTROL_TIMEOUT: &str = "30s";

impl FpmConfig {
    /// Why a reload (SIGUSR2) of this instance would cut requests, if it would: with
    /// `process_control_timeout` 0 (also PHP-FPM's default) the master follows its SIGQUIT
    /// to the old workers at once by SIGTERM, killing the scripts they run. With it set, the
    /// old workers finish their request while the inherited socket queues new ones for the
    /// new workers (verified with php-fpm 8.2 under load: no request lost).
    pub fn reload_cut_warning(&self) -> Option<String> {
        let fix = format!("process_control_timeout = {RECOMMENDED_PROCESS_CONTROL_TIMEOUT}");
        match self.global.get("process_control_timeout") {
            None => Some(format!(
                "{}: process_control_timeout is not set (PHP-FPM's default is 0), so a reload (SIGUSR2) kills \
                 the requests in flight; add `{fix}` to the [global] section",
                self.main.display()
            )),
            Some(s) => match parse_seconds(&s.value) {
                Some(0) => Some(format!(
                    "{}: process_control_timeout = {}: a reload (SIGUSR2) kills the requests in flight; set `{fix}`",
                    s.loc(),
                    s.value
                )),
                Some(_) => None,
                None => Some(format!("{}: process_control_timeout = {}: not a time value", s.loc(), s.value)),
            },
        }
    }
}

/// Standard locations of FPM main configs on Debian/Ubuntu and RHEL/Fedora.
/// Each main config is a separate FPM instance.
pub fn default_main_configs() -> Vec<PathBuf> {
    let mut out = fpm_glob::existing(Path::new("/etc/php/*/fpm/php-fpm.conf"));
    out.extend(fpm_glob::existing(Path::new("/etc/opt/remi/php*/php-fpm.conf")));
    let rhel = Path::new("/etc/php-fpm.conf");
    if rhel.exists() {
        out.push(rhel.to_path_buf());
    } else {
        // Pool files without their main config: still useful to know the pools.
        out.extend(fpm_glob::existing(Path::new("/etc/php-fpm.d/*.conf")));
    }
    out
}

/// Loads each given config (or the defaults); an empty list of configs is an error
/// because silently doing nothing would hide a typo in a path.
pub fn load_all(files: &[PathBuf], opts: &LoadOptions) -> Result<Vec<FpmConfig>, String> {
    let list = if files.is_empty() { default_main_configs() } else { files.to_vec() };
    if list.is_empty() {
        return Err("no PHP-FPM configuration found (looked for /etc/php/*/fpm/php-fpm.conf, \
                    /etc/php-fpm.conf, /etc/php-fpm.d/*.conf); use --fpm-config FILE"
            .to_string());
    }
    list.iter().map(|f| load(f, opts).map_err(|e| e.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness::WorkDir;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(text: &str) -> Result<Vec<(usize, Line)>, ConfError> {
        parse_text(text, Path::new("/x.conf"), &no_env)
    }

    fn entry(k: &str, v: &str) -> Line {
        Line::Entry { key: k.into(), value: v.into() }
    }

    #[test]
    fn sections_comments_quotes() {
        let got = parse(
            "; comment\n[global]\npid = /run/php/x.pid ; trailing\n\n[www]\nlisten = \"/run/php/a b.sock\"\n\
             user='www-data'\nping.response = \"po;ng\"  ; c\nenv[PATH] = /bin\nempty =\n",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                (2, Line::Section("global".into())),
                (3, entry("pid", "/run/php/x.pid")),
                (5, Line::Section("www".into())),
                (6, entry("listen", "/run/php/a b.sock")),
                (7, entry("user", "www-data")),
                (8, entry("ping.response", "po;ng")),
                (9, entry("env[PATH]", "/bin")),
                (10, entry("empty", "")),
            ]
        );
    }

    #[test]
    fn env_expansion() {
        let env = |n: &str| (n == "V").then(|| "8.2".to_string());
        let got = parse_text("listen = /run/php${V}.sock\nx = \"${V}\"\ny='${V}'\n", Path::new("f"), &env).unwrap();
        assert_eq!(got[0].1, entry("listen", "/run/php8.2.sock"));
        assert_eq!(got[1].1, entry("x", "8.2"));
        assert_eq!(got[2].1, entry("y", "${V}"));
    }

    #[test]
    fn malformed_reports_file_and_line() {
        let cases = [
            ("[www]\nlisten /run/php/x.sock\n", 2, "expected `key = value`"),
            ("[www\n", 1, "missing `]`"),
            ("[]\n", 1, "empty section"),
            ("a=1\nlisten = \"/run/x.sock\n", 2, "unterminated double-quoted"),
            ("a='x\n", 1, "unterminated single-quoted"),
            ("= 3\n", 1, "missing key"),
            ("# old comment\n", 1, "`#` comments"),
            ("x = ${FOO\n", 1, "unterminated `${FOO`"),
            ("[www] junk\n", 1, "unexpected text"),
        ];
        for (text, line, msg) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.msg.contains(msg), "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("/x.conf:{line}: ")), "{e}");
        }
    }

    #[test]
    fn listen_forms() {
        assert_eq!(parse_listen("9000").unwrap(), Listen::Tcp { host: None, port: 9000 });
        assert_eq!(parse_listen("127.0.0.1:9001").unwrap(), Listen::Tcp { host: Some("127.0.0.1".into()), port: 9001 });
        assert_eq!(parse_listen("[::]:9002").unwrap(), Listen::Tcp { host: None, port: 9002 });
        assert_eq!(parse_listen("[::1]:9003").unwrap(), Listen::Tcp { host: Some("::1".into()), port: 9003 });
        assert_eq!(parse_listen("/run/php/x.sock").unwrap(), Listen::Unix("/run/php/x.sock".into()));
        assert_eq!(parse_listen("*:9004").unwrap(), Listen::Tcp { host: None, port: 9004 });
        assert_eq!(parse_listen(":9005").unwrap(), Listen::Tcp { host: None, port: 9005 });
        assert!(parse_listen("127.0.0.1:http").is_err());
        assert_eq!(parse_listen("9000").unwrap().backend_address().to_string(), "127.0.0.1:9000");
        assert_eq!(parse_listen("[::1]:9003").unwrap().backend_address().to_string(), "::1:9003");
        assert!(parse_listen("99999").is_err());
    }

    #[test]
    fn includes_pools_and_pool_substitution() {
        let d = WorkDir::new("fpm");
        let pd = d.path().join("pool.d");
        std::fs::create_dir(&pd).unwrap();
        std::fs::write(d.path().join("php-fpm.conf"), "[global]\npid = /run/php/fpm.pid\ninclude=pool.d/*.conf\n")
            .unwrap();
        std::fs::write(
            pd.join("a.conf"),
            "[alpha]\nuser = www-data\nlisten = /run/php/$pool.sock\nlisten.owner = nobody\n",
        )
        .unwrap();
        std::fs::write(pd.join("b.conf"), "[beta]\nuser=nobody\ngroup=nogroup\nlisten = 127.0.0.1:9000\n").unwrap();
        std::fs::write(pd.join("b.conf.dpkg-old"), "garbage without equals\n").unwrap();
        let cfg = load(&d.path().join("php-fpm.conf"), &LoadOptions::default()).unwrap();
        assert_eq!(cfg.pools.len(), 2);
        assert_eq!(cfg.global["pid"].value, "/run/php/fpm.pid");
        let a = &cfg.pools[0];
        assert_eq!(a.name, "alpha");
        let (l, s) = a.listen().unwrap();
        assert_eq!(l.unwrap(), Listen::Unix("/run/php/alpha.sock".into()));
        assert_eq!(s.line, 3);
        assert_eq!(a.socket_owner().unwrap().value, "nobody");
        assert_eq!(a.socket_group(), None);
        let b = &cfg.pools[1];
        assert_eq!(b.socket_owner().unwrap().value, "nobody");
        assert_eq!(b.socket_group().unwrap().value, "nogroup");
        assert!(cfg.warnings.is_empty());
    }

    #[test]
    fn include_errors_point_at_included_file() {
        let d = WorkDir::new("fpm-bad");
        std::fs::write(d.path().join("main.conf"), "include=*.pool\n").unwrap();
        std::fs::write(d.path().join("x.pool"), "[x]\n\nlisten\n").unwrap();
        let e = load(&d.path().join("main.conf"), &LoadOptions::default()).unwrap_err();
        assert_eq!(e.file, d.path().join("x.pool"));
        assert_eq!(e.line, 3);
    }

    #[test]
    fn process_control_timeout_warnings() {
        assert_eq!((parse_seconds("0"), parse_seconds("10s"), parse_seconds("2m")), (Some(0), Some(10), Some(120)));
        assert_eq!((parse_seconds("1d"), parse_seconds("x"), parse_seconds("")), (Some(86400), None, None));
        let d = WorkDir::new("fpm-pct");
        let file = d.path().join("a.conf");
        for (text, warns) in [
            ("[global]\npid = /x\n", Some("not set")),
            ("[global]\nprocess_control_timeout = 0s\n", Some("a.conf:2: process_control_timeout = 0s")),
            ("[global]\nprocess_control_timeout = 10s\n", None),
        ] {
            std::fs::write(&file, text).unwrap();
            let warning = load(&file, &LoadOptions::default()).unwrap().reload_cut_warning();
            match warns {
                None => assert_eq!(warning, None),
                Some(w) => assert!(warning.as_deref().is_some_and(|t| t.contains(w)), "{warning:?}"),
            }
        }
    }

    #[test]
    fn include_loop_is_an_error() {
        let d = WorkDir::new("fpm-loop");
        std::fs::write(d.path().join("a.conf"), "include=a.conf\n").unwrap();
        let e = load(&d.path().join("a.conf"), &LoadOptions::default()).unwrap_err();
        assert!(e.msg.contains("loop"), "{e}");
    }

    #[test]
    fn empty_include_glob_warns() {
        let d = WorkDir::new("fpm-empty");
        std::fs::create_dir(d.path().join("pool.d")).unwrap();
        std::fs::write(d.path().join("a.conf"), "include=pool.d/*.conf\n").unwrap();
        let cfg = load(&d.path().join("a.conf"), &LoadOptions::default()).unwrap();
        assert_eq!(cfg.warnings.len(), 1);
    }

    /// php-fpm8.2 -t: "ERROR: Unable to globalize '.../nothing/*.conf' (ret=2) from a.conf at
    /// line 1", and it does not start: glob(3) with GLOB_ERR aborts on the missing directory.
    #[test]
    fn an_include_glob_in_a_missing_directory_is_an_error_as_for_php_fpm() {
        let d = WorkDir::new("fpm-missing-dir");
        std::fs::write(d.path().join("a.conf"), "include=nothing/*.conf\n").unwrap();
        let error = load(&d.path().join("a.conf"), &LoadOptions::default()).unwrap_err();
        assert_eq!(error.line, 1);
        assert!(error.msg.contains("could not be read"), "{error}");
    }
}
