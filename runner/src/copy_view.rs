//! A writable layer view made by copying, with an overlay-format diff written back into
//! the upper dir: the fallback for overlayfs (`BAKE_SNAPSHOTTER=copy`, or `auto` where
//! the kernel refuses overlayfs in a user namespace), like buildah's `vfs` driver.
//!
//! [`populate`] flattens the lowers and an existing upper dir into a plain directory
//! tree and records a baseline; the container (or a COPY) works on that tree; [`sync`]
//! then writes what changed into the upper dir exactly as overlayfs would have — copied
//! up parents, whiteouts, opaque directories — so that the store packs the same layer
//! either way. Costs a copy of the rootfs per view (a reflink on xfs and btrfs, through
//! copy_file_range) instead of a mount.
//!
//! One difference from overlayfs that the baseline cannot see: a file only opened for
//! writing, never written, is copied up by overlayfs but unchanged here.

mod baseline;
mod mode;
mod node;
mod populate;
mod sync;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

pub(crate) use mode::{configured, copying, fall_back, sandbox_copies};
pub(crate) use sync::sync_into_upper;

use crate::mounts::apply::errno;
use crate::Error;

/// The copied tree's name in a sandbox's scratch dir.
pub(crate) const TREE: &str = "copy-tree";

/// Populates `tree` from `lowers` (top first) and `upper`, and saves its baseline next
/// to it for [`sync_into_upper`].
///
/// # Errors
/// [`Error::CopyView`].
pub(crate) fn prepare(lowers: &[PathBuf], upper: &Path, tree: &Path) -> Result<(), Error> {
    let base = populate::populate(lowers, Some(upper), tree)?;
    keep(&base, tree)
}

/// Saves the baseline of a writable tree, once the coarse clock has passed the
/// newest ctime it records (so that a write right after cannot keep that ctime).
/// Read-only views keep no baseline and do not wait.
fn keep(base: &baseline::Baseline, tree: &Path) -> Result<(), Error> {
    baseline::wait_past(base.newest_ctime());
    base.save(&baseline::path_of(tree))
}

/// Writes what a running container in copy mode has changed so far into its upper dir,
/// so that `bake diff` and `bake commit` see it (overlayfs shows them at once; a copied
/// tree is otherwise synced when the container exits). `work` is the container's
/// overlay work dir and `supervisor` its supervisor's pid. Returns false when the
/// container does not run on a copied tree.
///
/// # Errors
/// [`Error::CopyView`] naming the operation and path that failed.
pub fn sync_running(work: &Path, upper: &Path, supervisor: u32) -> Result<bool, Error> {
    let tree = crate::sandbox::scratch_dir(work, supervisor).join(TREE);
    sync_into_upper(&tree, upper, false)
}

/// Writes into `upper` the copied trees that earlier sandboxes of the same container
/// left next to `work` (call it before making the caller's own scratch dir) because their supervisor was killed before its final sync (a
/// SIGKILL of `bake run`, whose sandbox dies with it), then removes their scratch dirs.
/// With overlayfs such a container's changes are in its upper dir already; without
/// this, a copied container would lose them at its next start. A scratch dir whose
/// supervisor pid is alive (or taken again by another process) is left alone.
///
/// # Errors
/// [`Error::CopyView`] naming the tree that could not be synced (it is kept).
pub(crate) fn recover(work: &Path, upper: &Path) -> Result<(), Error> {
    let Some(parent) = work.parent() else {
        return Ok(());
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(crate::sandbox::SCRATCH_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        // A zombie or a reused pid has another command line than a live sandbox's; one
        // with the caller's pid is a dead run's (the caller has not made its own yet).
        let alive = pid != std::process::id()
            && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                cmdline.split(|b| *b == 0).nth(1) == Some(crate::SANDBOX_ARG.as_bytes())
            });
        if alive {
            continue;
        }
        let scratch = entry.path();
        if sync_into_upper(&scratch.join(TREE), upper, true)? {
            let _ = std::fs::remove_dir_all(&scratch);
        }
    }
    Ok(())
}

/// The error of `op` on `root/rel` (`rel` relative, `""` for `root` itself).
fn err(op: &'static str, root: &Path, rel: &[u8]) -> impl Fn(Errno) -> Error {
    let path = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(String::from_utf8_lossy(rel).as_ref())
    };
    move |e| Error::CopyView {
        op: op.into(),
        path: path.clone(),
        source: errno(e),
    }
}

/// [`err`] for a `std::io::Error`.
fn io_err(op: &'static str, path: &Path) -> impl Fn(std::io::Error) -> Error {
    let fail = err(op, path, b"");
    move |e| fail(Errno::from_io_error(&e).unwrap_or(Errno::IO))
}

/// Opens a directory given by a path bake owns (a layer, an upper dir, a tree).
fn open_root(path: &Path) -> Result<OwnedFd, Error> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(err("opening", path, b""))
}

/// A host-side view made by copying (see [`crate::OverlayMount`]).
#[derive(Debug)]
pub(crate) struct CopyView {
    tree: PathBuf,
    upper: Option<PathBuf>,
}

impl CopyView {
    /// Copies `lowers` and `upper` to `target`.
    pub(crate) fn new(
        lowers: &[PathBuf],
        upper: Option<&Path>,
        target: &Path,
    ) -> Result<CopyView, Error> {
        let base = populate::populate(lowers, upper, target)?;
        let view = CopyView {
            tree: target.to_path_buf(),
            upper: upper.map(Path::to_path_buf),
        };
        let ready = match upper {
            Some(_) => keep(&base, target),
            None => read_only(target),
        };
        if let Err(e) = ready {
            // Emptied again, as a mount that failed would have left the target.
            view.remove();
            return Err(e);
        }
        Ok(view)
    }

    /// Writes the changes into the upper dir (nothing for a read-only view).
    pub(crate) fn finish(&self) -> Result<(), Error> {
        if let Some(upper) = &self.upper {
            sync_into_upper(&self.tree, upper, true)?;
        }
        Ok(())
    }

    /// Empties the target again (best effort), as an unmount would.
    pub(crate) fn remove(&self) {
        if self.upper.is_none() {
            let _ = nix::mount::umount2(&self.tree, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_file(baseline::path_of(&self.tree));
        let _ = std::fs::remove_file(baseline::lock_path_of(&self.tree));
        if let Ok(dir) = open_root(&self.tree) {
            for name in node::names(&dir).unwrap_or_default() {
                let _ = node::remove_all(&dir, &name);
            }
        }
    }
}

/// Bind-mounts `target` on itself read-only, so that a read-only view refuses writes
/// as an overlay without upper dir does (what `mount_layers` does for one lower).
fn read_only(target: &Path) -> Result<(), Error> {
    crate::overlay::mount_layers(&[target.to_path_buf()], None, target, false)
}

#[cfg(test)]
mod tests;
