//! What a real distro base brings that busybox does not, pinned end to end
//! without the network or Debian (the conformance cases 300+ in
//! `testdata/conformance-extra/` build on `debian:bookworm-slim`): a
//! merged-/usr layout made in a stage, file capabilities, users and groups
//! made in the build. Each test builds with the real binary and checks what
//! a user sees: files in the image, what RUN saw, the pushed image as
//! skopeo and umoci read it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{base_arg, scratch_dir, setup, Bake, Output};

/// A fresh context holding `dockerfile` and `files` (path, content).
fn context(dockerfile: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let ctx = tempfile::Builder::new()
        .prefix("bake-it-ctx-")
        .tempdir_in(scratch_dir())
        .unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    for (path, content) in files {
        let p = ctx.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap_or(Path::new("."))).unwrap();
        std::fs::write(p, content).unwrap();
    }
    ctx
}

/// Builds `ctx` as `tag` (extra flags first) with `--build-arg BASE=<base>`.
fn build(bake: &Bake, ctx: &Path, tag: &str, base: &str, extra: &[&str]) -> Output {
    let [a, b] = base_arg(base);
    let mut args = vec!["build", "--progress=plain", "-t", tag, &a, &b];
    args.extend_from_slice(extra);
    let path = ctx.to_str().unwrap();
    args.push(path);
    bake.run(&args)
}

/// Pushes `tag`, copies it back with skopeo and unpacks it with umoci;
/// returns the dir holding `rootfs/`.
fn push_and_unpack(bake: &Bake, tag: &str, work: &Path) -> PathBuf {
    bake.ok(&["push", tag]);
    std::fs::create_dir_all(work).unwrap();
    let layout = work.join("layout");
    let ok = Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{tag}"))
        .arg(format!("oci:{}:x", layout.display()))
        .status()
        .unwrap();
    assert!(ok.success(), "skopeo copy of {tag} failed");
    let bundle = work.join("bundle");
    let out = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:x", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bundle
}

/// A v2 `security.capability` value: cap_net_raw permitted and effective,
/// what `setcap cap_net_raw+ep` writes.
const NET_RAW_CAP: [u8; 20] = [
    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

fn capability(p: &Path) -> Option<Vec<u8>> {
    let mut buf = [0u8; 64];
    rustix::fs::lgetxattr(p, "security.capability", &mut buf)
        .ok()
        .map(|n| buf[..n].to_vec())
}

/// A file capability reaches the pushed image whichever way it entered the
/// build: ADD of a tar carrying it (bake used to drop it), copied up by a
/// later RUN's chmod, and `COPY --from` a stage (bake used to drop it). The
/// conformance describer ignores xattrs, so this is where it is pinned.
#[test]
fn file_capabilities_survive_add_run_copy_from_and_push() {
    let Some((reg, base, bake)) = setup() else {
        return;
    };
    let df = "ARG BASE\nFROM $BASE AS caps\nADD cap.tar /opt/\n\
              RUN chmod 0750 /opt/ping-copyup\n\
              FROM $BASE\nCOPY --from=caps /opt/ping /usr/local/bin/ping\n\
              COPY --from=caps --chown=1000:1000 /opt/ping-copyup /usr/local/bin/ping-chowned\n";
    let ctx = context(df, &[("src/ping", "elf\n"), ("src/ping-copyup", "elf\n")]);
    for name in ["ping", "ping-copyup"] {
        rustix::fs::setxattr(
            ctx.path().join("src").join(name),
            "security.capability",
            &NET_RAW_CAP,
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
    }
    let tar = Command::new("tar")
        .args(["--xattrs", "--xattrs-include=security.capability", "-C"])
        .arg(ctx.path().join("src"))
        .arg("-cf")
        .arg(ctx.path().join("cap.tar"))
        .args(["ping", "ping-copyup"])
        .status()
        .unwrap();
    assert!(tar.success(), "tar --xattrs failed");
    std::fs::remove_dir_all(ctx.path().join("src")).unwrap();

    let stage_tag = format!("{}/semd/caps:stage", reg.addr);
    let out = build(&bake, ctx.path(), &stage_tag, &base, &["--target", "caps"]);
    assert_eq!(out.code, 0, "{out}");
    let final_tag = format!("{}/semd/caps:final", reg.addr);
    let out = build(&bake, ctx.path(), &final_tag, &base, &[]);
    assert_eq!(out.code, 0, "{out}");

    let work = tempfile::tempdir_in(scratch_dir()).unwrap();
    let stage = push_and_unpack(&bake, &stage_tag, &work.path().join("stage"));
    let fin = push_and_unpack(&bake, &final_tag, &work.path().join("final"));
    let want = Some(NET_RAW_CAP.to_vec());
    assert_eq!(capability(&stage.join("rootfs/opt/ping")), want, "ADD");
    assert_eq!(
        capability(&stage.join("rootfs/opt/ping-copyup")),
        want,
        "RUN chmod (copy-up)"
    );
    assert_eq!(
        capability(&fin.join("rootfs/usr/local/bin/ping")),
        want,
        "COPY --from"
    );
    assert_eq!(
        capability(&fin.join("rootfs/usr/local/bin/ping-chowned")),
        want,
        "COPY --from --chown"
    );
}

/// The merged-/usr stage every merged-/usr test starts from: busybox moved
/// to `/usr/bin`, `/bin` and `/lib` symlinks to `usr/...` as in Debian.
const MERGED_USR: &str = "ARG BASE\nFROM $BASE AS tree\n\
    RUN mkdir -p /m/usr/bin /m/usr/sbin /m/usr/lib/old /m/etc /m/tmp && cp /bin/busybox /m/usr/bin/ \
    && for a in sh ls cat pwd readlink rm mkdir echo test stat id touch; do ln -s busybox /m/usr/bin/$a; done \
    && ln -s usr/bin /m/bin && ln -s usr/lib /m/lib && ln -s usr/sbin /m/sbin \
    && echo old > /m/usr/lib/old/file && cp /etc/passwd /etc/group /m/etc/\n\
    FROM scratch\nCOPY --from=tree /m/ /\nENV PATH=/usr/bin:/bin\n";

/// On a merged-/usr base, COPY and ADD to `/bin/x`, `/lib/foo/` and
/// `/sbin/` land in `/usr/...` and leave the symlinks in place; `WORKDIR
/// /bin/..` is `/` (cleaned before it is used, as BuildKit's
/// `normaliseWorkdir` does; buildah reports `/usr`, case 301); deleting
/// and re-creating a directory through `/lib` works.
#[test]
fn merged_usr_paths_resolve_through_the_symlinks() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let df = format!(
        "{MERGED_USR}COPY hello.sh /bin/hello\nCOPY lib.txt /lib/foo/\nCOPY tools/ /sbin/tools/\n\
         WORKDIR /bin/..\nRUN pwd > /tmp/pwd1\nWORKDIR /lib/newdir\nRUN pwd > /tmp/pwd2\n\
         RUN rm -rf /lib/old && mkdir /lib/old && echo new > /lib/old/other\n"
    );
    let ctx = context(
        &df,
        &[
            ("hello.sh", "#!/bin/sh\necho hello\n"),
            ("lib.txt", "lib\n"),
            ("tools/t1", "t1\n"),
        ],
    );
    let out = build(&bake, ctx.path(), "semd:merged", &base, &[]);
    assert_eq!(out.code, 0, "{out}");
    let script =
        "readlink /bin; readlink /lib; readlink /sbin; cat /usr/bin/hello /usr/lib/foo/lib.txt \
                  /usr/sbin/tools/t1 /tmp/pwd1 /tmp/pwd2; ls /usr/lib/old; \
                  test -e /usr/lib/old/file || echo old-gone";
    let run = bake.ok(&["run", "--rm", "semd:merged", "sh", "-c", script]);
    assert_eq!(
        run.stdout,
        "usr/bin\nusr/lib\nusr/sbin\n#!/bin/sh\necho hello\nlib\nt1\n/\n/usr/lib/newdir\nother\nold-gone\n"
    );
    let inspect = bake.ok(&["inspect", "semd:merged"]);
    let v: serde_json::Value = serde_json::from_str(&inspect.stdout).expect("inspect is JSON");
    assert_eq!(v[0]["Config"]["WorkingDir"], "/lib/newdir", "{inspect}");
}

/// RUN as `USER app` gets the groups that list `app` in `/etc/group` (also
/// for `USER <uid>` that has a passwd entry); `USER app:grp` and
/// `USER uid:gid` get only that group (moby/sys/user `GetExecUser`, as
/// BuildKit and runc; case 307). `$HOME` is the passwd home, `/` without
/// an entry (case 308).
#[test]
fn run_as_a_user_made_in_the_build_gets_its_groups_and_home() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let df = "ARG BASE\nFROM $BASE\n\
              RUN echo 'app2:x:1234:1234::/srv/apphome:/bin/sh' >> /etc/passwd \\
              && printf 'app2:x:1234:\\nextra:x:3000:app2\\nmore:x:3001:root,app2\\n' >> /etc/group\n\
              USER app2\nRUN id -G > /tmp/g-app && echo $HOME > /tmp/h-app\n\
              USER app2:extra\nRUN id -G > /tmp/g-app-extra\n\
              USER 1234\nRUN id -G > /tmp/g-1234\n\
              USER 1234:1234\nRUN id -G > /tmp/g-1234-1234\n\
              USER 4321\nRUN echo $HOME > /tmp/h-4321\n";
    let ctx = context(df, &[]);
    let out = build(&bake, ctx.path(), "semd:users", &base, &[]);
    assert_eq!(out.code, 0, "{out}");
    let run = bake.ok(&[
        "run",
        "--rm",
        "--user",
        "0",
        "semd:users",
        "cat",
        "/tmp/g-app",
        "/tmp/h-app",
        "/tmp/g-app-extra",
        "/tmp/g-1234",
        "/tmp/g-1234-1234",
        "/tmp/h-4321",
    ]);
    assert_eq!(
        run.stdout,
        "1234 3000 3001\n/srv/apphome\n3000\n1234 3000 3001\n1234\n/\n"
    );
}

/// Only the COPY destination itself is resolved through symlinks: a
/// directory inside the copied tree that meets the image's `/bin` symlink
/// is an error, as in BuildKit on debian:12 (moby/moby#47367; buildah
/// follows the link instead, case 341), while the same file copied to the
/// symlinked path directly lands in `/usr/bin`.
#[test]
fn copied_tree_does_not_merge_through_a_symlinked_dir() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let files = [("rootfs/bin/foo.sh", "#!/bin/sh\necho foo\n")];
    let bad = context(&format!("{MERGED_USR}COPY rootfs /\n"), &files);
    let out = build(&bake, bad.path(), "semd:tree-bad", &base, &[]);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stderr.contains("cannot copy to non-directory") && out.stderr.contains("/bin"),
        "{out}"
    );
    let good = context(&format!("{MERGED_USR}COPY rootfs/bin/ /bin/\n"), &files);
    let out = build(&bake, good.path(), "semd:tree-good", &base, &[]);
    assert_eq!(out.code, 0, "{out}");
    let run = bake.ok(&[
        "run",
        "--rm",
        "semd:tree-good",
        "sh",
        "-c",
        "readlink /bin; cat /usr/bin/foo.sh",
    ]);
    assert_eq!(run.stdout, "usr/bin\n#!/bin/sh\necho foo\n");
}
