//! Resolving a path beneath a root directory, as if the root were `/`.
//!
//! Every component is looked up with `lstat`; a symlink is followed by
//! splicing its target into the remaining path, an absolute target
//! restarting at the root, and `..` never climbs above the root. So a
//! hostile symlink in a context or an image (`../../etc`, `/etc/shadow`)
//! resolves to a path *inside* the root, never outside it.
//!
//! This is path-based: it is safe against what is on disk when it runs,
//! not against a concurrent writer swapping components (the roots bake
//! resolves in are private overlay mounts and build contexts).

use std::io;
use std::path::{Component, Path, PathBuf};

/// Why a path cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// More than 40 symlinks on the way (Linux's `ELOOP` limit).
    #[error("too many levels of symbolic links resolving {path:?} beneath {root:?}")]
    Loop {
        /// The root.
        root: PathBuf,
        /// The path asked for.
        path: String,
    },
    /// `lstat`/`readlink` of a component failed (other than not found).
    #[error("resolving {path:?} beneath {root:?}")]
    Io {
        /// The root.
        root: PathBuf,
        /// The path asked for.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Resolves `path` (absolute or relative, `/`-separated) beneath `root`.
///
/// Returns the root-relative path (no leading `/`, `""` for the root
/// itself). Components that do not exist are kept literally, so the result
/// also names paths about to be created. The final component's symlink is
/// followed only when `follow_final` is set.
///
/// # Errors
/// [`Error::Loop`] on symlink cycles, [`Error::Io`] when a component
/// cannot be examined.
pub fn resolve_beneath(root: &Path, path: &str, follow_final: bool) -> Result<String, Error> {
    let mut pending: Vec<String> = split(path);
    pending.reverse(); // a stack: next component at the end
    let mut resolved: Vec<String> = Vec::new();
    let mut links = 0;
    let mut missing = false;
    while let Some(comp) = pending.pop() {
        if comp == ".." {
            // Popping an empty stack is `..` at the root: it stays there.
            resolved.pop();
            continue;
        }
        resolved.push(comp);
        if missing {
            continue;
        }
        let is_final = pending.is_empty();
        if is_final && !follow_final {
            break;
        }
        let host = root.join(resolved.join("/"));
        let meta = match std::fs::symlink_metadata(&host) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing = true;
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                missing = true;
                continue;
            }
            Err(source) => {
                return Err(Error::Io {
                    root: root.to_path_buf(),
                    path: path.to_string(),
                    source,
                })
            }
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        links += 1;
        if links > 40 {
            return Err(Error::Loop {
                root: root.to_path_buf(),
                path: path.to_string(),
            });
        }
        let target = std::fs::read_link(&host).map_err(|source| Error::Io {
            root: root.to_path_buf(),
            path: path.to_string(),
            source,
        })?;
        resolved.pop();
        let target = target.to_string_lossy().into_owned();
        if target.starts_with('/') {
            resolved.clear();
        }
        for c in split(&target).into_iter().rev() {
            pending.push(c);
        }
    }
    Ok(resolved.join("/"))
}

/// The host path of [`resolve_beneath`]'s result.
///
/// # Errors
/// As [`resolve_beneath`].
pub fn host_path(root: &Path, path: &str, follow_final: bool) -> Result<PathBuf, Error> {
    let rel = resolve_beneath(root, path, follow_final)?;
    Ok(if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    })
}

/// Splits a path into normal components and `..` (dropping `.` and empty
/// ones).
fn split(path: &str) -> Vec<String> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".to_string()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("etc/passwd"), "x").unwrap();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        symlink("/etc", r.join("abs")).unwrap();
        symlink("../../..", r.join("a/b/up")).unwrap();
        symlink("../etc/passwd", r.join("a/rel")).unwrap();
        symlink("loop2", r.join("loop1")).unwrap();
        symlink("loop1", r.join("loop2")).unwrap();
        symlink("/nonexistent/dir", r.join("dangling")).unwrap();
        t
    }

    #[test]
    fn table() {
        let t = tree();
        let r = t.path();
        let cases: &[(&str, bool, &str)] = &[
            ("/", true, ""),
            ("etc/passwd", true, "etc/passwd"),
            ("/abs/passwd", true, "etc/passwd"),
            ("abs", false, "abs"),
            ("abs", true, "etc"),
            ("a/b/up/etc", true, "etc"),
            ("a/b/up/../../x", true, "x"),
            ("../../../etc/passwd", true, "etc/passwd"),
            ("a/rel", true, "etc/passwd"),
            ("a/rel", false, "a/rel"),
            ("new/dir/file", true, "new/dir/file"),
            ("dangling/x", true, "nonexistent/dir/x"),
            ("dangling", true, "nonexistent/dir"),
            ("a/./b/../b", true, "a/b"),
        ];
        for (path, follow, want) in cases {
            assert_eq!(
                resolve_beneath(r, path, *follow).unwrap(),
                *want,
                "{path} follow={follow}"
            );
        }
        assert!(matches!(
            resolve_beneath(r, "loop1", true),
            Err(Error::Loop { .. })
        ));
        assert_eq!(host_path(r, "/abs", true).unwrap(), r.join("etc"));
    }
}
