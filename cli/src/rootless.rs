//! Rootless mode: a non-root user runs bake inside a user namespace of its own in
//! which it is root, so the store, the solver and the runner work unchanged.
//!
//! The mapping is podman's: uid 0 (and gid 0) inside is the caller, 1..=N are the
//! caller's subordinate ids from `/etc/subuid` and `/etc/subgid`, written by the
//! setuid helpers `newuidmap`/`newgidmap` (Debian package `uidmap`). Without a
//! subordinate range for both, bake maps only 0 → the caller (which needs no helper).
//! Then files owned by other ids cannot exist: a layer entry owned by an unmapped id
//! is unpacked owned by 0 (the store keeps what it can represent), and a `chown` to
//! an unmapped id inside a RUN fails with EINVAL, as it would under podman.
//!
//! One namespace per user, made once and kept by a holder process (`bake-userns`,
//! like podman's pause process); every bake command `setns`es into it first thing in
//! `main`, while still single-threaded (which setns(2) of a user namespace requires).
//! Joining in-process rather than re-executing keeps one process: no relay of signals,
//! the terminal and the exit status. A shared namespace, rather than a fresh one per
//! command, is what lets `bake exec`/`stop`/`kill` reach a container an earlier
//! `bake run -d` started: a sibling namespace has no capabilities over it.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, getgid, getuid, pipe, ForkResult, Gid, Pid, Uid, User};

/// A subordinate id range: `count` ids from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// The first host id of the range.
    pub start: u32,
    /// How many ids.
    pub count: u32,
}

/// Why bake could not enter its user namespace.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// unshare(CLONE_NEWUSER) refused.
    #[error("rootless mode: cannot create a user namespace (is kernel.unprivileged_userns_clone or user.max_user_namespaces 0, or does AppArmor restrict unprivileged user namespaces?)")]
    Unshare(#[source] nix::Error),
    /// A subordinate range exists but the helpers are missing.
    #[error("rootless mode: /etc/subuid and /etc/subgid give {user} a range, but `{tool}` is not installed (Debian package `uidmap`)")]
    NoHelper {
        /// The user.
        user: String,
        /// newuidmap or newgidmap.
        tool: &'static str,
    },
    /// newuidmap/newgidmap failed.
    #[error("rootless mode: `{command}` failed: {message}")]
    Helper {
        /// The command line.
        command: String,
        /// Its stderr or exit status.
        message: String,
    },
    /// Writing our own single-id map failed.
    #[error("rootless mode: writing {path}")]
    WriteMap {
        /// The /proc file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The runtime directory or a file in it.
    #[error("rootless mode: {path}")]
    Runtime {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// fork/pipe/setns for the namespace holder failed.
    #[error("rootless mode: {what}")]
    Sys {
        /// The operation.
        what: &'static str,
        /// The errno.
        #[source]
        source: nix::Error,
    },
}

/// The range `/etc/subuid`-format `text` gives the user `name` (or its numeric `id`):
/// the first matching `name:start:count` line (pure).
pub fn subordinate_range(text: &str, name: &str, id: u32) -> Option<Range> {
    text.lines().find_map(|line| {
        let mut parts = line.trim().split(':');
        let (who, start, count) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || (who != name && who.parse::<u32>().ok() != Some(id)) {
            return None;
        }
        let range = Range {
            start: start.parse().ok()?,
            count: count.parse().ok()?,
        };
        (range.count > 0).then_some(range)
    })
}

/// The mapping arguments for `newuidmap PID …`: 0 → `me`, 1..=count → the range (pure).
pub fn map_args(me: u32, range: Range) -> Vec<String> {
    [0, me, 1, 1, range.start, range.count]
        .iter()
        .map(u32::to_string)
        .collect()
}

/// How the namespace will be mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mapping {
    /// Only 0 → the caller.
    Single,
    /// 0 → the caller plus subordinate ranges, through the helpers.
    Ranges { uids: Range, gids: Range },
}

/// The `uid_map` lines (inside, outside, count) a namespace of `me` should have (pure).
pub fn expected_map(me: u32, range: Option<Range>) -> Vec<[u32; 3]> {
    let mut lines = vec![[0, me, 1]];
    if let Some(r) = range {
        lines.push([1, r.start, r.count]);
    }
    lines
}

/// Parses a `/proc/PID/uid_map` (pure).
pub fn parse_map(text: &str) -> Vec<[u32; 3]> {
    text.lines()
        .filter_map(|l| {
            let n: Vec<u32> = l
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            (n.len() == 3).then(|| [n[0], n[1], n[2]])
        })
        .collect()
}

fn read_or_empty(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn find_tool(name: &'static str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The holder's argv[0], as `ps` shows it (and how a stale pid file is told apart
/// from a reused pid).
const HOLDER_NAME: &str = "bake-userns";

/// Moves this (non-root, still single-threaded) process into the caller's rootless
/// user namespace, in which it is root. Call first thing in `main`, before any thread
/// starts; afterwards `geteuid()` is 0 and the caller's files appear owned by root.
///
/// One namespace per user, kept by a tiny holder process (`bake-userns`, podman's
/// "pause process"): every bake command joins it, so `bake exec`, `stop` and `kill`
/// reach containers that an earlier `bake run -d` started (a sibling namespace would
/// have no capabilities over them). The holder's pid is in `userns.pid` under
/// `$XDG_RUNTIME_DIR/bake` (else `/tmp/bake-run-UID`); a holder whose map no longer
/// matches `/etc/subuid` is replaced.
///
/// # Errors
/// See [`Error`]: no user namespaces, a missing or failing `newuidmap`/`newgidmap`.
pub fn enter() -> Result<(), Error> {
    let (uid, gid) = (getuid(), getgid());
    let name = User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string());
    let uids = subordinate_range(&read_or_empty("/etc/subuid"), &name, uid.as_raw());
    let gids = subordinate_range(&read_or_empty("/etc/subgid"), &name, uid.as_raw());
    let mapping = match (uids, gids) {
        (Some(uids), Some(gids)) => Mapping::Ranges { uids, gids },
        _ => Mapping::Single,
    };
    let want = expected_map(
        uid.as_raw(),
        match mapping {
            Mapping::Single => None,
            Mapping::Ranges { uids, .. } => Some(uids),
        },
    );
    let dir = runtime_dir(uid)?;
    let lock_path = dir.join("userns.lock");
    let lock = fs::File::create(&lock_path).map_err(|source| Error::Runtime {
        path: lock_path.clone(),
        source,
    })?;
    let _locked =
        nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
            Error::Sys {
                what: "locking userns.lock",
                source: e,
            }
        })?;
    let pid_path = dir.join("userns.pid");
    let holder = match live_holder(&pid_path, uid, &want) {
        Some(pid) => pid,
        None => {
            let pid = spawn_holder(uid, gid, &name, mapping)?;
            fs::write(&pid_path, format!("{pid}\n")).map_err(|source| Error::Runtime {
                path: pid_path.clone(),
                source,
            })?;
            pid
        }
    };
    let ns =
        fs::File::open(format!("/proc/{holder}/ns/user")).map_err(|source| Error::Runtime {
            path: format!("/proc/{holder}/ns/user").into(),
            source,
        })?;
    setns(&ns, CloneFlags::CLONE_NEWUSER).map_err(|source| Error::Sys {
        what: "joining the user namespace (setns)",
        source,
    })?;
    if mapping != Mapping::Single {
        // The host's supplementary groups show as `nogroup` inside; drop them.
        let _ = nix::unistd::setgroups(&[]);
    }
    // Become 0 for real and saved ids too (the effective ones already map to 0).
    let _ = nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0));
    let _ = nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0));
    Ok(())
}

/// A private directory for the holder's pid file: `$XDG_RUNTIME_DIR/bake`, else
/// `/tmp/bake-run-UID`, which must be ours and closed to others (a directory someone
/// else made in /tmp could point us at their process).
fn runtime_dir(uid: Uid) -> Result<PathBuf, Error> {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        // Only the user's own (`sudo -u` may leave root's behind).
        Some(d)
            if Path::new(&d).is_absolute()
                && fs::metadata(&d).is_ok_and(|m| m.is_dir() && m.uid() == uid.as_raw()) =>
        {
            Path::new(&d).join("bake")
        }
        _ => PathBuf::from(format!("/tmp/bake-run-{uid}")),
    };
    let err = |source| Error::Runtime {
        path: dir.clone(),
        source,
    };
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err(e)),
    }
    let meta = fs::symlink_metadata(&dir).map_err(err)?;
    if !meta.is_dir() || meta.uid() != uid.as_raw() || meta.mode() & 0o077 != 0 {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "not a directory of this user's, closed to others (mode 0700)",
        )));
    }
    Ok(dir)
}

/// The holder in `pid_path` if it is still alive, ours, called [`HOLDER_NAME`] and
/// mapped as `want`. A holder of ours with an outdated map is killed.
fn live_holder(pid_path: &Path, uid: Uid, want: &[[u32; 3]]) -> Option<i32> {
    let pid: i32 = fs::read_to_string(pid_path).ok()?.trim().parse().ok()?;
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let cmdline = fs::read(proc_dir.join("cmdline")).ok()?;
    let argv0 = cmdline.split(|b| *b == 0).next()?;
    let owner = fs::metadata(&proc_dir).ok()?.uid();
    if argv0 != HOLDER_NAME.as_bytes() || owner != uid.as_raw() {
        return None;
    }
    let map = parse_map(&fs::read_to_string(proc_dir.join("uid_map")).ok()?);
    if map != want {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        return None;
    }
    Some(pid)
}

fn write_file(path: &str, text: &str) -> Result<(), Error> {
    fs::write(path, text).map_err(|source| Error::WriteMap {
        path: Path::new(path).to_path_buf(),
        source,
    })
}

/// Forks the holder: it leaves the session, closes every inherited fd (a pipe a caller
/// reads to EOF, the lock), makes the user namespace and sleeps forever; meanwhile
/// this process writes its maps (itself for a single id; else `newuidmap`/`newgidmap`,
/// setuid helpers that must act from outside).
fn spawn_holder(uid: Uid, gid: Gid, name: &str, mapping: Mapping) -> Result<i32, Error> {
    let tools = match mapping {
        Mapping::Single => None,
        Mapping::Ranges { uids, gids } => {
            let tool = |tool| {
                find_tool(tool).ok_or_else(|| Error::NoHelper {
                    user: name.to_string(),
                    tool,
                })
            };
            Some([
                (tool("newuidmap")?, map_args(uid.as_raw(), uids)),
                (tool("newgidmap")?, map_args(gid.as_raw(), gids)),
            ])
        }
    };
    let sys = |what| move |source| Error::Sys { what, source };
    let (ready_read, ready_write) = pipe().map_err(sys("pipe"))?;
    let (go_read, go_write) = pipe().map_err(sys("pipe"))?;
    // SAFETY: the process is single-threaded here (see `enter`), so the child may do
    // anything; it only makes syscalls.
    let child = match unsafe { fork() }.map_err(sys("fork"))? {
        ForkResult::Child => {
            drop((ready_read, go_write));
            holder(ready_write, go_read)
        }
        ForkResult::Parent { child } => child,
    };
    drop((ready_write, go_read));
    let give_up = |e: Error| {
        let _ = kill(child, Signal::SIGKILL);
        let _ = waitpid(child, None);
        e
    };
    // Four bytes: 0 once the namespace exists, else the errno of unshare(2).
    let mut word = [0u8; 4];
    if fs::File::from(ready_read).read_exact(&mut word).is_err() {
        return Err(give_up(Error::Unshare(nix::Error::EIO)));
    }
    let errno = i32::from_ne_bytes(word);
    if errno != 0 {
        return Err(give_up(Error::Unshare(nix::Error::from_raw(errno))));
    }
    let mapped = match tools {
        None => write_single_maps(child.as_raw(), uid, gid),
        Some(jobs) => jobs
            .iter()
            .try_for_each(|(tool, args)| run_helper(tool, child.as_raw(), args)),
    };
    mapped.map_err(give_up)?;
    let _ = fs::File::from(go_write).write_all(b"g");
    Ok(child.as_raw())
}

/// The holder's whole life (never returns).
fn holder(ready: OwnedFd, go: OwnedFd) -> ! {
    let (ready_fd, go_fd) = (ready.as_raw_fd(), go.as_raw_fd());
    // Inherited fds other than the two pipes; stdio becomes /dev/null.
    if let Ok(entries) = fs::read_dir("/proc/self/fd") {
        let fds: Vec<i32> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd > 2 && *fd != ready_fd && *fd != go_fd)
            .collect();
        for fd in fds {
            // SAFETY: closing fds this process will never use.
            unsafe { libc::close(fd) };
        }
    }
    if let Ok(null) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard fds.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    let _ = nix::unistd::setsid();
    let _ = nix::sys::prctl::set_name(c"bake-userns");
    let errno = match unshare(CloneFlags::CLONE_NEWUSER) {
        Ok(()) => 0,
        Err(e) => e as i32,
    };
    let mut ready = fs::File::from(ready);
    let _ = ready.write_all(&errno.to_ne_bytes());
    drop(ready);
    let mut byte = [0u8; 1];
    let go = fs::File::from(go).read(&mut byte);
    if errno != 0 || !matches!(go, Ok(1)) {
        // SAFETY: leaves without running the parent's exit handlers.
        unsafe { libc::_exit(1) }
    }
    // Become `sleep infinity` (argv[0] bake-userns) so that the bake binary is not
    // kept busy: replacing it in place would fail with ETXTBSY while a holder runs it.
    for sleep in [c"/usr/bin/sleep", c"/bin/sleep"] {
        let _ = nix::unistd::execv(sleep, &[c"bake-userns", c"infinity"]);
    }
    loop {
        nix::unistd::pause();
    }
}

/// The maps an unprivileged process may write for a namespace it owns: only its own
/// ids, and only after giving up setgroups(2) (which could otherwise drop a denying
/// group).
fn write_single_maps(pid: i32, uid: Uid, gid: Gid) -> Result<(), Error> {
    write_file(&format!("/proc/{pid}/setgroups"), "deny")?;
    write_file(&format!("/proc/{pid}/gid_map"), &format!("0 {gid} 1\n"))?;
    write_file(&format!("/proc/{pid}/uid_map"), &format!("0 {uid} 1\n"))
}

/// Runs `tool PID ARGS…` (newuidmap/newgidmap).
fn run_helper(tool: &Path, pid: i32, args: &[String]) -> Result<(), Error> {
    let command = format!("{} {pid} {}", tool.display(), args.join(" "));
    match Command::new(tool).arg(pid.to_string()).args(args).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(Error::Helper {
            command,
            message: format!(
                "{} ({})",
                String::from_utf8_lossy(&out.stderr).trim(),
                out.status
            ),
        }),
        Err(e) => Err(Error::Helper {
            command,
            message: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_range_by_name_or_uid() {
        let text = "alice:100000:65536\n1001:200000:65536\nbob:300000:0\n";
        assert_eq!(
            subordinate_range(text, "alice", 1000),
            Some(Range {
                start: 100000,
                count: 65536
            })
        );
        assert_eq!(
            subordinate_range(text, "carol", 1001).map(|r| r.start),
            Some(200000)
        );
        // An empty range is no range; unknown users have none.
        assert_eq!(subordinate_range(text, "bob", 1002), None);
        assert_eq!(subordinate_range(text, "dave", 1003), None);
        assert_eq!(subordinate_range("garbage\nalice:x:1\n", "alice", 1), None);
    }

    #[test]
    fn expected_maps_match_what_proc_shows() {
        let shown = "         0        999          1\n         1     231072      65536\n";
        let range = Range {
            start: 231072,
            count: 65536,
        };
        assert_eq!(parse_map(shown), expected_map(999, Some(range)));
        assert_eq!(parse_map("0 999 1\n"), expected_map(999, None));
        assert_ne!(parse_map(shown), expected_map(999, None));
    }

    #[test]
    fn maps_root_to_the_caller_and_the_rest_to_the_range() {
        let args = map_args(
            1000,
            Range {
                start: 100000,
                count: 65536,
            },
        );
        assert_eq!(args, ["0", "1000", "1", "1", "100000", "65536"]);
    }
}
