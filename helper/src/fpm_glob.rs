//! The files a PHP-FPM `include=` reads: glob(3) itself, called as PHP-FPM calls it
//! (sapi/fpm/fpm/fpm_conf.c, `fpm_conf_load_ini_file`'s include: `GLOB_ERR | GLOB_MARK`,
//! directories skipped by their trailing `/`). libc's glob is the real thing, so the helper
//! sees exactly the pools PHP-FPM will: its sorting, its dot-file rule, its escapes.

use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Why glob(3) gave nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobError {
    /// GLOB_NOMATCH: PHP-FPM only warns.
    NoMatch,
    /// A directory could not be read (GLOB_ERR), or memory ran out: PHP-FPM refuses the config.
    Failed(String),
}

/// The files `pattern` matches, sorted as glob(3) sorts them, directories left out.
pub fn fpm_include(pattern: &Path) -> Result<Vec<PathBuf>, GlobError> {
    let matches = glob(pattern, libc::GLOB_ERR | libc::GLOB_MARK)?;
    Ok(matches.into_iter().filter(|path| !path.as_os_str().as_bytes().ends_with(b"/")).collect())
}

/// The existing paths `pattern` names (the standard places of PHP-FPM's configs): none when
/// nothing matches or a directory on the way cannot be read.
pub fn existing(pattern: &Path) -> Vec<PathBuf> {
    fpm_include(pattern).unwrap_or_default()
}

fn glob(pattern: &Path, flags: libc::c_int) -> Result<Vec<PathBuf>, GlobError> {
    let pattern_text = CString::new(pattern.as_os_str().as_bytes())
        .map_err(|_| GlobError::Failed(format!("{}: a NUL byte in the pattern", pattern.display())))?;
    // SAFETY: glob_t is a plain C struct for which all-zero is the documented initial state
    // (glob(3) fills it; globfree accepts it as filled).
    let mut found: libc::glob_t = unsafe { std::mem::zeroed() };
    // SAFETY: `pattern_text` is a NUL-terminated string alive for the call, `found` a valid
    // glob_t owned here, and no error callback is passed.
    let status = unsafe { libc::glob(pattern_text.as_ptr(), flags, None, &mut found) };
    let result = match status {
        0 => Ok((0..found.gl_pathc)
            // SAFETY: on success gl_pathv holds gl_pathc valid NUL-terminated strings, read
            // before globfree below releases them.
            .map(|index| unsafe { CStr::from_ptr(*found.gl_pathv.add(index)) })
            .map(|path| PathBuf::from(OsStr::from_bytes(path.to_bytes())))
            .collect()),
        libc::GLOB_NOMATCH => Err(GlobError::NoMatch),
        libc::GLOB_ABORTED => Err(GlobError::Failed(format!("{}: a directory could not be read", pattern.display()))),
        other => Err(GlobError::Failed(format!("{}: glob(3) failed ({other})", pattern.display()))),
    };
    // SAFETY: `found` was initialised by glob(3) (or zeroed), and is not used afterwards.
    unsafe { libc::globfree(&mut found) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_as_php_fpm_does() {
        let work = harness::WorkDir::new("fpm-glob");
        for name in ["b.conf", "a.conf", "c.txt", ".hidden.conf", "www.conf.dpkg-old"] {
            std::fs::write(work.join(name), "").unwrap();
        }
        std::fs::create_dir(work.join("d.conf")).unwrap();
        let names = |pattern: &str| -> Vec<String> {
            fpm_include(&work.join(pattern))
                .unwrap()
                .iter()
                .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names("*.conf"), ["a.conf", "b.conf"], "sorted, no dot file, no directory");
        assert_eq!(names("[ab].conf"), ["a.conf", "b.conf"]);
        assert_eq!(names("c.txt"), ["c.txt"]);
        assert_eq!(fpm_include(&work.join("*.ini")), Err(GlobError::NoMatch));
        assert_eq!(fpm_include(&work.join("missing.conf")), Err(GlobError::NoMatch));
        assert!(existing(&work.join("*.ini")).is_empty());
    }
}
