//! The mount list of a sandbox, computed from a [`Plan`] without a single syscall.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use crate::{Error, MountSpec, Plan};

/// What to create at a mount target that does not exist in the rootfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stub {
    /// An empty directory.
    Dir,
    /// An empty file.
    File,
    /// A directory or a file, like the bind mount's source.
    LikeSource,
}

/// One step of the mount list. Targets are normalised absolute container paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Mount a new filesystem instance.
    Fs {
        target: String,
        fstype: &'static str,
        source: &'static str,
        flags: MsFlags,
        data: String,
        /// Skip the step if the kernel refuses it (e.g. no mqueue support).
        optional: bool,
    },
    /// Bind-mount a host path.
    Bind {
        source: PathBuf,
        target: String,
        stub: Stub,
        recursive: bool,
        readonly: bool,
    },
    /// Create a symlink (inside a tmpfs of the sandbox).
    Symlink { path: String, points_to: String },
    /// Hide a path if it exists: /dev/null over a file, a read-only tmpfs over a dir.
    Mask { target: String },
    /// Make an existing path read-only (bind it onto itself, remount read-only).
    Readonly { target: String },
}

impl Step {
    /// The container path a mount (not a symlink) is placed on, with its stub kind.
    pub(crate) fn mount_target(&self) -> Option<(&str, Stub)> {
        match self {
            Step::Fs { target, .. } => Some((target, Stub::Dir)),
            Step::Bind { target, stub, .. } => Some((target, *stub)),
            _ => None,
        }
    }
}

/// The ordered mount list of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountPlan {
    pub steps: Vec<Step>,
    /// The normalised working directory: created if missing and kept (like runc), so it
    /// and its parents are never stub candidates.
    pub cwd: String,
}

/// Host device nodes bind-mounted into the sandbox's `/dev` (as runc and Docker do).
pub(crate) const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Docker's masked paths (moby `oci/defaults.go`).
const MASKED: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
const READONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Files the sandbox writes on the host side and bind-mounts read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EtcFiles {
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
}

impl EtcFiles {
    /// The generated files inside the sandbox's scratch dir.
    pub(crate) fn in_dir(dir: &Path) -> EtcFiles {
        EtcFiles {
            hosts: dir.join("hosts"),
            resolv_conf: dir.join("resolv.conf"),
        }
    }
}

/// Lexically normalises an absolute container path: `.` and empty components dropped,
/// `..` resolved and clamped at `/`. Symlinks are resolved later, beneath the root.
pub(crate) fn normalize(path: &str) -> Result<String, Error> {
    if !path.starts_with('/') {
        return Err(Error::InvalidPlan {
            message: format!("{path:?} is not an absolute path"),
        });
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Checks what the sandbox cannot start without.
pub(crate) fn validate(plan: &Plan) -> Result<(), Error> {
    if plan.args.is_empty() {
        return Err(Error::InvalidPlan {
            message: "no command (argv is empty)".into(),
        });
    }
    normalize(&plan.cwd)?;
    for spec in &plan.mounts {
        let target = match spec {
            MountSpec::Bind { target, .. } | MountSpec::Tmpfs { target, .. } => target,
        };
        if normalize(target)? == "/" {
            return Err(Error::InvalidPlan {
                message: "a mount cannot replace the root filesystem".into(),
            });
        }
    }
    Ok(())
}

/// The `/etc/hosts` of the sandbox: localhost (with the hostname) and the extra entries.
pub(crate) fn hosts_file(hostname: &str, extra: &[(String, String)]) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost");
    if !hostname.is_empty() && hostname != "localhost" {
        out.push(' ');
        out.push_str(hostname);
    }
    out.push_str("\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (name, address) in extra {
        out.push_str(&format!("{address}\t{name}\n"));
    }
    out
}

impl MountPlan {
    /// The mounts of `plan`, in the order they are applied: /proc (with Docker's masks),
    /// /dev (tmpfs with host nodes, devpts, shm, mqueue, symlinks), /sys read-only,
    /// /etc/hosts and /etc/resolv.conf, then the plan's own mounts.
    pub(crate) fn build(plan: &Plan, etc: &EtcFiles) -> Result<MountPlan, Error> {
        validate(plan)?;
        let nosuid_noexec_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
        let fs = |target: &str, fstype, source, flags, data: &str, optional| Step::Fs {
            target: target.to_string(),
            fstype,
            source,
            flags,
            data: data.to_string(),
            optional,
        };
        let mut steps = vec![
            fs("/proc", "proc", "proc", nosuid_noexec_nodev, "", false),
            fs(
                "/dev",
                "tmpfs",
                "tmpfs",
                MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
                "mode=755,size=65536k",
                false,
            ),
        ];
        for dev in DEVICES {
            steps.push(Step::Bind {
                source: PathBuf::from("/dev").join(dev),
                target: format!("/dev/{dev}"),
                stub: Stub::File,
                recursive: false,
                readonly: false,
            });
        }
        steps.push(fs(
            "/dev/pts",
            "devpts",
            "devpts",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620,gid=5",
            false,
        ));
        steps.push(fs(
            "/dev/shm",
            "tmpfs",
            "shm",
            nosuid_noexec_nodev,
            "mode=1777,size=65536k",
            false,
        ));
        steps.push(fs(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            nosuid_noexec_nodev,
            "",
            true,
        ));
        for (path, points_to) in [
            ("/dev/ptmx", "pts/ptmx"),
            ("/dev/fd", "/proc/self/fd"),
            ("/dev/stdin", "/proc/self/fd/0"),
            ("/dev/stdout", "/proc/self/fd/1"),
            ("/dev/stderr", "/proc/self/fd/2"),
        ] {
            steps.push(Step::Symlink {
                path: path.into(),
                points_to: points_to.into(),
            });
        }
        // A fresh sysfs rather than a bind of the host's: it shows the sandbox's own
        // network namespace, and has no host submounts (cgroup, …) to remount one by one.
        let sys_flags = if plan.privileged {
            nosuid_noexec_nodev
        } else {
            nosuid_noexec_nodev | MsFlags::MS_RDONLY
        };
        steps.push(fs("/sys", "sysfs", "sysfs", sys_flags, "", false));
        if !plan.privileged {
            steps.extend(MASKED.iter().map(|p| Step::Mask {
                target: p.to_string(),
            }));
            steps.extend(READONLY.iter().map(|p| Step::Readonly {
                target: p.to_string(),
            }));
        }
        for (source, target) in [
            (&etc.hosts, "/etc/hosts"),
            (&etc.resolv_conf, "/etc/resolv.conf"),
        ] {
            steps.push(Step::Bind {
                source: source.clone(),
                target: target.into(),
                stub: Stub::File,
                recursive: false,
                readonly: true,
            });
        }
        for spec in &plan.mounts {
            steps.push(match spec {
                MountSpec::Bind {
                    source,
                    target,
                    readonly,
                } => Step::Bind {
                    source: source.clone(),
                    target: normalize(target)?,
                    stub: Stub::LikeSource,
                    recursive: true,
                    readonly: *readonly,
                },
                MountSpec::Tmpfs { target, size } => {
                    let mut data = String::from("mode=1777");
                    if let Some(size) = size {
                        data.push_str(&format!(",size={size}"));
                    }
                    fs(
                        &normalize(target)?,
                        "tmpfs",
                        "tmpfs",
                        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                        &data,
                        false,
                    )
                }
            });
        }
        Ok(MountPlan {
            steps,
            cwd: normalize(&plan.cwd)?,
        })
    }

    /// The container paths where a stub may be created in the rootfs itself (and so in
    /// the upper dir), deepest first: every mount target that is not beneath an earlier
    /// mount, and each of its ancestors (they are created too when missing), except the
    /// working directory and its ancestors.
    pub(crate) fn stub_candidates(&self) -> Vec<String> {
        let in_cwd_path = |p: &str| {
            self.cwd == p
                || self
                    .cwd
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        let mut mounted: Vec<&str> = Vec::new();
        let mut out: Vec<String> = Vec::new();
        for step in &self.steps {
            let Some((target, _)) = step.mount_target() else {
                continue;
            };
            let beneath_a_mount = mounted.iter().any(|m| {
                target
                    .strip_prefix(m)
                    .is_some_and(|rest| rest.starts_with('/'))
            });
            mounted.push(target);
            if beneath_a_mount {
                continue;
            }
            let mut path = target;
            while path != "/" && !path.is_empty() {
                if !in_cwd_path(path) && !out.iter().any(|p| p == path) {
                    out.push(path.to_string());
                }
                path = &path[..path.rfind('/').unwrap_or(0)];
            }
        }
        // Children before their parents, so that emptied parents can go too.
        out.sort_by(|a, b| {
            b.matches('/')
                .count()
                .cmp(&a.matches('/').count())
                .then(a.cmp(b))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Network, Rootfs};

    fn plan() -> Plan {
        Plan {
            rootfs: Rootfs {
                lowers: vec![],
                upper: "/u".into(),
                work: "/w".into(),
            },
            args: vec!["true".into()],
            env: vec![],
            cwd: "/".into(),
            user: String::new(),
            hostname: "box".into(),
            network: Network::Host,
            mounts: vec![],
            hosts: vec![],
            readonly_rootfs: false,
            privileged: false,
        }
    }

    fn etc() -> EtcFiles {
        EtcFiles::in_dir(Path::new("/scratch"))
    }

    fn targets(p: &MountPlan) -> Vec<&str> {
        p.steps
            .iter()
            .filter_map(|s| s.mount_target())
            .map(|(t, _)| t)
            .collect()
    }

    #[test]
    fn normalize_clamps_and_rejects_relative() {
        assert_eq!(normalize("/a/./b//c/").unwrap(), "/a/b/c");
        assert_eq!(normalize("/../../etc/../x").unwrap(), "/x");
        assert_eq!(normalize("/").unwrap(), "/");
        assert!(normalize("a/b").is_err());
    }

    #[test]
    fn standard_mounts_come_first_in_order() {
        let p = MountPlan::build(&plan(), &etc()).unwrap();
        let t = targets(&p);
        assert_eq!(&t[..2], &["/proc", "/dev"]);
        let pos = |x: &str| t.iter().position(|y| *y == x).unwrap();
        assert!(pos("/dev/null") < pos("/dev/pts"));
        assert!(pos("/dev/pts") < pos("/sys"));
        assert!(pos("/sys") < pos("/etc/hosts"));
        assert!(p.steps.contains(&Step::Symlink {
            path: "/dev/ptmx".into(),
            points_to: "pts/ptmx".into()
        }));
        assert!(p.steps.contains(&Step::Mask {
            target: "/proc/kcore".into()
        }));
        let hosts = p
            .steps
            .iter()
            .find(|s| s.mount_target().map(|t| t.0) == Some("/etc/hosts"));
        assert!(
            matches!(hosts, Some(Step::Bind { readonly: true, stub: Stub::File, source, .. }) if source == Path::new("/scratch/hosts"))
        );
    }

    #[test]
    fn sys_is_read_only_unless_privileged_and_privileged_has_no_masks() {
        let sys = |p: &MountPlan| {
            p.steps
                .iter()
                .find_map(|s| match s {
                    Step::Fs { target, flags, .. } if target == "/sys" => Some(*flags),
                    _ => None,
                })
                .unwrap()
        };
        let p = MountPlan::build(&plan(), &etc()).unwrap();
        assert!(sys(&p).contains(MsFlags::MS_RDONLY));
        let mut privileged = plan();
        privileged.privileged = true;
        let p = MountPlan::build(&privileged, &etc()).unwrap();
        assert!(!sys(&p).contains(MsFlags::MS_RDONLY));
        assert!(!p
            .steps
            .iter()
            .any(|s| matches!(s, Step::Mask { .. } | Step::Readonly { .. })));
    }

    #[test]
    fn user_mounts_come_last_normalised() {
        let mut pl = plan();
        pl.mounts = vec![
            MountSpec::Bind {
                source: "/host/src".into(),
                target: "/src/./app/".into(),
                readonly: true,
            },
            MountSpec::Tmpfs {
                target: "/tmp".into(),
                size: Some(1024),
            },
        ];
        let p = MountPlan::build(&pl, &etc()).unwrap();
        let n = p.steps.len();
        assert_eq!(
            p.steps[n - 2],
            Step::Bind {
                source: "/host/src".into(),
                target: "/src/app".into(),
                stub: Stub::LikeSource,
                recursive: true,
                readonly: true
            }
        );
        assert!(
            matches!(&p.steps[n - 1], Step::Fs { target, fstype: "tmpfs", data, .. } if target == "/tmp" && data == "mode=1777,size=1024")
        );
    }

    #[test]
    fn invalid_plans_are_refused() {
        let mut pl = plan();
        pl.args.clear();
        assert!(MountPlan::build(&pl, &etc()).is_err());
        let mut pl = plan();
        pl.cwd = "rel".into();
        assert!(MountPlan::build(&pl, &etc()).is_err());
        let mut pl = plan();
        pl.mounts = vec![MountSpec::Tmpfs {
            target: "/x/..".into(),
            size: None,
        }];
        assert!(MountPlan::build(&pl, &etc()).is_err());
    }

    #[test]
    fn stub_candidates_skip_paths_inside_other_mounts_and_list_parents_deepest_first() {
        let mut pl = plan();
        pl.mounts = vec![
            MountSpec::Tmpfs {
                target: "/cache".into(),
                size: None,
            },
            MountSpec::Bind {
                source: "/h".into(),
                target: "/cache/inner".into(),
                readonly: false,
            },
            MountSpec::Bind {
                source: "/h".into(),
                target: "/a/b".into(),
                readonly: false,
            },
        ];
        pl.cwd = "/a/x".into();
        let c = MountPlan::build(&pl, &etc()).unwrap().stub_candidates();
        assert_eq!(
            c,
            vec![
                "/a/b",
                "/etc/hosts",
                "/etc/resolv.conf",
                "/cache",
                "/dev",
                "/etc",
                "/proc",
                "/sys"
            ]
        );
    }

    #[test]
    fn hosts_file_has_localhost_hostname_and_extras() {
        let h = hosts_file("box", &[("db".into(), "10.0.0.2".into())]);
        assert_eq!(
            h,
            "127.0.0.1\tlocalhost box\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.0.2\tdb\n"
        );
        assert!(hosts_file("", &[]).starts_with("127.0.0.1\tlocalhost\n"));
    }
}
