//! `upload.php`, a script that notes the length of every body it runs with and then echoes
//! the body: a test can tell a request PHP never ran from one it ran twice or with a cut body.

use crate::WorkDir;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

const UPLOAD_SCRIPT: &str = "<?php\n\
    $body = file_get_contents('php://input');\n\
    file_put_contents(__DIR__ . '/../runs/' . basename($_GET['id']), strlen($body) . \"\\n\", FILE_APPEND);\n\
    header('Content-Type: application/octet-stream');\n\
    echo $body;\n";

/// Where upload.php writes down its runs.
pub struct Uploads {
    runs_dir: PathBuf,
}

impl Uploads {
    /// Puts upload.php into the document root of `work`, with a runs directory PHP-FPM's
    /// workers (www-data) may write.
    pub fn install(work: &WorkDir) -> Uploads {
        let runs_dir = work.subdir("runs");
        std::os::unix::fs::chown(&runs_dir, Some(33), Some(33)).expect("chown runs to www-data");
        std::fs::set_permissions(&runs_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod runs");
        std::fs::write(work.docroot().join("upload.php"), UPLOAD_SCRIPT).expect("upload.php");
        Uploads { runs_dir }
    }

    /// The body lengths PHP ran the script with for `/upload.php?id=<id>`.
    pub fn runs(&self, id: &str) -> Vec<usize> {
        let text = std::fs::read_to_string(self.runs_dir.join(id)).unwrap_or_default();
        text.lines().map(|line| line.parse().expect("a length per line")).collect()
    }
}
