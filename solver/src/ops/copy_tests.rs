//! COPY semantics on plain directories, named after the conformance cases
//! they mirror. Ownership checks need root (chown); they print a visible
//! skip otherwise.

use std::os::unix::fs::{symlink, MetadataExt};

use super::*;
use crate::dockerignore::Matcher;
use crate::ir::{Chmod, Copy};
use crate::ops::chmod::Mode;
use crate::ops::select::{select, Tree};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn copy(src: &[&str], dest: &str) -> Copy {
    Copy {
        source: 1,
        src: src.iter().map(|s| s.to_string()).collect(),
        dest: dest.to_string(),
        owner: None,
        mode: None,
        allow_wildcard: true,
        unpack_archives: false,
        exclude: vec![],
        parents: false,
        link: false,
    }
}

fn ctx_attrs() -> Attrs {
    Attrs {
        chown: None,
        chmod: None,
        from_context: true,
    }
}

struct Fixture {
    _t: tempfile::TempDir,
    ctx: PathBuf,
    root: PathBuf,
}

fn fixture() -> Fixture {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    let root = t.path().join("root");
    fs::create_dir_all(&ctx).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
    )
    .unwrap();
    Fixture { _t: t, ctx, root }
}

fn run(f: &Fixture, c: &Copy, attrs: &Attrs) -> Result<(), String> {
    let ignore = Matcher::default();
    let tree = Tree {
        root: &f.ctx,
        ignore: &ignore,
    };
    let items = select(&tree, c).map_err(|e| e.to_string())?;
    copy_items(&f.root, c, &items, attrs).map_err(|e| e.to_string())
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

#[test]
fn copy_file_into_dir_and_as_name_012_024() {
    let f = fixture();
    for n in [
        "a.txt",
        "b.txt",
        "c.md",
        "file1.md",
        "file22.md",
        "x.cfg",
        "z.cfg",
    ] {
        fs::write(f.ctx.join(n), n).unwrap();
    }
    run(&f, &copy(&["*.txt"], "/w/"), &ctx_attrs()).unwrap();
    run(&f, &copy(&["file?.md"], "/q/"), &ctx_attrs()).unwrap();
    run(&f, &copy(&["[xy].cfg"], "/b/"), &ctx_attrs()).unwrap();
    run(&f, &copy(&["a.txt"], "/second/renamed"), &ctx_attrs()).unwrap();
    assert!(f.root.join("w/a.txt").is_file() && f.root.join("w/b.txt").is_file());
    assert!(f.root.join("q/file1.md").is_file() && !f.root.join("q/file22.md").exists());
    assert!(f.root.join("b/x.cfg").is_file() && !f.root.join("b/z.cfg").exists());
    assert_eq!(
        fs::read_to_string(f.root.join("second/renamed")).unwrap(),
        "a.txt"
    );
    assert_eq!(mode(&f.root.join("w")), 0o755);
    // A file onto an existing directory lands inside it.
    run(&f, &copy(&["c.md"], "/w"), &ctx_attrs()).unwrap();
    assert!(f.root.join("w/c.md").is_file());
    // Several sources and no trailing `/`: no error, as in BuildKit
    // (moby/buildkit#1853); each source is copied to that path in turn.
    run(&f, &copy(&["a.txt", "b.txt"], "/nodir"), &ctx_attrs()).unwrap();
    assert_eq!(fs::read_to_string(f.root.join("nodir")).unwrap(), "b.txt");
    run(&f, &copy(&["*.txt"], "/nodir2"), &ctx_attrs()).unwrap();
    assert_eq!(fs::read_to_string(f.root.join("nodir2")).unwrap(), "b.txt");
    // … and onto an existing directory both land inside it.
    run(&f, &copy(&["a.txt", "b.txt"], "/w"), &ctx_attrs()).unwrap();
    assert!(f.root.join("w/a.txt").is_file() && f.root.join("w/b.txt").is_file());
}

#[test]
fn symlinks_stay_links_top_level_is_followed_027() {
    let f = fixture();
    let tree = f.ctx.join("tree");
    fs::create_dir_all(tree.join("realdir")).unwrap();
    fs::write(tree.join("target.txt"), "target\n").unwrap();
    fs::write(tree.join("realdir/in.txt"), "in\n").unwrap();
    symlink("target.txt", tree.join("rel-link")).unwrap();
    symlink("/etc/passwd", tree.join("abs-link")).unwrap();
    symlink("does-not-exist", tree.join("dangling")).unwrap();
    symlink("realdir", tree.join("dirlink")).unwrap();
    symlink("tree/target.txt", f.ctx.join("toplink")).unwrap();
    run(&f, &copy(&["tree"], "/tree"), &ctx_attrs()).unwrap();
    run(&f, &copy(&["toplink"], "/toplink-copied"), &ctx_attrs()).unwrap();
    let r = &f.root;
    assert_eq!(
        fs::read_link(r.join("tree/abs-link")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(
        fs::read_link(r.join("tree/dangling")).unwrap(),
        Path::new("does-not-exist")
    );
    assert_eq!(
        fs::read_link(r.join("tree/dirlink")).unwrap(),
        Path::new("realdir")
    );
    assert_eq!(
        fs::read_to_string(r.join("tree/realdir/in.txt")).unwrap(),
        "in\n"
    );
    let top = fs::symlink_metadata(r.join("toplink-copied")).unwrap();
    assert!(top.is_file());
    assert_eq!(
        fs::read_to_string(r.join("toplink-copied")).unwrap(),
        "target\n"
    );
}

#[test]
fn symlink_escaping_the_context_is_not_found_120() {
    let f = fixture();
    fs::write(f.ctx.parent().unwrap().join("outside.txt"), "outside").unwrap();
    symlink("../outside.txt", f.ctx.join("escape")).unwrap();
    let err = run(&f, &copy(&["escape"], "/escaped"), &ctx_attrs()).unwrap_err();
    assert!(err.contains("\"/escape\": not found"), "{err}");
    assert!(!f.root.join("escaped").exists());
}

#[test]
fn modes_kept_owner_reset_030() {
    if !is_root() {
        eprintln!("skipped: modes_kept_owner_reset_030 needs root (chown)");
        return;
    }
    let f = fixture();
    let m = f.ctx.join("m");
    fs::create_dir_all(m.join("dir750")).unwrap();
    fs::create_dir_all(m.join("sticky")).unwrap();
    for (n, md) in [
        ("exec700", 0o700),
        ("ro444", 0o444),
        ("suid", 0o4755),
        ("sgid", 0o2755),
    ] {
        fs::write(m.join(n), n).unwrap();
        std::os::unix::fs::chown(m.join(n), Some(1234), Some(1234)).unwrap();
        fs::set_permissions(m.join(n), fs::Permissions::from_mode(md)).unwrap();
    }
    fs::set_permissions(m.join("dir750"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(m.join("sticky"), fs::Permissions::from_mode(0o1777)).unwrap();
    run(&f, &copy(&["m"], "/m"), &ctx_attrs()).unwrap();
    let r = f.root.join("m");
    assert_eq!(mode(&r.join("exec700")), 0o700);
    assert_eq!(mode(&r.join("ro444")), 0o444);
    assert_eq!(mode(&r.join("suid")), 0o4755);
    assert_eq!(mode(&r.join("sgid")), 0o2755);
    assert_eq!(mode(&r.join("dir750")), 0o750);
    assert_eq!(mode(&r.join("sticky")), 0o1777);
    assert_eq!(fs::metadata(r.join("suid")).unwrap().uid(), 0);
    // mtimes preserved
    assert_eq!(
        fs::metadata(r.join("suid")).unwrap().mtime(),
        fs::metadata(m.join("suid")).unwrap().mtime()
    );
    // From a stage, owners are kept.
    let stage = Attrs {
        from_context: false,
        ..ctx_attrs()
    };
    run(&f, &copy(&["m/suid"], "/stage-suid"), &stage).unwrap();
    assert_eq!(fs::metadata(f.root.join("stage-suid")).unwrap().uid(), 1234);
}

#[test]
fn chmod_applies_to_tree_not_existing_dest_021() {
    let f = fixture();
    fs::create_dir_all(f.ctx.join("dir/sub")).unwrap();
    fs::write(f.ctx.join("dir/x"), "x").unwrap();
    fs::write(f.ctx.join("dir/sub/y"), "y").unwrap();
    fs::create_dir_all(f.root.join("dir")).unwrap();
    fs::set_permissions(f.root.join("dir"), fs::Permissions::from_mode(0o755)).unwrap();
    let attrs = Attrs {
        chmod: Some(Mode::new(&Chmod::Octal(0o750)).unwrap()),
        ..ctx_attrs()
    };
    run(&f, &copy(&["dir"], "/dir"), &attrs).unwrap();
    assert_eq!(mode(&f.root.join("dir")), 0o755);
    assert_eq!(mode(&f.root.join("dir/sub")), 0o750);
    assert_eq!(mode(&f.root.join("dir/sub/y")), 0o750);
    assert_eq!(mode(&f.root.join("dir/x")), 0o750);
    // A destination directory the copy creates is 0755 (fsutil's
    // `prepareTargetDir`), whatever the source's mode and `--chmod`.
    fs::set_permissions(f.ctx.join("dir"), fs::Permissions::from_mode(0o711)).unwrap();
    run(&f, &copy(&["dir"], "/newdir"), &attrs).unwrap();
    assert_eq!(mode(&f.root.join("newdir")), 0o755);
    assert_eq!(mode(&f.root.join("newdir/sub")), 0o750);
}

#[test]
fn chown_owns_created_parents_039() {
    if !is_root() {
        eprintln!("skipped: chown_owns_created_parents_039 needs root (chown)");
        return;
    }
    let f = fixture();
    fs::write(f.ctx.join("a.txt"), "a\n").unwrap();
    let attrs = Attrs {
        chown: Some(Ids {
            uid: 1000,
            gid: 1000,
        }),
        ..ctx_attrs()
    };
    run(&f, &copy(&["a.txt"], "/deep/new/dir/"), &attrs).unwrap();
    for p in ["deep", "deep/new", "deep/new/dir", "deep/new/dir/a.txt"] {
        let m = fs::metadata(f.root.join(p)).unwrap();
        assert_eq!((m.uid(), m.gid()), (1000, 1000), "{p}");
    }
    assert_eq!(mode(&f.root.join("deep/new")), 0o755);
}

#[test]
fn writes_never_leave_the_root_through_dest_symlinks() {
    let f = fixture();
    let outside = f.ctx.parent().unwrap().join("outside");
    fs::create_dir_all(&outside).unwrap();
    symlink(&outside, f.root.join("evil")).unwrap(); // absolute host path
    symlink("../../..", f.root.join("up")).unwrap();
    fs::write(f.ctx.join("a.txt"), "a").unwrap();
    run(&f, &copy(&["a.txt"], "/evil/"), &ctx_attrs()).unwrap();
    run(&f, &copy(&["a.txt"], "/up/x/"), &ctx_attrs()).unwrap();
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    let inside = f
        .root
        .join(outside.strip_prefix("/").unwrap())
        .join("a.txt");
    assert!(inside.is_file());
    assert!(f.root.join("x/a.txt").is_file());
}

#[test]
fn hardlinks_are_kept_within_one_copy() {
    let f = fixture();
    fs::create_dir_all(f.ctx.join("d")).unwrap();
    fs::write(f.ctx.join("d/one"), "1").unwrap();
    fs::hard_link(f.ctx.join("d/one"), f.ctx.join("d/two")).unwrap();
    run(&f, &copy(&["d"], "/d"), &ctx_attrs()).unwrap();
    let a = fs::metadata(f.root.join("d/one")).unwrap();
    let b = fs::metadata(f.root.join("d/two")).unwrap();
    assert_eq!(a.ino(), b.ino());
}

fn make_tar(path: &Path, gzip: bool) {
    let file = File::create(path).unwrap();
    let w: Box<dyn io::Write> = if gzip {
        Box::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(file)
    };
    let mut b = tar::Builder::new(w);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_uid(1234);
    h.set_gid(5678);
    h.set_size(0);
    b.append_data(&mut h.clone(), "./", io::empty()).unwrap();
    h.set_mode(0o750);
    b.append_data(&mut h.clone(), "./sub/", io::empty())
        .unwrap();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o600);
    h.set_size(4);
    b.append_data(&mut h.clone(), "./one.txt", &b"one\n"[..])
        .unwrap();
    h.set_mode(0o644);
    b.append_data(&mut h.clone(), "./sub/two.txt", &b"two\n"[..])
        .unwrap();
    h.set_size(0);
    h.set_entry_type(tar::EntryType::Link);
    b.append_link(&mut h.clone(), "./sub/two-hard", "./sub/two.txt")
        .unwrap();
    h.set_entry_type(tar::EntryType::Symlink);
    b.append_link(&mut h.clone(), "./link", "one.txt").unwrap();
    // Hostile entries stay beneath the destination.
    h.set_entry_type(tar::EntryType::Symlink);
    b.append_link(&mut h.clone(), "./esc", "/").unwrap();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(1);
    b.append_data(&mut h.clone(), "./esc/pwned", &b"x"[..])
        .unwrap();
    b.into_inner().unwrap().flush().unwrap();
}

#[test]
fn add_extracts_local_tars_042() {
    let f = fixture();
    make_tar(&f.ctx.join("plain.tar"), false);
    make_tar(&f.ctx.join("gz.tar.gz"), true);
    fs::write(f.ctx.join("not-a-tar.gz"), "hello").unwrap();
    let mut c = copy(&["plain.tar"], "/x/");
    c.unpack_archives = true;
    run(&f, &c, &ctx_attrs()).unwrap();
    let mut c = copy(&["gz.tar.gz"], "/y");
    c.unpack_archives = true;
    run(&f, &c, &ctx_attrs()).unwrap();
    let mut c = copy(&["not-a-tar.gz"], "/z/");
    c.unpack_archives = true;
    run(&f, &c, &ctx_attrs()).unwrap();
    assert!(f.root.join("z/not-a-tar.gz").is_file());
    for d in ["x", "y"] {
        let r = f.root.join(d);
        assert_eq!(mode(&r), 0o755);
        assert_eq!(fs::read_to_string(r.join("one.txt")).unwrap(), "one\n");
        assert_eq!(mode(&r.join("one.txt")), 0o600);
        assert_eq!(mode(&r.join("sub")), 0o750);
        assert_eq!(fs::read_link(r.join("link")).unwrap(), Path::new("one.txt"));
        let a = fs::metadata(r.join("sub/two.txt")).unwrap();
        let b = fs::metadata(r.join("sub/two-hard")).unwrap();
        assert_eq!(a.ino(), b.ino());
        // `esc -> /` resolved beneath the destination: pwned lands in it.
        assert!(r.join("pwned").is_file() || f.root.join(d).join("esc").exists());
        if is_root() {
            assert_eq!((a.uid(), a.gid()), (1234, 5678));
            assert_eq!(fs::metadata(&r).unwrap().uid(), 0);
        }
    }
    assert!(!Path::new("/pwned").exists());
}

#[test]
fn add_extracts_xz_and_bzip2_tars_042() {
    let f = fixture();
    make_tar(&f.ctx.join("p.tar"), false);
    let mut made = Vec::new();
    for (tool, ext) in [("xz", "xz"), ("bzip2", "bz2")] {
        let ok = std::process::Command::new(tool)
            .args(["-k", "-f"])
            .arg(f.ctx.join("p.tar"))
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            made.push(ext);
        } else {
            eprintln!("skipped: {tool} not installed");
        }
    }
    for ext in made {
        let name = format!("p.tar.{ext}");
        let mut c = copy(&[&name], &format!("/{ext}/"));
        c.unpack_archives = true;
        run(&f, &c, &ctx_attrs()).unwrap();
        let r = f.root.join(ext);
        assert_eq!(
            fs::read_to_string(r.join("sub/two.txt")).unwrap(),
            "two\n",
            "{ext}"
        );
        assert_eq!(fs::read_link(r.join("link")).unwrap(), Path::new("one.txt"));
    }
}

/// A v2 `security.capability` value: cap_net_raw (bit 13) permitted and
/// effective, as `setcap cap_net_raw+ep` writes it.
const NET_RAW_CAP: [u8; 20] = [
    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

fn capability(p: &Path) -> Option<Vec<u8>> {
    let mut buf = [0u8; 64];
    rustix::fs::getxattr(p, bake_store::layer::CAPABILITY_XATTR, &mut buf)
        .ok()
        .map(|n| buf[..n].to_vec())
}

/// ADD of a tar keeps an entry's file capabilities (PAX
/// `SCHILY.xattr.security.capability`), set after its owner (case 311's
/// theme; bake dropped them, moby's `Untar` applies them).
#[test]
fn add_keeps_file_capabilities_from_pax_records() {
    if !is_root() {
        eprintln!("skipped: setting security.capability needs root");
        return;
    }
    let f = fixture();
    let mut b = tar::Builder::new(File::create(f.ctx.join("cap.tar")).unwrap());
    b.append_pax_extensions([("SCHILY.xattr.security.capability", &NET_RAW_CAP[..])])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o755);
    h.set_uid(1234);
    h.set_gid(1234);
    h.set_size(3);
    b.append_data(&mut h.clone(), "ping", &b"elf"[..]).unwrap();
    b.append_data(&mut h, "plain", &b"elf"[..]).unwrap();
    b.finish().unwrap();
    let mut c = copy(&["cap.tar"], "/usr/bin/");
    c.unpack_archives = true;
    run(&f, &c, &ctx_attrs()).unwrap();
    let ping = f.root.join("usr/bin/ping");
    assert_eq!(capability(&ping).as_deref(), Some(&NET_RAW_CAP[..]));
    assert_eq!(fs::metadata(&ping).unwrap().uid(), 1234);
    assert_eq!(capability(&f.root.join("usr/bin/plain")), None);
}

/// `COPY --from` a stage keeps a file's capabilities, also with `--chown`
/// (whose chown would clear them); a file from the build context does not
/// carry them, as in BuildKit (moby/buildkit#2250).
#[test]
fn copy_from_a_stage_keeps_file_capabilities_context_copy_does_not() {
    if !is_root() {
        eprintln!("skipped: setting security.capability needs root");
        return;
    }
    let f = fixture();
    fs::write(f.ctx.join("ping"), "elf").unwrap();
    rustix::fs::setxattr(
        f.ctx.join("ping"),
        bake_store::layer::CAPABILITY_XATTR,
        &NET_RAW_CAP,
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let stage = Attrs {
        from_context: false,
        ..ctx_attrs()
    };
    run(&f, &copy(&["ping"], "/stage/ping"), &stage).unwrap();
    let chowned = Attrs {
        chown: Some(Ids { uid: 7, gid: 7 }),
        ..stage.clone()
    };
    run(&f, &copy(&["ping"], "/stage/ping-chowned"), &chowned).unwrap();
    run(&f, &copy(&["ping"], "/ctx/ping"), &ctx_attrs()).unwrap();
    let stage_cap = capability(&f.root.join("stage/ping"));
    assert_eq!(stage_cap.as_deref(), Some(&NET_RAW_CAP[..]));
    let chowned_cap = capability(&f.root.join("stage/ping-chowned"));
    assert_eq!(chowned_cap.as_deref(), Some(&NET_RAW_CAP[..]));
    assert_eq!(capability(&f.root.join("ctx/ping")), None);
}
