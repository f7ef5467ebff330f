//! Which files a COPY reads: wildcard expansion, symlink following beneath
//! the source root, `.dockerignore` and `--exclude`.
//!
//! The same selection feeds the cache key (context hashing) and the copy
//! itself, so a key always covers exactly the files that are copied.

use std::fs::Metadata;
use std::io;
use std::path::{Path, PathBuf};

use crate::beneath;
use crate::dockerignore::{self, Matcher};
use crate::glob::{self, Glob};
use crate::ir::Copy;

/// Why the sources of a COPY cannot be selected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A source path (or everything a wildcard could match) is missing or
    /// excluded. Worded like BuildKit.
    #[error("failed to compute cache key: \"/{0}\": not found")]
    NotFound(String),
    /// A bad `--exclude` pattern.
    #[error(transparent)]
    Exclude(#[from] dockerignore::Error),
    /// A bad wildcard.
    #[error("invalid source pattern `{pattern}`")]
    Pattern {
        /// The source as written.
        pattern: String,
        /// What is wrong.
        #[source]
        source: glob::Error,
    },
    /// Resolving symlinks beneath the root failed.
    #[error(transparent)]
    Resolve(#[from] beneath::Error),
    /// Reading the source tree failed.
    #[error("reading {path:?}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// A file below a selected directory.
#[derive(Debug)]
pub struct Entry {
    /// Path relative to the item (`a/b.txt`).
    pub rel: String,
    /// Host path.
    pub path: PathBuf,
    /// `lstat` of it.
    pub meta: Metadata,
}

/// One matched source path.
#[derive(Debug)]
pub struct Item {
    /// The matched path's last component: the name at the destination.
    pub name: String,
    /// Root-relative path after following symlinks.
    pub rel: String,
    /// Host path.
    pub path: PathBuf,
    /// `stat` of it (symlinks followed).
    pub meta: Metadata,
    /// For a directory: everything below it, parents first, sorted.
    pub entries: Vec<Entry>,
}

/// Where a COPY reads from.
pub struct Tree<'a> {
    /// The source root (build context or a mounted stage).
    pub root: &'a Path,
    /// `.dockerignore` (empty for stages).
    pub ignore: &'a Matcher,
}

impl Tree<'_> {
    fn visible(&self, rel: &str, is_dir: bool) -> bool {
        if self.ignore.is_empty() || rel.is_empty() {
            return true;
        }
        !self.ignore.is_excluded(rel) || (is_dir && self.ignore.may_include_below(rel))
    }
}

/// Selects what `copy` reads from `tree`.
///
/// # Errors
/// A missing or excluded source, unreadable files, bad patterns.
pub fn select(tree: &Tree<'_>, copy: &Copy) -> Result<Vec<Item>, Error> {
    if copy.parents {
        return super::parents::select(tree, copy);
    }
    let exclude = Matcher::new(&copy.exclude)?;
    let mut items = Vec::new();
    for src in &copy.src {
        let cleaned = dockerignore::clean(src.trim_start_matches('/'));
        let cleaned = if cleaned == "." || cleaned.starts_with("..") {
            // `..` cannot leave the root: resolve it there.
            beneath::resolve_beneath(tree.root, &cleaned, false)?
        } else {
            cleaned
        };
        let wild = copy.allow_wildcard
            && Glob::new(&cleaned, false)
                .map_err(|source| Error::Pattern {
                    pattern: src.clone(),
                    source,
                })?
                .has_wildcards();
        if wild {
            let mut matched = Vec::new();
            expand(
                tree,
                "",
                &cleaned.split('/').collect::<Vec<_>>(),
                true,
                &mut matched,
            )?;
            // BuildKit allows a wildcard that matches nothing.
            for m in matched {
                // `--exclude` applies to what a wildcard matched, too
                // (`COPY --exclude=*.txt hom* /d/`), by name as below a
                // matched directory.
                let name = m.rsplit('/').next().unwrap_or(&m);
                if !exclude.is_empty() && exclude.is_excluded(name) {
                    continue;
                }
                items.push(item(tree, &m, &exclude)?);
            }
        } else {
            items.push(item(tree, &cleaned, &exclude)?);
        }
    }
    Ok(items)
}

/// Expands wildcard segments, in lexical order like Go's `filepath.Walk`.
/// `listed`: `prefix` came from a directory listing (so it exists and is
/// visible), not from a literal segment.
fn expand(
    tree: &Tree<'_>,
    prefix: &str,
    segs: &[&str],
    listed: bool,
    out: &mut Vec<String>,
) -> Result<(), Error> {
    let Some((seg, rest)) = segs.split_first() else {
        if listed {
            out.push(prefix.to_string());
            return Ok(());
        }
        // Literal segments after a wildcard (`src/*/f.txt`) name paths that
        // need not exist under every match: like BuildKit's walk, only
        // paths that are there (and not excluded) are matches.
        let path = beneath::host_path(tree.root, prefix, false)?;
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if tree.visible(prefix, meta.is_dir()) => out.push(prefix.to_string()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) => {}
            Err(e) => return Err(read_err(&path)(e)),
        }
        return Ok(());
    };
    let join = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        }
    };
    let glob = Glob::new(seg, false).map_err(|source| Error::Pattern {
        pattern: seg.to_string(),
        source,
    })?;
    if !glob.has_wildcards() {
        let unescaped: String = unescape(seg);
        return expand(tree, &join(&unescaped), rest, false, out);
    }
    let dir = beneath::host_path(tree.root, prefix, true)?;
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(())
        }
        Err(e) => return Err(read_err(&dir)(e)),
    };
    let mut names: Vec<(String, bool)> = Vec::new();
    for e in rd {
        let e = e.map_err(read_err(&dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        names.push((name, is_dir));
    }
    names.sort();
    for (name, is_dir) in names {
        if glob.matches(&name) && tree.visible(&join(&name), is_dir) {
            expand(tree, &join(&name), rest, true, out)?;
        }
    }
    Ok(())
}

fn unescape(seg: &str) -> String {
    let mut out = String::new();
    let mut chars = seg.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn item(tree: &Tree<'_>, matched: &str, exclude: &Matcher) -> Result<Item, Error> {
    let not_found = || Error::NotFound(matched.to_string());
    let rel = beneath::resolve_beneath(tree.root, matched, true)?;
    let path = if rel.is_empty() {
        tree.root.to_path_buf()
    } else {
        tree.root.join(&rel)
    };
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Err(not_found())
        }
        Err(e) => return Err(read_err(&path)(e)),
    };
    if meta.file_type().is_symlink() || !tree.visible(&rel, meta.is_dir()) {
        return Err(not_found());
    }
    let name = matched.rsplit('/').next().unwrap_or("").to_string();
    let mut entries = Vec::new();
    if meta.is_dir() {
        walk(tree, &rel, &path, "", exclude, &mut entries)?;
    }
    Ok(Item {
        name,
        rel,
        path,
        meta,
        entries,
    })
}

/// Walks `dir` (host path; `rel` root-relative; `sub` item-relative),
/// appending visible entries in sorted pre-order. A directory that is
/// itself excluded but holds re-included files is added before them.
///
/// The `stat`s of one directory and its subdirectories run in parallel on
/// rayon (the order of the result does not depend on it): an unchanged
/// monorepo's cache key is mostly this walk.
fn walk(
    tree: &Tree<'_>,
    rel: &str,
    dir: &Path,
    sub: &str,
    exclude: &Matcher,
    out: &mut Vec<Entry>,
) -> Result<(), Error> {
    use rayon::prelude::*;
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(read_err(dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(read_err(dir))?;
    names.sort();
    let parts: Vec<Vec<Entry>> = names
        .par_iter()
        .map(|name| {
            let name = name.to_string_lossy();
            let path = dir.join(&*name);
            let meta = std::fs::symlink_metadata(&path).map_err(read_err(&path))?;
            let crel = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            let csub = if sub.is_empty() {
                name.to_string()
            } else {
                format!("{sub}/{name}")
            };
            let ignored = !tree.ignore.is_empty() && tree.ignore.is_excluded(&crel);
            let excluded = !exclude.is_empty() && exclude.is_excluded(&csub);
            let mut part = Vec::new();
            if meta.is_dir() {
                let descend = (!ignored || tree.ignore.may_include_below(&crel))
                    && (!excluded || exclude.may_include_below(&csub));
                if !descend {
                    return Ok(part);
                }
                part.push(Entry {
                    rel: csub.clone(),
                    path: path.clone(),
                    meta,
                });
                walk(tree, &crel, &path, &csub, exclude, &mut part)?;
                if (ignored || excluded) && part.len() == 1 {
                    part.clear();
                }
            } else if !ignored && !excluded {
                part.push(Entry {
                    rel: csub,
                    path,
                    meta,
                });
            }
            Ok(part)
        })
        .collect::<Result<_, Error>>()?;
    out.reserve(parts.iter().map(Vec::len).sum());
    for part in parts {
        out.extend(part);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn copy(src: &[&str]) -> Copy {
        Copy {
            source: 1,
            src: src.iter().map(|s| s.to_string()).collect(),
            dest: "/".into(),
            owner: None,
            mode: None,
            allow_wildcard: true,
            unpack_archives: false,
            exclude: vec![],
            parents: false,
            link: false,
        }
    }

    fn ctx() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("ctx");
        std::fs::create_dir_all(r.join("dir/sub")).unwrap();
        std::fs::create_dir_all(r.join("dir/keep")).unwrap();
        for f in [
            "a.txt",
            "b.txt",
            "c.md",
            "dir/x",
            "dir/sub/y",
            "dir/keep/k",
            "hidden.txt",
        ] {
            std::fs::write(r.join(f), f).unwrap();
        }
        std::fs::write(t.path().join("outside.txt"), "secret").unwrap();
        symlink("../outside.txt", r.join("escape")).unwrap();
        symlink("dir/x", r.join("toplink")).unwrap();
        symlink("/etc/passwd", r.join("dir/abs")).unwrap();
        t
    }

    fn names(items: &[Item]) -> Vec<String> {
        let mut out = Vec::new();
        for i in items {
            out.push(i.rel.clone());
            for e in &i.entries {
                out.push(format!("{}/{}", i.rel, e.rel));
            }
        }
        out
    }

    #[test]
    fn wildcards_dirs_ignore_and_exclude() {
        let t = ctx();
        let root = t.path().join("ctx");
        let ignore = Matcher::new(&["hidden.txt", "dir/sub", "dir/keep", "!dir/keep/k"]).unwrap();
        let tree = Tree {
            root: &root,
            ignore: &ignore,
        };
        let items = select(&tree, &copy(&["*.txt"])).unwrap();
        assert_eq!(names(&items), ["a.txt", "b.txt"]);
        let items = select(&tree, &copy(&["dir"])).unwrap();
        assert_eq!(
            names(&items),
            ["dir", "dir/abs", "dir/keep", "dir/keep/k", "dir/x"]
        );
        let mut c = copy(&["dir"]);
        c.exclude = vec!["x".into()];
        assert_eq!(
            names(&select(&tree, &c).unwrap()),
            ["dir", "dir/abs", "dir/keep", "dir/keep/k"]
        );
        assert!(matches!(
            select(&tree, &copy(&["hidden.txt"])),
            Err(Error::NotFound(_))
        ));
        assert!(select(&tree, &copy(&["nomatch*"])).unwrap().is_empty());
        // a literal segment after a wildcard matches only where it exists
        assert_eq!(
            names(&select(&tree, &copy(&["*/k"])).unwrap()),
            [] as [&str; 0]
        );
        assert_eq!(names(&select(&tree, &copy(&["d*/x"])).unwrap()), ["dir/x"]);
        assert!(matches!(
            select(&tree, &copy(&["missing"])),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn top_level_symlinks_are_followed_beneath_the_root() {
        let t = ctx();
        let root = t.path().join("ctx");
        let ignore = Matcher::default();
        let tree = Tree {
            root: &root,
            ignore: &ignore,
        };
        let items = select(&tree, &copy(&["toplink"])).unwrap();
        assert_eq!(items[0].name, "toplink");
        assert_eq!(items[0].rel, "dir/x");
        let err = select(&tree, &copy(&["escape"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to compute cache key: \"/escape\": not found"
        );
        let items = select(&tree, &copy(&["/", "."])).unwrap();
        assert_eq!(items.len(), 2);
        assert!(items[0].meta.is_dir());
    }
}
