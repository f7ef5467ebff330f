//! Overlay mounts, the host-side mount namespace, and the support check.

use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use rustix::fs::{Mode, OFlags};

use crate::mounts::apply::{errno, fd_path};
use crate::Error;

/// mount(2) copies at most one page of options.
const MAX_OPTIONS: usize = 4095;

/// Options that keep the upper dir a plain diff that any tar writer understands:
/// no hard-link index, no `redirect` xattrs for renamed dirs (a rename copies the dir
/// up), no metadata-only copy-ups. Retried without them on kernels that lack them.
const PLAIN_DIFF: &str = "index=off,redirect_dir=off,metacopy=off";
/// The same in a user namespace: `userxattr` keeps overlay metadata in `user.*` xattrs
/// (root of a user namespace cannot set `trusted.*`) and refuses `redirect_dir=off`
/// (whose `follow` part it does not allow); its default, `nofollow`, is what we want.
const PLAIN_DIFF_USERXATTR: &str = "index=off,metacopy=off";

/// The overlayfs option string (pure).
pub(crate) fn overlay_options(
    lowers: &[String],
    upper: Option<(&str, &str)>,
    plain: bool,
    userxattr: bool,
) -> String {
    let mut out = format!("lowerdir={}", lowers.join(":"));
    if let Some((upper, work)) = upper {
        out.push_str(&format!(",upperdir={upper},workdir={work}"));
    }
    if plain {
        out.push(',');
        out.push_str(if userxattr {
            PLAIN_DIFF_USERXATTR
        } else {
            PLAIN_DIFF
        });
    }
    if userxattr {
        out.push_str(",userxattr");
    }
    out
}

/// True if `path` can go into an option string as it is (`,` and `:` separate options
/// and layers, `\` escapes).
fn option_safe(path: &Path) -> bool {
    !path
        .as_os_str()
        .as_bytes()
        .iter()
        .any(|b| matches!(b, b',' | b':' | b'\\'))
}

fn open_path(path: &Path) -> Result<OwnedFd, Errno> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)
}

/// Mounts an overlay of `lowers` (top first, at least one) with an optional (upper,
/// work) pair on `target`. `volatile`: skip every sync of the upper dir, including the
/// one at unmount (see [`mount_layers`]).
///
/// Layer paths that are long (options are limited to one page) or contain `,` `:` `\`
/// are passed as `/proc/self/fd/N` of an O_PATH fd held during the call: short,
/// unambiguous, and it works without chdir (which a threaded caller must not do).
pub(crate) fn mount_overlayfs(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
    volatile: bool,
) -> Result<(), Error> {
    let plain_len: usize = lowers
        .iter()
        .map(|l| l.as_os_str().len() + 1)
        .sum::<usize>()
        + upper.map_or(0, |(u, w)| u.as_os_str().len() + w.as_os_str().len() + 20);
    let use_fds = plain_len + PLAIN_DIFF.len() + 16 > MAX_OPTIONS
        || !lowers.iter().all(|l| option_safe(l))
        || !upper
            .into_iter()
            .all(|(u, w)| option_safe(u) && option_safe(w));
    let shown_lowers = lowers
        .iter()
        .map(|l| l.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let fail = |source| Error::MountOverlay {
        target: target.to_path_buf(),
        lowers: shown_lowers.clone(),
        source,
    };
    let mut held = Vec::new();
    let mut name = |p: &Path| -> Result<String, Error> {
        if use_fds {
            let fd = open_path(p).map_err(fail)?;
            let s = fd_path(&fd).display().to_string();
            held.push(fd);
            Ok(s)
        } else {
            Ok(p.display().to_string())
        }
    };
    let lower_names = lowers
        .iter()
        .map(|l| name(l))
        .collect::<Result<Vec<_>, _>>()?;
    let upper_names = match upper {
        Some((u, w)) => Some((name(u)?, name(w)?)),
        None => None,
    };
    let upper_refs = upper_names.as_ref().map(|(u, w)| (u.as_str(), w.as_str()));
    let volatile = volatile && upper.is_some();
    let try_mount = |plain, volatile| {
        let userxattr = crate::rootless::in_user_namespace();
        let mut options = overlay_options(&lower_names, upper_refs, plain, userxattr);
        if volatile {
            options.push_str(",volatile");
        }
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
    };
    // An older kernel without one of the plain-diff options, or without `volatile`
    // (5.10): retried without them.
    let result = match try_mount(true, volatile) {
        Err(Errno::EINVAL) => match try_mount(false, volatile) {
            Err(Errno::EINVAL) if volatile => try_mount(false, false),
            other => other,
        },
        other => other,
    };
    match result {
        // Rootless: the kernel refuses overlayfs in a user namespace (before 5.11, or
        // an upper filesystem without user xattrs). Callers under BAKE_SNAPSHOTTER=auto
        // fall back to copying on this error (`copy_view`).
        Err(e @ (Errno::EPERM | Errno::EINVAL)) if crate::rootless::in_user_namespace() => {
            Err(Error::Rootless {
                feature: format!(
                    "overlayfs on {}: the kernel refused it in a user namespace ({e}); it \
                     needs Linux 5.11 or later and user xattrs on the store's file system \
                     (BAKE_SNAPSHOTTER=copy copies layers instead)",
                    target.display()
                ),
            })
        }
        other => other.map_err(fail),
    }
}

/// Mounts `lowers` (top first) and an optional upper: the rootfs of a sandbox or a view
/// for host-side file operations. Picks the cheapest mount that behaves the same:
/// no layers at all → the upper bind-mounted (nothing below to whiteout) or an empty
/// read-only tmpfs; one layer, no upper → a read-only bind; else overlayfs.
///
/// `volatile` (overlayfs only): the upper dir is never synced, not even when the last
/// user of the mount goes. That sync is a journal commit of the store's filesystem and
/// was most of a short container's life here (44 of 53 ms for `true`); it buys nothing
/// for a container's layer, which is no build result. The kernel then leaves
/// `work/work/incompat/volatile` behind and refuses to mount the pair again until it is
/// removed (see [`clear_volatile`]).
pub(crate) fn mount_layers(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
    volatile: bool,
) -> Result<(), Error> {
    let bind = |from: &Path| bind_mount(from, target);
    match (lowers, upper) {
        ([], Some((upper, _work))) => bind(upper),
        ([], None) => mount(
            Some("tmpfs"),
            target,
            Some("tmpfs"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=755,size=4k"),
        )
        .map_err(|source| Error::Mount {
            fstype: "tmpfs".into(),
            target: target.to_path_buf(),
            source,
        }),
        ([lower], None) => {
            bind(lower)?;
            let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
            mount(None::<&str>, target, None::<&str>, flags, None::<&str>).map_err(|source| {
                let _ = umount2(target, MntFlags::MNT_DETACH);
                Error::RemountReadonly {
                    target: target.to_path_buf(),
                    source,
                }
            })
        }
        (lowers, upper) => mount_overlayfs(lowers, upper, target, volatile),
    }
}

/// `mount --bind from target`.
pub(crate) fn bind_mount(from: &Path, target: &Path) -> Result<(), Error> {
    mount(
        Some(from),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|source| Error::BindMount {
        from: from.to_path_buf(),
        target: target.to_path_buf(),
        source,
    })
}

/// Removes the marker a `volatile` overlay leaves in its work dir, so the same upper
/// can be mounted again (`bake start`). Only for a clean stop: the caller saw the
/// container exit, so the page cache still holds everything it wrote.
pub(crate) fn clear_volatile(work: &Path) {
    let _ = std::fs::remove_dir_all(work.join("work").join("incompat"));
}

/// A mounted layer view; unmounted (lazily, `MNT_DETACH`) on drop. With the copying
/// snapshotter, a copied tree at the target instead, emptied on drop; its changes reach
/// the upper dir only through [`OverlayMount::finish`].
#[derive(Debug)]
pub struct OverlayMount {
    target: PathBuf,
    copy: Option<crate::copy_view::CopyView>,
}

impl OverlayMount {
    /// Where the view is mounted.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Ends a writable view whose changes are the result: with overlayfs they are in the
    /// upper dir already and the view is unmounted; a copied view writes them into the
    /// upper dir first (as overlayfs would have). Views whose writes are thrown away are
    /// just dropped.
    ///
    /// # Errors
    /// [`Error::CopyView`] when a copied view cannot be synced.
    pub fn finish(self) -> Result<(), Error> {
        match &self.copy {
            Some(copy) => copy.finish(),
            None => Ok(()),
        }
    }
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        match &self.copy {
            Some(copy) => copy.remove(),
            None => {
                let _ = umount2(&self.target, MntFlags::MNT_DETACH);
            }
        }
    }
}

/// Mounts `lowers` (top first) with an optional writable `(upper, work)` pair on
/// `target`, for host-side file operations (COPY). With one lower and no upper it is a
/// read-only bind mount; with neither, an empty read-only tmpfs; with no lowers and an
/// upper, the upper bind-mounted. The mount is private to the process's mount namespace
/// when [`enter_private_mount_namespace`] was called at start.
///
/// # Errors
/// [`Error::MountOverlay`], [`Error::BindMount`], [`Error::Mount`] or
/// [`Error::RemountReadonly`] with the kernel's errno.
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<OverlayMount, Error> {
    // Only what would be overlayfs is copied: binds and the empty tmpfs work anywhere.
    let overlayfs = lowers.len() > 1 || (!lowers.is_empty() && upper.is_some());
    let copy = || crate::copy_view::CopyView::new(lowers, upper.map(|(u, _)| u), target).map(Some);
    let copy = if overlayfs && crate::copy_view::copying() {
        copy()?
    } else {
        match mount_layers(lowers, upper, target, false) {
            Ok(()) => None,
            Err(Error::Rootless { .. }) if overlayfs && crate::copy_view::fall_back() => copy()?,
            Err(e) => return Err(e),
        }
    };
    Ok(OverlayMount {
        target: target.to_path_buf(),
        copy,
    })
}

/// Moves the calling process into a new mount namespace in which `/` is recursively
/// private, so that the overlay mounts bake makes for COPY never show on the host and
/// vanish when bake exits.
///
/// Root only. Call it first thing in `main`, before any thread starts: unshare(2) of a
/// mount namespace fails with EINVAL once the filesystem context is shared by threads.
///
/// # Errors
/// [`Error::Unshare`] or [`Error::MakePrivate`].
pub fn enter_private_mount_namespace() -> Result<(), Error> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|source| Error::Unshare {
        namespaces: "CLONE_NEWNS".into(),
        source,
    })?;
    make_private("/")
}

/// `mount --make-rprivate path`.
pub(crate) fn make_private(path: &str) -> Result<(), Error> {
    mount(
        None::<&str>,
        path,
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|source| Error::MakePrivate {
        target: path.into(),
        source,
    })
}

/// Checks that sandboxes can be built here: running as root (real, or of the user
/// namespace the cli enters in rootless mode) and overlayfs known to the kernel.
///
/// # Errors
/// [`Error::Snapshotter`] for a bad `BAKE_SNAPSHOTTER`, [`Error::NotRoot`],
/// [`Error::OverlayUnsupported`], or [`Error::ReadHost`] when
/// `/proc/filesystems` cannot be read (no /proc?).
pub fn check_support() -> Result<(), Error> {
    crate::copy_view::configured()?;
    if !rustix::process::geteuid().is_root() {
        return Err(Error::NotRoot);
    }
    if crate::copy_view::copying() {
        return Ok(()); // BAKE_SNAPSHOTTER=copy needs no overlayfs
    }
    let path = Path::new("/proc/filesystems");
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadHost {
        path: path.into(),
        source,
    })?;
    if !filesystems_have_overlay(&text) {
        return Err(Error::OverlayUnsupported);
    }
    Ok(())
}

/// Whether a `/proc/filesystems` listing has overlayfs (pure).
fn filesystems_have_overlay(text: &str) -> bool {
    text.lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_join_lowers_top_first() {
        let lowers = vec!["/l2".to_string(), "/l1".to_string()];
        assert_eq!(
            overlay_options(&lowers, Some(("/u", "/w")), true, false),
            "lowerdir=/l2:/l1,upperdir=/u,workdir=/w,index=off,redirect_dir=off,metacopy=off"
        );
        assert_eq!(
            overlay_options(&lowers, None, false, false),
            "lowerdir=/l2:/l1"
        );
        // In a user namespace (rootless): user.* xattrs, redirect_dir left alone.
        assert_eq!(
            overlay_options(&lowers, Some(("/u", "/w")), true, true),
            "lowerdir=/l2:/l1,upperdir=/u,workdir=/w,index=off,metacopy=off,userxattr"
        );
        assert_eq!(
            overlay_options(&lowers, None, false, true),
            "lowerdir=/l2:/l1,userxattr"
        );
    }

    #[test]
    fn unsafe_paths_are_detected() {
        assert!(option_safe(Path::new("/var/lib/bake/snapshots/abc/diff")));
        assert!(!option_safe(Path::new("/a,b")));
        assert!(!option_safe(Path::new("/a:b")));
    }

    #[test]
    fn overlay_in_proc_filesystems() {
        assert!(filesystems_have_overlay(
            "nodev\tsysfs\nnodev\toverlay\n\text4\n"
        ));
        assert!(!filesystems_have_overlay("nodev\tsysfs\n\text4\n"));
    }
}
