//! `bake diff CTR`: what the container changed, read from its overlay upper dir.
//!
//! Docker's overlay differ, followed closely: the upper dir is walked in
//! `filepath.Walk` order (each directory's names sorted, children right after
//! their directory); an entry is `A` when no lower layer has it, `C` when one does,
//! a whiteout (character device 0/0) is `D`. A directory that was only copied up
//! because something beneath it changed (same mode, size and mtime as below) is
//! not listed itself, but the parent of every `A`/`D` is listed as `C`.
//!
//! Two decisions Docker leaves implicit: an opaque directory (the container
//! removed a directory and made it again) is `C` (or `A`) and each entry it hides
//! from the layers below is `D`; and the mount points the runner had to create in
//! the upper dir (`/proc`, `/dev`, `/etc/hosts`, volume targets…), with the parents
//! it copied up only for them, are not changes of the container and are left out.
//!
//! The lower layers are store snapshots (image content, so untrusted): they are only
//! ever `lstat`ed beneath directories already known to be real directories there, so
//! a symlink in a layer is never followed.

use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bake_runner::MountSpec;
use clap::Args;

use super::container::{self, Container};
use crate::app::Global;

/// `bake diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The container (name or id).
    pub container: String,
}

/// What happened to a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `A`: new.
    Added,
    /// `C`: changed.
    Changed,
    /// `D`: removed.
    Deleted,
}

/// One line of the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// What happened.
    pub kind: Kind,
    /// Absolute path in the container.
    pub path: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let letter = match self.kind {
            Kind::Added => 'A',
            Kind::Changed => 'C',
            Kind::Deleted => 'D',
        };
        write!(f, "{letter} {}", self.path)
    }
}

/// Prints the changes, one per line.
pub fn run(global: &Global, args: &DiffArgs) -> Result<()> {
    let root = super::store_root(global);
    let c = container::find(&root, &args.container)?;
    let mut out = String::new();
    for change in changes_of(&c)? {
        out.push_str(&change.to_string());
        out.push('\n');
    }
    use std::io::Write;
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(())
}

/// The container's changes, mount points left out.
///
/// # Errors
/// When the upper dir cannot be read.
pub fn changes_of(c: &Container) -> Result<Vec<Change>> {
    sync_copied(c)?;
    let plan = &c.config.plan;
    let all = changes(&plan.rootfs.upper, &plan.rootfs.lowers)?;
    Ok(without_mount_points(all, &mount_points(&plan.mounts)))
}

/// A running container on a copied rootfs (`BAKE_SNAPSHOTTER=copy`) has its changes
/// written into its upper dir only when it exits: write them now, so that `diff` and
/// `commit` see what overlayfs would show them.
///
/// # Errors
/// When the copied tree cannot be synced.
pub fn sync_copied(c: &Container) -> Result<()> {
    let state = c.state();
    if state.status == bake_runner::Status::Running {
        let rootfs = &c.config.plan.rootfs;
        bake_runner::sync_running(&rootfs.work, &rootfs.upper, state.supervisor)
            .with_context(|| format!("saving the changes of container {}", c.config.name))?;
    }
    Ok(())
}

/// Where the runner mounts something in every container, plus the plan's mounts.
pub fn mount_points(mounts: &[MountSpec]) -> Vec<String> {
    let mut out: Vec<String> = ["/proc", "/dev", "/sys", "/etc/hosts", "/etc/resolv.conf"]
        .map(String::from)
        .to_vec();
    for m in mounts {
        let (MountSpec::Bind { target, .. } | MountSpec::Tmpfs { target, .. }) = m;
        out.push(super::run::normalize(target));
    }
    out
}

/// Drops the mount points themselves and the directories that only hold them (pure).
pub fn without_mount_points(changes: Vec<Change>, points: &[String]) -> Vec<Change> {
    let beneath = |path: &str, dir: &str| {
        path.strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
    };
    let is_point = |p: &str| points.iter().any(|m| m == p || beneath(p, m));
    let kept: Vec<Change> = changes.into_iter().filter(|c| !is_point(&c.path)).collect();
    let ancestor_of_point = |p: &str| points.iter().any(|m| beneath(m, p));
    let real: Vec<String> = kept
        .iter()
        .filter(|c| !ancestor_of_point(&c.path))
        .map(|c| c.path.clone())
        .collect();
    kept.into_iter()
        .filter(|c| !ancestor_of_point(&c.path) || real.iter().any(|r| beneath(r, &c.path)))
        .collect()
}

/// Walks `upper` against `lowers` (top first).
///
/// # Errors
/// When a directory of `upper` cannot be read.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    let mut recorded = BTreeSet::new();
    walk(upper, "", lowers, &mut out, &mut recorded)?;
    Ok(out)
}

fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(
        rustix::fs::lgetxattr(path, bake_store::layer::opaque_xattr(), &mut buf),
        Ok(1) if buf[0] == b'y'
    )
}

/// What the layers below show at `name` in a directory whose real instances are
/// `lowers` (top first): the first entry found, unless a whiteout hides it.
fn in_lowers(lowers: &[PathBuf], name: &std::ffi::OsStr) -> Option<std::fs::Metadata> {
    for dir in lowers {
        match std::fs::symlink_metadata(dir.join(name)) {
            Ok(m) if is_whiteout(&m) => return None,
            Ok(m) => return Some(m),
            Err(_) => {}
        }
    }
    None
}

/// The instances of directory `name` in the layers below, top first, stopping at
/// anything that hides the rest (a whiteout, a non-directory, an opaque directory).
fn lower_dirs(lowers: &[PathBuf], name: &std::ffi::OsStr) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in lowers {
        let path = dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {
                let opaque = is_opaque(&path);
                out.push(path);
                if opaque {
                    break;
                }
            }
            Ok(_) => break,
            Err(_) => {}
        }
    }
    out
}

fn record(out: &mut Vec<Change>, recorded: &mut BTreeSet<String>, kind: Kind, path: String) {
    if matches!(kind, Kind::Added | Kind::Deleted) {
        let parent = match path.rfind('/') {
            Some(0) | None => String::new(),
            Some(i) => path[..i].to_string(),
        };
        if !parent.is_empty() && recorded.insert(parent.clone()) {
            out.push(Change {
                kind: Kind::Changed,
                path: parent,
            });
        }
    }
    recorded.insert(path.clone());
    out.push(Change { kind, path });
}

fn walk(
    dir: &Path,
    rel: &str,
    lowers: &[PathBuf],
    out: &mut Vec<Change>,
    recorded: &mut BTreeSet<String>,
) -> Result<()> {
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    names.sort();
    for name in names {
        let path = format!("{rel}/{}", name.to_string_lossy());
        let host = dir.join(&name);
        let meta = std::fs::symlink_metadata(&host)
            .with_context(|| format!("reading {}", host.display()))?;
        let below = in_lowers(lowers, &name);
        if is_whiteout(&meta) {
            if below.is_some() {
                record(out, recorded, Kind::Deleted, path);
            }
            continue;
        }
        let opaque = meta.is_dir() && is_opaque(&host);
        match &below {
            None => record(out, recorded, Kind::Added, path.clone()),
            Some(b) => {
                let same_dir = b.is_dir()
                    && meta.is_dir()
                    && !opaque
                    && b.size() == meta.size()
                    && b.mode() == meta.mode()
                    && b.mtime() == meta.mtime()
                    && b.mtime_nsec() == meta.mtime_nsec();
                if !same_dir {
                    record(out, recorded, Kind::Changed, path.clone());
                }
            }
        }
        if !meta.is_dir() {
            continue;
        }
        let children = lower_dirs(lowers, &name);
        if opaque {
            // Everything the layers below had here is gone, unless made again.
            let mut hidden = BTreeSet::new();
            for lower in &children {
                if let Ok(entries) = std::fs::read_dir(lower) {
                    for e in entries.flatten() {
                        let n = e.file_name();
                        let again = std::fs::symlink_metadata(host.join(&n))
                            .is_ok_and(|m| !is_whiteout(&m));
                        let whited =
                            std::fs::symlink_metadata(e.path()).is_ok_and(|m| is_whiteout(&m));
                        if !again && !whited {
                            hidden.insert(n);
                        }
                    }
                }
            }
            for n in hidden {
                record(
                    out,
                    recorded,
                    Kind::Deleted,
                    format!("{path}/{}", n.to_string_lossy()),
                );
            }
            walk(&host, &path, &[], out, recorded)?;
        } else {
            walk(&host, &path, &children, out, recorded)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(kind: Kind, path: &str) -> Change {
        Change {
            kind,
            path: path.into(),
        }
    }

    #[test]
    fn mount_points_and_their_parents_are_left_out() {
        let changes = vec![
            ch(Kind::Changed, "/etc"),
            ch(Kind::Added, "/etc/hosts"),
            ch(Kind::Added, "/proc"),
            ch(Kind::Added, "/data"),
            ch(Kind::Added, "/data/x"),
            ch(Kind::Changed, "/srv"),
            ch(Kind::Added, "/srv/vol"),
            ch(Kind::Added, "/srv/new"),
        ];
        let points = mount_points(&[MountSpec::Bind {
            source: "/h".into(),
            target: "/srv/vol/".into(),
            readonly: false,
        }]);
        assert_eq!(
            without_mount_points(changes, &points),
            [
                ch(Kind::Added, "/data"),
                ch(Kind::Added, "/data/x"),
                ch(Kind::Changed, "/srv"),
                ch(Kind::Added, "/srv/new"),
            ]
        );
    }

    #[test]
    fn walk_reports_adds_changes_and_whiteouts() {
        let tmp = tempfile::tempdir().unwrap();
        let (upper, lower) = (tmp.path().join("u"), tmp.path().join("l"));
        for d in ["l/etc", "l/a", "u/etc", "u/new"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        std::fs::write(lower.join("etc/passwd"), "x").unwrap();
        std::fs::write(lower.join("a/f"), "x").unwrap();
        std::fs::write(upper.join("etc/passwd"), "y").unwrap();
        std::fs::write(upper.join("new/file"), "y").unwrap();
        let set_mtime = |dir: &Path, secs: u64| {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            std::fs::File::open(dir).unwrap().set_modified(t).unwrap();
        };
        let list = || -> Vec<String> {
            changes(&upper, std::slice::from_ref(&lower))
                .unwrap()
                .iter()
                .map(|c| c.to_string())
                .collect()
        };
        // /etc only copied up (same mode, size, mtime): not listed itself.
        set_mtime(&lower.join("etc"), 1_000);
        set_mtime(&upper.join("etc"), 1_000);
        assert_eq!(list(), ["C /etc/passwd", "A /new", "A /new/file"]);
        // Touched: listed.
        set_mtime(&upper.join("etc"), 2_000);
        assert_eq!(list(), ["C /etc", "C /etc/passwd", "A /new", "A /new/file"]);
    }
}
