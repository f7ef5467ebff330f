//! Small host-side helpers of the sandbox process, kept out of `sandbox.rs`: bringing
//! up the loopback interface of a fresh network namespace, and removing a finished
//! container's directory in the background.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};

use crate::Error;

/// Removes a finished container's directory without making anyone wait for it: the
/// directory is renamed out of sight (`.removing-<name>` next to it, one directory
/// operation), then a detached grandchild deletes the tree. Deleting the layer costs
/// one journal handle per entry, which on a busy disk took longer than the container.
pub(crate) fn remove_in_background(dir: &Path, host_pid_ns: Option<&OwnedFd>) {
    let Some(name) = dir.file_name() else {
        return;
    };
    let hidden = dir.with_file_name(format!(".removing-{}", name.to_string_lossy()));
    let target = if std::fs::rename(dir, &hidden).is_ok() {
        hidden
    } else {
        dir.to_path_buf()
    };
    let back =
        host_pid_ns.is_some_and(|ns| nix::sched::setns(ns, CloneFlags::CLONE_NEWPID).is_ok());
    if !back {
        let _ = std::fs::remove_dir_all(&target);
        return;
    }
    // SAFETY: single-threaded process (see the module docs); both children only
    // call setsid, fork, remove_dir_all and _exit.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            // SAFETY: plain syscalls; the grandchild is re-parented to init.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0);
                libc::setsid();
                if let Ok(ForkResult::Child) = fork() {
                    // Holding the caller's stdout open would delay its EOF (a pipe
                    // reader would wait for the deletion).
                    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                    if null >= 0 {
                        for fd in 0..3 {
                            libc::dup2(null, fd);
                        }
                    }
                    libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                    let _ = std::fs::remove_dir_all(&target);
                }
                libc::_exit(0)
            }
        }
        Ok(ForkResult::Parent { child }) => {
            let _ = waitpid(child, None);
        }
        Err(_) => {
            let _ = std::fs::remove_dir_all(&target);
        }
    }
}

/// `ip link set lo up` in the new network namespace.
pub(crate) fn loopback_up() -> Result<(), Error> {
    let fail = || Error::LoopbackUp {
        source: Errno::last(),
    };
    // SAFETY: a socket, two ioctls on a zeroed, correctly sized ifreq, a close.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(fail());
        }
        let sock = OwnedFd::from_raw_fd(sock);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        let name = CString::new("lo").unwrap_or_default();
        for (dst, src) in ifr.ifr_name.iter_mut().zip(name.as_bytes_with_nul()) {
            *dst = *src as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            return Err(fail());
        }
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) < 0 {
            return Err(fail());
        }
    }
    Ok(())
}
