//! When a COPY may write straight into the new layer's upper dir instead of
//! through the overlay's merged view.
//!
//! Through overlayfs every per-file syscall pays a path walk in two file
//! systems; a 30,000-file COPY spends most of its kernel time there. Writing
//! into the upper dir directly gives the *same* upper dir (and so the same
//! layer tar and diff id) only when overlayfs would have done nothing but
//! pass the writes through. That is provably so when every path the COPY
//! writes lies below a top-level name that no lower layer has at all:
//!
//! - no entry of that name in any lower (a file, a directory or a symlink
//!   would be merged with, copied up or followed; an overlay whiteout, a
//!   character device 0/0, makes overlayfs create the directory *opaque*);
//! - no `.wh.<name>` either (an OCI-form whiteout, never expected in an
//!   overlay-format snapshot, refused rather than trusted);
//! - the destination path has no `..` (resolution through the merged view
//!   could then leave the fresh name);
//! - ownership is numeric (`--chown=app` reads `/etc/passwd` of the merged
//!   view; such a COPY keeps the overlay path);
//! - the op is that one COPY (later actions would see the merged view
//!   while its upper dir changed underneath, which overlayfs forbids).
//!
//! Below a fresh name nothing exists in the lowers, so the merged view of
//! that subtree *is* the upper dir: every create, chown, chmod and utimes
//! lands there unchanged, and no parent directory is copied up (the only
//! parent is the upper dir's root, which is not part of the tar).

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::ir::{Copy, FileAction, FileOp};

/// The COPY of `op` when it may be applied directly to the upper dir of a
/// layer on top of `lowers` (overlay-format diff dirs, in any order).
pub fn direct_copy<'a>(op: &'a FileOp, lowers: &[PathBuf]) -> Option<&'a Copy> {
    let [FileAction::Copy(c)] = op.actions.as_slice() else {
        return None;
    };
    if let Some(o) = &c.owner {
        let numeric = |s: &str| s.parse::<u32>().is_ok();
        if !numeric(&o.user) || !o.group.as_deref().is_none_or(numeric) {
            return None;
        }
    }
    let top = fresh_top(&c.dest)?;
    absent_from(lowers, top).then_some(c)
}

/// The first component of `dest` when it names something below the root
/// and has no `..` anywhere.
fn fresh_top(dest: &str) -> Option<&str> {
    let mut top = None;
    for c in Path::new(dest).components() {
        match c {
            Component::Normal(s) => {
                top = top.or(s.to_str());
            }
            Component::ParentDir => return None,
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    top
}

/// Whether no lower has `name` (or its OCI whiteout) at its root. Any
/// error other than "not found" counts as present: the overlay path is
/// always correct.
fn absent_from(lowers: &[PathBuf], name: &str) -> bool {
    let wh = format!(".wh.{name}");
    lowers.iter().all(|l| {
        [name, wh.as_str()].iter().all(|n| {
            matches!(std::fs::symlink_metadata(l.join(n)),
                Err(e) if e.kind() == io::ErrorKind::NotFound)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Owner;
    use std::os::unix::fs::symlink;

    fn op(dest: &str, owner: Option<(&str, Option<&str>)>) -> FileOp {
        FileOp {
            actions: vec![FileAction::Copy(Copy {
                source: 1,
                src: vec![".".into()],
                dest: dest.into(),
                owner: owner.map(|(u, g)| Owner {
                    user: u.into(),
                    group: g.map(Into::into),
                }),
                mode: None,
                allow_wildcard: true,
                unpack_archives: false,
                exclude: vec![],
                parents: false,
                link: false,
            })],
        }
    }

    fn lowers() -> (tempfile::TempDir, Vec<PathBuf>) {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::fs::create_dir_all(a.join("usr/src")).unwrap();
        std::fs::create_dir_all(b.join("etc")).unwrap();
        symlink("/usr", b.join("lnk")).unwrap();
        std::fs::write(b.join("file"), "x").unwrap();
        std::fs::write(b.join(".wh.oci"), "").unwrap();
        // An overlay whiteout (char 0/0) needs root; a missing one only
        // skips that case.
        let _ = rustix::fs::mknodat(
            rustix::fs::CWD,
            b.join("gone"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        );
        (t, vec![a, b])
    }

    #[test]
    fn fresh_top_level_names_go_direct() {
        let (_t, l) = lowers();
        for dest in ["/src", "/src/", "src", "/app/deep/dir/", "./new"] {
            assert!(direct_copy(&op(dest, None), &l).is_some(), "{dest}");
        }
        assert!(direct_copy(&op("/src", Some(("1000", Some("1000")))), &l).is_some());
        // No lowers at all (FROM scratch).
        assert!(direct_copy(&op("/usr", None), &[]).is_some());
    }

    #[test]
    fn anything_the_lowers_have_keeps_the_overlay() {
        let (t, l) = lowers();
        let mut cases = vec![
            "/",
            ".",
            "/usr/src",
            "/usr/new",
            "/lnk/x",
            "/lnk",
            "/file",
            "/oci/",
            "/src/../usr/x",
            "/new/../x",
        ];
        if std::fs::symlink_metadata(t.path().join("b/gone")).is_ok() {
            cases.push("/gone/x");
        } else {
            eprintln!("skipped: the whiteout case needs root (mknod)");
        }
        for dest in cases {
            assert!(direct_copy(&op(dest, None), &l).is_none(), "{dest}");
        }
    }

    #[test]
    fn named_owners_and_several_actions_keep_the_overlay() {
        let (_t, l) = lowers();
        assert!(direct_copy(&op("/src", Some(("app", None))), &l).is_none());
        assert!(direct_copy(&op("/src", Some(("0", Some("staff")))), &l).is_none());
        let mut two = op("/src", None);
        two.actions.push(FileAction::Rm {
            path: "/x".into(),
            allow_not_found: true,
        });
        assert!(direct_copy(&two, &l).is_none());
    }
}
