//! `COPY --parents`: the source's path below the context root (or below a
//! `/./` pivot) is kept at the destination, and `**` in a source matches
//! any number of directories.
//!
//! BuildKit's behaviour: `COPY --parents x/a.txt y/a.txt /d/` gives
//! `/d/x/a.txt` and `/d/y/a.txt`; `COPY --parents ./x/./y/*.txt /d/` keeps
//! only what follows the pivot (`/d/y/b.txt`); a matched directory lands
//! at `/d/<its path>/` with its contents. The selection here feeds both
//! the cache key and the copy (through [`super::select::select`]), so the
//! key covers exactly what is copied.

use super::copy::{self, Attrs};
use super::select::{self, Error, Item, Tree};
use crate::dockerignore;
use crate::glob::Glob;
use crate::ir::Copy;

/// A source split at its pivot: the directory whose relative paths are
/// kept (`""` for the root), and the pattern below it.
fn split_pivot(src: &str) -> (String, String) {
    let src = src.trim_start_matches('/');
    let src = src.strip_prefix("./").unwrap_or(src);
    let (pivot, rest) = match src.split_once("/./") {
        Some((pivot, rest)) => (dockerignore::clean(pivot), rest),
        None => (String::new(), src),
    };
    let pivot = if pivot == "." { String::new() } else { pivot };
    let rest = dockerignore::clean(rest);
    let rest = if rest == "." { String::new() } else { rest };
    (pivot, rest)
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// The items of a `--parents` copy; each item's `name` is its path below
/// the pivot (what is kept at the destination).
///
/// # Errors
/// A missing non-wildcard source, unreadable files, bad patterns.
pub fn select(tree: &Tree<'_>, c: &Copy) -> Result<Vec<Item>, Error> {
    let mut items = Vec::new();
    for src in &c.src {
        let (pivot, rest) = split_pivot(src);
        let glob = Glob::new(&rest, true).map_err(|source| Error::Pattern {
            pattern: src.clone(),
            source,
        })?;
        let kept: Vec<String> = if c.allow_wildcard && glob.has_wildcards() {
            matches(tree, &pivot, &glob)?
        } else {
            vec![rest.clone()]
        };
        for k in kept {
            // One literal, non-parents selection per match: it applies
            // `.dockerignore` and `--exclude` below a matched directory.
            let single = Copy {
                src: vec![join(&pivot, &k)],
                allow_wildcard: false,
                parents: false,
                ..c.clone()
            };
            for mut item in select::select(tree, &single)? {
                item.name = k.clone();
                items.push(item);
            }
        }
    }
    Ok(items)
}

/// Paths below `pivot` (relative to it, sorted) that `glob` matches; a
/// matched directory is not searched further. `.dockerignore`d paths and
/// `--exclude`d ones are skipped by the selection that follows, except a
/// directory excluded as a whole, which is not entered here either.
fn matches(tree: &Tree<'_>, pivot: &str, glob: &Glob) -> Result<Vec<String>, Error> {
    let base = crate::beneath::host_path(tree.root, pivot, true)?;
    let mut out = Vec::new();
    let mut walk = walkdir::WalkDir::new(&base)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = walk.next() {
        let entry = entry.map_err(|e| Error::Read {
            path: e.path().unwrap_or(&base).to_path_buf(),
            source: e.into(),
        })?;
        let rel = entry
            .path()
            .strip_prefix(&base)
            .unwrap_or(entry.path())
            .to_string_lossy()
            .into_owned();
        let is_dir = entry.file_type().is_dir();
        let from_root = join(pivot, &rel);
        if !tree.ignore.is_empty()
            && tree.ignore.is_excluded(&from_root)
            && !(is_dir && tree.ignore.may_include_below(&from_root))
        {
            if is_dir {
                walk.skip_current_dir();
            }
            continue;
        }
        if glob.matches(&rel) {
            out.push(rel);
            if is_dir {
                walk.skip_current_dir();
            }
        } else if is_dir && !glob.could_match_below(&format!("{rel}/")) {
            walk.skip_current_dir();
        }
    }
    Ok(out)
}

/// Copies `items` (from [`select`]) to `c.dest`, each at its kept path.
///
/// # Errors
/// As [`copy::copy_items`].
pub fn copy_items(
    root: &std::path::Path,
    c: &Copy,
    items: Vec<Item>,
    attrs: &Attrs,
) -> Result<(), copy::Error> {
    let dest = if c.dest.ends_with('/') {
        c.dest.clone()
    } else {
        format!("{}/", c.dest)
    };
    for mut item in items {
        let kept = item.name.clone();
        let (parent, name) = kept.rsplit_once('/').unwrap_or(("", &kept));
        // A directory's contents go to `dest/<its path>/`, a file into
        // `dest/<its parent>/`.
        let under = if item.meta.is_dir() {
            kept.as_str()
        } else {
            parent
        };
        let one = Copy {
            src: vec![kept.clone()],
            dest: if under.is_empty() {
                dest.clone()
            } else {
                format!("{dest}{under}/")
            },
            ..c.clone()
        };
        item.name = name.to_string();
        copy::copy_items(root, &one, std::slice::from_ref(&item), attrs)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerignore::Matcher;

    fn copy(src: &[&str]) -> Copy {
        Copy {
            source: 1,
            src: src.iter().map(|s| s.to_string()).collect(),
            dest: "/d/".into(),
            owner: None,
            mode: None,
            allow_wildcard: true,
            unpack_archives: false,
            exclude: vec![],
            parents: true,
            link: false,
        }
    }

    #[test]
    fn selection_keeps_paths_below_the_pivot() {
        let t = tempfile::tempdir().unwrap();
        for f in [
            "x/a.txt",
            "y/a.txt",
            "x/y/b.txt",
            "x/y/c.md",
            "deep/p/q/r.txt",
            "ign/r.txt",
        ] {
            let p = t.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f).unwrap();
        }
        let ignore = Matcher::new(&["ign"]).unwrap();
        let tree = Tree {
            root: t.path(),
            ignore: &ignore,
        };
        let names = |src: &[&str]| -> Vec<String> {
            select::select(&tree, &copy(src))
                .unwrap()
                .into_iter()
                .map(|i| i.name)
                .collect()
        };
        assert_eq!(names(&["x/a.txt", "./y/a.txt"]), ["x/a.txt", "y/a.txt"]);
        assert_eq!(names(&["./x/./y/*.txt"]), ["y/b.txt"]);
        // `**` matches any depth; `.dockerignore`d paths are not matched.
        assert_eq!(names(&["**/r.txt"]), ["deep/p/q/r.txt"]);
        assert_eq!(names(&["**/*.txt"]).len(), 4);
        // A matched directory is one item, not searched further.
        assert_eq!(names(&["x/*"]), ["x/a.txt", "x/y"]);
        // A literal source that is missing is an error, a wildcard that
        // matches nothing is not.
        assert!(select::select(&tree, &copy(&["nope"])).is_err());
        assert!(names(&["**/*.none"]).is_empty());
    }

    #[test]
    fn pivots() {
        let cases = [
            ("x/a.txt", ("", "x/a.txt")),
            ("./x/a.txt", ("", "x/a.txt")),
            ("/x/a.txt", ("", "x/a.txt")),
            ("./x/./y/*.txt", ("x", "y/*.txt")),
            ("x/y/./z", ("x/y", "z")),
            ("**/r.txt", ("", "**/r.txt")),
            (".", ("", "")),
            ("./x/./", ("x", "")),
        ];
        for (src, (pivot, rest)) in cases {
            assert_eq!(
                split_pivot(src),
                (pivot.to_string(), rest.to_string()),
                "{src}"
            );
        }
    }
}
