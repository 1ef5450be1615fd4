//! A private directory per test, readable by www-data (Apache's and PHP-FPM's workers reach
//! the document root and the socket through it), removed afterwards unless the test failed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct WorkDir {
    path: PathBuf,
}

/// PHP scripts and files every site serves.
const DOCUMENT_ROOT: &[(&str, &str)] = &[
    ("index.php", "<?php echo \"hello from php-fpm\\n\";\n"),
    // The body exactly as PHP received it, so a test can compare it byte for byte.
    ("echo.php", "<?php header('Content-Type: application/octet-stream'); readfile('php://input');\n"),
    ("static.txt", "static content\n"),
    // A script that takes a while (`?ms=`, default 25 ms), so that requests are in flight.
    ("sleep.php", "<?php usleep(1000 * (int) ($_GET['ms'] ?? 25)); echo \"slept\\n\";\n"),
    // echo.php after 25 ms: a POST that is still running when PHP-FPM is stopped.
    (
        "slow-echo.php",
        "<?php usleep(25000); header('Content-Type: application/octet-stream'); readfile('php://input');\n",
    ),
];

impl WorkDir {
    pub fn new(name: &str) -> WorkDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "fcgi-resilient-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(path.join("htdocs")).expect("work directory");
        for dir in [path.as_path(), &path.join("htdocs")] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod work directory");
        }
        for (file, content) in DOCUMENT_ROOT {
            std::fs::write(path.join("htdocs").join(file), content).expect("document root file");
        }
        WorkDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn docroot(&self) -> PathBuf {
        self.path.join("htdocs")
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// A subdirectory, e.g. the ServerRoot of one of several Apaches.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let dir = self.path.join(name);
        std::fs::create_dir_all(&dir).expect("subdirectory");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod subdirectory");
        dir
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("FCGI_RESILIENT_KEEP").is_some() {
            eprintln!("kept {} for inspection", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
