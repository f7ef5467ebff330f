//! What the host must provide before a command mounts anything.

use anyhow::Result;

/// Checks that this host can build and run containers (root, overlayfs),
/// with the runner's own explanation when it cannot, then moves bake into a
/// private mount namespace so that the overlay mounts of COPY and friends
/// never show up on (or leak into) the host.
///
/// Must be called before any thread is spawned: `unshare(CLONE_NEWNS)`
/// affects only the calling thread's view, so a thread started earlier (a
/// registry transfer, a progress ticker) would keep the host's namespace.
pub fn prepare_mounts() -> Result<()> {
    bake_runner::check_support()?;
    bake_runner::enter_private_mount_namespace()?;
    Ok(())
}
