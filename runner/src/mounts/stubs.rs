//! Mount-point stubs must not land in the layer.
//!
//! When a mount target (`/proc`, `/etc/hosts`, a `--mount` target) is missing from the
//! rootfs, the sandbox creates it, and overlayfs records it (and the copied-up parents)
//! in the upper dir. BuildKit removes such stubs after the run; so do we. Before the
//! run the sandbox notes which candidate paths already exist in the upper dir; after the
//! run (the container's mount namespace is gone), every candidate that did not exist
//! before and is now an empty file or an empty, non-opaque directory is removed,
//! deepest first.
//!
//! The upper dir was written by the container, so it is walked with fd-relative calls
//! that refuse symlinks (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`).

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

/// Opaque-directory markers of overlayfs (as root, and with `userxattr`).
const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// What existed in the upper dir before the run.
#[derive(Debug)]
pub(crate) struct Stubs {
    upper: OwnedFd,
    /// (relative path, existed before the run), deepest first.
    candidates: Vec<(String, bool)>,
}

/// Where a file may be: its parent directory (opened beneath the upper dir) and its name.
fn parent_of(upper: &OwnedFd, rel: &str) -> Option<(OwnedFd, String)> {
    let (parent, name) = match rel.rfind('/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (".", rel),
    };
    let dir = rustix::fs::openat2(
        upper,
        parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    Some((dir, name.to_string()))
}

fn exists(upper: &OwnedFd, rel: &str) -> bool {
    match parent_of(upper, rel) {
        Some((dir, name)) => {
            rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW).is_ok()
        }
        None => false,
    }
}

/// Removes `rel` if it is an empty regular file or an empty, non-opaque directory.
fn remove_if_empty(upper: &OwnedFd, rel: &str) {
    let Some((dir, name)) = parent_of(upper, rel) else {
        return;
    };
    let Ok(st) = rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) else {
        return;
    };
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile if st.st_size == 0 => {
            let _ = rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty());
        }
        FileType::Directory => {
            let Ok(fd) = rustix::fs::openat(
                &dir,
                name.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) else {
                return;
            };
            // An empty opaque dir hides the lower one: it is a real change, keep it.
            if OPAQUE_XATTRS
                .iter()
                .any(|x| rustix::fs::fgetxattr_query(&fd, *x).is_ok())
            {
                return;
            }
            // ENOTEMPTY is the emptiness check, atomically.
            let _ = rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::REMOVEDIR);
        }
        _ => {}
    }
}

impl Stubs {
    /// Notes which of `candidates` (absolute container paths, deepest first) exist in
    /// `upper` now.
    pub(crate) fn record(upper: &Path, candidates: &[String]) -> std::io::Result<Stubs> {
        let upper = rustix::fs::open(
            upper,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let candidates = candidates
            .iter()
            .map(|p| {
                let rel = p.trim_start_matches('/').to_string();
                let existed = exists(&upper, &rel);
                (rel, existed)
            })
            .collect();
        Ok(Stubs { upper, candidates })
    }

    /// Removes, deepest first, the candidates that appeared during the run and are empty.
    /// Best effort: a stub that cannot be removed only costs an empty entry in the layer.
    pub(crate) fn remove_created(&self) {
        for (rel, existed) in &self.candidates {
            if !existed {
                remove_if_empty(&self.upper, rel);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_new_empty_entries() {
        let dir = tempfile::tempdir().unwrap();
        let up = dir.path();
        std::fs::create_dir(up.join("keep")).unwrap();
        let candidates: Vec<String> = [
            "/etc/hosts",
            "/keep/x",
            "/full/f",
            "/etc",
            "/full",
            "/keep",
            "/proc",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let stubs = Stubs::record(up, &candidates).unwrap();
        // What a run would leave: stubs, a stub the command filled, a copied-up parent.
        std::fs::create_dir_all(up.join("etc")).unwrap();
        std::fs::write(up.join("etc/hosts"), "").unwrap();
        std::fs::create_dir(up.join("proc")).unwrap();
        std::fs::create_dir(up.join("full")).unwrap();
        std::fs::write(up.join("full/f"), "data").unwrap();
        std::fs::write(up.join("keep/x"), "").unwrap();
        stubs.remove_created();
        assert!(!up.join("etc").exists());
        assert!(!up.join("proc").exists());
        assert!(up.join("full/f").exists());
        assert!(!up.join("keep/x").exists());
        assert!(up.join("keep").is_dir(), "existed before the run");
    }

    #[test]
    fn never_follows_symlinks_out_of_the_upper_dir() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("hosts"), "").unwrap();
        let up = dir.path();
        let stubs = Stubs::record(up, &["/etc/hosts".to_string()]).unwrap();
        std::os::unix::fs::symlink(outside.path(), up.join("etc")).unwrap();
        stubs.remove_created();
        assert!(outside.path().join("hosts").exists());
    }
}
