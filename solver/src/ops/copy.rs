//! COPY/ADD semantics on plain directories: what lands where, with which
//! owner, mode and times.
//!
//! Every destination path is resolved beneath the destination root
//! ([`crate::beneath`]); below a directory this code created or verified
//! as a real directory, children are joined by name only.

use std::collections::HashMap;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::archive;
use super::chmod::Mode;
use super::owner::Ids;
use super::select::{Entry, Item};
use crate::beneath;
use crate::ir::Copy;

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A directory cannot replace a non-directory, and vice versa.
    #[error("cannot copy to non-directory: {0}")]
    NotADirectory(String),
    /// A file cannot replace a directory.
    #[error("cannot overwrite directory {0} with non-directory")]
    IsADirectory(String),
    /// Resolving a destination failed.
    #[error(transparent)]
    Resolve(#[from] beneath::Error),
    /// Extracting an archive failed.
    #[error(transparent)]
    Archive(#[from] archive::Error),
    /// A filesystem call failed.
    #[error("{op} {path:?}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

pub(crate) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// How copied files are owned and moded.
#[derive(Clone, Debug)]
pub struct Attrs {
    /// `--chown`, resolved.
    pub chown: Option<Ids>,
    /// `--chmod`, parsed.
    pub chmod: Option<Mode>,
    /// Files from a build context become root-owned; files from a stage
    /// keep their owner.
    pub from_context: bool,
}

impl Attrs {
    fn ids(&self, meta: &Metadata) -> Ids {
        match (self.chown, self.from_context) {
            (Some(ids), _) => ids,
            (None, true) => Ids { uid: 0, gid: 0 },
            (None, false) => Ids {
                uid: meta.uid(),
                gid: meta.gid(),
            },
        }
    }
    fn mode(&self, meta: &Metadata) -> u32 {
        let old = meta.mode() & 0o7777;
        match &self.chmod {
            Some(m) => m.apply(old, meta.is_dir()),
            None => old,
        }
    }
    /// Owner of directories the copy has to create on the way.
    fn parent_ids(&self) -> Ids {
        self.chown.unwrap_or(Ids { uid: 0, gid: 0 })
    }
}

/// Copies selected `items` into `root` at `copy.dest`.
///
/// # Errors
/// Destination conflicts, I/O failures, bad archives.
pub fn copy_items(root: &Path, copy: &Copy, items: &[Item], attrs: &Attrs) -> Result<(), Error> {
    let into_dir = copy.dest.ends_with('/');
    let dest_rel = beneath::resolve_beneath(root, &copy.dest, true)?;
    let dest_host = join(root, &dest_rel);
    let mut links = HashMap::new();
    for item in items {
        if item.meta.is_dir() {
            // A destination directory this copy has to create is made like
            // its parents (0755, the `--chown` owner or root), not from the
            // source directory: fsutil's `prepareTargetDir` makes it with
            // `MkdirAll(dest, 0755, chown)` before copying the contents, so
            // neither the source's mode and owner nor `--chmod` reach it.
            let created = ensure_dir(root, &dest_rel, None, attrs)?;
            // Below a directory this copy just created nothing exists yet:
            // no entry needs the `lstat` that checks what it replaces.
            copy_entries(&dest_host, &item.entries, attrs, &mut links, created)?;
            if created {
                set_times(&dest_host, &item.meta)?;
            }
        } else if copy.unpack_archives && archive::detect(&item.path)?.is_some() {
            ensure_dir(root, &dest_rel, None, attrs)?;
            archive::extract(&item.path, &dest_host)?;
        } else {
            // Several sources and a destination without `/` are no error in
            // BuildKit (moby/buildkit#1853): each source is copied to that
            // path in turn, as if it were the only one, so whether the
            // destination is a directory is asked again for every file.
            let dest_is_dir = || fs::metadata(&dest_host).is_ok_and(|m| m.is_dir());
            let target_rel = if into_dir || dest_is_dir() {
                ensure_dir(root, &dest_rel, None, attrs)?;
                format!("{dest_rel}/{}", item.name)
            } else {
                if let Some((parent, _)) = dest_rel.rsplit_once('/') {
                    ensure_dir(root, parent, None, attrs)?;
                }
                dest_rel.clone()
            };
            let target = join(root, target_rel.trim_start_matches('/'));
            write_entry(&item.path, &item.meta, &target, attrs, &mut links, false)?;
        }
    }
    Ok(())
}

fn join(root: &Path, rel: &str) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

/// `mkdir -p` of `rel` beneath `root`; the last directory, when created,
/// takes `last`'s mode and owner (a copied directory), the others 0755
/// and the copy's owner. Returns whether the last one was created.
pub(crate) fn ensure_dir(
    root: &Path,
    rel: &str,
    last: Option<(&Metadata, &Attrs)>,
    attrs: &Attrs,
) -> Result<bool, Error> {
    let rel = beneath::resolve_beneath(root, rel, true)?;
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let mut cur = root.to_path_buf();
    let mut created_last = false;
    for (i, c) in comps.iter().enumerate() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => continue,
            Ok(m) if m.file_type().is_symlink() => {
                // resolve_beneath followed every existing link; a link here
                // appeared since: refuse rather than follow it.
                return Err(Error::NotADirectory(cur.display().to_string()));
            }
            Ok(_) => return Err(Error::NotADirectory(cur.display().to_string())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("stat", &cur)(e)),
        }
        fs::create_dir(&cur).map_err(io_err("mkdir", &cur))?;
        let is_last = i + 1 == comps.len();
        let (ids, mode) = match (is_last, last) {
            (true, Some((meta, a))) => (a.ids(meta), a.mode(meta)),
            _ => (attrs.parent_ids(), 0o755),
        };
        set_owner_mode(&cur, ids, Some(mode))?;
        created_last = is_last;
    }
    Ok(created_last)
}

fn copy_entries(
    dest: &Path,
    entries: &[Entry],
    attrs: &Attrs,
    links: &mut HashMap<(u64, u64), PathBuf>,
    fresh: bool,
) -> Result<(), Error> {
    use rayon::prelude::*;
    // Directories first, in pre-order (parents before children).
    let mut dirs: Vec<(PathBuf, &Metadata)> = Vec::new();
    for e in entries.iter().filter(|e| e.meta.is_dir()) {
        let target = dest.join(&e.rel);
        write_entry(&e.path, &e.meta, &target, attrs, links, fresh)?;
        dirs.push((target, &e.meta));
    }
    // Then single-link files and symlinks in parallel: a 30,000-file COPY
    // is mostly per-file syscalls. Hard links and special files keep the
    // sequential path (the link map needs the first copy's name).
    let (plain, rest): (Vec<&Entry>, Vec<&Entry>) =
        entries.iter().filter(|e| !e.meta.is_dir()).partition(|e| {
            let ft = e.meta.file_type();
            (ft.is_file() || ft.is_symlink()) && e.meta.nlink() == 1
        });
    plain.par_iter().try_for_each(|e| {
        write_entry(
            &e.path,
            &e.meta,
            &dest.join(&e.rel),
            attrs,
            &mut HashMap::new(),
            fresh,
        )
    })?;
    for e in rest {
        write_entry(&e.path, &e.meta, &dest.join(&e.rel), attrs, links, fresh)?;
    }
    // Directory times last: writing children changes them.
    for (d, meta) in dirs.iter().rev() {
        set_times(d, meta)?;
    }
    Ok(())
}

/// Writes one source entry at `target` (whose parent is a real directory);
/// `fresh` says that the parent was created by this copy, so `target`
/// cannot exist yet.
fn write_entry(
    src: &Path,
    meta: &Metadata,
    target: &Path,
    attrs: &Attrs,
    links: &mut HashMap<(u64, u64), PathBuf>,
    fresh: bool,
) -> Result<(), Error> {
    let ft = meta.file_type();
    let existing = if fresh {
        None
    } else {
        fs::symlink_metadata(target).ok()
    };
    if ft.is_dir() {
        match existing {
            Some(m) if m.is_dir() => {}
            Some(_) => return Err(Error::NotADirectory(target.display().to_string())),
            None => fs::create_dir(target).map_err(io_err("mkdir", target))?,
        }
        set_owner_mode(target, attrs.ids(meta), Some(attrs.mode(meta)))?;
        return Ok(());
    }
    if let Some(m) = existing {
        if m.is_dir() {
            return Err(Error::IsADirectory(target.display().to_string()));
        }
        fs::remove_file(target).map_err(io_err("remove", target))?;
    }
    if !ft.is_dir() && meta.nlink() > 1 {
        let key = (meta.dev(), meta.ino());
        if let Some(first) = links.get(&key) {
            fs::hard_link(first, target).map_err(io_err("link", target))?;
            return Ok(());
        }
        links.insert(key, target.to_path_buf());
    }
    let ids = attrs.ids(meta);
    if ft.is_symlink() {
        let to = fs::read_link(src).map_err(io_err("readlink", src))?;
        std::os::unix::fs::symlink(&to, target).map_err(io_err("symlink", target))?;
        std::os::unix::fs::lchown(target, Some(ids.uid), Some(ids.gid))
            .map_err(io_err("lchown", target))?;
        set_times(target, meta)?;
        return Ok(());
    }
    if ft.is_file() {
        let mut from = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(src)
            .map_err(io_err("open", src))?;
        let mut to = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(target)
            .map_err(io_err("create", target))?;
        io::copy(&mut from, &mut to).map_err(io_err("copy to", target))?;
        finish_file(&to, target, ids, attrs.mode(meta), meta)?;
        if !attrs.from_context {
            copy_capability(&from, src, &to, target)?;
        }
        return Ok(());
    }
    // Devices, fifos, sockets: recreate the node.
    let kind = meta.mode() & libc::S_IFMT;
    let path = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::NotADirectory(target.display().to_string()))?;
    // SAFETY: a valid NUL-terminated path; mknod has no memory effects.
    let rc = unsafe { libc::mknod(path.as_ptr(), kind | 0o600, meta.rdev() as libc::dev_t) };
    if rc != 0 {
        return Err(io_err("mknod", target)(io::Error::last_os_error()));
    }
    set_owner_mode(target, ids, Some(attrs.mode(meta)))?;
    set_times(target, meta)
}

/// Carries a file's `security.capability` from a stage or image to its
/// copy, after the chown that would clear it: fsutil's copy (BuildKit's
/// `COPY --from`) copies xattrs, so a `setcap` binary copied out of a build
/// stage keeps its capabilities. Files from a build context do not get
/// here: BuildKit's context transfer drops them (moby/buildkit#2250).
fn copy_capability(from: &File, src: &Path, to: &File, target: &Path) -> Result<(), Error> {
    use rustix::fs::{fgetxattr, fsetxattr, XattrFlags};
    let mut buf = [0u8; 64];
    let n = match fgetxattr(from, bake_store::layer::CAPABILITY_XATTR, &mut buf) {
        Ok(n) => n,
        Err(rustix::io::Errno::NODATA | rustix::io::Errno::NOTSUP) => return Ok(()),
        Err(e) => return Err(io_err("read capabilities of", src)(e.into())),
    };
    match fsetxattr(
        to,
        bake_store::layer::CAPABILITY_XATTR,
        &buf[..n],
        XattrFlags::empty(),
    ) {
        // Best effort where the file system or user namespace refuses it,
        // as BuildKit's xattr error handler (a warning, not a failed COPY).
        Ok(()) | Err(rustix::io::Errno::PERM | rustix::io::Errno::NOTSUP) => Ok(()),
        Err(e) => Err(io_err("set capabilities on", target)(e.into())),
    }
}

/// chown before chmod: chown(2) clears setuid/setgid.
pub(crate) fn finish_file(
    f: &File,
    path: &Path,
    ids: Ids,
    mode: u32,
    meta: &Metadata,
) -> Result<(), Error> {
    std::os::unix::fs::fchown(f, Some(ids.uid), Some(ids.gid)).map_err(io_err("chown", path))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err("chmod", path))?;
    let times = fs::FileTimes::new()
        .set_accessed(meta.accessed().unwrap_or(std::time::UNIX_EPOCH))
        .set_modified(meta.modified().unwrap_or(std::time::UNIX_EPOCH));
    f.set_times(times).map_err(io_err("set times", path))
}

pub(crate) fn set_owner_mode(path: &Path, ids: Ids, mode: Option<u32>) -> Result<(), Error> {
    std::os::unix::fs::lchown(path, Some(ids.uid), Some(ids.gid)).map_err(io_err("chown", path))?;
    if let Some(mode) = mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod", path))?;
    }
    Ok(())
}

/// Sets atime/mtime without following a symlink.
pub(crate) fn set_times(path: &Path, meta: &Metadata) -> Result<(), Error> {
    use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD};
    let ts = |s: i64, ns: i64| Timespec {
        tv_sec: s,
        tv_nsec: ns as _,
    };
    let times = Timestamps {
        last_access: ts(meta.atime(), meta.atime_nsec()),
        last_modification: ts(meta.mtime(), meta.mtime_nsec()),
    };
    utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| io_err("set times", path)(e.into()))
}

#[cfg(test)]
#[path = "copy_tests.rs"]
mod tests;
