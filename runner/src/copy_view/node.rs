//! Copying one node (file, symlink, fifo, device, directory shell) between two
//! directories opened as fds, with its metadata: what populate and sync share.
//!
//! Every name is one component resolved against an open directory fd with `O_NOFOLLOW`
//! (or `AT_SYMLINK_NOFOLLOW`), so a symlink planted by a container can never send a
//! read or a write outside the trees being copied.

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{
    AtFlags, FileType, Gid, Mode, OFlags, Statx, StatxFlags, StatxTimestamp, Timespec, Timestamps,
    Uid, XattrFlags,
};
use rustix::io::Errno;

/// What every stat of the copier asks for: the basic fields plus the birth time, which
/// tells a recreated inode from the one that had the same number before.
pub(super) const MASK: StatxFlags = StatxFlags::BASIC_STATS.union(StatxFlags::BTIME);

/// overlayfs's own xattrs: never copied, they describe a layer, not a file.
const OVERLAY_XATTR_PREFIXES: [&[u8]; 2] = [b"trusted.overlay.", b"user.overlay."];
/// The opaque-directory markers of overlayfs (as root, and with `userxattr`).
pub(super) const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// `lstat` of `name` in `dir`.
pub(super) fn stat_at(dir: &impl AsFd, name: &CStr) -> Result<Statx, Errno> {
    rustix::fs::statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, MASK)
}

/// `fstat` of an open fd.
pub(super) fn stat_fd(fd: &impl AsFd) -> Result<Statx, Errno> {
    rustix::fs::statx(fd, c"", AtFlags::EMPTY_PATH, MASK)
}

/// The file type of a stat.
pub(super) fn kind(st: &Statx) -> FileType {
    FileType::from_raw_mode(st.stx_mode.into())
}

/// An overlay whiteout: a character device 0/0.
pub(super) fn is_whiteout(st: &Statx) -> bool {
    kind(st) == FileType::CharacterDevice && st.stx_rdev_major == 0 && st.stx_rdev_minor == 0
}

/// Opens the directory `name` of `dir`, refusing a symlink.
pub(super) fn open_dir(dir: &impl AsFd, name: &CStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Whether the open directory carries overlayfs's opaque marker.
pub(super) fn is_opaque(dir: &impl AsFd) -> bool {
    OPAQUE_XATTRS.iter().any(|x| {
        let mut v = [0u8; 2];
        matches!(rustix::fs::fgetxattr(dir, *x, &mut v[..]), Ok(1) if v[0] == b'y')
    })
}

/// The child names of an open directory, without `.` and `..`.
pub(super) fn names(dir: &impl AsFd) -> Result<Vec<std::ffi::CString>, Errno> {
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            out.push(name.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

fn ts(t: &StatxTimestamp) -> Timespec {
    Timespec {
        tv_sec: t.tv_sec,
        tv_nsec: t.tv_nsec.into(),
    }
}

/// atime and mtime of a stat, for `utimensat`.
pub(super) fn times(st: &Statx) -> Timestamps {
    Timestamps {
        last_access: ts(&st.stx_atime),
        last_modification: ts(&st.stx_mtime),
    }
}

/// Copies every xattr of `src` to `dst` but overlayfs's own. Best effort, as overlayfs's
/// copy-up is for xattrs the target refuses (`security.*` in a user namespace), except
/// file capabilities, which the layer carries.
pub(super) fn copy_xattrs(src: &impl AsFd, dst: &impl AsFd) -> Result<(), Errno> {
    for name in xattr_names(src)? {
        if OVERLAY_XATTR_PREFIXES
            .iter()
            .any(|p| name.as_bytes().starts_with(p))
        {
            continue;
        }
        let Ok(len) = rustix::fs::fgetxattr_query(src, &name) else {
            continue;
        };
        let mut value = vec![0u8; len];
        let Ok(len) = rustix::fs::fgetxattr(src, &name, &mut value[..]) else {
            continue;
        };
        let set = rustix::fs::fsetxattr(dst, &name, &value[..len], XattrFlags::empty());
        if set.is_err() && name.as_bytes() == b"security.capability" {
            return set;
        }
    }
    Ok(())
}

/// Removes the xattrs of `dst` that `src` does not have (but overlayfs's own, such as
/// the opaque marker of an upper directory), so that an xattr the container removed
/// from a directory copied up earlier is gone from the upper dir too.
pub(super) fn remove_other_xattrs(src: &impl AsFd, dst: &impl AsFd) -> Result<(), Errno> {
    let theirs = xattr_names(src)?;
    for name in xattr_names(dst)? {
        let ours = OVERLAY_XATTR_PREFIXES
            .iter()
            .any(|p| name.as_bytes().starts_with(p));
        if !ours && !theirs.contains(&name) {
            match rustix::fs::fremovexattr(dst, &name) {
                Ok(()) | Err(Errno::NODATA) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// The names of the xattrs of an open file (none where the filesystem has none).
fn xattr_names(fd: &impl AsFd) -> Result<Vec<std::ffi::CString>, Errno> {
    let size = match rustix::fs::flistxattr_query(fd) {
        Ok(0) | Err(Errno::NOTSUP) => return Ok(Vec::new()),
        Ok(n) => n,
        Err(e) => return Err(e),
    };
    let mut list = vec![0u8; size];
    let n = rustix::fs::flistxattr(fd, &mut list[..])?;
    Ok(list[..n]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .filter_map(|n| std::ffi::CString::new(n).ok())
        .collect())
}

/// Owner, permission bits (after the owner: chown clears set-id bits), xattrs and times
/// of an open file or directory, from `st` and the open source `src`.
pub(super) fn set_meta_fd(src: &impl AsFd, st: &Statx, dst: &impl AsFd) -> Result<(), Errno> {
    rustix::fs::fchown(
        dst,
        Some(Uid::from_raw(st.stx_uid)),
        Some(Gid::from_raw(st.stx_gid)),
    )?;
    rustix::fs::fchmod(dst, Mode::from_raw_mode(u32::from(st.stx_mode) & 0o7777))?;
    copy_xattrs(src, dst)?;
    rustix::fs::futimens(dst, &times(st))
}

/// Owner, permission bits and times of `name` in `dir`, which is not opened (symlink,
/// fifo, device): symlinks keep their permission bits.
fn set_meta_at(dir: &impl AsFd, name: &CStr, st: &Statx) -> Result<(), Errno> {
    rustix::fs::chownat(
        dir,
        name,
        Some(Uid::from_raw(st.stx_uid)),
        Some(Gid::from_raw(st.stx_gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    if kind(st) != FileType::Symlink {
        rustix::fs::chmodat(
            dir,
            name,
            Mode::from_raw_mode(u32::from(st.stx_mode) & 0o7777),
            AtFlags::empty(),
        )?;
    }
    rustix::fs::utimensat(dir, name, &times(st), AtFlags::SYMLINK_NOFOLLOW)
}

/// Creates the directory `name` in `dst` (owner-only until [`set_meta_fd`] gives it its
/// real mode, after its children) and opens it.
pub(super) fn make_dir(dst: &impl AsFd, name: &CStr) -> Result<OwnedFd, Errno> {
    rustix::fs::mkdirat(dst, name, Mode::from_raw_mode(0o700))?;
    open_dir(dst, name)
}

/// Copies a regular file's content with copy_file_range (a reflink on xfs and btrfs),
/// falling back to read/write across filesystems that refuse it.
fn copy_content(src: &OwnedFd, dst: &OwnedFd) -> Result<(), Errno> {
    loop {
        match rustix::fs::copy_file_range(src, None, dst, None, 1 << 30) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(Errno::INTR) => {}
            Err(Errno::XDEV | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => break,
            Err(e) => return Err(e),
        }
    }
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match rustix::io::read(src, &mut buf[..]) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        };
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            match rustix::io::write(dst, rest) {
                Ok(w) => rest = &rest[w..],
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Files written in one copy that had more than one link in the source: source inode
/// → (directory, name) of the first copy, so later paths become hard links to it.
pub(super) type Links = HashMap<u64, (OwnedFd, std::ffi::CString)>;

/// Copies the non-directory `name` of `src` (stat `st`) to `name` in `dst`, metadata
/// included. With `links`, a file whose inode was already copied becomes a hard link
/// to that copy; without, every path gets its own copy (overlayfs copy-up with
/// `index=off`). Returns false for what a layer cannot hold (a socket) or this process
/// may not create (a device node in a user namespace), skipped like rootless unpack.
pub(super) fn copy_leaf(
    src: &OwnedFd,
    name: &CStr,
    st: &Statx,
    dst: &OwnedFd,
    links: Option<&mut Links>,
) -> Result<bool, Errno> {
    match kind(st) {
        FileType::RegularFile => {
            let mut links = links.filter(|_| st.stx_nlink > 1);
            if let Some((dir, first)) = links.as_ref().and_then(|l| l.get(&st.stx_ino)) {
                rustix::fs::linkat(dir, first, dst, name, AtFlags::empty())?;
                return Ok(true);
            }
            let Some(from) = open_regular(src, name)? else {
                // Replaced meanwhile (a running container): the next sync sees it.
                return Ok(false);
            };
            let to = rustix::fs::openat(
                dst,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?;
            copy_content(&from, &to)?;
            set_meta_fd(&from, st, &to)?;
            // Only a copy that exists may be linked to.
            if let Some(links) = links.as_mut() {
                let dir = dst
                    .try_clone()
                    .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
                links.insert(st.stx_ino, (dir, name.into()));
            }
            Ok(true)
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(src, name, Vec::new())?;
            rustix::fs::symlinkat(target.as_c_str(), dst, name)?;
            set_meta_at(dst, name, st)?;
            Ok(true)
        }
        ft @ (FileType::Fifo | FileType::CharacterDevice | FileType::BlockDevice) => {
            let dev = rustix::fs::makedev(st.stx_rdev_major, st.stx_rdev_minor);
            match rustix::fs::mknodat(dst, name, ft, Mode::from_raw_mode(0o600), dev) {
                Ok(()) => {}
                Err(Errno::PERM) if ft != FileType::Fifo => return Ok(false),
                Err(e) => return Err(e),
            }
            set_meta_at(dst, name, st)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Opens `name` in `src` for reading if it is a regular file, `None` if it is not (any
/// more). The name is first opened `O_PATH` and checked: a running container may have
/// swapped the file for a device node (CAP_MKNOD), and opening that on the host, where
/// the tree is not `nodev`, would open the host's device (a tape rewinds, a tty becomes
/// the controlling terminal).
fn open_regular(src: &OwnedFd, name: &CStr) -> Result<Option<OwnedFd>, Errno> {
    let path = rustix::fs::openat(
        src,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if kind(&stat_fd(&path)?) != FileType::RegularFile {
        return Ok(None);
    }
    rustix::fs::open(
        crate::mounts::apply::fd_path(&path),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map(Some)
}

/// Removes `name` from `dir`, a whole tree if it is a directory; absent is fine.
pub(super) fn remove_all(dir: &OwnedFd, name: &CStr) -> Result<(), Errno> {
    let st = match stat_at(dir, name) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    if kind(&st) == FileType::Directory {
        let child = open_dir(dir, name)?;
        for n in names(&child)? {
            remove_all(&child, &n)?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())
    }
}

/// Creates an overlay whiteout (char 0/0; allowed in a user namespace since Linux 5.8).
pub(super) fn whiteout(dir: &OwnedFd, name: &CStr) -> Result<(), Errno> {
    rustix::fs::mknodat(dir, name, FileType::CharacterDevice, Mode::empty(), 0)
}
