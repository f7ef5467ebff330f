//! Writing what a container changed in a copied tree back into its upper dir, in the
//! form overlayfs would have left there, so that the store's packer makes the same
//! layer from it.
//!
//! The tree is compared with its baseline (what each path was, `super::baseline`): a
//! new or changed node replaces what the upper dir had at its path, its parent
//! directories copied up first (with the tree's metadata, as overlayfs copy-up does); a
//! path gone from the tree becomes a whiteout where the lowers have it; a new directory
//! where the lowers have the path is opaque (overlayfs makes a directory created over a
//! whiteout opaque).
//! Files the container hard-linked stay hard links in the upper dir.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{FileType, FlockOperation, Mode, OFlags, Statx, XattrFlags};
use rustix::io::Errno;

use super::baseline::{self, join, Baseline, Entry};
use super::node::{self, kind, Links};
use super::{err, io_err, open_root};
use crate::Error;

fn cstr(bytes: &[u8]) -> CString {
    // Names come from readdir and baseline paths split at '/': never a NUL inside.
    CString::new(bytes).unwrap_or_default()
}

/// Syncs `tree` into `upper` against the baseline saved next to the tree, then saves
/// the new baseline, or with `last` removes it (the tree is about to go). Holds an
/// exclusive flock next to the tree meanwhile: the supervisor's final sync and a
/// `bake commit` of the running container may race. Returns false, doing nothing,
/// when there is no baseline (not a copied tree, or already finally synced).
///
/// # Errors
/// [`Error::CopyView`] naming the operation and the path.
pub(crate) fn sync_into_upper(tree: &Path, upper: &Path, last: bool) -> Result<bool, Error> {
    let tree_fd = match rustix::fs::open(
        tree,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(false),
        Err(e) => return Err(err("opening", tree, b"")(e)),
    };
    // On a file next to the tree, not on the tree: the container sees the tree as `/`
    // and could hold a lock on it forever.
    let lock_path = baseline::lock_path_of(tree);
    let lock = match rustix::fs::open(
        &lock_path,
        OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(false), // the container's scratch dir is gone
        Err(e) => return Err(err("opening", &lock_path, b"")(e)),
    };
    rustix::fs::flock(&lock, FlockOperation::LockExclusive)
        .map_err(err("locking", &lock_path, b""))?;
    let path = baseline::path_of(tree);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err("reading", &path)(e)),
    };
    let old = Baseline::decode(&text).ok_or_else(|| err("decoding", &path, b"")(Errno::INVAL))?;
    // Before the first stat: what changes after it gets a ctime at least this.
    let start = baseline::coarse_now();
    let mut s = Syncer {
        tree,
        tree_root: tree_fd,
        upper_path: upper,
        upper: open_root(upper)?,
        old,
        new: Baseline::default(),
        links: Links::new(),
        fix: HashSet::new(),
    };
    let root = s.tree_root.try_clone().map_err(io_err("opening", tree))?;
    s.dir(&root, &mut Vec::new())?;
    if last {
        let _ = std::fs::remove_file(&path);
    } else {
        // The container runs on: what it changes again in this clock tick keeps its
        // ctime, so whatever was read in this tick is copied again next time.
        s.new.mark_racy(start);
        s.new.save(&path)?;
    }
    Ok(true)
}

/// The opaque-directory xattr overlayfs would write here: `user.` with `userxattr` in
/// a user namespace, `trusted.` as real root (the store's packer reads the same one).
fn opaque_xattr() -> &'static str {
    if crate::rootless::in_user_namespace() {
        node::OPAQUE_XATTRS[1]
    } else {
        node::OPAQUE_XATTRS[0]
    }
}

struct Syncer<'a> {
    tree: &'a Path,
    tree_root: OwnedFd,
    upper_path: &'a Path,
    upper: OwnedFd,
    old: Baseline,
    new: Baseline,
    links: Links,
    /// Upper directories whose times must be set again from the tree once everything
    /// inside them is written (writing into a directory moves its mtime).
    fix: HashSet<Vec<u8>>,
}

impl Syncer<'_> {
    fn up_err(&self, op: &'static str, rel: &[u8]) -> impl Fn(Errno) -> Error {
        err(op, self.upper_path, rel)
    }

    /// The upper dir's directory at `rel`, copied up (created with the tree's
    /// metadata, parents first) where missing.
    fn upper_dir(&mut self, rel: &[u8]) -> Result<OwnedFd, Error> {
        let dup = |fd: &OwnedFd| {
            fd.try_clone()
                .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))
        };
        let mut cur = dup(&self.upper).map_err(self.up_err("opening", b""))?;
        let mut tcur = dup(&self.tree_root).map_err(err("opening", self.tree, b""))?;
        let mut done: Vec<u8> = Vec::new();
        if rel.is_empty() {
            return Ok(cur);
        }
        for comp in rel.split(|b| *b == b'/') {
            let name = cstr(comp);
            let parent = done.clone();
            done = join(&done, comp);
            let tnext = node::open_dir(&tcur, &name).map_err(err("opening", self.tree, &done))?;
            let next = match node::open_dir(&cur, &name) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    let fail = self.up_err("copying up", &done);
                    let made = node::make_dir(&cur, &name).map_err(&fail)?;
                    let st = node::stat_fd(&tnext).map_err(&fail)?;
                    node::set_meta_fd(&tnext, &st, &made).map_err(&fail)?;
                    self.fix.insert(parent);
                    self.fix.insert(done.clone());
                    made
                }
                Err(e) => return Err(self.up_err("opening", &done)(e)),
            };
            cur = next;
            tcur = tnext;
        }
        Ok(cur)
    }

    /// Syncs the children of the tree directory `dir` (a node the baseline had), at
    /// `rel`.
    fn dir(&mut self, dir: &OwnedFd, rel: &mut Vec<u8>) -> Result<(), Error> {
        let names = node::names(dir).map_err(err("reading", self.tree, rel))?;
        let mut up: Option<OwnedFd> = None;
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        for name in names {
            let path = join(rel, name.as_bytes());
            let st = match node::stat_at(dir, &name) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue, // deleted meanwhile: the next sync sees it
                Err(e) => return Err(err("reading", self.tree, &path)(e)),
            };
            let ft = kind(&st);
            if ft == FileType::Socket {
                continue;
            }
            seen.insert(name.as_bytes().to_vec());
            let old = self.old.entries.get(&path).copied();
            match old {
                Some(e) if ft == FileType::Directory && e.same_node(&st) => {
                    let child =
                        node::open_dir(dir, &name).map_err(err("opening", self.tree, &path))?;
                    if !e.unchanged(&st) {
                        let u = self.upper_dir(&path)?;
                        let fail = self.up_err("setting metadata of", &path);
                        node::remove_other_xattrs(&child, &u).map_err(&fail)?;
                        node::set_meta_fd(&child, &st, &u).map_err(fail)?;
                        self.fix.insert(path.clone());
                    }
                    self.new
                        .entries
                        .insert(path.clone(), Entry::of(&st, e.in_lower));
                    let mut p = path;
                    self.dir(&child, &mut p)?;
                }
                Some(e) if e.unchanged(&st) => {
                    self.new.entries.insert(path, e);
                }
                _ => {
                    let in_lower = old.is_some_and(|e| e.in_lower);
                    if up.is_none() {
                        up = Some(self.upper_dir(rel)?);
                    }
                    let u = up.as_ref().expect("set above");
                    node::remove_all(u, &name).map_err(self.up_err("replacing", &path))?;
                    self.write_new(dir, &name, &st, u, &path, in_lower)?;
                    self.fix.insert(rel.clone());
                }
            }
        }
        for (path, e) in self.old.children(rel) {
            let name = &path[path.iter().rposition(|b| *b == b'/').map_or(0, |i| i + 1)..];
            if seen.contains(name) {
                continue;
            }
            if e.is_hidden() {
                self.new.entries.insert(path, e);
                continue;
            }
            if up.is_none() {
                up = Some(self.upper_dir(rel)?);
            }
            let u = up.as_ref().expect("set above");
            let name = cstr(name);
            node::remove_all(u, &name).map_err(self.up_err("removing", &path))?;
            if e.in_lower {
                node::whiteout(u, &name).map_err(self.up_err("whiting out", &path))?;
                self.new.entries.insert(path, Entry::hidden());
            }
            self.fix.insert(rel.clone());
        }
        if !rel.is_empty() && self.fix.remove(rel.as_slice()) {
            let u = match up {
                Some(u) => u,
                None => self.upper_dir(rel)?,
            };
            let st = node::stat_fd(dir).map_err(err("reading", self.tree, rel))?;
            rustix::fs::futimens(&u, &node::times(&st))
                .map_err(self.up_err("setting times of", rel))?;
        }
        Ok(())
    }

    /// Writes the new node `name` of tree dir `dir` (stat `st`) into the upper dir `up`
    /// as a whole; a directory where the lowers have the path is made opaque.
    fn write_new(
        &mut self,
        dir: &OwnedFd,
        name: &CStr,
        st: &Statx,
        up: &OwnedFd,
        path: &[u8],
        in_lower: bool,
    ) -> Result<(), Error> {
        let fail = self.up_err("writing", path);
        if kind(st) == FileType::Directory {
            let src = node::open_dir(dir, name).map_err(err("opening", self.tree, path))?;
            let made = node::make_dir(up, name).map_err(&fail)?;
            if in_lower {
                rustix::fs::fsetxattr(&made, opaque_xattr(), b"y", XattrFlags::empty())
                    .map_err(&fail)?;
            }
            self.copy_tree(&src, &made, path)?;
            node::set_meta_fd(&src, st, &made).map_err(&fail)?;
            self.new
                .entries
                .insert(path.to_vec(), Entry::of(st, in_lower));
        } else if node::copy_leaf(dir, name, st, up, Some(&mut self.links)).map_err(&fail)? {
            self.new
                .entries
                .insert(path.to_vec(), Entry::of(st, in_lower));
        }
        Ok(())
    }

    /// Copies the children of the new tree directory `src` into the fresh upper
    /// directory `dst`.
    fn copy_tree(&mut self, src: &OwnedFd, dst: &OwnedFd, rel: &[u8]) -> Result<(), Error> {
        for name in node::names(src).map_err(err("reading", self.tree, rel))? {
            let path = join(rel, name.as_bytes());
            let st = match node::stat_at(src, &name) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(err("reading", self.tree, &path)(e)),
            };
            if kind(&st) == FileType::Socket {
                continue;
            }
            self.write_new(src, &name, &st, dst, &path, false)?;
        }
        Ok(())
    }
}
