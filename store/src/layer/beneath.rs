//! Path resolution confined to a directory.
//!
//! Every write of the unpacker goes through a directory fd obtained here and
//! a single final component, so no entry can reach outside the root: with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` the kernel refuses any
//! `..` or symlink that would leave the root (relative symlinks inside the
//! layer are followed, as docker follows them); on kernels without openat2
//! (< 5.6) each component is opened with `O_NOFOLLOW | O_DIRECTORY`, which
//! refuses symlinks in parent paths altogether.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, CWD};
use rustix::io::Errno;

const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::RDONLY)
    .union(OFlags::CLOEXEC);

/// A directory that paths are resolved beneath.
pub(super) struct Beneath {
    root: OwnedFd,
    openat2: bool,
}

impl Beneath {
    /// Opens `dir` as the root.
    pub(super) fn open(dir: &Path) -> io::Result<Beneath> {
        let root = rustix::fs::openat(CWD, dir, DIR_FLAGS, Mode::empty())?;
        Ok(Beneath {
            root,
            openat2: true,
        })
    }

    #[cfg(test)]
    pub(super) fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Opens the directory `components` (relative to the root), creating
    /// missing ones (0755) when `create` is set.
    pub(super) fn dir(&mut self, components: &[&[u8]], create: bool) -> io::Result<OwnedFd> {
        match self.open_path(components) {
            Err(Errno::NOENT) if create => {}
            other => return other.map_err(Into::into),
        }
        let mut current = self.open_path(&[])?;
        for i in 0..components.len() {
            current = match self.open_path(&components[..=i]) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    let name = OsStr::from_bytes(components[i]);
                    match rustix::fs::mkdirat(&current, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    self.open_path(&components[..=i])?
                }
                Err(e) => return Err(e.into()),
            };
        }
        Ok(current)
    }

    fn open_path(&mut self, components: &[&[u8]]) -> Result<OwnedFd, Errno> {
        if components.is_empty() {
            return rustix::fs::openat(&self.root, ".", DIR_FLAGS, Mode::empty());
        }
        let path = components.join(&b'/');
        if self.openat2 {
            let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
            for _ in 0..16 {
                match rustix::fs::openat2(&self.root, &path, DIR_FLAGS, Mode::empty(), resolve) {
                    // The kernel asks for a retry when a rename raced the walk.
                    Err(Errno::AGAIN) => continue,
                    Err(Errno::NOSYS) => {
                        self.openat2 = false;
                        break;
                    }
                    other => return other,
                }
            }
            if self.openat2 {
                return Err(Errno::AGAIN);
            }
        }
        let mut fd = rustix::fs::openat(&self.root, ".", DIR_FLAGS, Mode::empty())?;
        for c in components {
            fd = rustix::fs::openat(
                &fd,
                OsStr::from_bytes(c),
                DIR_FLAGS | OFlags::NOFOLLOW,
                Mode::empty(),
            )?;
        }
        Ok(fd)
    }
}

/// Removes `name` in `dir` and, if it is a directory, everything beneath it,
/// without following any symlink. A missing `name` is fine.
pub(super) fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let stat = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(s) => s,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
        return rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(Into::into);
    }
    let sub = rustix::fs::openat(dir, name, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty())?;
    let mut children = Vec::new();
    for entry in rustix::fs::Dir::read_from(&sub)? {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            children.push(n.to_vec());
        }
    }
    for child in children {
        remove_all_at(sub.as_fd(), OsStr::from_bytes(&child))?;
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn creates_missing_parents_and_refuses_escapes() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        fs::create_dir(&root).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../..", root.join("up")).unwrap();
        symlink("a", root.join("rel")).unwrap();
        let mut b = Beneath::open(&root).unwrap();
        b.dir(&[b"a", b"b"], true).unwrap();
        assert!(root.join("a/b").is_dir());
        assert!(b.dir(&[b"abs", b"x"], true).is_err());
        assert!(b.dir(&[b"up", b"x"], true).is_err());
        assert!(!d.path().join("x").exists());
        // A relative symlink that stays inside resolves like docker's.
        b.dir(&[b"rel", b"c"], true).unwrap();
        assert!(root.join("a/c").is_dir());
    }

    #[test]
    fn fallback_walk_refuses_all_symlinks() {
        let d = tempfile::tempdir().unwrap();
        symlink("a", d.path().join("rel")).unwrap();
        fs::create_dir(d.path().join("a")).unwrap();
        let mut b = Beneath::open(d.path()).unwrap();
        b.openat2 = false;
        b.dir(&[b"a", b"x"], true).unwrap();
        assert!(b.dir(&[b"rel", b"y"], true).is_err());
    }

    #[test]
    fn remove_all_does_not_follow_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), b"k").unwrap();
        let root = d.path().join("root");
        fs::create_dir_all(root.join("t/u")).unwrap();
        symlink(&outside, root.join("t/u/link")).unwrap();
        let b = Beneath::open(&root).unwrap();
        remove_all_at(b.root(), OsStr::new("t")).unwrap();
        assert!(!root.join("t").exists());
        assert!(outside.join("keep").exists());
        remove_all_at(b.root(), OsStr::new("missing")).unwrap();
    }
}
