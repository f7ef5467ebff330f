//! The runner's error type.
//!
//! Setup failures happen inside the sandbox process, which reports them to
//! [`crate::run`] as JSON over a close-on-exec pipe. So the variants that can
//! occur there are serde data: their cause is an [`Errno`] (a plain number),
//! not an `io::Error`. Variants that only happen on the caller's side keep an
//! `io::Error` and are `#[serde(skip)]`.

use std::io;
use std::path::PathBuf;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

/// A runner failure. Each variant names the operation and the path it was about.
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Error {
    /// Not running as root (nor as root of a user namespace, which the cli enters for
    /// a non-root user).
    #[error("bake's sandbox needs root, or root of a user namespace (rootless mode)")]
    NotRoot,
    /// Something rootless mode cannot do.
    #[error("not supported in rootless mode: {feature}")]
    Rootless {
        /// What was asked for, and why it cannot be done.
        feature: String,
    },
    /// The kernel has no overlayfs.
    #[error("overlayfs is not available: /proc/filesystems does not list `overlay` (try `modprobe overlay`)")]
    OverlayUnsupported,
    /// `BAKE_SNAPSHOTTER` has a value bake does not know.
    #[error("BAKE_SNAPSHOTTER={value:?} is not a snapshotter bake knows: use overlay, copy or auto (the default)")]
    Snapshotter {
        /// The value given.
        value: String,
    },
    /// Copying a layer view or syncing it back into its upper dir failed (the copying
    /// snapshotter, `BAKE_SNAPSHOTTER=copy`).
    #[error("copying snapshotter: {op} {path}")]
    CopyView {
        /// What was being done (`copying`, `whiting out`, …).
        op: String,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// A host file needed to check or prepare the sandbox could not be read.
    #[error("reading {path}")]
    #[serde(skip)]
    ReadHost {
        /// The host path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A layer directory of the rootfs could not be opened.
    #[error("opening rootfs directory {path}")]
    Rootfs {
        /// The host path.
        path: PathBuf,
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// The plan is not usable (relative paths, empty argv, …).
    #[error("invalid sandbox plan: {message}")]
    InvalidPlan {
        /// What is wrong.
        message: String,
    },
    /// unshare(2) failed.
    #[error("unshare({namespaces})")]
    Unshare {
        /// The namespaces asked for, e.g. `CLONE_NEWPID`.
        namespaces: String,
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// fork(2) of the sandbox's pid 1 failed.
    #[error("forking the sandbox's first process")]
    Fork {
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// Mounting the overlay root filesystem failed.
    #[error("mounting overlayfs on {target} (lowerdir={lowers})")]
    MountOverlay {
        /// The mount point.
        target: PathBuf,
        /// The lowerdir option as passed.
        lowers: String,
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// Mounting a filesystem (proc, tmpfs, sysfs, devpts, …) failed.
    #[error("mounting {fstype} on {target}")]
    Mount {
        /// The filesystem type.
        fstype: String,
        /// The mount point (inside the container when it starts with the rootfs path).
        target: PathBuf,
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// A bind mount failed.
    #[error("bind-mounting {from} on {target}")]
    BindMount {
        /// The host path.
        from: PathBuf,
        /// The mount point.
        target: PathBuf,
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// Remounting read-only failed.
    #[error("remounting {target} read-only")]
    RemountReadonly {
        /// The mount point.
        target: PathBuf,
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// Changing mount propagation failed.
    #[error("making {target} a private mount")]
    MakePrivate {
        /// The mount point.
        target: PathBuf,
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// umount2(2) failed.
    #[error("unmounting {target}")]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// Creating a missing mount point (a stub) in the rootfs failed.
    #[error("creating mount point {path} in the rootfs")]
    CreateMountPoint {
        /// The path inside the container.
        path: String,
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// Creating a file or directory on the host side (scratch dir, generated `/etc/hosts`).
    #[error("creating {path}")]
    CreateFile {
        /// The host path.
        path: PathBuf,
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// pivot_root(2) into the new root failed.
    #[error("pivot_root to {root}")]
    PivotRoot {
        /// The new root (host path).
        root: PathBuf,
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// sethostname(2) failed.
    #[error("setting hostname {hostname:?}")]
    Hostname {
        /// The hostname.
        hostname: String,
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// The working directory could not be created.
    #[error("creating working directory {cwd}")]
    CreateCwd {
        /// The path inside the container.
        cwd: String,
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// chdir(2) to the working directory failed.
    #[error("changing to working directory {cwd}")]
    Chdir {
        /// The path inside the container.
        cwd: String,
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// The loopback interface of a new network namespace could not be brought up.
    #[error("bringing up the loopback interface")]
    LoopbackUp {
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// A file of the container could not be read (`/etc/passwd`, `/etc/group`).
    #[error("reading {path} in the container")]
    ReadInRoot {
        /// The path inside the container.
        path: String,
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// The user name is not in the container's `/etc/passwd`.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UserNotFound(String),
    /// The group name is not in the container's `/etc/group`.
    #[error("unable to find group {0}: no matching entries in group file")]
    GroupNotFound(String),
    /// Dropping or setting capabilities failed.
    #[error("setting capabilities: {message}")]
    Capabilities {
        /// The cause, as the caps crate words it.
        message: String,
    },
    /// setgroups/setgid/setuid failed.
    #[error("switching to uid {uid}, gid {gid}")]
    SetIds {
        /// The uid.
        uid: u32,
        /// The gid.
        gid: u32,
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// prctl(PR_SET_NO_NEW_PRIVS) failed.
    #[error("setting no_new_privs")]
    NoNewPrivs {
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// The seccomp profile could not be read, compiled or loaded.
    #[error("seccomp: {what}: {message}")]
    Seccomp {
        /// What was being done (`parsing the profile`, `loading the filter`, …).
        what: String,
        /// The cause.
        message: String,
    },
    /// The user-space network tool for `--network bridge` is not installed.
    #[error("--network bridge and published ports need {tool}, which is not installed (Debian/Ubuntu: apt-get install {package})")]
    NetworkToolMissing {
        /// The program.
        tool: String,
        /// The package that ships it.
        package: String,
    },
    /// A published port's host port is taken.
    #[error("cannot publish {mapping}: the host port is already in use")]
    PortInUse {
        /// The mapping, as `0.0.0.0:8080->80/tcp`.
        mapping: String,
    },
    /// Setting up bridge networking failed.
    #[error("bridge network: {what}: {message}")]
    Network {
        /// What was being done.
        what: String,
        /// The cause (slirp4netns's own message where it gave one).
        message: String,
    },
    /// Allocating the container's terminal or making it the controlling terminal failed.
    #[error("setting up the container's terminal")]
    ControllingTerminal {
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// A cgroup controller needed for a limit is not available on this host.
    #[error("the {controller} cgroup controller is not available on this host (needed for --memory/--pids-limit): not mounted under /sys/fs/cgroup or not enabled")]
    CgroupController {
        /// The controller (`memory`, `pids`).
        controller: String,
    },
    /// Creating, configuring or joining the container's cgroup failed.
    #[error("setting up cgroup {path}")]
    Cgroup {
        /// The cgroup directory or file.
        path: PathBuf,
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// Pausing needs a freezer: the cgroup v1 `freezer` controller or cgroup v2.
    #[error("cannot freeze the container: neither the cgroup v1 freezer controller nor cgroup v2 is mounted under /sys/fs/cgroup")]
    FreezerMissing,
    /// The container's processes did not all reach the frozen state in time (one stuck
    /// in an uninterruptible sleep); they were thawed again.
    #[error("the processes in cgroup {path} did not freeze within 10 seconds (thawed again)")]
    FreezeTimeout {
        /// The cgroup directory.
        path: PathBuf,
    },
    /// The process to pause shares bake's pid namespace: gathering that namespace
    /// would freeze bake itself.
    #[error("process {pid} shares bake's own pid namespace: it cannot be paused")]
    SharedPidNamespace {
        /// The host pid.
        pid: u32,
    },
    /// Joining a namespace of a running container (`bake exec`) failed.
    #[error("joining the {namespace} namespace of process {pid}")]
    JoinNamespace {
        /// The namespace (`mnt`, `pid`, …).
        namespace: String,
        /// The container's pid 1 on the host.
        pid: u32,
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// The command does not exist in the container (Docker exits 127).
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
    /// The command exists but cannot be executed (Docker exits 126).
    #[error("exec: {0:?}: permission denied or not an executable")]
    NotExecutable(String),
    /// execve(2) failed for another reason.
    #[error("exec {arg:?}")]
    Exec {
        /// argv\[0\] as given.
        arg: String,
        /// The cause.
        #[serde(with = "errno")]
        source: Errno,
    },
    /// The sandbox process could not be started.
    #[error("starting the sandbox process {exe}")]
    #[serde(skip)]
    Spawn {
        /// The executable re-executed (`/proc/self/exe`).
        exe: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Talking to the sandbox process (plan, error report, output pipes) failed.
    #[error("{what}")]
    #[serde(skip)]
    Channel {
        /// What was being done.
        what: String,
        /// The cause.
        source: io::Error,
    },
    /// The sandbox process sent something that is not an error report.
    #[error("the sandbox process sent an unreadable report: {report:?}")]
    BadReport {
        /// The raw report.
        report: String,
    },
    /// Allocating or driving the pseudo-terminal failed.
    #[error("pseudo-terminal: {what}")]
    #[serde(skip)]
    Pty {
        /// What was being done.
        what: String,
        /// The cause.
        source: io::Error,
    },
}

impl Error {
    /// The exit code Docker uses for this failure of `docker run`: 127 for a command
    /// not found, 126 for one that cannot be executed, 125 for everything else.
    pub fn docker_code(&self) -> i32 {
        match self {
            Error::NotFound(_) => 127,
            Error::NotExecutable(_) => 126,
            _ => 125,
        }
    }
}

/// serde for [`Errno`]: its raw number.
mod errno {
    use nix::errno::Errno;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(errno: &Errno, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(*errno as i32)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Errno, D::Error> {
        Ok(Errno::from_raw(i32::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_errors_round_trip_with_their_cause() {
        let e = Error::MountOverlay {
            target: "/m".into(),
            lowers: "/a:/b".into(),
            source: Errno::EINVAL,
        };
        let back: Error = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        match back {
            Error::MountOverlay { source, .. } => assert_eq!(source, Errno::EINVAL),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn messages_read_like_docker() {
        assert_eq!(
            Error::UserNotFound("app".into()).to_string(),
            "unable to find user app: no matching entries in passwd file"
        );
        assert_eq!(Error::NotFound("nope".into()).docker_code(), 127);
        assert_eq!(Error::NotExecutable("x".into()).docker_code(), 126);
    }
}
