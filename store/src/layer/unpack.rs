//! Tar stream → overlay-format diff dir, safely.
//!
//! `tar::Archive::unpack` is never used: it resolves paths through whatever
//! symlinks earlier entries created. Here every entry's parent is opened
//! beneath the root ([`Beneath`]) and the entry itself is created with
//! `*at` calls on its last component that never follow a symlink.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;
use tar::EntryType;

use super::beneath::{remove_all_at, Beneath};
use super::{Error, Tarball, CAPABILITY_XATTR, OPAQUE_MARKER, PAX_XATTR_PREFIX, WHITEOUT_PREFIX};
use crate::blobs::DigestReader;

/// Applies the (uncompressed) tar stream `input` to the directory `dir`,
/// which becomes an overlay-format diff dir: `.wh.x` becomes a char device
/// 0/0 `x`, `.wh..wh..opq` the xattr `trusted.overlay.opaque=y` on its
/// directory. Owners, modes, mtimes and `security.capability` are applied
/// after each entry's content; directories' modes and mtimes after all
/// their children. Returns the stream's sha256 (the diff id) and length,
/// counting everything up to the end of the stream.
///
/// # Errors
/// [`Error::UnsafePath`] for absolute or `..` paths, [`Error::Resolve`] when
/// a parent directory leads outside `dir` (e.g. through a symlink),
/// [`Error::Hardlink`] for a link whose target is not inside, and errors
/// naming the entry for everything else. `dir` is left half-written on
/// error; callers unpack into a temporary directory.
pub fn unpack(input: impl Read, dir: &Path) -> Result<Tarball, Error> {
    let mut beneath = Beneath::open(dir).map_err(|source| Error::Target {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut archive = tar::Archive::new(DigestReader::new(input));
    let mut dirs = BTreeMap::new();
    let mut last = String::new();
    let tar_err = |after: &str| {
        let after = after.to_string();
        move |source| Error::Tar { after, source }
    };
    for entry in archive.entries().map_err(tar_err(&last))? {
        let mut entry = entry.map_err(tar_err(&last))?;
        last = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        apply(&mut beneath, &mut entry, &last, &mut dirs)?;
    }
    // Children are done: now fix each directory's mode and mtime, deepest
    // first (a child path sorts after its parent), since creating a child
    // changes the parent's mtime.
    for (path, meta) in dirs.iter().rev() {
        let name = String::from_utf8_lossy(path).into_owned();
        let components: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
        let fd = beneath
            .dir(&components, false)
            .map_err(|source| Error::Resolve {
                entry: name.clone(),
                source,
            })?;
        set_mode(&fd, meta.mode, &name)?;
        rustix::fs::futimens(&fd, &times(meta.mtime)).map_err(meta_err("mtime", &name))?;
    }
    // Hash whatever follows the end-of-archive marker too: the diff id is
    // the digest of the whole stream.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(tar_err(&last))?;
    let (diff_id, size) = rest.finish();
    Ok(Tarball { diff_id, size })
}

/// A directory's metadata, applied after its children.
struct DirMeta {
    mode: u32,
    mtime: i64,
}

/// The metadata bake applies, with PAX overrides folded in.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    capability: Option<Vec<u8>>,
}

fn meta_err<'a>(what: &'static str, entry: &'a str) -> impl FnOnce(Errno) -> Error + 'a {
    move |e| Error::Metadata {
        what,
        entry: entry.to_string(),
        source: e.into(),
    }
}

fn create_err(entry: &str) -> impl FnOnce(Errno) -> Error + '_ {
    move |e| Error::Create {
        entry: entry.to_string(),
        source: e.into(),
    }
}

fn times(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn set_mode(fd: &OwnedFd, mode: u32, entry: &str) -> Result<(), Error> {
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode)).map_err(meta_err("mode", entry))
}

/// Splits a tar path into plain components, refusing anything that could
/// name a place outside the root.
fn components<'a>(raw: &'a [u8], entry: &str) -> Result<Vec<&'a [u8]>, Error> {
    if raw.starts_with(b"/") {
        return Err(Error::UnsafePath {
            entry: entry.to_string(),
            reason: "absolute path",
        });
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(Error::UnsafePath {
                    entry: entry.to_string(),
                    reason: "`..` component",
                })
            }
            c if c.contains(&0) => {
                return Err(Error::UnsafePath {
                    entry: entry.to_string(),
                    reason: "NUL byte",
                })
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Parses a PAX integer or decimal time (`1700000000.123`) to whole units.
fn pax_int(value: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(value).ok()?;
    let whole = s.split('.').next()?;
    whole.parse().ok()
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta, Error> {
    let h = entry.header();
    let bad = |source| Error::Tar {
        after: name.to_string(),
        source,
    };
    let mut meta = Meta {
        mode: h.mode().map_err(bad)? & 0o7777,
        uid: h.uid().map_err(bad)? as u32,
        gid: h.gid().map_err(bad)? as u32,
        mtime: h.mtime().map_err(bad)? as i64,
        capability: None,
    };
    let cap_key = format!("{PAX_XATTR_PREFIX}{CAPABILITY_XATTR}");
    if let Some(pax) = entry.pax_extensions().map_err(bad)? {
        for ext in pax {
            let ext = ext.map_err(bad)?;
            match ext.key_bytes() {
                b"uid" => meta.uid = pax_int(ext.value_bytes()).unwrap_or(meta.uid.into()) as u32,
                b"gid" => meta.gid = pax_int(ext.value_bytes()).unwrap_or(meta.gid.into()) as u32,
                b"mtime" => meta.mtime = pax_int(ext.value_bytes()).unwrap_or(meta.mtime),
                k if k == cap_key.as_bytes() => meta.capability = Some(ext.value_bytes().to_vec()),
                // Other xattrs (trusted.*, security.selinux, user.*) are host
                // policy or overlay internals a layer must not set.
                _ => {}
            }
        }
    }
    Ok(meta)
}

/// Removes whatever is at `name` and forgets deferred metadata for it and
/// everything beneath it.
fn clear(
    parent: &OwnedFd,
    name: &OsStr,
    path: &[u8],
    entry: &str,
    dirs: &mut BTreeMap<Vec<u8>, DirMeta>,
) -> Result<(), Error> {
    remove_all_at(parent.as_fd(), name).map_err(|source| Error::Create {
        entry: entry.to_string(),
        source,
    })?;
    let mut prefix = path.to_vec();
    prefix.push(b'/');
    dirs.retain(|k, _| k != path && !k.starts_with(&prefix));
    Ok(())
}

fn chown_at(parent: &OwnedFd, name: &OsStr, meta: &Meta, entry: &str) -> Result<(), Error> {
    let r = rustix::fs::chownat(
        parent,
        name,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    );
    tolerate_unprivileged(r).map_err(meta_err("owner", entry))
}

/// Unprivileged unpacking (tests, rootless without a user namespace) keeps
/// the caller's ownership instead of failing; as root a chown failure is real.
/// In a user namespace, an id outside its map (EINVAL: a single-id mapping, or
/// an id past the subordinate range) keeps the owner 0: the snapshot cannot
/// represent it (documented in docs/runner.md, "Rootless").
fn tolerate_unprivileged(r: Result<(), Errno>) -> Result<(), Errno> {
    match r {
        Err(Errno::PERM | Errno::INVAL) if !rustix::process::geteuid().is_root() => Ok(()),
        Err(Errno::INVAL) if crate::userns::in_user_namespace() => Ok(()),
        r => r,
    }
}

fn apply<R: Read>(
    beneath: &mut Beneath,
    entry: &mut tar::Entry<'_, R>,
    name: &str,
    dirs: &mut BTreeMap<Vec<u8>, DirMeta>,
) -> Result<(), Error> {
    let kind = entry.header().entry_type();
    if kind == EntryType::XGlobalHeader {
        return Ok(());
    }
    let raw = entry.path_bytes().into_owned();
    let comps = components(&raw, name)?;
    let Some((&last, parents)) = comps.split_last() else {
        // The root itself (`./`): its metadata belongs to the snapshot.
        return Ok(());
    };
    let meta = read_meta(entry, name)?;
    let path = comps.join(&b'/');
    let parent = beneath
        .dir(parents, true)
        .map_err(|source| Error::Resolve {
            entry: name.to_string(),
            source,
        })?;

    if last == OPAQUE_MARKER.as_bytes() {
        return rustix::fs::fsetxattr(
            &parent,
            super::opaque_xattr(),
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(meta_err("opaque xattr", name));
    }
    if let Some(hidden) = last.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(Error::UnsafePath {
                entry: name.to_string(),
                reason: "whiteout of nothing",
            });
        }
        let hidden = OsStr::from_bytes(hidden);
        let hidden_path = [&path[..path.len() - last.len()], hidden.as_bytes()].concat();
        clear(&parent, hidden, &hidden_path, name, dirs)?;
        rustix::fs::mknodat(&parent, hidden, FileType::CharacterDevice, Mode::empty(), 0)
            .map_err(create_err(name))?;
        chown_at(&parent, hidden, &meta, name)?;
        return rustix::fs::utimensat(
            &parent,
            hidden,
            &times(meta.mtime),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(meta_err("mtime", name));
    }

    let file_name = OsStr::from_bytes(last);
    match kind {
        EntryType::Directory => {
            let existing = rustix::fs::statat(&parent, file_name, AtFlags::SYMLINK_NOFOLLOW);
            let is_dir = matches!(&existing, Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory);
            if !is_dir {
                clear(&parent, file_name, &path, name, dirs)?;
                rustix::fs::mkdirat(&parent, file_name, Mode::from_raw_mode(0o700))
                    .map_err(create_err(name))?;
            }
            chown_at(&parent, file_name, &meta, name)?;
            dirs.insert(
                path,
                DirMeta {
                    mode: meta.mode,
                    mtime: meta.mtime,
                },
            );
            Ok(())
        }
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
            clear(&parent, file_name, &path, name, dirs)?;
            let fd = rustix::fs::openat(
                &parent,
                file_name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(create_err(name))?;
            let mut file = File::from(fd);
            io::copy(entry, &mut file).map_err(|source| Error::Tar {
                after: name.to_string(),
                source,
            })?;
            let fd = OwnedFd::from(file);
            let r = rustix::fs::fchown(
                &fd,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
            );
            tolerate_unprivileged(r).map_err(meta_err("owner", name))?;
            // After chown, which clears setuid/setgid and capabilities.
            set_mode(&fd, meta.mode, name)?;
            if let Some(cap) = &meta.capability {
                rustix::fs::fsetxattr(&fd, CAPABILITY_XATTR, cap, rustix::fs::XattrFlags::empty())
                    .map_err(meta_err("security.capability", name))?;
            }
            rustix::fs::futimens(&fd, &times(meta.mtime)).map_err(meta_err("mtime", name))
        }
        EntryType::Symlink => {
            let target = entry.link_name_bytes().ok_or_else(|| Error::Tar {
                after: name.to_string(),
                source: io::Error::new(io::ErrorKind::InvalidData, "symlink without target"),
            })?;
            clear(&parent, file_name, &path, name, dirs)?;
            // The target is stored, never followed: it may point anywhere.
            rustix::fs::symlinkat(OsStr::from_bytes(&target), &parent, file_name)
                .map_err(create_err(name))?;
            chown_at(&parent, file_name, &meta, name)?;
            rustix::fs::utimensat(
                &parent,
                file_name,
                &times(meta.mtime),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(meta_err("mtime", name))
        }
        EntryType::Link => {
            let target = entry.link_name_bytes().unwrap_or_default().into_owned();
            let target_name = String::from_utf8_lossy(&target).into_owned();
            let link_err = |source| Error::Hardlink {
                entry: name.to_string(),
                target: target_name.clone(),
                source,
            };
            let tcomps = components(&target, &target_name)?;
            let Some((&tlast, tparents)) = tcomps.split_last() else {
                return Err(link_err(io::Error::from(io::ErrorKind::InvalidInput)));
            };
            if tcomps == comps {
                return Ok(());
            }
            let tparent = beneath.dir(tparents, false).map_err(link_err)?;
            clear(&parent, file_name, &path, name, dirs)?;
            // Without AT_SYMLINK_FOLLOW a symlink target is linked itself,
            // never what it points to.
            rustix::fs::linkat(
                &tparent,
                OsStr::from_bytes(tlast),
                &parent,
                file_name,
                AtFlags::empty(),
            )
            .map_err(|e| link_err(e.into()))
        }
        EntryType::Char | EntryType::Block | EntryType::Fifo => {
            let (ft, dev) = match kind {
                EntryType::Fifo => (FileType::Fifo, 0),
                _ => {
                    let h = entry.header();
                    let bad = |source| Error::Tar {
                        after: name.to_string(),
                        source,
                    };
                    let major = h.device_major().map_err(bad)?.unwrap_or(0);
                    let minor = h.device_minor().map_err(|source| Error::Tar {
                        after: name.to_string(),
                        source,
                    })?;
                    let ft = if kind == EntryType::Char {
                        FileType::CharacterDevice
                    } else {
                        FileType::BlockDevice
                    };
                    (ft, rustix::fs::makedev(major, minor.unwrap_or(0)))
                }
            };
            clear(&parent, file_name, &path, name, dirs)?;
            rustix::fs::mknodat(&parent, file_name, ft, Mode::empty(), dev)
                .map_err(create_err(name))?;
            chown_at(&parent, file_name, &meta, name)?;
            // A node we just created cannot be a symlink, so following is moot.
            rustix::fs::chmodat(
                &parent,
                file_name,
                Mode::from_raw_mode(meta.mode),
                AtFlags::empty(),
            )
            .map_err(meta_err("mode", name))?;
            rustix::fs::utimensat(
                &parent,
                file_name,
                &times(meta.mtime),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(meta_err("mtime", name))
        }
        other => Err(Error::Unsupported {
            entry: name.to_string(),
            kind: other.as_byte() as char,
        }),
    }
}
