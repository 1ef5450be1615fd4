//! Whether a process that left its mark in shared memory still runs: a child httpd killed
//! (or crashed) in the middle of something must not leave that mark counted forever.

/// `kill(pid, 0)` delivers nothing and only checks the pid. EPERM means the process exists
/// but belongs to another user, so it counts as alive; only ESRCH proves it gone.
pub fn process_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 sends nothing; kill only looks the pid up.
    let result = unsafe { libc::kill(pid as libc::pid_t, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

pub fn own_pid() -> u32 {
    std::process::id()
}

/// A pid that belonged to a process which has exited and been reaped: for tests that
/// simulate a process that died while it held something.
#[cfg(test)]
pub fn pid_of_a_dead_process() -> u32 {
    // SAFETY: the child only calls _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: leaves the forked test process without running the harness teardown.
        unsafe { libc::_exit(0) }
    }
    let mut status = 0;
    // SAFETY: reaps the child forked above, so its pid is gone.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    pid as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        assert!(process_alive(own_pid()));
        assert!(!process_alive(pid_of_a_dead_process()));
        assert!(!process_alive(0));
    }
}
