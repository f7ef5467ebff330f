//! `--init`: a minimal reaper as the container's pid 1 (what tini does, in-process).
//!
//! Without it the command is pid 1, which has two surprises: the kernel drops every
//! signal pid 1 has no handler for (a plain `sh` ignores `bake stop`'s SIGTERM), and
//! orphans re-parented to pid 1 stay zombies unless it waits for them. The reaper forks
//! the command, then forwards every signal it receives to it, reaps every child, and
//! exits with the command's status (128+n when a signal killed it).

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::signal::{self, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::Error;

/// Forks: returns in the child (which goes on to exec the command); the parent becomes
/// the reaper and never returns. `err` is the error-report fd, which the reaper closes so
/// that the child's exec alone decides what `run` hears.
///
/// # Errors
/// [`Error::Fork`] when the fork or blocking the signals fails.
pub(crate) fn fork_command(err: &OwnedFd) -> Result<(), Error> {
    // Blocked before the fork so that none sent in between is lost. Blocked signals are
    // queued even for a pid 1 (only unblocked default-action ones are dropped).
    let all = SigSet::all();
    signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&all), None)
        .map_err(|source| Error::Fork { source })?;
    // `ps` in the container shows this name for pid 1 (not `exe`). Named before the
    // fork, so the command never sees pid 1 under its old name; the command's exec
    // renames the child.
    // SAFETY: prctl with a static C string.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"bake-init".as_ptr(), 0, 0, 0) };
    // SAFETY: single-threaded process (see `sandbox`), so the child may do anything.
    match unsafe { fork() }.map_err(|source| Error::Fork { source })? {
        // The child unblocks everything when it resets its signals before exec.
        ForkResult::Child => Ok(()),
        ForkResult::Parent { child } => {
            // SAFETY: the reaper needs no fd; `err` and the console are only the child's
            // business now (the reaper never returns, so nothing uses them again).
            unsafe {
                libc::close(err.as_raw_fd());
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            }
            reap(child, &all)
        }
    }
}

/// The reaper's loop: forward, reap, exit like `child`.
fn reap(child: Pid, waited: &SigSet) -> ! {
    loop {
        match waited.wait() {
            Ok(Signal::SIGCHLD) => loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(pid, code)) if pid == child => exit(code),
                    Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => exit(128 + sig as i32),
                    Ok(WaitStatus::StillAlive) => break,
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(_) => break,
                }
            },
            Ok(sig) => {
                let _ = signal::kill(child, sig);
            }
            Err(_) => {}
        }
    }
}

fn exit(code: i32) -> ! {
    // SAFETY: ends the process; nothing to uphold.
    unsafe { libc::_exit(code) }
}
