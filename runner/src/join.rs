//! `bake exec`: a new process in a running container.
//!
//! The sandbox process (single-threaded, like for `run`) opens the namespaces of the
//! container's pid 1 through `/proc/<pid>/ns/*`, joins ipc, uts, net, cgroup and mnt
//! (setns into a mount namespace also moves root and cwd to the container's root), then
//! pid, which only applies to children: so it forks, and the child becomes the user,
//! with the container's capability rules, and execs. The parent relays signals and exits
//! like the child, as the supervisor of `run` does.

use std::convert::Infallible;
use std::os::fd::OwnedFd;
use std::process::ExitCode;

use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::{fork, ForkResult};
use rustix::fs::{Mode, OFlags};

use crate::sandbox::{become_user, exec_command, exit_like, report, wait_relaying};
use crate::seccomp::Filter;
use crate::{caps, Error, Exec};

/// Namespaces joined, in order: mnt after the others (their files are opened first,
/// while the host's /proc is still visible), pid last.
const NAMESPACES: [(&str, CloneFlags); 6] = [
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("mnt", CloneFlags::CLONE_NEWNS),
    ("pid", CloneFlags::CLONE_NEWPID),
];

fn join(exec: &Exec) -> Result<(), Error> {
    let fail = |namespace: &str, source| Error::JoinNamespace {
        namespace: namespace.into(),
        pid: exec.pid,
        source,
    };
    let mut opened = Vec::new();
    for (name, flag) in NAMESPACES {
        let theirs = format!("/proc/{}/ns/{name}", exec.pid);
        let fd = rustix::fs::open(
            theirs.as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| fail(name, Errno::from_raw(e.raw_os_error())))?;
        // A namespace the container shares with us (e.g. `--network host`) is skipped.
        let same = match (
            rustix::fs::stat(format!("/proc/self/ns/{name}").as_str()),
            rustix::fs::fstat(&fd),
        ) {
            (Ok(a), Ok(b)) => a.st_ino == b.st_ino && a.st_dev == b.st_dev,
            _ => false,
        };
        if !same {
            opened.push((name, flag, fd));
        }
    }
    for (name, flag, fd) in opened {
        setns(&fd, flag).map_err(|source| fail(name, source))?;
    }
    Ok(())
}

fn child(
    exec: &Exec,
    console: Option<&OwnedFd>,
    cgroups: &[(std::path::PathBuf, std::fs::File)],
    filter: Option<&Filter>,
) -> Result<Infallible, Error> {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    // Only the command joins the container's cgroups, not this supervisor: it is no
    // process of the container and must not count against its limits.
    crate::cgroup::enter(cgroups)?;
    let keep = caps::effective_set(&exec.cap_add, &exec.cap_drop)?;
    let cwd = crate::mounts::plan::normalize(&exec.cwd)?;
    let env = become_user(
        &exec.user,
        &cwd,
        &exec.env,
        exec.privileged,
        &keep,
        filter,
        console,
    )?;
    Err(exec_command(&exec.args, &env))
}

/// The exec sandbox: join, fork, relay, exit like the command.
pub(crate) fn supervise(exec: &Exec, err: OwnedFd, console: Option<OwnedFd>) -> ExitCode {
    // Opened before the namespaces change: the container's mount namespace has no
    // writable cgroup file system.
    let cgroups = match crate::cgroup::open_procs_of(exec.pid) {
        Ok(c) => c,
        Err(e) => {
            report(&err, &e);
            return ExitCode::from(125);
        }
    };
    // The seccomp filter is found (or compiled and cached) in the host's mount
    // namespace: after the join, its cache path would be the container's to forge.
    let filter = match caps::effective_set(&exec.cap_add, &exec.cap_drop)
        .and_then(|keep| exec.seccomp.filter(exec.privileged, &keep))
    {
        Ok(f) => f,
        Err(e) => {
            report(&err, &e);
            return ExitCode::from(125);
        }
    };
    if let Err(e) = join(exec) {
        report(&err, &e);
        return ExitCode::from(125);
    }
    let mut waited = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        waited.add(s);
    }
    if let Err(source) = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&waited), None) {
        report(&err, &Error::Fork { source });
        return ExitCode::from(125);
    }
    // SAFETY: single-threaded process, see `sandbox`.
    match unsafe { fork() } {
        Err(source) => {
            report(&err, &Error::Fork { source });
            ExitCode::from(125)
        }
        Ok(ForkResult::Child) => {
            let e = match child(exec, console.as_ref(), &cgroups, filter.as_ref()) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            report(&err, &e);
            // SAFETY: ends the process; nothing to uphold.
            unsafe { libc::_exit(e.docker_code()) }
        }
        Ok(ForkResult::Parent { child }) => {
            drop(err);
            drop(console);
            exit_like(wait_relaying(child, &waited))
        }
    }
}
