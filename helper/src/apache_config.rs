//! Just enough of Apache's configuration: directives with file:line, `Include`/
//! `IncludeOptional` (globs, directories, relative to ServerRoot), `Define` and
//! `${VAR}` (with Debian's envvars), and the FastCGI backends named in it.
//! Conditional sections (<IfModule>, <IfDefine>...) are treated as active: a
//! backend that is configured but disabled is still worth checking.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use fcgi_resilient_common::{AddressError, BackendAddress};

use crate::apache_include::{included_files, Presence};
use crate::fpm_config::ConfError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    pub file: PathBuf,
    pub line: usize,
}

impl Directive {
    pub fn loc(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
    fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

#[derive(Debug, Default)]
pub struct ApacheConfig {
    pub directives: Vec<Directive>,
    pub server_root: PathBuf,
    pub vars: HashMap<String, String>,
    /// Problems that would stop Apache from starting (a missing `Include`).
    pub problems: Vec<String>,
}

/// Reads `export NAME=value` lines the way Debian's /etc/apache2/envvars sets them;
/// shell logic in that file is ignored.
pub fn read_envvars(path: &Path) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    let Ok(text) = std::fs::read_to_string(path) else { return vars };
    for line in text.lines() {
        let l = line.trim();
        let l = l.strip_prefix("export ").unwrap_or(l).trim();
        let Some((k, v)) = l.split_once('=') else { continue };
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let v = v.trim().trim_matches('"').trim_matches('\'');
        let expanded = expand_shell(v, &vars);
        vars.insert(k.to_string(), expanded);
    }
    vars
}

fn expand_shell(v: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = v;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(b) = after.strip_prefix('{') {
            match b.find('}') {
                Some(e) => (&b[..e], e + 2),
                None => (b, after.len()),
            }
        } else {
            let e = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            (&after[..e], e)
        };
        out.push_str(vars.get(name).map(String::as_str).unwrap_or(""));
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// Splits a directive line into words; quotes group, backslash escapes a quote.
pub fn tokenize(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' || c == '\'' {
            chars.next();
            let mut closed = false;
            while let Some(q) = chars.next() {
                if q == '\\' && matches!(chars.peek(), Some(&n) if n == c || n == '\\') {
                    word.push(chars.next().unwrap_or(q));
                } else if q == c {
                    closed = true;
                    break;
                } else {
                    word.push(q);
                }
            }
            if !closed {
                return Err(format!("unterminated {c}quoted{c} argument"));
            }
        } else {
            while let Some(&q) = chars.peek() {
                if q.is_whitespace() {
                    break;
                }
                word.push(q);
                chars.next();
            }
        }
        out.push(word);
    }
    Ok(out)
}

fn expand_vars(s: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(e) => {
                match vars.get(&after[..e]) {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&rest[i..i + 3 + e]),
                }
                rest = &after[e + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

pub struct LoadOptions {
    pub server_root: Option<PathBuf>,
    pub envvars: Option<PathBuf>,
}

/// ServerRoot when none is given: `.../conf/httpd.conf` lives one level down.
pub fn default_server_root(main: &Path) -> PathBuf {
    let dir = main.parent().unwrap_or(Path::new("/"));
    if dir.file_name().is_some_and(|n| n == "conf") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

pub fn load(main: &Path, opts: &LoadOptions) -> Result<ApacheConfig, ConfError> {
    let server_root = opts.server_root.clone().unwrap_or_else(|| default_server_root(main));
    let envvars = opts.envvars.clone().unwrap_or_else(|| server_root.join("envvars"));
    let mut vars: HashMap<String, String> = std::env::vars().collect();
    vars.extend(read_envvars(&envvars));
    let mut cfg = ApacheConfig { server_root, vars, ..Default::default() };
    let fixed_root = opts.server_root.is_some();
    load_file(&mut cfg, main, fixed_root, 0)?;
    Ok(cfg)
}

fn load_file(cfg: &mut ApacheConfig, file: &Path, fixed_root: bool, depth: usize) -> Result<(), ConfError> {
    let err = |line: usize, msg: String| ConfError { file: file.to_path_buf(), line, msg };
    if depth > 32 {
        return Err(err(0, "Include nested too deeply (a loop?)".to_string()));
    }
    let text = std::fs::read_to_string(file).map_err(|e| err(0, format!("cannot read: {e}")))?;
    let mut pending = String::new();
    let mut start = 0;
    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        if pending.is_empty() {
            start = lineno;
        }
        if let Some(cont) = raw.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        pending.push_str(raw);
        let line = std::mem::take(&mut pending);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("</") {
            continue;
        }
        let line = line.strip_suffix('>').filter(|_| line.starts_with('<')).unwrap_or(line);
        let words = tokenize(&expand_vars(line, &cfg.vars)).map_err(|m| err(start, m))?;
        let Some((name, args)) = words.split_first() else { continue };
        let d = Directive { name: name.clone(), args: args.to_vec(), file: file.to_path_buf(), line: start };
        if d.is("Define") && !args.is_empty() {
            cfg.vars.insert(args[0].clone(), args.get(1).cloned().unwrap_or_default());
        } else if d.is("ServerRoot") && !fixed_root && !args.is_empty() {
            cfg.server_root = PathBuf::from(&args[0]);
        } else if d.is("Include") || d.is("IncludeOptional") {
            include(cfg, &d, fixed_root, depth)?;
        }
        cfg.directives.push(d);
    }
    Ok(())
}

fn include(cfg: &mut ApacheConfig, d: &Directive, fixed_root: bool, depth: usize) -> Result<(), ConfError> {
    let presence = if d.is("IncludeOptional") { Presence::Optional } else { Presence::Required };
    let Some(arg) = d.args.first() else { return Ok(()) };
    let p = Path::new(arg);
    let full = if p.is_absolute() { p.to_path_buf() } else { cfg.server_root.join(p) };
    match included_files(&full, presence) {
        Ok(files) => {
            for file in files {
                load_file(cfg, &file, fixed_root, depth + 1)?;
            }
        }
        Err(error) => cfg.problems.push(format!(
            "{}: {} {}: {error}; Apache will refuse to start{}",
            d.loc(),
            d.name,
            full.display(),
            if presence == Presence::Required { " (IncludeOptional tolerates what is missing)" } else { "" }
        )),
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub addr: BackendAddress,
    pub directive: Directive,
    pub url: String,
}

/// The backend of a mod_proxy URL (`unix:/path|fcgi://...`, `fcgi://host[:port]/...`), with a
/// relative socket path resolved against `runtime_dir` as mod_proxy does; None for other
/// schemes and for what is no URL (ProxyPass's first argument).
pub fn backend_of_url(url: &str, runtime_dir: &Path) -> Option<BackendAddress> {
    match BackendAddress::from_proxy_url(url) {
        Ok(address) => Some(address),
        Err(AddressError::RelativeSocket { path, .. }) => Some(BackendAddress::Unix(runtime_dir.join(path))),
        Err(_) => None,
    }
}

impl ApacheConfig {
    /// Last value of a single-valued directive (Apache: the last one wins).
    pub fn last(&self, name: &str) -> Option<&Directive> {
        self.directives.iter().rev().find(|d| d.is(name) && !d.args.is_empty())
    }

    pub fn backends(&self) -> Vec<Backend> {
        let runtime_dir = self
            .last("DefaultRuntimeDir")
            .map(|d| self.server_root.join(&d.args[0]))
            .unwrap_or_else(|| self.server_root.join("logs"));
        let mut out = Vec::new();
        for d in &self.directives {
            let candidates: Vec<&String> = if d.is("SetHandler") {
                d.args.iter().take(1).collect()
            } else if d.is("ProxyPass") || d.is("ProxyPassMatch") || d.is("BalancerMember") {
                d.args.iter().take(2).collect()
            } else if d.is("<Proxy") || d.is("<ProxyMatch") {
                d.args.iter().take(1).collect()
            } else {
                continue;
            };
            for raw in candidates {
                let url = if d.is("SetHandler") {
                    match raw.get(..6) {
                        Some(p) if p.eq_ignore_ascii_case("proxy:") => &raw[6..],
                        _ => continue,
                    }
                } else {
                    raw.as_str()
                };
                if let Some(addr) = backend_of_url(url, &runtime_dir) {
                    out.push(Backend { addr, directive: d.clone(), url: url.to_string() });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness::WorkDir;

    #[test]
    fn words_and_quotes() {
        assert_eq!(
            tokenize(r#"SetHandler "proxy:unix:/run/php/a b.sock|fcgi://localhost/""#).unwrap(),
            ["SetHandler", "proxy:unix:/run/php/a b.sock|fcgi://localhost/"]
        );
        assert_eq!(tokenize(r#"X 'a "b"' "c\"d""#).unwrap(), ["X", "a \"b\"", "c\"d"]);
        assert!(tokenize("X \"open").is_err());
    }

    #[test]
    fn backend_urls() {
        let runtime = Path::new("/var/run/apache2");
        let url = |text: &str| backend_of_url(text, runtime);
        assert_eq!(url("unix:/run/php/x.sock|fcgi://localhost/"), Some(BackendAddress::Unix("/run/php/x.sock".into())));
        assert_eq!(
            url("fcgi://127.0.0.1:9000/var/www/$1"),
            Some(BackendAddress::Tcp { host: "127.0.0.1".into(), port: 9000 })
        );
        assert_eq!(
            url("fcgi://127.0.0.1/var/www/$1"),
            Some(BackendAddress::Tcp { host: "127.0.0.1".into(), port: 8000 })
        );
        assert_eq!(url("FCGI://php"), Some(BackendAddress::Tcp { host: "php".into(), port: 8000 }));
        assert_eq!(url("fcgi://[::1]:9001/"), Some(BackendAddress::Tcp { host: "::1".into(), port: 9001 }));
        assert_eq!(url("unix:php.sock|fcgi://localhost/"), Some(BackendAddress::Unix(runtime.join("php.sock"))));
        assert_eq!(url("unix:/run/x.sock|http://localhost/"), None);
        assert_eq!(url("http://example.com/"), None);
        assert_eq!(url("fcgi://h:notaport/"), None);
        assert_eq!(url("/"), None, "ProxyPass's path is no backend");
    }

    #[test]
    fn envvars_file() {
        let d = WorkDir::new("envvars");
        let f = d.path().join("envvars");
        std::fs::write(
            &f,
            "unset HOME\nif [ x ]; then\n  SUFFIX=\nfi\nexport APACHE_RUN_USER=www-data\nexport APACHE_RUN_GROUP=\"www-data\"\n\
             export APACHE_PID_FILE=/var/run/apache2$SUFFIX/apache2.pid\n",
        )
        .unwrap();
        let v = read_envvars(&f);
        assert_eq!(v["APACHE_RUN_USER"], "www-data");
        assert_eq!(v["APACHE_RUN_GROUP"], "www-data");
        assert_eq!(v["APACHE_PID_FILE"], "/var/run/apache2/apache2.pid");
    }

    #[test]
    fn includes_vars_and_backends() {
        let d = WorkDir::new("apache");
        let r = d.path();
        std::fs::create_dir_all(r.join("sites-enabled")).unwrap();
        std::fs::create_dir_all(r.join("conf.d/sub")).unwrap();
        std::fs::write(r.join("envvars"), "export APACHE_RUN_USER=nobody\n").unwrap();
        std::fs::write(
            r.join("apache2.conf"),
            "# comment\nUser ${APACHE_RUN_USER}\nDefine SOCK /run/php/php8.2-fpm.sock\n\
             IncludeOptional sites-enabled/*.conf\nIncludeOptional nothing/*.conf\nInclude conf.d\n",
        )
        .unwrap();
        std::fs::write(
            r.join("sites-enabled/a.conf"),
            "<VirtualHost *:80>\n  <FilesMatch \\.php$>\n    SetHandler \"proxy:unix:${SOCK}|fcgi://localhost\"\n  </FilesMatch>\n\
             ProxyPassMatch ^/(.*\\.php)$ \\\n   fcgi://127.0.0.1:9000/var/www/$1\n</VirtualHost>\n",
        )
        .unwrap();
        std::fs::write(r.join("conf.d/sub/b.conf"), "<Proxy \"unix:rel.sock|fcgi://x\">\n</Proxy>\nProxyPass /x !\n")
            .unwrap();
        let cfg = load(&r.join("apache2.conf"), &LoadOptions { server_root: None, envvars: None }).unwrap();
        assert!(cfg.problems.is_empty(), "{:?}", cfg.problems);
        assert_eq!(cfg.last("User").unwrap().args, ["nobody"]);
        let b = cfg.backends();
        assert_eq!(b.len(), 3, "{b:?}");
        assert_eq!(b[0].addr, BackendAddress::Unix("/run/php/php8.2-fpm.sock".into()));
        assert_eq!((b[0].directive.file.clone(), b[0].directive.line), (r.join("sites-enabled/a.conf"), 3));
        assert_eq!(b[1].addr, BackendAddress::Tcp { host: "127.0.0.1".into(), port: 9000 });
        assert_eq!(b[1].directive.line, 5);
        assert_eq!(b[2].addr, BackendAddress::Unix(r.join("logs/rel.sock")));
    }

    #[test]
    fn missing_include_is_a_problem() {
        let d = WorkDir::new("apache-missing");
        std::fs::write(d.path().join("httpd.conf"), "Include ports.conf\n").unwrap();
        let cfg = load(&d.path().join("httpd.conf"), &LoadOptions { server_root: None, envvars: None }).unwrap();
        assert_eq!(cfg.problems.len(), 1);
        assert!(cfg.problems[0].contains("httpd.conf:1: Include"), "{:?}", cfg.problems);
    }
}
