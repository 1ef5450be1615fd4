//! Which backends a socket keeper (`fcgi-resilient-helper socket-keeper`) holds, for the status
//! page. A kept backend never refuses: while PHP-FPM restarts its connects queue in the kernel,
//! so the module never waits for it and its requests wait in mod_proxy_fcgi instead (bounded
//! by ProxyTimeout, not FcgiResilientTimeout). The page says so, since such a backend is
//! otherwise missing from the table of backends that refused.
//!
//! Read from the files the helper writes, on each status request (rare, and the files are
//! few): systemd socket units in /etc/systemd/system whose first line is the helper's, and the
//! generated configs of `socket-keeper run` in /run/fcgi-resilient/socket-keeper.

use crate::pause_file::backend_name;
use crate::prometheus::escape_label_value;
use crate::status_page::escape_html;
use std::fmt::Write;
use std::path::Path;

pub const UNIT_DIR: &str = "/etc/systemd/system";
pub const RUN_DIR: &str = "/run/fcgi-resilient/socket-keeper";
const UNIT_MARKER: &str = "# Written by `fcgi-resilient-helper socket-keeper`";
const CONFIG_MARKER: &str = "; Written by `fcgi-resilient-helper socket-keeper`";

/// The kept backends, named as the status page names backends, sorted, each once.
pub fn kept_backends(unit_dir: &Path, run_dir: &Path) -> Vec<String> {
    let mut kept = Vec::new();
    let files = |dir: &Path, extension: &str| -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == extension))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect()
    };
    for text in files(unit_dir, "socket").iter().filter(|t| t.starts_with(UNIT_MARKER)) {
        kept.extend(text.lines().filter_map(|l| l.strip_prefix("ListenStream=")).filter_map(name));
    }
    for text in files(run_dir, "conf").iter().filter(|t| t.starts_with(CONFIG_MARKER)) {
        kept.extend(text.lines().filter_map(|l| l.strip_prefix("; kept: ")).filter_map(name));
    }
    kept.sort();
    kept.dedup();
    kept
}

fn name(address: &str) -> Option<String> {
    // The unit file's escaping of `%` undone.
    backend_name(&address.trim().replace("%%", "%")).ok()
}

/// Whether `backend` (a status page name) is one of `kept`: the same name, or a TCP backend on
/// the port of a socket kept on every address.
pub fn is_kept(backend: &str, kept: &[String]) -> bool {
    kept.iter().any(|k| {
        if k == backend {
            return true;
        }
        let (Some((kept_host, kept_port)), Some((_, port))) = (k.rsplit_once(':'), backend.rsplit_once(':')) else {
            return false;
        };
        !k.starts_with("unix:")
            && !backend.starts_with("unix:")
            && kept_port == port
            && matches!(kept_host, "::" | "0.0.0.0")
    })
}

/// The HTML page with a section naming the kept backends, before its end.
pub fn add_to_html(page: String, kept: &[String]) -> String {
    if kept.is_empty() {
        return page;
    }
    let mut section = String::from(
        "<h2>Socket keepers (fcgi-resilient-helper socket-keeper)</h2>\n<p>These backends' listening sockets \
         stay open while PHP-FPM restarts: their connects queue instead of being refused, so they do not show \
         in the table above for a restart, and a request waits for them up to ProxyTimeout rather than \
         FcgiResilientTimeout.</p>\n<ul>\n",
    );
    for backend in kept {
        let _ = writeln!(section, "<li>{}</li>", escape_html(backend));
    }
    section.push_str("</ul>\n");
    match page.rfind("</body>") {
        Some(end) => format!("{}{section}{}", &page[..end], &page[end..]),
        None => page + &section,
    }
}

pub fn render_auto(kept: &[String]) -> String {
    let mut page = format!("SocketKeepers: {}\n", kept.len());
    for backend in kept {
        let _ = writeln!(page, "SocketKeeper: {backend}");
    }
    page
}

pub fn render_prometheus(kept: &[String]) -> String {
    let mut page = String::from(
        "# HELP fcgi_resilient_socket_keeper Backend whose listening socket a socket keeper holds across PHP-FPM restarts.\n\
         # TYPE fcgi_resilient_socket_keeper gauge\n",
    );
    for backend in kept {
        let _ = writeln!(page, "fcgi_resilient_socket_keeper{{backend=\"{}\"}} 1", escape_label_value(backend));
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_backends_come_from_the_helpers_files_only() {
        let dir = crate::test_dir::TempDir::new("socket-keepers");
        let units = dir.path().join("units");
        let run = dir.path().join("run");
        std::fs::create_dir_all(&units).unwrap();
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(
            units.join("php8.2-fpm-keeper-www.socket"),
            format!("{UNIT_MARKER} for pool [www]\n[Socket]\nListenStream=/run/php/php8.2-fpm.sock\n"),
        )
        .unwrap();
        std::fs::write(units.join("other.socket"), "[Socket]\nListenStream=/run/other.sock\n").unwrap();
        std::fs::write(
            run.join("php-fpm.conf"),
            format!("{CONFIG_MARKER} for php-fpm:\n; kept: 127.0.0.1:9000\n; kept: [::]:9001\n"),
        )
        .unwrap();
        let kept = kept_backends(&units, &run);
        assert_eq!(kept, ["127.0.0.1:9000", ":::9001", "unix:/run/php/php8.2-fpm.sock"]);
        assert!(is_kept("unix:/run/php/php8.2-fpm.sock", &kept));
        assert!(is_kept("127.0.0.1:9001", &kept), "kept on every address");
        assert!(!is_kept("unix:/run/other.sock", &kept), "a socket unit the helper did not write");
        assert!(!is_kept("127.0.0.1:9002", &kept));
        assert!(kept_backends(&dir.path().join("none"), &dir.path().join("none")).is_empty());
    }

    #[test]
    fn the_pages_name_them() {
        let kept = vec!["unix:/run/php/php8.2-fpm.sock".to_string()];
        let html = add_to_html("<html><body><h1>x</h1></body></html>".into(), &kept);
        assert!(html.contains("<li>unix:/run/php/php8.2-fpm.sock</li>\n</ul>\n</body>"), "{html}");
        assert_eq!(add_to_html("<body></body>".into(), &[]), "<body></body>");
        assert_eq!(render_auto(&kept), "SocketKeepers: 1\nSocketKeeper: unix:/run/php/php8.2-fpm.sock\n");
        assert!(render_prometheus(&kept)
            .contains("fcgi_resilient_socket_keeper{backend=\"unix:/run/php/php8.2-fpm.sock\"} 1\n"));
    }
}
