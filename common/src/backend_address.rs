//! Where a FastCGI backend listens, read from every way it is written: by mod_proxy in
//! Apache's configuration (`unix:/run/php/x.sock|fcgi://localhost`, `fcgi://127.0.0.1/...`
//! with mod_proxy_fcgi's default port), by the module's status page (`unix:/path`,
//! `127.0.0.1:9000`, `::1:9000`), and by an admin on a command line (`/run/php/x.sock`,
//! `[::1]:9000`, `proxy:...`).
//!
//! One parser, so that the module and the helper can never name one backend two ways: a
//! backend the status page shows can be paused under that name, and `fcgi://127.0.0.1` is
//! `127.0.0.1:8000` everywhere. Three forms come out:
//! - the name (`Display`): the status page's, also the pause file's `backend` line;
//! - the connect form (`connect_form`): a socket path, or `host:port` with an IPv6 host in
//!   brackets, what `UnixStream::connect` and `ToSocketAddrs` take;
//! - the value itself, for the module's probes.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// mod_proxy_fcgi's port when an `fcgi://` URL names none (`DEFAULT_FCGI_PORT` in
/// mod_proxy_fcgi.c, registered through `ap_proxy_port_of_scheme`).
pub const FCGI_DEFAULT_PORT: u16 = 8000;

/// Where a FastCGI backend listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BackendAddress {
    Unix(PathBuf),
    /// The host as written (a name, an IPv4 or an IPv6 address without brackets).
    Tcp {
        host: String,
        port: u16,
    },
}

/// Why a text is not a FastCGI backend address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressError {
    /// `unix:run/php.sock`: mod_proxy resolves it against `DefaultRuntimeDir`, which only
    /// Apache's configuration knows.
    RelativeSocket { written: String, path: String },
    /// `balancer://`, `http://`, `unix:/x.sock|http://`: a backend, but not a FastCGI one.
    NotFastCgi { written: String },
    /// Neither a socket nor a host with a port.
    Unrecognised { written: String },
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressError::RelativeSocket { written, path } => {
                write!(f, "`{written}`: the Unix socket `{path}` is relative; write its absolute path")
            }
            AddressError::NotFastCgi { written } => {
                write!(f, "`{written}` is not a FastCGI backend (fcgi://HOST[:PORT] or unix:/path|fcgi://NAME)")
            }
            AddressError::Unrecognised { written } => write!(
                f,
                "`{written}` is neither a Unix socket (unix:/path, /path, unix:/path|fcgi://localhost) nor a \
                 TCP backend (HOST:PORT, [IPv6]:PORT, fcgi://HOST[:PORT])"
            ),
        }
    }
}

impl std::error::Error for AddressError {}

impl fmt::Display for BackendAddress {
    /// The status page's name: `unix:/path` or `host:port` (an IPv6 host without brackets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendAddress::Unix(path) => write!(f, "unix:{}", path.display()),
            BackendAddress::Tcp { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl std::str::FromStr for BackendAddress {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        BackendAddress::parse(text)
    }
}

impl BackendAddress {
    /// Every form an admin, Apache's configuration or the status page writes:
    /// `unix:/path`, `/path`, `unix:/path|fcgi://name[/...]`, `fcgi://host[:port][/...]`
    /// (port 8000 when none), `host:port`, `[v6]:port`, the status page's `v6:port`, and any
    /// of them after mod_proxy's `proxy:` handler prefix. Surrounding blanks are ignored.
    pub fn parse(text: &str) -> Result<BackendAddress, AddressError> {
        let written = text.trim();
        let text = strip_prefix_ignore_case(written, "proxy:").unwrap_or(written);
        if starts_with_ignore_case(text, "unix:") || starts_with_ignore_case(text, "fcgi://") {
            return BackendAddress::from_proxy_url(text).map_err(|error| error.written_as(written));
        }
        if text.starts_with('/') {
            return unix_socket(text, written);
        }
        if text.contains("://") {
            return Err(AddressError::NotFastCgi { written: written.to_string() });
        }
        let unrecognised = || AddressError::Unrecognised { written: written.to_string() };
        match split_authority(text).ok_or_else(unrecognised)? {
            (host, Some(port)) => Ok(BackendAddress::Tcp { host: host.to_string(), port }),
            (_, None) => Err(unrecognised()),
        }
    }

    /// Only mod_proxy's URL forms, as in `ProxyPass`, `SetHandler proxy:`, `BalancerMember`:
    /// `unix:/path|fcgi://name[/...]` (or `unix:/path` alone), `fcgi://host[:port][/...]`.
    /// A relative socket path is an error naming it, for the caller that knows
    /// `DefaultRuntimeDir`.
    pub fn from_proxy_url(url: &str) -> Result<BackendAddress, AddressError> {
        if let Some(rest) = strip_prefix_ignore_case(url, "unix:") {
            let (path, scheme) = match rest.split_once('|') {
                Some((path, scheme)) => (path, Some(scheme)),
                None => (rest, None),
            };
            if scheme.is_some_and(|scheme| !starts_with_ignore_case(scheme, "fcgi://")) {
                return Err(AddressError::NotFastCgi { written: url.to_string() });
            }
            return unix_socket(path, url);
        }
        if starts_with_ignore_case(url, "fcgi://") {
            return BackendAddress::from_fcgi_url(url)
                .ok_or_else(|| AddressError::Unrecognised { written: url.to_string() });
        }
        Err(AddressError::NotFastCgi { written: url.to_string() })
    }

    /// The TCP address in an `fcgi://host[:port]/...` URL as mod_proxy hands it to scheme
    /// handlers. Allocates the host only: the module calls it for every proxied request.
    pub fn from_fcgi_url(url: &str) -> Option<BackendAddress> {
        let rest = strip_prefix_ignore_case(url, "fcgi://")?;
        let authority = rest.split('/').next().unwrap_or("");
        let (host, port) = split_authority(authority)?;
        Some(BackendAddress::Tcp { host: host.to_string(), port: port.unwrap_or(FCGI_DEFAULT_PORT) })
    }

    /// What a connect takes: the socket path, or `host:port` with an IPv6 host in brackets
    /// (`[::1]:9000`), which `ToSocketAddrs` and `parse` both read back.
    pub fn connect_form(&self) -> String {
        match self {
            BackendAddress::Unix(path) => path.display().to_string(),
            BackendAddress::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            BackendAddress::Tcp { host, port } => format!("{host}:{port}"),
        }
    }

    /// The socket addresses a TCP backend's host resolves to; none for a Unix socket.
    pub fn socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        match self {
            BackendAddress::Unix(_) => Ok(Vec::new()),
            BackendAddress::Tcp { host, port } => Ok((host.as_str(), *port).to_socket_addrs()?.collect()),
        }
    }
}

impl AddressError {
    /// The same error, naming the text as the caller got it.
    fn written_as(self, written: &str) -> AddressError {
        let written = written.to_string();
        match self {
            AddressError::RelativeSocket { path, .. } => AddressError::RelativeSocket { written, path },
            AddressError::NotFastCgi { .. } => AddressError::NotFastCgi { written },
            AddressError::Unrecognised { .. } => AddressError::Unrecognised { written },
        }
    }
}

/// The target of a proxy request as httpd holds it before mod_proxy's handler runs: the part
/// after `proxy:` of a `SetHandler "proxy:…"` or of `r->filename`, with the Unix socket that
/// mod_proxy's fixup took out of it (r->notes "uds_path"). Only a direct FastCGI target
/// counts: `balancer://` and other schemes give None, as does a relative socket path.
pub fn proxy_fcgi_target(target: &str, uds_path: Option<&str>) -> Option<BackendAddress> {
    if let Some(rest) = strip_prefix_ignore_case(target, "unix:") {
        let (path, scheme) = rest.split_once('|')?;
        return (starts_with_ignore_case(scheme, "fcgi://") && path.starts_with('/'))
            .then(|| BackendAddress::Unix(path.into()));
    }
    if !starts_with_ignore_case(target, "fcgi://") {
        return None;
    }
    match uds_path {
        Some(path) if path.starts_with('/') => Some(BackendAddress::Unix(path.into())),
        Some(_) => None,
        None => BackendAddress::from_fcgi_url(target),
    }
}

fn unix_socket(path: &str, written: &str) -> Result<BackendAddress, AddressError> {
    if path.is_empty() || path.contains(['\n', '\0']) {
        return Err(AddressError::Unrecognised { written: written.to_string() });
    }
    if !path.starts_with('/') {
        return Err(AddressError::RelativeSocket { written: written.to_string(), path: path.to_string() });
    }
    Ok(BackendAddress::Unix(path.into()))
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`, and the status page's `v6:port` (the last colon
/// starts the port); a URL's `user@` is skipped. An empty port (`host:`) is no port, as for
/// apr_uri_parse. None when the host is empty or the port no port number.
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']')?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':')?)),
            }
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/' || c == '[' || c == ']') {
        return None;
    }
    let port = match port {
        None | Some("") => None,
        Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => Some(digits.parse().ok().filter(|&p| p != 0)?),
        Some(_) => return None,
    };
    Some((host, port))
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    starts_with_ignore_case(text, prefix).then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(path: &str) -> BackendAddress {
        BackendAddress::Unix(path.into())
    }

    fn tcp(host: &str, port: u16) -> BackendAddress {
        BackendAddress::Tcp { host: host.into(), port }
    }

    /// Every form the issue names, with the address it is and the status page's name.
    const FORMS: &[(&str, &str)] = &[
        ("unix:/run/php/php8.2-fpm.sock", "unix:/run/php/php8.2-fpm.sock"),
        ("/run/php/php8.2-fpm.sock", "unix:/run/php/php8.2-fpm.sock"),
        ("unix:/run/php/php8.2-fpm.sock|fcgi://localhost", "unix:/run/php/php8.2-fpm.sock"),
        ("unix:/run/php/php8.2-fpm.sock|fcgi://localhost/var/www/$1", "unix:/run/php/php8.2-fpm.sock"),
        ("proxy:unix:/run/php/php8.2-fpm.sock|fcgi://localhost/", "unix:/run/php/php8.2-fpm.sock"),
        (" UNIX:/run/php/php8.2-fpm.sock ", "unix:/run/php/php8.2-fpm.sock"),
        ("fcgi://127.0.0.1", "127.0.0.1:8000"),
        ("fcgi://127.0.0.1/var/www/$1", "127.0.0.1:8000"),
        ("FCGI://127.0.0.1:/x.php", "127.0.0.1:8000"),
        ("fcgi://127.0.0.1:9000", "127.0.0.1:9000"),
        ("fcgi://127.0.0.1:9000/var/www/index.php", "127.0.0.1:9000"),
        ("proxy:fcgi://php:9000", "php:9000"),
        ("fcgi://user@php:9000/", "php:9000"),
        ("127.0.0.1:9000", "127.0.0.1:9000"),
        ("127.0.0.1:8000", "127.0.0.1:8000"),
        ("php:9000", "php:9000"),
        ("[::1]:9000", "::1:9000"),
        ("::1:9000", "::1:9000"),
        ("fcgi://[::1]:9001/x", "::1:9001"),
        ("fcgi://[::1]", "::1:8000"),
    ];

    #[test]
    fn every_form_gives_the_status_page_name() {
        for (written, name) in FORMS {
            let address = BackendAddress::parse(written).unwrap_or_else(|e| panic!("{written}: {e}"));
            assert_eq!(address.to_string(), *name, "{written}");
        }
    }

    #[test]
    fn every_form_round_trips_through_its_name_and_its_connect_form() {
        for (written, _) in FORMS {
            let address = BackendAddress::parse(written).unwrap();
            assert_eq!(BackendAddress::parse(&address.to_string()), Ok(address.clone()), "{written}: name");
            assert_eq!(BackendAddress::parse(&address.connect_form()), Ok(address.clone()), "{written}: connect");
            assert_eq!(address.connect_form().parse::<BackendAddress>(), Ok(address.clone()), "{written}: FromStr");
        }
    }

    #[test]
    fn the_connect_form_is_what_connect_takes() {
        assert_eq!(unix("/run/php/x.sock").connect_form(), "/run/php/x.sock");
        assert_eq!(tcp("127.0.0.1", 9000).connect_form(), "127.0.0.1:9000");
        assert_eq!(tcp("::1", 9000).connect_form(), "[::1]:9000");
        let resolved = tcp("::1", 9000).connect_form().to_socket_addrs().unwrap().collect::<Vec<_>>();
        assert_eq!(resolved, tcp("::1", 9000).socket_addrs().unwrap());
        assert_eq!(resolved, ["[::1]:9000".parse::<SocketAddr>().unwrap()]);
        assert!(unix("/x.sock").socket_addrs().unwrap().is_empty());
    }

    #[test]
    fn what_is_no_fastcgi_backend_is_refused_with_the_forms_named() {
        for bad in ["", "localhost", "host:port", "127.0.0.1:0", "127.0.0.1:65536", "fcgi://", ":9000", "a b:9000"] {
            let error = BackendAddress::parse(bad).unwrap_err();
            assert!(matches!(error, AddressError::Unrecognised { .. }), "{bad}: {error:?}");
            assert!(error.to_string().contains("HOST:PORT"), "{bad}: {error}");
        }
        for other_scheme in ["balancer://php/", "http://127.0.0.1/", "unix:/run/php.sock|http://localhost"] {
            let error = BackendAddress::parse(other_scheme).unwrap_err();
            assert!(matches!(error, AddressError::NotFastCgi { .. }), "{other_scheme}: {error:?}");
        }
        assert_eq!(
            BackendAddress::parse("unix:run/php.sock|fcgi://localhost"),
            Err(AddressError::RelativeSocket {
                written: "unix:run/php.sock|fcgi://localhost".into(),
                path: "run/php.sock".into()
            })
        );
    }

    #[test]
    fn proxy_urls_are_only_urls() {
        assert_eq!(
            BackendAddress::from_proxy_url("unix:/run/php/x.sock|fcgi://localhost/"),
            Ok(unix("/run/php/x.sock"))
        );
        assert_eq!(BackendAddress::from_proxy_url("fcgi://127.0.0.1/var/www/$1"), Ok(tcp("127.0.0.1", 8000)));
        // ProxyPass's first argument is a URL path, not a socket.
        assert!(BackendAddress::from_proxy_url("/").is_err());
        assert!(BackendAddress::from_proxy_url("127.0.0.1:9000").is_err());
        assert!(BackendAddress::from_proxy_url("fcgi://h:notaport/").is_err());
    }

    #[test]
    fn parses_fcgi_urls_as_mod_proxy_hands_them_over() {
        assert_eq!(
            BackendAddress::from_fcgi_url("fcgi://127.0.0.1:9000/var/www/index.php"),
            Some(tcp("127.0.0.1", 9000))
        );
        assert_eq!(BackendAddress::from_fcgi_url("FCGI://[::1]:9001/x"), Some(tcp("::1", 9001)));
        assert_eq!(BackendAddress::from_fcgi_url("fcgi://localhost/x.php"), Some(tcp("localhost", 8000)));
        assert_eq!(BackendAddress::from_fcgi_url("http://localhost/"), None);
        assert_eq!(BackendAddress::from_fcgi_url("fcgi://:90/"), None);
    }

    #[test]
    fn reads_the_fcgi_target_of_a_proxy_request() {
        assert_eq!(
            proxy_fcgi_target("unix:/run/php/php8.2-fpm.sock|fcgi://localhost", None),
            Some(unix("/run/php/php8.2-fpm.sock"))
        );
        assert_eq!(
            proxy_fcgi_target("fcgi://localhost/var/www/index.php", Some("/run/php/a.sock")),
            Some(unix("/run/php/a.sock")),
            "mod_proxy's fixup moved the socket into r->notes"
        );
        assert_eq!(proxy_fcgi_target("fcgi://127.0.0.1:9000/var/www/index.php", None), Some(tcp("127.0.0.1", 9000)));
        assert_eq!(proxy_fcgi_target("fcgi://127.0.0.1/var/www/index.php", None), Some(tcp("127.0.0.1", 8000)));
        assert_eq!(proxy_fcgi_target("balancer://php/index.php", None), None);
        assert_eq!(proxy_fcgi_target("http://127.0.0.1/", None), None);
        assert_eq!(proxy_fcgi_target("unix:run/php.sock|fcgi://localhost", None), None, "relative socket path");
        assert_eq!(proxy_fcgi_target("unix:/run/php.sock|http://localhost", None), None);
    }
}
