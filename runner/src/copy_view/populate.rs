//! Flattening layers into one writable tree: overlayfs's lookup rules done once, by
//! copying.
//!
//! The layers are merged top-down, one directory at a time, as overlayfs looks paths up:
//! the topmost layer that has a name decides what it is; a whiteout (char 0/0) hides the
//! name in every layer below; a directory merges with the directories of the same name
//! below it until one of them is opaque (`*.overlay.opaque=y`) or a layer has a
//! non-directory there. So nothing is copied that a higher layer hides.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Statx};
use rustix::io::Errno;

use super::baseline::{join, Baseline, Entry};
use super::node::{self, kind};
use super::{err, io_err, open_root};
use crate::Error;

/// One layer's directory at the path being merged.
struct Source {
    fd: OwnedFd,
    /// A lower layer, not the upper dir of a restarted container.
    lower: bool,
}

/// What the merged view has at one name.
enum Pick {
    /// Whited out; `hides_lower` when a lower layer below the whiteout has it.
    Deleted {
        by_upper: bool,
        hides_lower: bool,
        lower_seen: bool,
    },
    /// A non-directory from source `src`.
    Leaf {
        src: usize,
        st: Statx,
        in_lower: bool,
        lower_seen: bool,
    },
    /// A directory merged from `srcs` (top first); `closed` once no more may join.
    Dir {
        srcs: Vec<usize>,
        st: Statx,
        closed: bool,
        in_lower: bool,
        lower_seen: bool,
    },
}

/// Copies `lowers` (top first) and then, on top, an existing `upper` (overlay format)
/// into `tree` (created if missing, else empty), preserving modes, owners, times,
/// xattrs (not overlayfs's), symlinks, fifos and, where allowed, device nodes; every
/// path gets its own copy (hard links are broken, as overlayfs copy-up does with
/// `index=off`). Returns the baseline of the new tree, after waiting until the coarse
/// clock has passed every ctime in it, so that any later change moves a ctime.
///
/// # Errors
/// [`Error::CopyView`] naming the operation and path that failed.
pub(crate) fn populate(
    lowers: &[PathBuf],
    upper: Option<&Path>,
    tree: &Path,
) -> Result<Baseline, Error> {
    let mut srcs = Vec::new();
    if let Some(upper) = upper {
        srcs.push(Source {
            fd: open_root(upper)?,
            lower: false,
        });
    }
    for l in lowers {
        srcs.push(Source {
            fd: open_root(l)?,
            lower: true,
        });
    }
    match std::fs::create_dir(tree) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("creating", tree)(e)),
    }
    let dst = open_root(tree)?;
    let mut base = Baseline::default();
    let mut m = Merger {
        tree,
        base: &mut base,
    };
    m.merge(&srcs, &dst, &mut Vec::new())?;
    if let Some(top) = srcs.first() {
        let st = node::stat_fd(&top.fd).map_err(err("reading", tree, b""))?;
        node::set_meta_fd(&top.fd, &st, &dst).map_err(err("setting metadata of", tree, b""))?;
    }
    Ok(base)
}

struct Merger<'a> {
    tree: &'a Path,
    base: &'a mut Baseline,
}

impl Merger<'_> {
    fn merge(&mut self, srcs: &[Source], dst: &OwnedFd, rel: &mut Vec<u8>) -> Result<(), Error> {
        let mut picks: BTreeMap<CString, Pick> = BTreeMap::new();
        for (i, src) in srcs.iter().enumerate() {
            let names = node::names(&src.fd).map_err(err("reading", self.tree, rel))?;
            for name in names {
                let st = node::stat_at(&src.fd, &name).map_err(err("reading", self.tree, rel))?;
                let whiteout = node::is_whiteout(&st);
                let is_dir = kind(&st) == FileType::Directory;
                let opaque = || node::open_dir(&src.fd, &name).is_ok_and(|fd| node::is_opaque(&fd));
                match picks.get_mut(&name) {
                    None => {
                        let pick = if whiteout {
                            Pick::Deleted {
                                by_upper: !src.lower,
                                hides_lower: false,
                                lower_seen: src.lower,
                            }
                        } else if is_dir {
                            Pick::Dir {
                                srcs: vec![i],
                                st,
                                closed: opaque(),
                                in_lower: src.lower,
                                lower_seen: src.lower,
                            }
                        } else {
                            Pick::Leaf {
                                src: i,
                                st,
                                in_lower: src.lower,
                                lower_seen: src.lower,
                            }
                        };
                        picks.insert(name, pick);
                    }
                    Some(Pick::Deleted {
                        by_upper,
                        hides_lower,
                        lower_seen,
                    }) => {
                        if src.lower && !*lower_seen {
                            *lower_seen = true;
                            *hides_lower = *by_upper && !whiteout;
                        }
                    }
                    Some(Pick::Leaf {
                        in_lower,
                        lower_seen,
                        ..
                    }) => {
                        if src.lower && !*lower_seen {
                            *lower_seen = true;
                            *in_lower = !whiteout;
                        }
                    }
                    Some(Pick::Dir {
                        srcs,
                        closed,
                        in_lower,
                        lower_seen,
                        ..
                    }) => {
                        if src.lower && !*lower_seen {
                            *lower_seen = true;
                            *in_lower = !whiteout;
                        }
                        if !*closed {
                            if is_dir {
                                srcs.push(i);
                                *closed = opaque();
                            } else {
                                *closed = true;
                            }
                        }
                    }
                }
            }
        }
        for (name, pick) in picks {
            let base = rel.len();
            *rel = join(rel, name.as_bytes());
            match pick {
                Pick::Deleted { hides_lower, .. } => {
                    if hides_lower {
                        self.base.entries.insert(rel.clone(), Entry::hidden());
                    }
                }
                Pick::Leaf {
                    src, st, in_lower, ..
                } => {
                    let fail = err("copying", self.tree, rel);
                    if node::copy_leaf(&srcs[src].fd, &name, &st, dst, None).map_err(&fail)? {
                        let now = node::stat_at(dst, &name).map_err(fail)?;
                        self.base
                            .entries
                            .insert(rel.clone(), Entry::of(&now, in_lower));
                    }
                }
                Pick::Dir {
                    srcs: from,
                    st,
                    in_lower,
                    ..
                } => {
                    let fail = err("copying directory", self.tree, rel);
                    let children = from
                        .iter()
                        .map(|&i| {
                            Ok(Source {
                                fd: node::open_dir(&srcs[i].fd, &name)?,
                                lower: srcs[i].lower,
                            })
                        })
                        .collect::<Result<Vec<_>, Errno>>()
                        .map_err(&fail)?;
                    let made = node::make_dir(dst, &name).map_err(&fail)?;
                    self.merge(&children, &made, rel)?;
                    node::set_meta_fd(&children[0].fd, &st, &made).map_err(&fail)?;
                    let now = node::stat_fd(&made).map_err(fail)?;
                    self.base
                        .entries
                        .insert(rel.clone(), Entry::of(&now, in_lower));
                }
            }
            rel.truncate(base);
        }
        Ok(())
    }
}
