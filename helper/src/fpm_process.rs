//! Is a pid a PHP-FPM master, which config did it start with, and has it exited?

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The process's state letter from /proc/PID/stat (`Z` zombie, `X` dead); None if gone.
fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: the state follows the last `)`.
    stat.get(stat.rfind(')')? + 1..)?.split_whitespace().next()?.chars().next()
}

/// Gone, or a zombie its parent has not reaped yet: either way it serves nothing any more.
pub fn has_exited(pid: i32) -> bool {
    !matches!(state(pid), Some(s) if s != 'Z' && s != 'X')
}

fn cmdline(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw).replace('\0', " ").trim().to_string()
}

fn exe_name(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

/// The main config named in a master's process title,
/// `php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)`.
pub fn config_from_title(title: &str) -> Option<PathBuf> {
    let rest = title.strip_prefix("php-fpm: master process")?;
    let inner = rest.get(rest.find('(')? + 1..rest.rfind(')')?)?;
    (!inner.is_empty()).then(|| PathBuf::from(inner))
}

/// Ok(the config its title names, if any) when `pid` is a running PHP-FPM master.
/// Refuses workers too: signalling one would not stop the pool.
pub fn master(pid: i32) -> Result<Option<PathBuf>, String> {
    if has_exited(pid) {
        return Err(format!("no process {pid} (stale pid file, or php-fpm already stopped)"));
    }
    let title = cmdline(pid);
    if title.starts_with("php-fpm: master process") {
        return Ok(config_from_title(&title));
    }
    if title.starts_with("php-fpm: pool") {
        return Err(format!("process {pid} is a php-fpm worker (`{title}`), not the master"));
    }
    // Without a process title (some builds), the executable still tells.
    if exe_name(pid).starts_with("php-fpm") && !title.contains("pool") {
        return Ok(None);
    }
    Err(format!("process {pid} is `{title}`, not a php-fpm master"))
}

/// Waits until `pid` has exited (a zombie counts); false on timeout.
pub fn wait_exit(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !has_exited(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_in_the_title() {
        assert_eq!(
            config_from_title("php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)"),
            Some(PathBuf::from("/etc/php/8.2/fpm/php-fpm.conf"))
        );
        assert_eq!(config_from_title("php-fpm: master process"), None);
        assert_eq!(config_from_title("php-fpm: pool www"), None);
    }

    #[test]
    fn not_a_master_and_a_zombie_counts_as_exited() {
        let me = std::process::id() as i32;
        assert!(master(me).unwrap_err().contains("not a php-fpm master"));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        assert!(wait_exit(pid, Duration::from_secs(10)), "an unreaped child that exited is a zombie: exited");
        let _ = child.wait();
        assert!(has_exited(pid));
        assert!(master(pid).unwrap_err().contains("no process"));
    }
}
