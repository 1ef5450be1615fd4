//! The options several commands share, declared once for clap: where the PHP-FPM and Apache
//! configurations are, which backend a pause is for, how readiness is checked, and the
//! default of every wait. A command's own options live with the command; this module knows no
//! command, so commands and the parser in `cli` never import each other in a circle.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use fcgi_resilient_common::pause_file::DEFAULT_PAUSE_DIR;

use crate::duration;
use crate::fpm_config::{self, LoadOptions};

/// How long every command waits unless `--timeout` says otherwise: longer than any normal
/// request, shorter than systemd's stop timeout the drop-in sets (this + 30 s).
pub const DEFAULT_TIMEOUT: &str = "30s";

/// PHP-FPM's configuration: which main configs, and how their relative includes resolve.
#[derive(Args, Debug, Clone, PartialEq, Default)]
pub struct FpmConfigs {
    /// PHP-FPM main config (repeatable; default: every /etc/php/*/fpm/php-fpm.conf,
    /// /etc/opt/remi/php*/php-fpm.conf, /etc/php-fpm.conf, else /etc/php-fpm.d/*.conf)
    #[arg(id = "fpm_configs", long = "fpm-config", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Resolve relative include= globs against DIR, like php-fpm -p (default: the including
    /// file's directory)
    #[arg(id = "fpm_prefix", long = "fpm-prefix", value_name = "DIR")]
    pub prefix: Option<PathBuf>,
}

impl FpmConfigs {
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions { prefix: self.prefix.clone() }
    }

    /// The given configs, or the distributions' standard places.
    pub fn files_or_default(&self) -> Vec<PathBuf> {
        if self.files.is_empty() {
            fpm_config::default_main_configs()
        } else {
            self.files.clone()
        }
    }
}

/// Where the commands that write systemd units write them, and the helper path they put in them.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct UnitFiles {
    /// Operate on the tree below DIR instead of / (no systemctl)
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// The helper's path in the drop-ins (default: this executable)
    #[arg(long, value_name = "PATH")]
    pub helper: Option<PathBuf>,
}

impl Default for UnitFiles {
    fn default() -> Self {
        UnitFiles { root: PathBuf::from("/"), helper: None }
    }
}

impl UnitFiles {
    /// `--helper`, else this executable's path. `None`, said on stderr, when neither is known.
    pub fn helper_path(&self) -> Option<PathBuf> {
        match self.helper.clone().map(Ok).unwrap_or_else(std::env::current_exe) {
            Ok(path) => Some(path),
            Err(e) => {
                eprintln!("cannot tell this program's path ({e}); use --helper");
                None
            }
        }
    }
}

/// Apache's configuration.
#[derive(Args, Debug, Clone, PartialEq, Default)]
pub struct ApacheConfigs {
    /// Apache's main config (repeatable; default: /etc/apache2/apache2.conf, else
    /// /etc/httpd/conf/httpd.conf)
    #[arg(id = "apache_configs", long = "apache-config", value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

impl ApacheConfigs {
    /// The given configs, or the first of Debian's and RHEL's that exists.
    pub fn files_or_default(&self) -> Vec<PathBuf> {
        if !self.files.is_empty() {
            return self.files.clone();
        }
        ["/etc/apache2/apache2.conf", "/etc/httpd/conf/httpd.conf"]
            .iter()
            .map(PathBuf::from)
            .filter(|path| path.exists())
            .take(1)
            .collect()
    }
}

/// A backend to pause or resume, and where to look it up: what `pause`, `resume` and
/// `deploy` share.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct BackendArgs {
    /// The backend as the module's status page writes it (unix:/run/php/php8.2-fpm.sock,
    /// 127.0.0.1:9000), or as Apache's config does (/run/php/...sock, fcgi://HOST[:PORT],
    /// unix:/...sock|fcgi://localhost)
    #[arg(value_name = "BACKEND")]
    pub backend: String,
    /// The pause files: the module's FcgiResilientPauseDir. Root's: only root may pause
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PAUSE_DIR)]
    pub pause_dir: PathBuf,
    #[command(flatten)]
    pub apache: ApacheConfigs,
    #[command(flatten)]
    pub fpm: FpmConfigs,
    /// Pause a backend no configuration names
    #[arg(long)]
    pub force: bool,
}

/// How a pool proves it runs requests: a FastCGI request for its ping page.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct Readiness {
    /// Send a FastCGI GET for PATH (the pool's ping.path) and check the answer
    #[arg(long, value_name = "PATH", value_parser = ping_path)]
    pub ping: Option<String>,
    /// Text the ping answer must contain (the pool's ping.response)
    #[arg(long, value_name = "TEXT", default_value = "pong")]
    pub expect: String,
}

/// A duration option's value, in httpd's syntax (see `duration`).
pub fn duration_value(text: &str) -> Result<Duration, String> {
    duration::parse(text)
}

/// The longest pause `--for` accepts: a forgotten pause must not keep a site down for longer.
const LONGEST_PAUSE: Duration = Duration::from_secs(24 * 3600);

/// `--for`: longer than nothing, at most a day.
pub fn pause_length(text: &str) -> Result<Duration, String> {
    let length = duration::parse(text)?;
    if length.is_zero() || length > LONGEST_PAUSE {
        return Err(format!("`{text}` must be longer than 0 and at most 1d"));
    }
    Ok(length)
}

/// A pause's own end never exceeds what `--for` accepts.
pub fn bounded_pause(length: Duration) -> Duration {
    length.min(LONGEST_PAUSE)
}

fn ping_path(text: &str) -> Result<String, String> {
    if !text.starts_with('/') {
        return Err(format!("the ping path must start with `/` (got `{text}`)"));
    }
    Ok(text.to_string())
}
