//! The files an Apache `Include` or `IncludeOptional` reads, in the order httpd reads them:
//! the walk of httpd's `ap_process_fnmatch_configs` (server/config.c, with `ap_dir_fnmatch`
//! and `ap_dir_nofnmatch` in server/util.c), each path component matched by the `glob`
//! crate with apr_fnmatch's flags.
//!
//! What httpd does, and this module therefore does:
//! - a path without wildcards (`apr_fnmatch_test`) is one file, or a directory read whole:
//!   every entry but `.` and `..`, dot files included, recursively, sorted;
//! - with wildcards, each component is matched in turn; a wildcard component matches names
//!   in its directory (a leading dot only explicitly, APR_FNM_PERIOD), sorted bytewise; in a
//!   component before the last only directories count, and a symbolic link does not (httpd
//!   looks at the directory entry's own type);
//! - `Include` fails when a wildcard matches nothing, a directory on the way cannot be read,
//!   or a file named without wildcards is missing; `IncludeOptional` skips all three.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use glob::{MatchOptions, Pattern};

/// Directories read recursively at most this deep (httpd's AP_MAX_FNMATCH_DIR_DEPTH).
const DEEPEST: usize = 128;

/// Whether the directive tolerates what is not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// `Include`: what is named must exist.
    Required,
    /// `IncludeOptional`.
    Optional,
}

/// The configuration files `pattern` (absolute) includes, in httpd's order; or why httpd
/// would refuse to start, in its words.
pub fn included_files(pattern: &Path, presence: Presence) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let mut walk = Walk { presence, files: &mut files };
    if !is_wildcard(pattern.as_os_str().as_bytes()) {
        walk.whole(pattern, 0)?;
    } else {
        let relative = pattern.strip_prefix("/").map_err(|_| {
            format!("Include/IncludeOptional: Include must have an absolute path, {}", pattern.display())
        })?;
        let components: Vec<&OsStr> = relative.iter().collect();
        walk.matching(Path::new("/"), &components)?;
    }
    Ok(files)
}

/// apr_fnmatch_test: `*` or `?` anywhere, or a `[` closed by a `]`; a backslash escapes.
pub fn is_wildcard(text: &[u8]) -> bool {
    let mut open_brackets = 0;
    let mut bytes = text.iter();
    while let Some(byte) = bytes.next() {
        match byte {
            b'*' | b'?' => return true,
            b'\\' if bytes.next().is_none() => return false,
            b'[' => open_brackets += 1,
            b']' if open_brackets > 0 => return true,
            _ => {}
        }
    }
    false
}

struct Walk<'a> {
    presence: Presence,
    files: &'a mut Vec<PathBuf>,
}

impl Walk<'_> {
    /// ap_dir_nofnmatch: a file, or a directory's every entry.
    fn whole(&mut self, path: &Path, depth: usize) -> Result<(), String> {
        if path.is_dir() {
            if depth >= DEEPEST {
                return Err(format!(
                    "Include/IncludeOptional: Directory '{}' exceeds the maximum include directory nesting level \
                     of {DEEPEST}. You have probably a recursion somewhere.",
                    path.display()
                ));
            }
            for name in sorted_entries(path)?.0 {
                self.whole(&path.join(name), depth + 1)?;
            }
        } else if path.exists() {
            self.files.push(path.to_path_buf());
        } else if self.presence == Presence::Required {
            return Err(format!("Could not open configuration file {}", path.display()));
        }
        Ok(())
    }

    /// ap_dir_fnmatch: `components` below `directory`, the first of them next.
    fn matching(&mut self, directory: &Path, components: &[&OsStr]) -> Result<(), String> {
        let Some((component, rest)) = components.split_first() else { return self.whole(directory, 0) };
        if !is_wildcard(component.as_bytes()) {
            let next = directory.join(component);
            return if rest.is_empty() { self.whole(&next, 0) } else { self.matching(&next, rest) };
        }
        let (names, types) = match sorted_entries(directory) {
            Ok(entries) => entries,
            Err(_) if self.presence == Presence::Optional && !directory.exists() => return Ok(()),
            Err(error) => return Err(error),
        };
        let pattern = apr_pattern(component)?;
        let options =
            MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: true };
        let mut matched = false;
        for (name, is_directory) in names.iter().zip(types) {
            let matches = name.to_str().is_some_and(|name| pattern.matches_with(name, options));
            if !matches || (!rest.is_empty() && !is_directory) {
                continue;
            }
            matched = true;
            let next = directory.join(name);
            if rest.is_empty() {
                self.whole(&next, 0)?;
            } else {
                self.matching(&next, rest)?;
            }
        }
        if !matched && self.presence == Presence::Required {
            return Err(format!(
                "Include/IncludeOptional: No matches for the wildcard '{}' in '{}', failing",
                component.to_string_lossy(),
                directory.display()
            ));
        }
        Ok(())
    }
}

/// A directory's entries but `.` and `..`, sorted bytewise as httpd's strcmp does, each with
/// whether the entry itself (not what a link points to) is a directory.
fn sorted_entries(directory: &Path) -> Result<(Vec<OsString>, Vec<bool>), String> {
    let entries = std::fs::read_dir(directory).map_err(|error| {
        format!("Include/IncludeOptional: Could not open directory {}: {error}", directory.display())
    })?;
    let mut entries: Vec<(OsString, bool)> =
        entries.flatten().map(|entry| (entry.file_name(), entry.file_type().is_ok_and(|kind| kind.is_dir()))).collect();
    entries.sort();
    Ok(entries.into_iter().unzip())
}

/// One component of an httpd wildcard as a `glob` pattern: apr_fnmatch's `[^...]` is glob's
/// `[!...]`, its `\x` glob's `[x]`, and a run of `*` one `*` (glob reserves `**` for "any
/// directories", which apr_fnmatch does not know).
fn apr_pattern(component: &OsStr) -> Result<Pattern, String> {
    let text = component.to_str().ok_or_else(|| format!("`{}` is not UTF-8", component.to_string_lossy()))?;
    let mut translated = String::with_capacity(text.len());
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        match character {
            '\\' => match characters.next() {
                Some(escaped) => translated.extend(['[', escaped, ']']),
                None => translated.push_str("[\\]"),
            },
            '[' if characters.peek() == Some(&'^') => {
                characters.next();
                translated.push_str("[!");
            }
            '*' if translated.ends_with('*') => {}
            other => translated.push(other),
        }
    }
    Pattern::new(&translated).map_err(|error| format!("`{text}` is not a wildcard httpd reads: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree of empty files and directories below a fresh work directory.
    fn tree(name: &str, paths: &[&str]) -> harness::WorkDir {
        let work = harness::WorkDir::new(name);
        for path in paths {
            let full = work.join(path.trim_end_matches('/'));
            if path.ends_with('/') {
                std::fs::create_dir_all(&full).unwrap();
            } else {
                std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                std::fs::write(&full, "").unwrap();
            }
        }
        work
    }

    fn names(work: &harness::WorkDir, files: Vec<PathBuf>) -> Vec<String> {
        files.iter().map(|file| file.strip_prefix(work.path()).unwrap().display().to_string()).collect()
    }

    fn include(work: &harness::WorkDir, pattern: &str, presence: Presence) -> Result<Vec<String>, String> {
        included_files(&work.join(pattern), presence).map(|files| names(work, files))
    }

    #[test]
    fn a_wildcard_matches_in_bytewise_order_and_skips_dot_files() {
        let work = tree(
            "include-order",
            &[
                "conf.d/b.conf",
                "conf.d/B.conf",
                "conf.d/10.conf",
                "conf.d/9.conf",
                "conf.d/.hidden.conf",
                "conf.d/a.txt",
            ],
        );
        assert_eq!(
            include(&work, "conf.d/*.conf", Presence::Required).unwrap(),
            ["conf.d/10.conf", "conf.d/9.conf", "conf.d/B.conf", "conf.d/b.conf"]
        );
        assert_eq!(include(&work, "conf.d/.*.conf", Presence::Required).unwrap(), ["conf.d/.hidden.conf"]);
        assert_eq!(
            include(&work, "conf.d/[^b]*.conf", Presence::Required).unwrap(),
            ["conf.d/10.conf", "conf.d/9.conf", "conf.d/B.conf"]
        );
        assert_eq!(
            include(&work, "conf.d/[!0-9]*.conf", Presence::Required).unwrap(),
            ["conf.d/B.conf", "conf.d/b.conf"]
        );
        assert_eq!(
            include(&work, "conf.d/?.conf", Presence::Required).unwrap(),
            ["conf.d/9.conf", "conf.d/B.conf", "conf.d/b.conf"]
        );
        assert_eq!(
            include(&work, "conf.d/**.conf", Presence::Required).unwrap(),
            include(&work, "conf.d/*.conf", Presence::Required).unwrap()
        );
    }

    #[test]
    fn a_wildcard_matching_nothing_fails_include_and_not_include_optional() {
        let work = tree("include-nomatch", &["conf.d/a.txt"]);
        let error = include(&work, "conf.d/*.conf", Presence::Required).unwrap_err();
        assert!(error.contains("No matches for the wildcard '*.conf'"), "{error}");
        assert_eq!(include(&work, "conf.d/*.conf", Presence::Optional).unwrap(), Vec::<String>::new());
        let error = include(&work, "missing.d/*.conf", Presence::Required).unwrap_err();
        assert!(error.contains("Could not open directory"), "{error}");
        assert_eq!(include(&work, "missing.d/*.conf", Presence::Optional).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_missing_file_without_wildcards_fails_include_and_not_include_optional() {
        let work = tree("include-missing", &["present.conf"]);
        assert_eq!(include(&work, "present.conf", Presence::Required).unwrap(), ["present.conf"]);
        let error = include(&work, "absent.conf", Presence::Required).unwrap_err();
        assert!(error.contains("Could not open configuration file"), "{error}");
        assert_eq!(include(&work, "absent.conf", Presence::Optional).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_directory_is_read_whole_recursively_dot_files_included() {
        let work =
            tree("include-directory", &["conf/z.conf", "conf/sub/a.conf", "conf/.dot", "conf/a.conf", "conf/empty/"]);
        assert_eq!(
            include(&work, "conf", Presence::Required).unwrap(),
            ["conf/.dot", "conf/a.conf", "conf/sub/a.conf", "conf/z.conf"]
        );
        assert_eq!(
            include(&work, "con*", Presence::Required).unwrap(),
            include(&work, "conf", Presence::Required).unwrap()
        );
    }

    #[test]
    fn wildcards_in_directories_match_directories_only_and_not_links() {
        let work =
            tree("include-middle", &["sites/a/site.conf", "sites/b/site.conf", "sites/c.conf", "elsewhere/site.conf"]);
        std::os::unix::fs::symlink(work.join("elsewhere"), work.join("sites/linked")).unwrap();
        assert_eq!(
            include(&work, "sites/*/site.conf", Presence::Required).unwrap(),
            ["sites/a/site.conf", "sites/b/site.conf"]
        );
        assert_eq!(
            include(&work, "sites/*/*.conf", Presence::Required).unwrap(),
            ["sites/a/site.conf", "sites/b/site.conf"]
        );
        let error = include(&work, "sites/*/other.conf", Presence::Required).unwrap_err();
        assert!(error.contains("Could not open configuration file"), "{error}");
        assert_eq!(include(&work, "sites/*/other.conf", Presence::Optional).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn what_apr_does_not_call_a_wildcard_is_a_name() {
        assert!(is_wildcard(b"/etc/apache2/*.conf"));
        assert!(is_wildcard(b"/etc/[ab].conf"));
        assert!(!is_wildcard(b"/etc/[ab.conf"), "a [ without ] is no wildcard");
        assert!(!is_wildcard(b"/etc/a\\*.conf"), "an escaped * is no wildcard");
        assert!(!is_wildcard(b"/etc/apache2/apache2.conf"));
        let work = tree("include-literal", &["[ab.conf"]);
        assert_eq!(include(&work, "[ab.conf", Presence::Required).unwrap(), ["[ab.conf"]);
    }

    /// The same tree through httpd itself (`apache2 -t -D DUMP_INCLUDES` lists every file it
    /// read, with the line of the Include that read it): the same files, in the same order.
    #[test]
    fn the_same_files_as_httpd_reads() {
        const HTTPD: &str = "/usr/sbin/apache2";
        if !Path::new(HTTPD).exists() {
            eprintln!("{HTTPD} is not installed: the comparison with httpd is skipped");
            return;
        }
        let work = tree(
            "include-httpd",
            &[
                "conf.d/b.conf",
                "conf.d/B.conf",
                "conf.d/10.conf",
                "conf.d/9.conf",
                "conf.d/.hidden.conf",
                "conf.d/a.txt",
                "sites/a/site.conf",
                "sites/b/site.conf",
                "sites/c.conf",
                "other/z.conf",
                "other/.dot",
                "other/site.conf",
                "other/sub/a.conf",
            ],
        );
        std::os::unix::fs::symlink(work.join("other"), work.join("sites/linked")).unwrap();
        let patterns = [
            ("Include", "conf.d/*.conf"),
            ("Include", "sites/*/site.conf"),
            ("Include", "other"),
            ("IncludeOptional", "nothing/*.conf"),
            ("IncludeOptional", "conf.d/*.none"),
            ("Include", "conf.d/[^b0-9]*.conf"),
            ("Include", "s*/?/*.conf"),
        ];
        let header = format!(
            "ServerRoot {}\nServerName localhost\nPidFile {}\nErrorLog {}\n",
            work.path().display(),
            work.join("httpd.pid").display(),
            work.join("error.log").display()
        );
        let first_line = header.lines().count() + 1;
        let mut main = header;
        for (directive, pattern) in patterns {
            main += &format!("{directive} {pattern}\n");
        }
        std::fs::write(work.join("main.conf"), main).unwrap();
        let output = std::process::Command::new(HTTPD)
            .args(["-t", "-D", "DUMP_INCLUDES", "-f"])
            .arg(work.join("main.conf"))
            .output()
            .unwrap();
        let dump = String::from_utf8_lossy(&output.stdout);
        assert!(dump.lines().count() > 10, "httpd listed too little: {dump}");
        for (index, (directive, pattern)) in patterns.iter().enumerate() {
            let line = format!("({})", first_line + index);
            let httpd_read: Vec<String> = dump
                .lines()
                .filter_map(|text| text.trim().strip_prefix(&line))
                .map(|path| Path::new(path.trim()).strip_prefix(work.path()).unwrap().display().to_string())
                .collect();
            let presence = if *directive == "Include" { Presence::Required } else { Presence::Optional };
            assert_eq!(
                include(&work, pattern, presence).unwrap(),
                httpd_read,
                "{directive} {pattern}; httpd said:\n{dump}"
            );
        }
    }
}
