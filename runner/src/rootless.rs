//! Rootless mode, seen from the runner: the cli has moved bake into a user namespace
//! in which it is root (see the cli's `rootless` module), so the sandbox code runs
//! unchanged, except where the kernel treats root of a user namespace differently:
//!
//! - overlayfs needs `userxattr` (its metadata in `user.overlay.*`, which the store
//!   uses for opaque dirs in the same case); `redirect_dir` must then stay at its
//!   default (`nofollow`), so the plain-diff options shrink to `index=off,metacopy=off`.
//! - sysfs can only be mounted by the owner of the network namespace: with the host's
//!   network the sandbox bind-mounts the host's `/sys` read-only instead (podman does
//!   the same).
//! - devpts' `gid=5` needs gid 5 mapped; with a single-id mapping it is left out.
//! - cgroup limits need a delegated cgroup, which bake does not set up: asking for
//!   one is an error naming rootless mode, never silently ignored.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::sync::OnceLock;

use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, pipe, ForkResult};
use rustix::fs::{Mode, OFlags};

use crate::{Error, Network, Options, Plan};

/// The tap device slirp4netns opens inside the container's network namespace.
const TUN: &str = "/dev/net/tun";

/// True unless `/proc/self/uid_map` is the initial namespace's identity map (read once:
/// a process never changes user namespace after bake's start).
pub(crate) fn in_user_namespace() -> bool {
    static IN: OnceLock<bool> = OnceLock::new();
    *IN.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| !is_initial_map(&map))
    })
}

/// Whether a `uid_map` is the initial user namespace's: `0 0 4294967295` (pure).
fn is_initial_map(map: &str) -> bool {
    map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"]
}

/// Whether setgroups(2) is denied in this user namespace (a single-id mapping, which
/// an unprivileged process may only write after `deny`): the supplementary groups
/// then stay what they were (the host's, shown as `nogroup`).
pub(crate) fn setgroups_denied() -> bool {
    in_user_namespace()
        && std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny")
}

/// A new network namespace, held by the returned fd, made by a forked child: root of
/// a user namespace may create one, but not `setns` back into the host's (owned by
/// the initial user namespace), which is how the rootful path returns. The child
/// unshares, says so, and is killed once its namespace is open here.
///
/// # Errors
/// [`Error::Fork`], [`Error::Unshare`] (reported by the child's silence) or
/// [`Error::Network`] when the namespace cannot be opened.
pub(crate) fn new_netns_in_child() -> Result<OwnedFd, Error> {
    let network = |what: &str, e: nix::Error| Error::Network {
        what: what.to_string(),
        message: e.to_string(),
    };
    let (ready_read, ready_write) = pipe().map_err(|e| network("creating a pipe", e))?;
    // SAFETY: the sandbox process is single-threaded; the child only makes syscalls.
    match unsafe { fork() }.map_err(|source| Error::Fork { source })? {
        ForkResult::Child => {
            drop(ready_read);
            if unshare(CloneFlags::CLONE_NEWNET).is_ok() {
                let _ = nix::unistd::write(&ready_write, b"1");
                nix::unistd::pause();
            }
            // SAFETY: leaves without running the parent's exit handlers.
            unsafe { libc::_exit(1) }
        }
        ForkResult::Parent { child } => {
            drop(ready_write);
            let mut byte = [0u8; 1];
            let got = File::from(ready_read).read(&mut byte).unwrap_or(0);
            let opened = (got == 1).then(|| {
                rustix::fs::open(
                    format!("/proc/{child}/ns/net"),
                    OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
            });
            let _ = kill(child, Signal::SIGKILL);
            let _ = waitpid(child, None);
            match opened {
                None => Err(Error::Unshare {
                    namespaces: "CLONE_NEWNET".into(),
                    source: nix::errno::Errno::EPERM,
                }),
                Some(r) => r.map_err(|e| {
                    network(
                        "opening the new network namespace",
                        crate::mounts::apply::errno(e),
                    )
                }),
            }
        }
    }
}

/// The error for switching to ids the user namespace does not map (EINVAL).
pub(crate) fn unmapped(uid: u32, gid: u32) -> Error {
    Error::Rootless {
        feature: format!(
            "running as uid {uid}, gid {gid}: not mapped in this user namespace (without \
             /etc/subuid and /etc/subgid ranges for the user, only 0 is)"
        ),
    }
}

/// Refuses what a rootless sandbox cannot do: cgroup limits, and bridge networking
/// when the user may not open `/dev/net/tun` (slirp4netns's tap device).
///
/// # Errors
/// [`Error::Rootless`] naming the flag.
pub(crate) fn check_options(plan: &Plan, options: &Options) -> Result<(), Error> {
    if !in_user_namespace() {
        return Ok(());
    }
    if plan.network == Network::Bridge
        && rustix::fs::access(
            TUN,
            rustix::fs::Access::READ_OK | rustix::fs::Access::WRITE_OK,
        )
        .is_err()
    {
        return Err(Error::Rootless {
            feature: format!(
                "--network bridge and -p: slirp4netns needs {TUN}, which this user may not \
                 open (it is usually mode 0666; --network host works)"
            ),
        });
    }
    let limits = &options.limits;
    let asked: Vec<&str> = [
        (limits.memory.is_some(), "--memory"),
        (limits.pids.is_some(), "--pids-limit"),
        (limits.nano_cpus.is_some(), "--cpus"),
    ]
    .into_iter()
    .filter_map(|(set, flag)| set.then_some(flag))
    .collect();
    if asked.is_empty() {
        return Ok(());
    }
    Err(Error::Rootless {
        feature: format!(
            "{} (cgroup limits need a cgroup delegated to the user, which bake does not set up)",
            asked.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    #[test]
    fn recognises_the_initial_map() {
        assert!(is_initial_map("         0          0 4294967295\n"));
        assert!(!is_initial_map("         0       1000          1\n"));
    }

    #[test]
    fn limits_are_refused_only_in_a_user_namespace() {
        let plan = Plan {
            rootfs: crate::Rootfs {
                lowers: vec![],
                upper: "/u".into(),
                work: "/w".into(),
            },
            args: vec!["true".into()],
            env: vec![],
            cwd: "/".into(),
            user: String::new(),
            hostname: "h".into(),
            network: Network::Host,
            mounts: vec![],
            hosts: vec![],
            readonly_rootfs: false,
            privileged: false,
        };
        let options = Options {
            limits: Limits {
                memory: Some(1 << 20),
                ..Limits::default()
            },
            ..Options::default()
        };
        let r = check_options(&plan, &options);
        if in_user_namespace() {
            assert!(r.unwrap_err().to_string().contains("--memory"));
        } else {
            assert!(r.is_ok());
        }
        assert!(check_options(&plan, &Options::default()).is_ok());
    }
}
