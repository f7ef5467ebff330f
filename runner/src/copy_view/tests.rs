//! populate/sync edge cases on real directories. Whiteouts, `trusted.*` xattrs and
//! chown need root (or root of a user namespace); without it they say so and return.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use super::*;

fn root() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: needs root (whiteouts, trusted xattrs, chown)");
    false
}

fn whiteout_at(p: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
}

fn is_whiteout(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

fn opaque(p: &Path) -> bool {
    node::OPAQUE_XATTRS.iter().any(|x| {
        let mut v = [0u8; 4];
        rustix::fs::getxattr(p, *x, &mut v[..]).is_ok_and(|n| n == 1 && v[0] == b'y')
    })
}

fn set_opaque(p: &Path) {
    rustix::fs::setxattr(
        p,
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
}

/// Two lowers: the bottom one full, the top one with a whiteout and an opaque dir.
fn lowers(dir: &Path) -> Vec<PathBuf> {
    let (l1, l2) = (dir.join("l1"), dir.join("l2"));
    fs::create_dir_all(l1.join("a/sub")).unwrap();
    fs::write(l1.join("a/file1"), "one").unwrap();
    fs::write(l1.join("a/sub/x"), "x").unwrap();
    fs::create_dir(l1.join("d")).unwrap();
    fs::write(l1.join("d/old"), "old").unwrap();
    fs::write(l1.join("gone"), "gone").unwrap();
    fs::write(l1.join("h1"), "linked").unwrap();
    fs::hard_link(l1.join("h1"), l1.join("h2")).unwrap();
    symlink("a", l1.join("b")).unwrap();
    fs::set_permissions(l1.join("a/file1"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::lchown(l1.join("a/file1"), Some(7), Some(8)).unwrap();
    fs::create_dir_all(l2.join("a")).unwrap();
    fs::write(l2.join("a/file2"), "two").unwrap();
    whiteout_at(&l2.join("gone"));
    fs::create_dir(l2.join("d")).unwrap();
    fs::write(l2.join("d/new"), "new").unwrap();
    set_opaque(&l2.join("d"));
    vec![l2, l1]
}

#[test]
fn populate_flattens_like_overlayfs_lookup() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lowers = lowers(dir.path());
    let tree = dir.path().join("tree");
    let base = populate::populate(&lowers, None, &tree).unwrap();
    assert_eq!(fs::read_to_string(tree.join("a/file1")).unwrap(), "one");
    assert_eq!(fs::read_to_string(tree.join("a/file2")).unwrap(), "two");
    assert_eq!(fs::read_to_string(tree.join("a/sub/x")).unwrap(), "x");
    assert!(!tree.join("gone").exists(), "whited out");
    assert!(!tree.join("d/old").exists(), "below an opaque dir");
    assert!(tree.join("d/new").exists());
    assert!(!opaque(&tree.join("d")), "overlay xattrs are not copied");
    assert_eq!(fs::read_link(tree.join("b")).unwrap(), Path::new("a"));
    let m = fs::metadata(tree.join("a/file1")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o640, 7, 8));
    let src = fs::metadata(lowers[1].join("a/file1")).unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (src.mtime(), src.mtime_nsec()));
    let (h1, h2) = (
        fs::metadata(tree.join("h1")).unwrap(),
        fs::metadata(tree.join("h2")).unwrap(),
    );
    assert_ne!(h1.ino(), h2.ino(), "hard links are broken, as copy-up does");
    assert!(base.entries[b"a/file1".as_slice()].in_lower);
    assert!(!base.entries.contains_key(b"gone".as_slice()));
}

/// Everything a RUN may do, synced into an empty upper dir.
#[test]
fn sync_writes_an_overlay_diff() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lowers = lowers(dir.path());
    let (tree, upper) = (dir.path().join("tree"), dir.path().join("upper"));
    fs::create_dir(&upper).unwrap();
    prepare(&lowers, &upper, &tree).unwrap();
    // Nothing changed: nothing to write.
    assert!(sync_into_upper(&tree, &upper, false).unwrap());
    assert_eq!(fs::read_dir(&upper).unwrap().count(), 0);

    fs::write(tree.join("a/file1"), "ONE").unwrap(); // modified in place
    fs::set_permissions(tree.join("a/file2"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::remove_dir_all(tree.join("a/sub")).unwrap(); // a lower dir deleted
    fs::remove_dir_all(tree.join("d")).unwrap(); // replaced by a new dir
    fs::create_dir(tree.join("d")).unwrap();
    fs::write(tree.join("d/fresh"), "f").unwrap();
    fs::rename(tree.join("h1"), tree.join("moved")).unwrap();
    fs::hard_link(tree.join("moved"), tree.join("again")).unwrap();
    fs::create_dir(tree.join("newdir")).unwrap();
    symlink("/etc/passwd", tree.join("newdir/link")).unwrap();
    assert!(sync_into_upper(&tree, &upper, false).unwrap());

    assert_eq!(fs::read_to_string(upper.join("a/file1")).unwrap(), "ONE");
    let m = fs::metadata(upper.join("a/file1")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o640, 7, 8));
    assert_eq!(
        fs::metadata(upper.join("a/file2")).unwrap().mode() & 0o7777,
        0o700
    );
    assert!(is_whiteout(&upper.join("a/sub")));
    assert!(
        opaque(&upper.join("d")),
        "a new dir over a lower one is opaque"
    );
    assert!(upper.join("d/fresh").exists());
    assert!(is_whiteout(&upper.join("h1")), "renamed away");
    let (a, b) = (
        fs::metadata(upper.join("moved")).unwrap(),
        fs::metadata(upper.join("again")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino(), "the command's hard link stays one");
    assert!(!opaque(&upper.join("newdir")), "nothing below it");
    assert_eq!(
        fs::read_link(upper.join("newdir/link")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert!(
        !upper.join("h2").exists() && !upper.join("b").exists(),
        "untouched"
    );
    let tm = fs::metadata(tree.join("a")).unwrap();
    let um = fs::metadata(upper.join("a")).unwrap();
    assert_eq!((um.mtime(), um.mtime_nsec()), (tm.mtime(), tm.mtime_nsec()));

    // Incremental: a later change lands, a deleted new file leaves no whiteout.
    fs::remove_dir_all(tree.join("newdir")).unwrap();
    fs::write(tree.join("a/file2"), "2").unwrap();
    assert!(sync_into_upper(&tree, &upper, true).unwrap());
    assert!(!upper.join("newdir").exists());
    assert_eq!(fs::read_to_string(upper.join("a/file2")).unwrap(), "2");
    assert!(
        !baseline::path_of(&tree).exists(),
        "the last sync drops the baseline"
    );
    assert!(!sync_into_upper(&tree, &upper, false).unwrap());
}

/// A restarted container: the existing upper dir is on top of the lowers, and a path it
/// whites out can come back.
#[test]
fn an_existing_upper_is_applied_and_kept_in_shape() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lowers = lowers(dir.path());
    let (tree, upper) = (dir.path().join("tree"), dir.path().join("upper"));
    fs::create_dir_all(upper.join("a")).unwrap();
    whiteout_at(&upper.join("a/file1"));
    fs::write(upper.join("mine"), "m").unwrap();
    prepare(&lowers, &upper, &tree).unwrap();
    assert!(!tree.join("a/file1").exists());
    assert!(tree.join("mine").exists());
    fs::create_dir(tree.join("a/file1")).unwrap(); // over the whiteout
    fs::remove_file(tree.join("mine")).unwrap(); // upper-only: no whiteout
    sync_into_upper(&tree, &upper, true).unwrap();
    assert!(upper.join("a/file1").is_dir() && opaque(&upper.join("a/file1")));
    assert!(fs::symlink_metadata(upper.join("mine")).is_err());
}

#[test]
fn symlinks_never_lead_outside() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("sentinel"), "keep").unwrap();
    let l1 = dir.path().join("l1");
    fs::create_dir(&l1).unwrap();
    symlink(outside.path(), l1.join("evil")).unwrap();
    fs::create_dir(l1.join("etc")).unwrap();
    fs::write(l1.join("etc/conf"), "c").unwrap();
    let (tree, upper) = (dir.path().join("tree"), dir.path().join("upper"));
    fs::create_dir(&upper).unwrap();
    prepare(std::slice::from_ref(&l1), &upper, &tree).unwrap();
    // The container swaps a dir for a link to the host and deletes through it.
    fs::remove_dir_all(tree.join("etc")).unwrap();
    symlink(outside.path(), tree.join("etc")).unwrap();
    fs::remove_file(tree.join("evil")).unwrap();
    fs::create_dir(tree.join("evil")).unwrap();
    fs::write(tree.join("evil/sentinel"), "pwned").unwrap();
    sync_into_upper(&tree, &upper, true).unwrap();
    assert_eq!(
        fs::read_to_string(outside.path().join("sentinel")).unwrap(),
        "keep"
    );
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 1);
    assert_eq!(fs::read_link(upper.join("etc")).unwrap(), outside.path());
    assert_eq!(
        fs::read_to_string(upper.join("evil/sentinel")).unwrap(),
        "pwned"
    );
}

/// A node read by a sync in the clock tick it changed in may change again in that tick
/// without its ctime moving: the baseline must not vouch for it.
#[test]
fn entries_read_in_the_current_tick_are_racy() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    fs::write(&old, "o").unwrap();
    let st = |p: &Path| {
        let name = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        node::stat_at(&rustix::fs::CWD, &name).unwrap()
    };
    let mut base = baseline::Baseline::default();
    base.entries
        .insert(b"old".to_vec(), baseline::Entry::of(&st(&old), false));
    // ctimes may run ahead of the coarse clock (multigrain timestamps, Linux 6.13).
    baseline::wait_past(base.newest_ctime());
    let start = baseline::coarse_now();
    fs::write(&new, "n").unwrap();
    base.entries
        .insert(b"new".to_vec(), baseline::Entry::of(&st(&new), false));
    base.entries
        .insert(b"gone".to_vec(), baseline::Entry::hidden());
    base.mark_racy(start);
    assert!(base.entries[b"old".as_slice()].unchanged(&st(&old)));
    let racy = base.entries[b"new".as_slice()];
    assert!(!racy.unchanged(&st(&new)), "may have changed unseen");
    assert!(racy.same_node(&st(&new)), "still the same node");
    assert!(base.entries[b"gone".as_slice()].is_hidden());
    let decoded = baseline::Baseline::decode(&base.encode()).unwrap();
    assert_eq!(decoded, base);
}

/// A write right after a sync of a running container reaches the upper dir by the next.
#[test]
fn a_rewrite_right_after_a_sync_is_seen() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lowers = lowers(dir.path());
    let (tree, upper) = (dir.path().join("tree"), dir.path().join("upper"));
    fs::create_dir(&upper).unwrap();
    prepare(&lowers, &upper, &tree).unwrap();
    for round in ["aaaa", "bbbb", "cccc"] {
        fs::write(tree.join("a/file1"), round).unwrap();
        assert!(sync_into_upper(&tree, &upper, false).unwrap());
        assert_eq!(fs::read_to_string(upper.join("a/file1")).unwrap(), round);
    }
    fs::write(tree.join("a/file1"), "dddd").unwrap();
    assert!(sync_into_upper(&tree, &upper, true).unwrap());
    assert_eq!(fs::read_to_string(upper.join("a/file1")).unwrap(), "dddd");
}

/// A container with CAP_MKNOD may swap a file it wrote for a device node while `bake
/// diff` syncs: the host side must never open it (the tree is not `nodev` there).
#[test]
fn a_file_swapped_for_a_device_is_not_opened() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    fs::create_dir(&src).unwrap();
    fs::create_dir(&dst).unwrap();
    fs::write(src.join("f"), "file").unwrap();
    let open = |p: &Path| {
        rustix::fs::open(
            p,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap()
    };
    let (sfd, dfd) = (open(&src), open(&dst));
    let regular = node::stat_at(&sfd, c"f").unwrap();
    fs::remove_file(src.join("f")).unwrap();
    // A character device no driver serves: opening it fails with ENXIO.
    let dev = rustix::fs::makedev(240, 77);
    rustix::fs::mknodat(
        &sfd,
        c"f",
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        dev,
    )
    .unwrap();
    assert!(!node::copy_leaf(&sfd, c"f", &regular, &dfd, None).unwrap());
    assert!(fs::symlink_metadata(dst.join("f")).is_err());
}

/// An xattr removed from a directory copied up by an earlier sync goes from the upper
/// dir too (overlay's own markers stay).
#[test]
fn a_removed_xattr_leaves_the_upper_dir() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lowers = lowers(dir.path());
    let (tree, upper) = (dir.path().join("tree"), dir.path().join("upper"));
    fs::create_dir(&upper).unwrap();
    prepare(&lowers, &upper, &tree).unwrap();
    let flags = rustix::fs::XattrFlags::empty();
    rustix::fs::setxattr(tree.join("a"), "user.note", b"x", flags).unwrap();
    assert!(sync_into_upper(&tree, &upper, false).unwrap());
    let mut v = [0u8; 8];
    assert_eq!(
        rustix::fs::getxattr(upper.join("a"), "user.note", &mut v[..]),
        Ok(1)
    );
    set_opaque(&upper.join("a"));
    rustix::fs::removexattr(tree.join("a"), "user.note").unwrap();
    assert!(sync_into_upper(&tree, &upper, true).unwrap());
    assert!(rustix::fs::getxattr(upper.join("a"), "user.note", &mut v[..]).is_err());
    assert!(opaque(&upper.join("a")), "overlay's own xattrs are kept");
}
