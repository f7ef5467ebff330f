//! Unpack tests with real tar bytes: hostile archives, overlay whiteouts,
//! metadata, and the pack ∘ unpack round trip.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use proptest::prelude::*;
use tar::{EntryType, Header};

use super::*;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Writes one entry with the name bytes exactly as given (the tar crate's
/// own setters refuse `..` and absolute paths, which is what we need to
/// test).
fn raw_entry(out: &mut Vec<u8>, name: &str, kind: EntryType, data: &[u8], link: Option<&str>) {
    let mut h = Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(l) = link {
        h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_mode(if kind == EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_size(data.len() as u64);
    h.set_mtime(1_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn finish(mut out: Vec<u8>) -> Vec<u8> {
    out.extend_from_slice(&[0; 1024]);
    out
}

/// Unpacks into `<tmp>/root` and returns the result plus the tmp dir, so a
/// test can check that nothing appeared next to `root`.
fn unpack_hostile(tar: &[u8]) -> (Result<Tarball, Error>, tempfile::TempDir) {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir(d.path().join("root")).unwrap();
    let r = unpack(tar, &d.path().join("root"));
    (r, d)
}

fn only_root_exists(d: &Path) {
    let names: Vec<_> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec!["root"],
        "something was written outside the root"
    );
}

#[test]
fn dotdot_paths_are_refused() {
    let mut t = Vec::new();
    raw_entry(&mut t, "../x", EntryType::Regular, b"evil", None);
    let (r, d) = unpack_hostile(&finish(t));
    let e = r.unwrap_err();
    assert!(matches!(e, Error::UnsafePath { .. }), "{e}");
    assert!(e.to_string().contains("../x"), "{e}");
    only_root_exists(d.path());
}

#[test]
fn absolute_paths_are_refused() {
    let d0 = tempfile::tempdir().unwrap();
    let target = d0.path().join("abs");
    let mut t = Vec::new();
    raw_entry(
        &mut t,
        target.to_str().unwrap(),
        EntryType::Regular,
        b"evil",
        None,
    );
    let (r, d) = unpack_hostile(&finish(t));
    assert!(matches!(r.unwrap_err(), Error::UnsafePath { .. }));
    assert!(!target.exists());
    only_root_exists(d.path());
}

#[test]
fn writing_through_an_absolute_symlink_is_refused() {
    let d0 = tempfile::tempdir().unwrap();
    let victim = d0.path();
    let mut t = Vec::new();
    raw_entry(
        &mut t,
        "a",
        EntryType::Symlink,
        b"",
        Some(victim.to_str().unwrap()),
    );
    raw_entry(&mut t, "a/passwd", EntryType::Regular, b"evil", None);
    let (r, d) = unpack_hostile(&finish(t));
    let e = r.unwrap_err();
    assert!(matches!(e, Error::Resolve { .. }), "{e}");
    assert!(!victim.join("passwd").exists());
    only_root_exists(d.path());
}

#[test]
fn writing_through_a_relative_escaping_symlink_is_refused() {
    let mut t = Vec::new();
    raw_entry(&mut t, "a", EntryType::Symlink, b"", Some("../.."));
    raw_entry(&mut t, "a/x", EntryType::Regular, b"evil", None);
    let (r, d) = unpack_hostile(&finish(t));
    assert!(matches!(r.unwrap_err(), Error::Resolve { .. }));
    only_root_exists(d.path());
}

#[test]
fn a_file_replacing_a_symlink_does_not_write_through_it() {
    let d0 = tempfile::tempdir().unwrap();
    let victim = d0.path().join("victim");
    fs::write(&victim, b"safe").unwrap();
    let mut t = Vec::new();
    raw_entry(
        &mut t,
        "a",
        EntryType::Symlink,
        b"",
        Some(victim.to_str().unwrap()),
    );
    raw_entry(&mut t, "a", EntryType::Regular, b"evil", None);
    let (r, d) = unpack_hostile(&finish(t));
    r.unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"safe");
    assert_eq!(fs::read(d.path().join("root/a")).unwrap(), b"evil");
}

#[test]
fn hardlinks_outside_the_root_are_refused() {
    let mut t = Vec::new();
    raw_entry(&mut t, "x", EntryType::Link, b"", Some("../../x"));
    let (r, d) = unpack_hostile(&finish(t));
    assert!(matches!(r.unwrap_err(), Error::UnsafePath { .. }));
    only_root_exists(d.path());

    // A hard link through an escaping symlink.
    let d0 = tempfile::tempdir().unwrap();
    fs::write(d0.path().join("secret"), b"s").unwrap();
    let mut t = Vec::new();
    raw_entry(
        &mut t,
        "s",
        EntryType::Symlink,
        b"",
        Some(d0.path().to_str().unwrap()),
    );
    raw_entry(&mut t, "h", EntryType::Link, b"", Some("s/secret"));
    let (r, d) = unpack_hostile(&finish(t));
    let e = r.unwrap_err();
    assert!(matches!(e, Error::Hardlink { .. }), "{e}");
    assert!(!d.path().join("root/h").exists());
}

#[test]
fn hardlink_to_a_symlink_links_the_symlink_itself() {
    let mut t = Vec::new();
    raw_entry(&mut t, "s", EntryType::Symlink, b"", Some("/etc/passwd"));
    raw_entry(&mut t, "h", EntryType::Link, b"", Some("s"));
    let (r, d) = unpack_hostile(&finish(t));
    r.unwrap();
    let m = fs::symlink_metadata(d.path().join("root/h")).unwrap();
    assert!(m.file_type().is_symlink());
}

#[test]
fn diff_id_covers_the_whole_stream_including_padding() {
    let mut t = Vec::new();
    raw_entry(&mut t, "f", EntryType::Regular, b"hello", None);
    let mut t = finish(t);
    t.extend_from_slice(&[0; 8192]);
    let (r, _d) = unpack_hostile(&t);
    let r = r.unwrap();
    assert_eq!(r.diff_id, crate::oci::Digest::of(&t));
    assert_eq!(r.size, t.len() as u64);
}

#[test]
fn whiteouts_and_opaque_dirs_become_overlay_form_and_back() {
    if !is_root() {
        eprintln!("skipped: whiteouts need root (mknod, trusted xattrs)");
        return;
    }
    let mut t = Vec::new();
    raw_entry(&mut t, "d/", EntryType::Directory, b"", None);
    raw_entry(&mut t, "d/.wh..wh..opq", EntryType::Regular, b"", None);
    raw_entry(&mut t, "d/keep", EntryType::Regular, b"k", None);
    raw_entry(&mut t, "gone", EntryType::Regular, b"x", None);
    raw_entry(&mut t, ".wh.gone", EntryType::Regular, b"", None);
    raw_entry(&mut t, "e/.wh.f", EntryType::Regular, b"", None);
    let (r, d) = unpack_hostile(&finish(t));
    r.unwrap();
    let root = d.path().join("root");
    let m = fs::symlink_metadata(root.join("gone")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), 0);
    assert!(fs::symlink_metadata(root.join("e/f"))
        .unwrap()
        .file_type()
        .is_char_device());
    assert_eq!(
        xattr::get(root.join("d"), OVERLAY_OPAQUE_XATTR)
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert!(!root.join(".wh.gone").exists());

    let mut out = Vec::new();
    pack(&root, None, &mut out).unwrap();
    let mut a = tar::Archive::new(&out[..]);
    let names: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "d/",
            "d/.wh..wh..opq",
            "d/keep",
            "e/",
            "e/.wh.f",
            ".wh.gone"
        ]
    );
}

#[test]
fn other_overlay_xattrs_are_neither_packed_nor_unpacked() {
    if !is_root() {
        eprintln!("skipped: trusted xattrs need root");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    fs::create_dir(d.path().join("dir")).unwrap();
    xattr::set(d.path().join("dir"), "trusted.overlay.redirect", b"/x").unwrap();
    let mut plain = Vec::new();
    pack(d.path(), Some(0), &mut plain).unwrap();
    xattr::remove(d.path().join("dir"), "trusted.overlay.redirect").unwrap();
    let mut again = Vec::new();
    pack(d.path(), Some(0), &mut again).unwrap();
    assert_eq!(plain, again);
}

#[test]
fn metadata_and_capabilities_are_applied() {
    if !is_root() {
        eprintln!("skipped: ownership and capabilities need root");
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let f = src.path().join("ping");
    fs::write(&f, b"bin").unwrap();
    rustix::fs::chown(
        &f,
        Some(rustix::fs::Uid::from_raw(1234)),
        Some(rustix::fs::Gid::from_raw(99)),
    )
    .unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o4711)).unwrap();
    // cap_net_raw+ep, version 2.
    let cap: Vec<u8> = vec![1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    xattr::set(&f, CAPABILITY_XATTR, &cap).unwrap();
    fs::create_dir(src.path().join("ro")).unwrap();
    fs::write(src.path().join("ro/inner"), b"i").unwrap();
    fs::set_permissions(src.path().join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.path().join("null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.path().join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let mut tar = Vec::new();
    let packed = pack(src.path(), None, &mut tar).unwrap();

    let dst = tempfile::tempdir().unwrap();
    let unpacked = unpack(&tar[..], dst.path()).unwrap();
    assert_eq!(packed, unpacked);
    let m = fs::metadata(dst.path().join("ping")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1234, 99, 0o4711));
    assert_eq!(
        xattr::get(dst.path().join("ping"), CAPABILITY_XATTR).unwrap(),
        Some(cap)
    );
    let ro = fs::metadata(dst.path().join("ro")).unwrap();
    assert_eq!(ro.mode() & 0o777, 0o555);
    assert_eq!(
        ro.mtime(),
        fs::metadata(src.path().join("ro")).unwrap().mtime()
    );
    let null = fs::metadata(dst.path().join("null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert!(fs::metadata(dst.path().join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());

    let mut again = Vec::new();
    pack(dst.path(), None, &mut again).unwrap();
    assert_eq!(tar, again, "pack(unpack(pack(dir))) == pack(dir)");
}

#[test]
fn unsupported_entries_are_named() {
    let mut t = Vec::new();
    raw_entry(&mut t, "weird", EntryType::new(b'Z'), b"", None);
    let (r, _d) = unpack_hostile(&finish(t));
    let e = r.unwrap_err();
    assert!(e.to_string().contains("weird"), "{e}");
}

/// A small random tree: (path components, kind) where kind 0 = file with
/// content, 1 = dir, 2 = symlink, 3 = hard link to the previous file, 4 = an
/// overlay whiteout, 5 = an opaque dir (4 and 5 only as root). Names never
/// start with `.wh.`: OCI reserves them, so no layer can carry such a file.
/// (path components, kind, content, mode, mtime)
type Spec = (Vec<String>, u8, Vec<u8>, u32, i64);

fn tree() -> impl Strategy<Value = Vec<Spec>> {
    let name = "[a-c]{1,2}|[a-c]\u{e9}|\\.[a-c]";
    let entry = (
        prop::collection::vec(name, 1..4),
        0u8..6,
        prop::collection::vec(any::<u8>(), 0..600),
        prop::sample::select(vec![0o644u32, 0o755, 0o600, 0o4755, 0o1777]),
        0i64..2_000_000_000,
    );
    prop::collection::vec(entry, 0..12)
}

fn build(root: &Path, spec: &[Spec]) {
    let mut last_file = None;
    for (comps, kind, data, mode, mtime) in spec {
        let rel: std::path::PathBuf = comps.iter().collect();
        let path = root.join(&rel);
        // Skip entries that would need a non-directory as a parent.
        if fs::create_dir_all(path.parent().unwrap()).is_err()
            || fs::symlink_metadata(&path).is_ok()
        {
            continue;
        }
        let ok = match kind {
            0 => fs::write(&path, data).is_ok(),
            1 => fs::create_dir(&path).is_ok(),
            2 => std::os::unix::fs::symlink(String::from_utf8_lossy(data).replace('\0', ""), &path)
                .is_ok(),
            3 => match &last_file {
                Some(f) => fs::hard_link(f, &path).is_ok(),
                None => false,
            },
            4 => {
                is_root()
                    && rustix::fs::mknodat(
                        rustix::fs::CWD,
                        &path,
                        rustix::fs::FileType::CharacterDevice,
                        rustix::fs::Mode::empty(),
                        0,
                    )
                    .is_ok()
            }
            _ => {
                is_root()
                    && fs::create_dir(&path).is_ok()
                    && xattr::set(&path, OVERLAY_OPAQUE_XATTR, b"y").is_ok()
            }
        };
        if !ok {
            continue;
        }
        if *kind == 0 {
            last_file = Some(path.clone());
        }
        if *kind != 2 && *kind != 4 {
            fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
        }
        let t = rustix::fs::Timespec {
            tv_sec: *mtime,
            tv_nsec: 0,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &path,
            &rustix::fs::Timestamps {
                last_access: t,
                last_modification: t,
            },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
    // Directory mtimes changed while children were made: set them last.
    for (comps, kind, _, _, mtime) in spec.iter().rev() {
        let path = root.join(comps.iter().collect::<std::path::PathBuf>());
        if (*kind == 1 || *kind == 5) && fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            let t = rustix::fs::Timespec {
                tv_sec: *mtime,
                tv_nsec: 0,
            };
            let _ = rustix::fs::utimensat(
                rustix::fs::CWD,
                &path,
                &rustix::fs::Timestamps {
                    last_access: t,
                    last_modification: t,
                },
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            );
        }
    }
}

fn listing(tar: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            format!(
                "{} {:?} {:o} {}:{} {} {}",
                String::from_utf8_lossy(&e.path_bytes()),
                h.entry_type(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mtime().unwrap(),
                h.size().unwrap()
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn pack_unpack_round_trip_is_stable(spec in tree(), epoch in prop::option::of(0i64..2_000_000_000)) {
        let src = tempfile::tempdir().unwrap();
        build(src.path(), &spec);
        let mut first = Vec::new();
        let packed = pack(src.path(), epoch, &mut first).unwrap();
        let dst = tempfile::tempdir().unwrap();
        let unpacked = unpack(&first[..], dst.path()).unwrap();
        prop_assert_eq!(&packed, &unpacked);
        let mut second = Vec::new();
        pack(dst.path(), None, &mut second).unwrap();
        prop_assert!(first == second, "pack(unpack(tar)) differs from tar: {:?} vs {:?}", listing(&first), listing(&second));
    }
}

#[test]
fn pack_streams_into_any_writer() {
    struct Counting(u64);
    impl Write for Counting {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("f"), vec![7u8; 100_000]).unwrap();
    let mut c = Counting(0);
    let t = pack(d.path(), None, &mut c).unwrap();
    assert_eq!(t.size, c.0);
}
