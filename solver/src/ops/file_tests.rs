//! The direct-to-upper COPY route (`ops::direct`) must give the very layer
//! the overlay route gives: same diff id, same chain id, same size. Each
//! case runs both routes on the same base and context in two stores.
//! Needs root (overlay mounts, chown); skips visibly otherwise.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::PathBuf;

use super::*;
use crate::ir::{Chmod, Copy};

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

/// Sets a fixed mtime, so that the two routes see the same times.
fn touch(p: &Path, secs: i64) {
    use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD};
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    utimensat(CWD, p, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

/// A context with nested dirs, an empty dir, a setuid file, a symlink
/// (relative and absolute), hard links and a `.dockerignore`d file.
fn context(dir: &Path) {
    fs::create_dir_all(dir.join("app/sub/deeper")).unwrap();
    fs::create_dir_all(dir.join("app/empty")).unwrap();
    fs::write(dir.join("app/sub/deeper/a.txt"), "a").unwrap();
    fs::write(dir.join("app/sub/b.bin"), vec![7u8; 300_000]).unwrap();
    fs::write(dir.join("app/run.sh"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(dir.join("app/run.sh"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(dir.join("app/hard1"), "h").unwrap();
    fs::hard_link(dir.join("app/hard1"), dir.join("app/hard2")).unwrap();
    symlink("sub/deeper/a.txt", dir.join("app/rel")).unwrap();
    symlink("/etc/passwd", dir.join("app/abs")).unwrap();
    fs::write(dir.join("app/skip.log"), "x").unwrap();
    fs::write(dir.join("top.txt"), "top").unwrap();
    for p in [
        "app/sub/deeper/a.txt",
        "app/sub/b.bin",
        "app/run.sh",
        "app/hard1",
        "app/rel",
        "app/abs",
        "top.txt",
        "app/sub/deeper",
        "app/sub",
        "app/empty",
        "app",
    ] {
        touch(&dir.join(p), 1_600_000_000);
    }
}

/// A busybox-like base layer with `/etc/passwd`, `/usr/bin` and a symlink.
fn base_tree(dir: &Path) {
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::create_dir_all(dir.join("usr/bin")).unwrap();
    fs::write(dir.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    symlink("usr/bin", dir.join("bin")).unwrap();
}

struct Case {
    _t: tempfile::TempDir,
    ctx: PathBuf,
    stores: [Store; 2],
    base: Vec<Layer>,
}

fn case() -> Case {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    context(&ctx);
    let stores = [0, 1].map(|i| Store::open(&t.path().join(format!("store{i}"))).unwrap());
    let mut base = Vec::new();
    for s in &stores {
        let up = t.path().join("base-upper");
        base_tree(&up);
        touch(&up.join("etc"), 1_500_000_000);
        let layer = s.commit_snapshot(&up, None, None).unwrap();
        base = vec![layer];
    }
    Case {
        _t: t,
        ctx,
        stores,
        base,
    }
}

/// Runs `op` through the overlay (store 0) and directly (store 1), and
/// returns both new layers.
fn both_routes(c: &Case, op: &FileOp, epoch: Option<i64>) -> (Layer, Layer) {
    let exclude = vec!["app/skip.log".to_string()];
    let sources = [
        CopySource::Layers(&c.base),
        CopySource::Local {
            dir: &c.ctx,
            exclude: &exclude,
        },
    ];
    let via_overlay = run_routed(&c.stores[0], op, &sources, epoch, false).unwrap();
    let direct = run_routed(&c.stores[1], op, &sources, epoch, true).unwrap();
    (
        via_overlay.last().unwrap().clone(),
        direct.last().unwrap().clone(),
    )
}

#[test]
fn direct_copy_gives_the_overlay_layer() {
    if !is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this test as root"
        );
        eprintln!("skipped: needs root (overlay mounts, chown)");
        return;
    }
    bake_runner::enter_private_mount_namespace().expect("private mount namespace");
    // The copy runs on rayon: its threads must be spawned from here, inside
    // the namespace with the mounts (the global pool may predate it).
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.install(routes_agree);
}

fn routes_agree() {
    let c = case();
    let mut chowned = copy(&["app"], "/srv/app/");
    chowned.owner = Some(crate::ir::Owner {
        user: "1000".into(),
        group: Some("50".into()),
    });
    chowned.mode = Some(Chmod::Octal(0o750));
    let mut parents = copy(&["app/sub/deeper/a.txt", "top.txt"], "/p/");
    parents.parents = true;
    // (ops, epoch): times of directories the copy creates on the way are
    // "now", so those cases clamp with an epoch.
    let cases: Vec<(Copy, Option<i64>)> = vec![
        (copy(&["."], "/src"), None),
        (copy(&["app"], "/app/"), None),
        (copy(&["top.txt"], "/top"), None),
        (copy(&["app", "top.txt"], "/a/b/c/"), Some(1_700_000_000)),
        (chowned, Some(1_700_000_000)),
        (parents, Some(1_700_000_000)),
        (copy(&["app/*.sh", "app/rel"], "/glob/"), None),
    ];
    for (cp, epoch) in cases {
        let op = FileOp {
            actions: vec![FileAction::Copy(cp.clone())],
        };
        assert!(
            direct::direct_copy(&op, &lowers(&c.stores[1], &c.base)).is_some(),
            "{} should take the direct route",
            cp.dest
        );
        let (a, b) = both_routes(&c, &op, epoch);
        assert_eq!(a, b, "COPY {:?} {}", cp.src, cp.dest);
        // The layer holds what was copied, not an empty tree.
        assert!(a.size > 1024, "{a:?}");
    }
}
