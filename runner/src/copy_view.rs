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

use std::path::{Path, PathBuf};

pub(crate) use mode::{configured, copying, fall_back, sandbox_copies};
pub(crate) use sync::sync_into_upper;

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
    sync::save(&base, &baseline::path_of(tree))
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
    sync_into_upper(&sync::tree_of_container(work, supervisor), upper, false)
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
        if upper.is_some() {
            sync::save(&base, &baseline::path_of(target))?;
        } else if let Err(e) = read_only(target) {
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
        if let Ok(dir) = rustix::fs::open(
            &self.tree,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        ) {
            for name in node::names(&dir).unwrap_or_default() {
                let _ = node::remove_all(&dir, &name);
            }
        }
    }
}

/// Bind-mounts `target` on itself read-only, so that a read-only view refuses writes
/// as an overlay without upper dir does.
fn read_only(target: &Path) -> Result<(), Error> {
    use nix::mount::{mount, MsFlags};
    let fail = |source| Error::RemountReadonly {
        target: target.to_path_buf(),
        source,
    };
    mount(
        Some(target),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(fail)?;
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>).map_err(|e| {
        let _ = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH);
        fail(e)
    })
}

#[cfg(test)]
mod tests;
