//! Copying trees in and out of a root as tar streams, with every path resolved
//! beneath that root by the kernel.
//!
//! A [`Root`] is a directory fd; every lookup is `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)`: `..` stops at the root and an absolute symlink restarts
//! at it, exactly as if the process were chrooted there. For a container the root is
//! its own `/`, so a symlink the container planted (`/x -> /etc` or `-> ../../..`)
//! resolves to the container's file, never the host's. Below the starting point the
//! walk and the extraction use `*at` calls on directory fds with `O_NOFOLLOW`, so a
//! symlink met on the way is copied as a symlink and never written through, even if
//! the container swaps a directory for a symlink while we copy.
//!
//! The stream between the two sides is a tar (the `tar` crate's headers only: never
//! `Archive::unpack`), which is also what `bake cp … -` reads and writes.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat, Timespec, Timestamps, CWD};
use rustix::io::Errno;

/// Why a copy failed, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path could not be looked up, read or written.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path (in the root's view).
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Docker's "cannot overwrite …" conflicts.
    #[error("cannot overwrite {existing} {path:?} with a {new}")]
    Conflict {
        /// The path.
        path: String,
        /// What is there.
        existing: &'static str,
        /// What the archive has.
        new: &'static str,
    },
    /// A tar stream that is not one.
    #[error("reading the archive")]
    Archive(#[source] io::Error),
    /// An entry whose name climbs out of the destination.
    #[error("archive entry {0:?} is outside the destination")]
    BadName(String),
}

fn io_err(op: &'static str, path: &str) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_string();
    move |source| Error::Io { op, path, source }
}

fn errno(op: &'static str, path: &str) -> impl FnOnce(Errno) -> Error {
    let path = path.to_string();
    move |e| Error::Io {
        op,
        path,
        source: e.into(),
    }
}

/// A directory that paths are resolved in, as if it were `/`.
pub struct Root {
    fd: OwnedFd,
}

/// What a path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// Anything else (file, symlink, device…).
    Other,
}

impl Root {
    /// Opens `dir` (a host path, followed normally) as a root.
    ///
    /// # Errors
    /// When it cannot be opened as a directory.
    pub fn open(dir: &Path) -> Result<Root, Error> {
        let shown = dir.display().to_string();
        let fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno("opening", &shown))?;
        Ok(Root { fd })
    }

    /// `openat2` of `path` (absolute or relative, in the root's view) beneath the root.
    fn resolve(&self, path: &str, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
        let rel = path.trim_start_matches('/');
        let rel = if rel.is_empty() { "." } else { rel };
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        loop {
            match rustix::fs::openat2(&self.fd, rel, flags | OFlags::CLOEXEC, mode, resolve) {
                // The kernel asks for a retry when a rename raced the lookup.
                Err(Errno::AGAIN) => continue,
                other => return other,
            }
        }
    }

    /// What `path` is (`None` when it does not exist); a final symlink is followed
    /// only with `follow`.
    ///
    /// # Errors
    /// When the lookup fails for another reason than a missing path.
    pub fn kind(&self, path: &str, follow: bool) -> Result<Option<Kind>, Error> {
        let mut flags = OFlags::PATH;
        if !follow {
            flags |= OFlags::NOFOLLOW;
        }
        match self.resolve(path, flags, Mode::empty()) {
            Ok(fd) => {
                let st = rustix::fs::fstat(&fd).map_err(errno("examining", path))?;
                Ok(Some(
                    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                        Kind::Dir
                    } else {
                        Kind::Other
                    },
                ))
            }
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(errno("looking up", path)(e)),
        }
    }

    /// Opens the directory `path` (following symlinks inside the root).
    fn dir(&self, path: &str) -> Result<OwnedFd, Error> {
        self.resolve(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
            .map_err(errno("opening directory", path))
    }
}

/// Splits `path` into its parent and final name (`"/a/b"` → `("/a", "b")`).
pub fn split(path: &str) -> (String, String) {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(i) => (
            if i == 0 {
                "/".into()
            } else {
                trimmed[..i].into()
            },
            trimmed[i + 1..].into(),
        ),
        None => (".".into(), trimmed.into()),
    }
}

/// Pads a short read with zeros up to the size the header announced (a file that
/// shrank while being copied), and stops at it (one that grew).
struct Exactly<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exactly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf.len().min(self.left as usize);
        let n = match self.inner.read(&mut buf[..max])? {
            0 => {
                buf[..max].fill(0);
                max
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

fn header_for(st: &Stat) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

/// Writes `path` of `root` into `out` as a tar whose top entry is named `name`, or,
/// when `name` is `None` (`SRC/.`), as the directory's contents only. A final
/// symlink is followed only with `follow` (`cp -L`).
///
/// # Errors
/// When a path cannot be read, or `out` cannot be written.
pub fn archive(
    root: &Root,
    path: &str,
    name: Option<&str>,
    follow: bool,
    out: impl Write,
) -> Result<(), Error> {
    archive_skipping(root, path, name, follow, &BTreeSet::new(), out)
}

/// [`archive`], but the entries named in `skip` (archive names, no leading `/`: the
/// mount points of a running container) are written empty: a directory without its
/// contents, anything else as an empty file.
///
/// # Errors
/// As [`archive`].
pub fn archive_skipping(
    root: &Root,
    path: &str,
    name: Option<&str>,
    follow: bool,
    skip: &BTreeSet<String>,
    out: impl Write,
) -> Result<(), Error> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    // `SRC/.` names SRC itself; `name` says whether it or its contents are copied.
    let path = path.trim_end_matches("/.");
    let path = if path.is_empty() { "/" } else { path };
    let (parent, last) = split(path);
    let parent_fd = if last.is_empty() {
        None
    } else {
        Some(root.dir(&parent)?)
    };
    let (dir_fd, entry_name) = match &parent_fd {
        Some(fd) => (fd.as_fd(), OsString::from(&last)),
        None => {
            // The root itself: its contents.
            let fd = root.dir("/")?;
            add_children(&mut builder, fd.as_fd(), name.unwrap_or(""), path, skip)?;
            return builder
                .into_inner()
                .map(drop)
                .map_err(io_err("writing", path));
        }
    };
    let flags = if follow {
        AtFlags::empty()
    } else {
        AtFlags::SYMLINK_NOFOLLOW
    };
    let st = rustix::fs::statat(dir_fd, entry_name.as_os_str(), flags)
        .map_err(errno("examining", path))?;
    match name {
        Some(n) => add_entry(&mut builder, dir_fd, &entry_name, n, path, follow, skip)?,
        None => {
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                return Err(errno("copying the contents of", path)(Errno::NOTDIR));
            }
            let fd = open_child_dir(dir_fd, &entry_name, follow, path)?;
            add_children(&mut builder, fd.as_fd(), "", path, skip)?;
        }
    }
    builder
        .into_inner()
        .map(drop)
        .map_err(io_err("writing", path))
}

fn open_child_dir(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    follow: bool,
    shown: &str,
) -> Result<OwnedFd, Error> {
    let mut flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(errno("opening directory", shown))
}

fn add_children<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: BorrowedFd<'_>,
    prefix: &str,
    shown: &str,
    skip: &BTreeSet<String>,
) -> Result<(), Error> {
    let mut names: Vec<OsString> = Vec::new();
    let listing = rustix::fs::Dir::read_from(dir).map_err(errno("listing", shown))?;
    for entry in listing {
        let entry = entry.map_err(errno("listing", shown))?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    names.sort();
    for n in names {
        let child = if prefix.is_empty() {
            n.to_string_lossy().into_owned()
        } else {
            format!("{prefix}/{}", n.to_string_lossy())
        };
        let shown_child = format!("{shown}/{}", n.to_string_lossy());
        add_entry(builder, dir, &n, &child, &shown_child, false, skip)?;
    }
    Ok(())
}

/// Adds `name` of directory `dir` as `entry` (recursively for a directory).
fn add_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    entry: &str,
    shown: &str,
    follow: bool,
    skip: &BTreeSet<String>,
) -> Result<(), Error> {
    let skipped = skip.contains(entry);
    let flags = if follow {
        AtFlags::empty()
    } else {
        AtFlags::SYMLINK_NOFOLLOW
    };
    let st = rustix::fs::statat(dir, name, flags).map_err(errno("examining", shown))?;
    let mut h = header_for(&st);
    let write_err = |e: io::Error| Error::Io {
        op: "archiving",
        path: shown.to_string(),
        source: e,
    };
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            let fd = open_child_dir(dir, name, follow, shown)?;
            h.set_entry_type(tar::EntryType::Directory);
            builder
                .append_data(&mut h, format!("{entry}/"), io::empty())
                .map_err(write_err)?;
            if !skipped {
                add_children(builder, fd.as_fd(), entry, shown, skip)?;
            }
        }
        // A file mount point (`/etc/hosts`): there, but empty, like a directory one.
        _ if skipped => {
            h.set_entry_type(tar::EntryType::Regular);
            builder
                .append_data(&mut h, entry, io::empty())
                .map_err(write_err)?;
        }
        FileType::RegularFile => {
            let mut oflags = OFlags::RDONLY | OFlags::CLOEXEC;
            if !follow {
                oflags |= OFlags::NOFOLLOW;
            }
            let fd = rustix::fs::openat(dir, name, oflags, Mode::empty())
                .map_err(errno("opening", shown))?;
            let st = rustix::fs::fstat(&fd).map_err(errno("examining", shown))?;
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                // Swapped while we looked: skip rather than read something else.
                return Ok(());
            }
            let mut h = header_for(&st);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(st.st_size as u64);
            let data = Exactly {
                inner: std::fs::File::from(fd),
                left: st.st_size as u64,
            };
            builder
                .append_data(&mut h, entry, data)
                .map_err(write_err)?;
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(dir, name, Vec::new())
                .map_err(errno("reading link", shown))?;
            h.set_entry_type(tar::EntryType::Symlink);
            builder
                .append_link(&mut h, entry, OsStr::from_bytes(target.to_bytes()))
                .map_err(write_err)?;
        }
        kind @ (FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo) => {
            h.set_entry_type(match kind {
                FileType::CharacterDevice => tar::EntryType::Char,
                FileType::BlockDevice => tar::EntryType::Block,
                _ => tar::EntryType::Fifo,
            });
            let dev = st.st_rdev;
            h.set_device_major(rustix::fs::major(dev))
                .map_err(write_err)?;
            h.set_device_minor(rustix::fs::minor(dev))
                .map_err(write_err)?;
            builder
                .append_data(&mut h, entry, io::empty())
                .map_err(write_err)?;
        }
        // Sockets and the unknown have no place in an archive (tar and docker skip them).
        _ => {}
    }
    Ok(())
}

/// How extracted entries are owned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// As the archive says (`cp -a`).
    Archive,
    /// The caller (bake: root), like `docker cp` without `-a`.
    Caller,
}

/// Extracts the tar `input` into the directory `dest` of `root` (absolute in the
/// root's view; it must exist), merging with what is there: files and links
/// replace non-directories, directories merge, a directory never replaces a
/// non-directory nor the reverse (Docker's conflicts).
///
/// # Errors
/// [`Error::Conflict`], [`Error::BadName`], and failures to create entries.
pub fn extract(root: &Root, dest: &str, input: impl Read, owner: Owner) -> Result<(), Error> {
    let mut archive = tar::Archive::new(input);
    let mut dir_times: Vec<(String, i64)> = Vec::new();
    for entry in archive.entries().map_err(Error::Archive)? {
        let mut entry = entry.map_err(Error::Archive)?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let Some(rel) = clean(&name) else {
            return Err(Error::BadName(name));
        };
        if rel.is_empty() {
            continue; // "./": the destination itself
        }
        let full = if dest == "/" || dest.is_empty() {
            format!("/{rel}")
        } else {
            format!("{}/{rel}", dest.trim_end_matches('/'))
        };
        let (parent, last) = split(&full);
        let parent_fd = make_dirs(root, &parent)?;
        let header = entry.header().clone();
        let mode = Mode::from_raw_mode(header.mode().unwrap_or(0o644) & 0o7777);
        let existing = rustix::fs::statat(&parent_fd, last.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| FileType::from_raw_mode(st.st_mode));
        let kind = header.entry_type();
        let is_dir = kind == tar::EntryType::Directory;
        match (existing, is_dir) {
            (Some(FileType::Directory), false) => {
                return Err(Error::Conflict {
                    path: full,
                    existing: "directory",
                    new: "non-directory",
                })
            }
            (Some(t), true) if t != FileType::Directory => {
                return Err(Error::Conflict {
                    path: full,
                    existing: "non-directory",
                    new: "directory",
                })
            }
            (Some(_), false) => {
                rustix::fs::unlinkat(&parent_fd, last.as_str(), AtFlags::empty())
                    .map_err(errno("replacing", &full))?;
            }
            _ => {}
        }
        let mtime = header.mtime().unwrap_or(0) as i64;
        match kind {
            tar::EntryType::Directory => {
                match rustix::fs::mkdirat(&parent_fd, last.as_str(), mode) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(errno("creating", &full)(e)),
                }
                let fd = rustix::fs::openat(
                    &parent_fd,
                    last.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno("opening", &full))?;
                rustix::fs::fchmod(&fd, mode).map_err(errno("chmod", &full))?;
                dir_times.push((full.clone(), mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = rustix::fs::openat(
                    &parent_fd,
                    last.as_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(errno("creating", &full))?;
                let mut file = std::fs::File::from(fd);
                io::copy(&mut entry, &mut file).map_err(io_err("writing", &full))?;
                rustix::fs::fchmod(&file, mode).map_err(errno("chmod", &full))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| b.into_owned())
                    .unwrap_or_default();
                rustix::fs::symlinkat(OsStr::from_bytes(&target), &parent_fd, last.as_str())
                    .map_err(errno("creating link", &full))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let Some(target_rel) = clean(&target) else {
                    return Err(Error::BadName(target));
                };
                let target_full = format!("{}/{target_rel}", dest.trim_end_matches('/'));
                // The link's source, resolved beneath the root like everything else.
                let src = root
                    .resolve(&target_full, OFlags::PATH | OFlags::NOFOLLOW, Mode::empty())
                    .map_err(errno("looking up", &target_full))?;
                rustix::fs::linkat(&src, "", &parent_fd, last.as_str(), AtFlags::EMPTY_PATH)
                    .map_err(errno("linking", &full))?;
                continue;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let file_type = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rustix::fs::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                rustix::fs::mknodat(&parent_fd, last.as_str(), file_type, mode, dev)
                    .map_err(errno("creating", &full))?;
            }
            // Global/extended headers are consumed by the tar crate; others are skipped.
            _ => continue,
        }
        if owner == Owner::Archive {
            let uid = header
                .uid()
                .ok()
                .map(|u| rustix::fs::Uid::from_raw(u as u32));
            let gid = header
                .gid()
                .ok()
                .map(|g| rustix::fs::Gid::from_raw(g as u32));
            rustix::fs::chownat(
                &parent_fd,
                last.as_str(),
                uid,
                gid,
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(errno("chown", &full))?;
        }
        if !is_dir {
            set_mtime(&parent_fd, &last, mtime);
        }
    }
    // Directory times last: creating their entries changed them.
    for (dir, mtime) in dir_times.into_iter().rev() {
        let (parent, last) = split(&dir);
        if let Ok(fd) = root.dir(&parent) {
            set_mtime(&fd, &last, mtime);
        }
    }
    Ok(())
}

fn set_mtime(dir: &OwnedFd, name: &str, mtime: i64) {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    let _ = rustix::fs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW);
}

/// Opens directory `path` of `root`, creating missing components (0755) one at a
/// time, each beneath the root.
fn make_dirs(root: &Root, path: &str) -> Result<OwnedFd, Error> {
    match root.dir(path) {
        Ok(fd) => return Ok(fd),
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut current = String::from("/");
    let mut fd = root.dir("/")?;
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        current = if current == "/" {
            format!("/{part}")
        } else {
            format!("{current}/{part}")
        };
        match rustix::fs::mkdirat(&fd, part, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(errno("creating", &current)(e)),
        }
        fd = root.dir(&current)?;
    }
    Ok(fd)
}

/// An archive entry name made relative: `./`, leading `/` and `.` dropped; `None`
/// when it has a `..` component.
fn clean(name: &str) -> Option<String> {
    let mut parts = Vec::new();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Whether a host path exists and what it is (the host side is the caller's own
/// file system: followed normally).
pub fn host_kind(path: &Path) -> Option<Kind> {
    std::fs::metadata(path)
        .ok()
        .map(|m| if m.is_dir() { Kind::Dir } else { Kind::Other })
}

/// The host's `/`, as a root (host paths are the caller's and resolve as usual).
///
/// # Errors
/// When `/` cannot be opened.
pub fn host_root() -> Result<Root, Error> {
    let fd = rustix::fs::openat(
        CWD,
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno("opening", "/"))?;
    Ok(Root { fd })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_split_and_cleaned() {
        assert_eq!(split("/a/b"), ("/a".into(), "b".into()));
        assert_eq!(split("/a"), ("/".into(), "a".into()));
        assert_eq!(split("/a/b/"), ("/a".into(), "b".into()));
        assert_eq!(clean("./x/./y/"), Some("x/y".into()));
        assert_eq!(clean("/abs"), Some("abs".into()));
        assert_eq!(clean("a/../../b"), None);
    }

    #[test]
    fn a_tree_round_trips_and_symlinks_are_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("d")).unwrap();
        std::fs::write(src.join("d/f"), "hello").unwrap();
        std::os::unix::fs::symlink("/etc", src.join("d/l")).unwrap();
        let root = Root::open(tmp.path()).unwrap();
        let mut tar = Vec::new();
        archive(&root, "/src", Some("copy"), false, &mut tar).unwrap();
        std::fs::create_dir(tmp.path().join("dst")).unwrap();
        extract(&root, "/dst", &tar[..], Owner::Caller).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("dst/copy/d/f")).unwrap(),
            "hello"
        );
        assert_eq!(
            std::fs::read_link(tmp.path().join("dst/copy/d/l")).unwrap(),
            Path::new("/etc")
        );
        // Writing through the copied symlink stays beneath the root.
        std::fs::create_dir(tmp.path().join("etc")).unwrap();
        let mut evil = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        evil.append_data(&mut h, "copy/d/l/planted", &b"x"[..])
            .unwrap();
        let evil = evil.into_inner().unwrap();
        extract(&root, "/dst", &evil[..], Owner::Caller).unwrap();
        assert!(tmp.path().join("etc/planted").exists());
        assert!(!Path::new("/etc/planted").exists());
    }
}
