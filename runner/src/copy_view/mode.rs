//! Which snapshotter builds rootfs views: `BAKE_SNAPSHOTTER=overlay|copy|auto` (unset:
//! `auto`). Like buildah's `vfs` driver, `copy` works wherever files can be copied;
//! `auto` uses overlayfs and switches to copying for the rest of the process when the
//! kernel refuses overlayfs in a user namespace (before Linux 5.11, or a store on a
//! filesystem without user xattrs).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use crate::Error;

/// The environment variable that picks the snapshotter.
pub(crate) const VAR: &str = "BAKE_SNAPSHOTTER";

/// A snapshotter choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Snapshotter {
    /// overlayfs, never copying (an error where the kernel refuses it).
    Overlay,
    /// Always copying, as root too.
    Copy,
    /// overlayfs, copying once the kernel has refused it in a user namespace.
    Auto,
}

/// Parses the variable's value (pure).
pub(crate) fn parse(value: Option<&str>) -> Result<Snapshotter, Error> {
    match value {
        None | Some("" | "auto") => Ok(Snapshotter::Auto),
        Some("overlay" | "overlayfs") => Ok(Snapshotter::Overlay),
        Some("copy" | "vfs") => Ok(Snapshotter::Copy),
        Some(other) => Err(Error::Snapshotter {
            value: other.to_string(),
        }),
    }
}

/// The configured snapshotter (the environment is read once per process).
///
/// # Errors
/// [`Error::Snapshotter`] for a value that is not `overlay`, `copy` or `auto`.
pub(crate) fn configured() -> Result<Snapshotter, Error> {
    static MODE: OnceLock<Result<Snapshotter, String>> = OnceLock::new();
    MODE.get_or_init(|| {
        let value = std::env::var(VAR).ok();
        parse(value.as_deref()).map_err(|_| value.unwrap_or_default())
    })
    .clone()
    .map_err(|value| Error::Snapshotter { value })
}

/// Set once `auto` has seen overlayfs refused.
static FELL_BACK: AtomicBool = AtomicBool::new(false);

/// Whether views are made by copying now.
pub(crate) fn copying() -> bool {
    match configured() {
        Ok(Snapshotter::Copy) => true,
        Ok(Snapshotter::Auto) => FELL_BACK.load(Ordering::Relaxed),
        _ => false,
    }
}

/// Called when the kernel refused overlayfs in a user namespace: true (and copying from
/// now on) under `auto`, false under `overlay`.
pub(crate) fn fall_back() -> bool {
    if matches!(configured(), Ok(Snapshotter::Auto)) {
        FELL_BACK.store(true, Ordering::Relaxed);
        true
    } else {
        false
    }
}

/// Whether a sandbox whose work dir is `work` must run on a copied tree. The sandbox
/// mounts its rootfs in a process of its own, which cannot fall back by itself, so
/// under `auto` in a user namespace this process tries one overlay mount first (once,
/// next to `work`, on the store's filesystem) and falls back if it is refused.
///
/// # Errors
/// [`Error::Snapshotter`] for a bad `BAKE_SNAPSHOTTER`.
pub(crate) fn sandbox_copies(work: &Path) -> Result<bool, Error> {
    match configured()? {
        Snapshotter::Copy => return Ok(true),
        Snapshotter::Overlay => return Ok(false),
        Snapshotter::Auto => {}
    }
    if FELL_BACK.load(Ordering::Relaxed) || !crate::rootless::in_user_namespace() {
        return Ok(copying());
    }
    static PROBED: OnceLock<()> = OnceLock::new();
    PROBED.get_or_init(|| {
        let parent = work.parent().unwrap_or(Path::new("/tmp"));
        if let Ok(dir) = probe_dir(parent) {
            let d = |n: &str| dir.join(n);
            let made = ["l1", "l2", "u", "w", "m"]
                .iter()
                .all(|n| std::fs::create_dir(d(n)).is_ok());
            if made {
                match crate::overlay::mount_overlayfs(
                    &[d("l1"), d("l2")],
                    Some((&d("u"), &d("w"))),
                    &d("m"),
                    false,
                ) {
                    Ok(()) => {
                        let _ = nix::mount::umount2(&d("m"), nix::mount::MntFlags::MNT_DETACH);
                    }
                    Err(Error::Rootless { .. }) => {
                        fall_back();
                    }
                    Err(_) => {}
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    });
    Ok(copying())
}

fn probe_dir(parent: &Path) -> std::io::Result<std::path::PathBuf> {
    let dir = parent.join(format!(".bake-overlay-probe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_and_unknown_ones_are_named() {
        assert_eq!(parse(None).unwrap(), Snapshotter::Auto);
        assert_eq!(parse(Some("auto")).unwrap(), Snapshotter::Auto);
        assert_eq!(parse(Some("copy")).unwrap(), Snapshotter::Copy);
        assert_eq!(parse(Some("overlay")).unwrap(), Snapshotter::Overlay);
        let e = parse(Some("bogus")).unwrap_err().to_string();
        assert!(e.contains("BAKE_SNAPSHOTTER") && e.contains("bogus"), "{e}");
    }

    #[test]
    fn auto_copies_for_the_rest_of_the_process_once_refused() {
        // The test binary runs without BAKE_SNAPSHOTTER (the CI scripts never set it).
        if std::env::var_os(VAR).is_some() {
            eprintln!("skipped: {VAR} is set");
            return;
        }
        assert!(!copying());
        assert!(fall_back());
        assert!(copying());
    }
}
