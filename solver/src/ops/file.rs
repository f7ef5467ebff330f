//! File ops: COPY/ADD, mkdir, mkfile, rm, applied to an overlay view of
//! the input with a fresh upper dir that becomes the new layer.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use bake_runner::OverlayMount;
use bake_store::{Layer, Store};

use super::chmod::Mode;
use super::copy::{self, Attrs};
use super::direct;
use super::exec::lowers;
use super::owner::{self, Ids};
use super::select::{self, Tree};
use super::{io_err, Error};
use crate::beneath;
use crate::dockerignore::Matcher;
use crate::ir::{Copy, FileAction, FileOp, Owner};

/// A COPY source as the file op sees it.
pub enum CopySource<'a> {
    /// A local directory with its `.dockerignore` patterns.
    Local {
        /// The directory.
        dir: &'a Path,
        /// Its `.dockerignore` patterns.
        exclude: &'a [String],
    },
    /// Another vertex's filesystem.
    Layers(&'a [Layer]),
}

/// Applies `op` on `inputs[0]`; `sources[i]` describes `inputs[i]`.
///
/// # Errors
/// Any action's failure, mounts, commit.
pub fn run(
    store: &Store,
    op: &FileOp,
    sources: &[CopySource<'_>],
    epoch: Option<i64>,
) -> Result<Vec<Layer>, Error> {
    run_routed(store, op, sources, epoch, true)
}

/// [`run`], with the direct-to-upper route allowed or not (tests compare
/// the two).
fn run_routed(
    store: &Store,
    op: &FileOp,
    sources: &[CopySource<'_>],
    epoch: Option<i64>,
    allow_direct: bool,
) -> Result<Vec<Layer>, Error> {
    let base = match sources.first() {
        Some(CopySource::Layers(l)) => *l,
        Some(CopySource::Local { dir, .. }) => {
            return Err(Error::NotAFilesystem(dir.to_path_buf()))
        }
        None => return Err(Error::Unsupported("file op without a root input".into())),
    };
    let tmp = store.temp_dir("file")?;
    let upper = tmp.path().join("upper");
    let work = tmp.path().join("work");
    let merged = tmp.path().join("merged");
    for d in [&upper, &work, &merged] {
        fs::create_dir(d).map_err(io_err("mkdir", d))?;
    }
    let lower_dirs = lowers(store, base);
    if allow_direct && direct::direct_copy(op, &lower_dirs).is_some() {
        // The COPY creates a top-level name no lower has: the merged view
        // would only pass writes through to the upper dir (see `direct`).
        apply(
            store,
            &upper,
            &op.actions[0],
            sources,
            &tmp.path().join("src-0"),
        )?;
    } else {
        let view = bake_runner::mount_overlay(&lower_dirs, Some((&upper, &work)), &merged)?;
        for (n, action) in op.actions.iter().enumerate() {
            apply(
                store,
                &merged,
                action,
                sources,
                &tmp.path().join(format!("src-{n}")),
            )?;
        }
        // A copied view (BAKE_SNAPSHOTTER=copy) writes its changes into `upper` here.
        view.finish()?;
    }
    let layer = store.commit_snapshot(&upper, base.last().map(|l| &l.chain_id), epoch)?;
    let mut chain = base.to_vec();
    chain.push(layer);
    Ok(chain)
}

/// Applies one action to the directory `root` (a merged view, or any
/// directory in tests). `scratch` is a free path for a source mount.
///
/// # Errors
/// The action's failure.
pub fn apply(
    store: &Store,
    root: &Path,
    action: &FileAction,
    sources: &[CopySource<'_>],
    scratch: &Path,
) -> Result<(), Error> {
    match action {
        FileAction::Copy(c) => {
            let src = sources.get(c.source).ok_or_else(|| {
                Error::Unsupported(format!("COPY from missing input {}", c.source))
            })?;
            let mut _mount: Option<OverlayMount> = None;
            let (src_root, exclude, from_context) = match src {
                CopySource::Local { dir, exclude } => (dir.to_path_buf(), *exclude, true),
                CopySource::Layers(layers) => {
                    fs::create_dir(scratch).map_err(io_err("mkdir", scratch))?;
                    _mount = Some(bake_runner::mount_overlay(
                        &lowers(store, layers),
                        None,
                        scratch,
                    )?);
                    (scratch.to_path_buf(), &[][..], false)
                }
            };
            copy_into(root, &src_root, exclude, from_context, c)
        }
        FileAction::Mkdir {
            path,
            mode,
            parents,
            owner,
        } => mkdir(root, path, *mode, *parents, owner.as_ref()),
        FileAction::Mkfile {
            path,
            mode,
            data,
            owner,
        } => mkfile(root, path, *mode, data, owner.as_ref()),
        FileAction::Rm {
            path,
            allow_not_found,
        } => rm(root, path, *allow_not_found),
    }
}

/// COPY from the directory `src_root` into `root`.
///
/// # Errors
/// Selection, ownership, mode and copy failures.
pub fn copy_into(
    root: &Path,
    src_root: &Path,
    exclude: &[String],
    from_context: bool,
    c: &Copy,
) -> Result<(), Error> {
    let ignore = Matcher::new(exclude)?;
    let tree = Tree {
        root: src_root,
        ignore: &ignore,
    };
    let items = select::select(&tree, c)?;
    let attrs = Attrs {
        chown: c
            .owner
            .as_ref()
            .map(|o| owner::resolve(root, o))
            .transpose()?,
        chmod: c.mode.as_ref().map(Mode::new).transpose()?,
        from_context,
    };
    if c.parents {
        super::parents::copy_items(root, c, items, &attrs)?;
    } else {
        copy::copy_items(root, c, &items, &attrs)?;
    }
    Ok(())
}

fn ids(root: &Path, owner: Option<&Owner>) -> Result<Ids, Error> {
    Ok(match owner {
        Some(o) => owner::resolve(root, o)?,
        None => Ids { uid: 0, gid: 0 },
    })
}

fn mkdir(
    root: &Path,
    path: &str,
    mode: u32,
    parents: bool,
    owner: Option<&Owner>,
) -> Result<(), Error> {
    let ids = ids(root, owner)?;
    let rel = beneath::resolve_beneath(root, path, true)?;
    let host = root.join(&rel);
    if host.is_dir() {
        return Ok(());
    }
    if !parents {
        if let Some(parent) = host.parent() {
            if !parent.is_dir() {
                return Err(io_err("mkdir", &host)(std::io::ErrorKind::NotFound.into()));
            }
        }
    }
    let attrs = Attrs {
        chown: Some(ids),
        chmod: Some(Mode::new(&crate::ir::Chmod::Octal(mode))?),
        from_context: true,
    };
    // Every directory created gets `mode` and the owner (mkdir -p -m).
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let mut cur = String::new();
    for c in comps {
        if !cur.is_empty() {
            cur.push('/');
        }
        cur.push_str(c);
        let p = root.join(&cur);
        if !p.is_dir() {
            copy::ensure_dir(root, &cur, None, &attrs)?;
            copy::set_owner_mode(&p, ids, Some(mode))?;
        }
    }
    Ok(())
}

fn mkfile(
    root: &Path,
    path: &str,
    mode: u32,
    data: &str,
    owner: Option<&Owner>,
) -> Result<(), Error> {
    let ids = ids(root, owner)?;
    let rel = beneath::resolve_beneath(root, path, false)?;
    let host = root.join(&rel);
    if let Ok(m) = fs::symlink_metadata(&host) {
        if m.is_dir() {
            return Err(copy::Error::IsADirectory(host.display().to_string()).into());
        }
        fs::remove_file(&host).map_err(io_err("remove", &host))?;
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&host)
        .map_err(io_err("create", &host))?;
    f.write_all(data.as_bytes())
        .map_err(io_err("write", &host))?;
    std::os::unix::fs::fchown(&f, Some(ids.uid), Some(ids.gid)).map_err(io_err("chown", &host))?;
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(io_err("chmod", &host))?;
    Ok(())
}

fn rm(root: &Path, path: &str, allow_not_found: bool) -> Result<(), Error> {
    let rel = beneath::resolve_beneath(root, path, false)?;
    if rel.is_empty() {
        return Err(Error::Unsupported("removing the root directory".into()));
    }
    let host = root.join(&rel);
    match fs::symlink_metadata(&host) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(&host).map_err(io_err("remove", &host)),
        Ok(_) => fs::remove_file(&host).map_err(io_err("remove", &host)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && allow_not_found => Ok(()),
        Err(e) => Err(io_err("remove", &host)(e)),
    }
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod route_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn mkdir_mkfile_rm() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        mkdir(r, "/created/by/workdir", 0o755, true, None).unwrap();
        assert_eq!(
            fs::metadata(r.join("created/by")).unwrap().mode() & 0o7777,
            0o755
        );
        assert!(mkdir(r, "/no/parents", 0o755, false, None).is_err());
        mkfile(r, "/created/f", 0o640, "hi", None).unwrap();
        assert_eq!(fs::read_to_string(r.join("created/f")).unwrap(), "hi");
        assert_eq!(
            fs::metadata(r.join("created/f")).unwrap().mode() & 0o7777,
            0o640
        );
        rm(r, "/created", false).unwrap();
        assert!(!r.join("created").exists());
        assert!(rm(r, "/created", false).is_err());
        rm(r, "/created", true).unwrap();
    }
}
