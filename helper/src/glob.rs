//! Minimal shell globbing (`*`, `?`, `[...]`) for FPM `include=` and Apache
//! `Include`: enough for configuration files, without pulling in a crate.

use std::path::{Component, Path, PathBuf};

pub fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// fnmatch(3) without flags beyond "a leading dot must be matched explicitly"
/// (what glob(3) does for both php-fpm and Apache on Linux).
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    match_from(pattern.as_bytes(), name.as_bytes())
}

fn match_from(p: &[u8], n: &[u8]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, len)) = class(&p[pi..], n[ni]) {
                        if matched {
                            pi += len;
                            ni += 1;
                            continue;
                        }
                    } else if n[ni] == b'[' {
                        // An unterminated class is a literal '['.
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                b'\\' if pi + 1 < p.len() => {
                    if p[pi + 1] == n[ni] {
                        pi += 2;
                        ni += 1;
                        continue;
                    }
                }
                c => {
                    if c == n[ni] {
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Returns (matched, pattern length consumed) or None when `[` is unterminated.
fn class(p: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(1), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

/// Expands `pattern` (absolute) to existing paths, sorted like glob(3).
/// A pattern without wildcards yields itself only if it exists.
pub fn glob(pattern: &Path) -> Vec<PathBuf> {
    let mut current: Vec<PathBuf> = vec![PathBuf::new()];
    for comp in pattern.components() {
        let mut next = Vec::new();
        match comp {
            Component::Normal(part) => {
                let part = part.to_string_lossy();
                if has_magic(&part) {
                    for base in &current {
                        let dir = if base.as_os_str().is_empty() { Path::new(".") } else { base.as_path() };
                        let Ok(rd) = std::fs::read_dir(dir) else { continue };
                        let mut names: Vec<String> = rd
                            .filter_map(|e| e.ok())
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .filter(|n| fnmatch(&part, n))
                            .collect();
                        names.sort();
                        next.extend(names.into_iter().map(|n| base.join(n)));
                    }
                } else {
                    next.extend(current.iter().map(|b| b.join(&*part)));
                }
            }
            other => next.extend(current.iter().map(|b| b.join(other.as_os_str()))),
        }
        current = next;
    }
    current.retain(|p| !p.as_os_str().is_empty() && p.exists());
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(fnmatch("*.conf", "www.conf"));
        assert!(!fnmatch("*.conf", "www.conf.dpkg-old"));
        assert!(!fnmatch("*.conf", ".hidden.conf"));
        assert!(fnmatch("php?-fpm", "php8-fpm"));
        assert!(fnmatch("[0-9]*", "8.2"));
        assert!(!fnmatch("[!0-9]*", "8.2"));
        assert!(fnmatch("*", "x"));
        assert!(fnmatch("a*b*c", "aXXbYYc"));
        assert!(!fnmatch("a*b*c", "aXXbYY"));
        assert!(fnmatch("[abc", "[abc"));
    }

    #[test]
    fn expands_sorted() {
        let dir = harness::WorkDir::new("glob");
        for n in ["b.conf", "a.conf", "c.txt"] {
            std::fs::write(dir.path().join(n), "").unwrap();
        }
        let got = glob(&dir.path().join("*.conf"));
        assert_eq!(got, vec![dir.path().join("a.conf"), dir.path().join("b.conf")]);
        assert!(glob(&dir.path().join("missing.conf")).is_empty());
        assert_eq!(glob(&dir.path().join("c.txt")), vec![dir.path().join("c.txt")]);
    }
}
