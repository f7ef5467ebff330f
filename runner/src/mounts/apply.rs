//! The executor of a [`MountPlan`]: runs inside the sandbox's own mount namespace,
//! before pivot_root, with the rootfs mounted at `root`.
//!
//! Every target is resolved beneath the rootfs with `openat2(RESOLVE_IN_ROOT)` and
//! mounted on through its `/proc/self/fd/N` path, so a symlink in an image (`/etc/hosts
//! -> /etc/passwd-of-the-host`, `/proc -> /`) can never redirect a mount onto the host.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags, StatVfsMountFlags};

use super::plan::{Step, Stub};
use super::MountPlan;
use crate::Error;

/// rustix's errno as nix's (the error type used in [`Error`]).
pub(crate) fn errno(e: rustix::io::Errno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

/// `/proc/self/fd/N`: a path naming exactly the opened file, for mount(2).
pub(crate) fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Opens `path` (absolute, in the container) beneath `root` with O_PATH, following
/// symlinks as if `root` were `/`.
pub(crate) fn open_in_root(root: &impl AsFd, path: &str) -> Result<OwnedFd, Errno> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    rustix::fs::openat2(
        root,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(errno)
}

/// Splits `/a/b/c` into (`/a/b`, `c`).
fn split_parent(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("/", path),
    }
}

/// Makes sure `path` exists beneath `root`, creating missing parents as directories and
/// the last component as `kind` (`Stub::LikeSource` must be resolved before).
pub(crate) fn ensure(root: &impl AsFd, path: &str, kind: Stub) -> Result<(), Error> {
    let fail = |source| Error::CreateMountPoint {
        path: path.to_string(),
        source,
    };
    match open_in_root(root, path) {
        Ok(_) => return Ok(()),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(fail(e)),
    }
    let (parent, name) = split_parent(path);
    if parent != "/" {
        ensure(root, parent, Stub::Dir)?;
    }
    let dir = open_in_root(root, parent).map_err(fail)?;
    let created = match kind {
        Stub::File => rustix::fs::openat(
            &dir,
            name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o644),
        )
        .map(drop),
        Stub::Dir | Stub::LikeSource => rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)),
    };
    match created.map_err(errno) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(fail(e)),
    }
}

fn container_path(root: &Path, target: &str) -> PathBuf {
    root.join(target.trim_start_matches('/'))
}

/// The per-mount flags of the mount `fd` is on, to keep them when remounting read-only.
fn current_flags(fd: &OwnedFd) -> MsFlags {
    let Ok(vfs) = rustix::fs::fstatvfs(fd) else {
        return MsFlags::empty();
    };
    let mut flags = MsFlags::empty();
    for (st, ms) in [
        (StatVfsMountFlags::NOSUID, MsFlags::MS_NOSUID),
        (StatVfsMountFlags::NODEV, MsFlags::MS_NODEV),
        (StatVfsMountFlags::NOEXEC, MsFlags::MS_NOEXEC),
        (StatVfsMountFlags::NOATIME, MsFlags::MS_NOATIME),
        (StatVfsMountFlags::NODIRATIME, MsFlags::MS_NODIRATIME),
        (StatVfsMountFlags::RELATIME, MsFlags::MS_RELATIME),
    ] {
        if vfs.f_flag.contains(st) {
            flags |= ms;
        }
    }
    flags
}

/// Remounts the mount now on top of `target` read-only (a bind remount: only this
/// mount point becomes read-only, not the filesystem).
pub(crate) fn remount_readonly(root: &impl AsFd, target: &str, shown: &Path) -> Result<(), Error> {
    let fail = |source| Error::RemountReadonly {
        target: shown.to_path_buf(),
        source,
    };
    // Reopened after the mount: an fd opened before it would name the covered directory.
    let fd = open_in_root(root, target).map_err(fail)?;
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | current_flags(&fd);
    mount(
        None::<&str>,
        &fd_path(&fd),
        None::<&str>,
        flags,
        None::<&str>,
    )
    .map_err(fail)
}

fn apply_step(root_path: &Path, root: &OwnedFd, step: &Step) -> Result<(), Error> {
    match step {
        Step::Fs {
            target,
            fstype,
            source,
            flags,
            data,
            optional,
        } => {
            let shown = container_path(root_path, target);
            let fail = |source| Error::Mount {
                fstype: fstype.to_string(),
                target: shown.clone(),
                source,
            };
            ensure(root, target, Stub::Dir)?;
            let fd = open_in_root(root, target).map_err(fail)?;
            let data = (!data.is_empty()).then_some(data.as_str());
            match mount(Some(*source), &fd_path(&fd), Some(*fstype), *flags, data) {
                Ok(()) => Ok(()),
                Err(_) if *optional => Ok(()),
                // Rootless (see `crate::rootless`): no sysfs without our own network
                // namespace, no devpts `gid=5` without gid 5 mapped.
                Err(Errno::EPERM) if *fstype == "sysfs" && crate::rootless::in_user_namespace() => {
                    let path = fd_path(&fd);
                    let rbind = MsFlags::MS_BIND | MsFlags::MS_REC;
                    mount(Some("/sys"), &path, None::<&str>, rbind, None::<&str>).map_err(fail)?;
                    if flags.contains(MsFlags::MS_RDONLY) {
                        remount_readonly(root, target, &shown)?;
                    }
                    Ok(())
                }
                Err(Errno::EINVAL)
                    if *fstype == "devpts" && crate::rootless::in_user_namespace() =>
                {
                    let data = data.map(|d| {
                        d.split(',')
                            .filter(|o| !o.starts_with("gid="))
                            .collect::<Vec<_>>()
                            .join(",")
                    });
                    mount(
                        Some(*source),
                        &fd_path(&fd),
                        Some(*fstype),
                        *flags,
                        data.as_deref(),
                    )
                    .map_err(fail)
                }
                Err(e) => Err(fail(e)),
            }
        }
        Step::Bind {
            source,
            target,
            stub,
            recursive,
            readonly,
        } => {
            let shown = container_path(root_path, target);
            let fail = |e| Error::BindMount {
                from: source.clone(),
                target: shown.clone(),
                source: e,
            };
            let kind = match stub {
                Stub::LikeSource => match std::fs::metadata(source) {
                    Ok(m) if m.is_dir() => Stub::Dir,
                    Ok(_) => Stub::File,
                    Err(e) => return Err(fail(Errno::from_raw(e.raw_os_error().unwrap_or(0)))),
                },
                kind => *kind,
            };
            ensure(root, target, kind)?;
            let fd = open_in_root(root, target).map_err(fail)?;
            let mut flags = MsFlags::MS_BIND;
            if *recursive {
                flags |= MsFlags::MS_REC;
            }
            mount(
                Some(source.as_path()),
                &fd_path(&fd),
                None::<&str>,
                flags,
                None::<&str>,
            )
            .map_err(fail)?;
            if *readonly {
                remount_readonly(root, target, &shown)?;
            }
            Ok(())
        }
        Step::Symlink { path, points_to } => {
            let (parent, name) = split_parent(path);
            let fail = |source| Error::CreateMountPoint {
                path: path.clone(),
                source,
            };
            let dir = open_in_root(root, parent).map_err(fail)?;
            match rustix::fs::symlinkat(points_to.as_str(), &dir, name).map_err(errno) {
                Ok(()) | Err(Errno::EEXIST) => Ok(()),
                Err(e) => Err(fail(e)),
            }
        }
        Step::Mask { target } => {
            let shown = container_path(root_path, target);
            let fd = match open_in_root(root, target) {
                Ok(fd) => fd,
                Err(_) => return Ok(()), // nothing to hide
            };
            let is_dir = rustix::fs::fstat(&fd)
                .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
                .unwrap_or(false);
            let result = if is_dir {
                mount(
                    Some("tmpfs"),
                    &fd_path(&fd),
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY,
                    Some("size=0"),
                )
            } else {
                mount(
                    Some("/dev/null"),
                    &fd_path(&fd),
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
            };
            result.map_err(|source| Error::Mount {
                fstype: if is_dir { "tmpfs" } else { "bind of /dev/null" }.into(),
                target: shown,
                source,
            })
        }
        Step::Readonly { target } => {
            let shown = container_path(root_path, target);
            let Ok(fd) = open_in_root(root, target) else {
                return Ok(()); // absent on this kernel
            };
            let path = fd_path(&fd);
            mount(
                Some(&path),
                &path,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|source| Error::BindMount {
                from: shown.clone(),
                target: shown.clone(),
                source,
            })?;
            remount_readonly(root, target, &shown)
        }
    }
}

/// Applies `plan` to the rootfs mounted at `root_path`, in order.
pub(crate) fn apply(root_path: &Path, plan: &MountPlan) -> Result<(), Error> {
    let root = rustix::fs::open(
        root_path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::Mount {
        fstype: "rootfs".into(),
        target: root_path.to_path_buf(),
        source: errno(e),
    })?;
    for step in &plan.steps {
        apply_step(root_path, &root, step)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_parent_handles_top_level() {
        assert_eq!(split_parent("/etc/hosts"), ("/etc", "hosts"));
        assert_eq!(split_parent("/proc"), ("/", "proc"));
    }

    #[test]
    fn ensure_creates_stubs_beneath_root_even_through_absolute_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root =
            rustix::fs::open(dir.path(), OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        // An absolute symlink in the image must resolve inside the rootfs.
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink("/real", dir.path().join("link")).unwrap();
        ensure(&root, "/link/sub/file", Stub::File).unwrap();
        assert!(dir.path().join("real/sub/file").is_file());
        ensure(&root, "/a/b", Stub::Dir).unwrap();
        assert!(dir.path().join("a/b").is_dir());
        // Existing paths are left alone.
        ensure(&root, "/a", Stub::File).unwrap();
        assert!(dir.path().join("a").is_dir());
    }
}
