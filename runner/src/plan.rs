//! What to run and how: the plain data the cli and the solver hand to [`crate::run`].
//!
//! A [`Plan`] is serialised to JSON and read back by the sandbox process, so
//! everything here is serde data without host resources (no fds, no handles).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything the sandbox needs to run one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The filesystem of the container: overlay lowers plus a writable upper.
    pub rootfs: Rootfs,
    /// argv; `args[0]` is looked up in the container's `PATH` (from `env`) if it has no `/`.
    pub args: Vec<String>,
    /// `K=V` pairs; `PATH` defaults to Docker's default and `HOME` to the user's home when absent.
    pub env: Vec<String>,
    /// Absolute working directory; created if missing (like runc).
    pub cwd: String,
    /// `""`, `"name"`, `"uid"`, `"name:group"`, `"uid:gid"`, resolved from the rootfs's
    /// `/etc/passwd` and `/etc/group`.
    pub user: String,
    /// Hostname of the UTS namespace (also written to `/etc/hosts`).
    pub hostname: String,
    /// Host network or a fresh network namespace with only `lo`.
    pub network: Network,
    /// Extra mounts, applied in order after the standard ones; targets are created if missing.
    pub mounts: Vec<MountSpec>,
    /// Extra `/etc/hosts` lines as (hostname, address); localhost and `hostname` are always present.
    pub hosts: Vec<(String, String)>,
    /// Remount the root read-only once everything is mounted.
    pub readonly_rootfs: bool,
    /// All capabilities, no masked `/proc` paths, no `no_new_privs`
    /// (`RUN --security=insecure`, `bake run --privileged`).
    pub privileged: bool,
}

/// The layers of the container's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rootfs {
    /// Read-only layer directories, top first; may be empty (`FROM scratch`).
    pub lowers: Vec<PathBuf>,
    /// The writable overlay upper dir: it receives every change and becomes the new layer.
    pub upper: PathBuf,
    /// The overlay work dir: empty, on the same filesystem as `upper`. The runner also
    /// creates a private scratch dir next to it (`.bake-sandbox-<pid>`) for the mount
    /// point and the generated `/etc/hosts`; that dir is removed after the run.
    pub work: PathBuf,
}

/// A mount requested by the caller (`RUN --mount`, `bake run -v`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountSpec {
    /// Bind-mount a host path (recursively).
    Bind {
        /// Host path (file or directory).
        source: PathBuf,
        /// Absolute path inside the container.
        target: String,
        /// Remount read-only.
        readonly: bool,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// Absolute path inside the container.
        target: String,
        /// Size limit in bytes (the kernel's default, half of RAM, when `None`).
        size: Option<u64>,
    },
}

/// The network the sandbox sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Network {
    /// Share the host's network namespace.
    Host,
    /// A fresh network namespace with only the loopback interface, up.
    None,
    /// A fresh network namespace reaching the host's network through slirp4netns
    /// (user-mode NAT, see [`crate::network`]): address 10.0.2.100/24, DNS 10.0.2.3,
    /// the host's loopback unreachable; published ports come from [`crate::Options`].
    Bridge,
}

/// Where the container's stdin, stdout and stderr go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdio {
    /// The caller's own stdin/stdout/stderr (`bake run` without `-t`).
    Inherit,
    /// `/dev/null` for all three.
    Null,
    /// stdin is `/dev/null`; stdout and stderr are passed to the `output` callback of
    /// [`crate::run`] as they arrive (RUN during a build).
    Piped,
    /// A new pseudo-terminal is the container's stdio; the caller's terminal is put in raw
    /// mode and copied to and from it (`bake run -it`).
    Tty,
}

/// Which output stream a chunk passed to the `output` callback came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stream {
    /// The container's stdout.
    Stdout,
    /// The container's stderr.
    Stderr,
}

/// How the container's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

impl Exit {
    /// The exit code Docker reports: the code itself, or 128 + the signal number.
    pub fn docker_code(&self) -> i32 {
        match *self {
            Exit::Code(code) => code,
            Exit::Signal(signal) => 128 + signal,
        }
    }

    /// True for `Code(0)`.
    pub fn success(&self) -> bool {
        *self == Exit::Code(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_codes() {
        assert_eq!(Exit::Code(3).docker_code(), 3);
        assert_eq!(Exit::Signal(9).docker_code(), 137);
        assert!(Exit::Code(0).success());
        assert!(!Exit::Signal(15).success());
    }

    #[test]
    fn plan_round_trips_through_json() {
        let plan = Plan {
            rootfs: Rootfs {
                lowers: vec!["/l2".into(), "/l1".into()],
                upper: "/u".into(),
                work: "/w".into(),
            },
            args: vec!["sh".into(), "-c".into(), "true".into()],
            env: vec!["A=b".into()],
            cwd: "/".into(),
            user: "app:app".into(),
            hostname: "box".into(),
            network: Network::None,
            mounts: vec![
                MountSpec::Bind {
                    source: "/src".into(),
                    target: "/src".into(),
                    readonly: true,
                },
                MountSpec::Tmpfs {
                    target: "/tmp".into(),
                    size: Some(1 << 20),
                },
            ],
            hosts: vec![("db".into(), "10.0.0.2".into())],
            readonly_rootfs: false,
            privileged: false,
        };
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), plan);
    }
}
