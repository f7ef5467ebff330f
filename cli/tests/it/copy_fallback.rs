//! The copying snapshotter (`BAKE_SNAPSHOTTER=copy`, buildah's `vfs`): layers built and
//! containers run on copied trees instead of overlayfs, with the same results.

use std::path::Path;
use std::process::Command;

use crate::harness::{base_arg, scratch_dir, setup, Bake, Output};
use crate::rootless::saved_layers;

/// `bake ARGS…` with `BAKE_SNAPSHOTTER` set (or not) and a fixed `SOURCE_DATE_EPOCH`.
fn run(bake: &Bake, snapshotter: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = bake.cmd();
    cmd.env_remove("BAKE_SNAPSHOTTER");
    if let Some(s) = snapshotter {
        cmd.env("BAKE_SNAPSHOTTER", s);
    }
    cmd.env("SOURCE_DATE_EPOCH", "1704067200");
    let out = cmd.args(args).output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(bake: &Bake, snapshotter: Option<&str>, args: &[&str]) -> Output {
    let out = run(bake, snapshotter, args);
    assert_eq!(
        out.code, 0,
        "bake {args:?} ({snapshotter:?}) failed:\n{out}"
    );
    out
}

/// Everything a RUN can do to lower files, over two layers, plus COPY --from a
/// two-layer stage into a new path and onto an existing directory.
const DOCKERFILE: &str = r#"ARG BASE
FROM $BASE AS other
RUN mkdir -p /out/sub && echo built > /out/file && echo s > /out/sub/s
RUN echo second > /out/second && rm /out/sub/s

FROM $BASE
RUN mkdir -p /data/keep /data/gone /data/todir && echo 1 > /data/keep/one \
 && echo f > /data/gone/f && echo t > /data/todir/t && echo file > /data/tofile \
 && echo r > /data/rename-me && echo l > /data/link-src
RUN echo added > /added \
 && echo more >> /etc/passwd \
 && chmod 600 /etc/group \
 && chown 1000:1000 /root \
 && rm /bin/vi /data/keep/one \
 && rm -rf /var/tmp /data/gone \
 && rm -rf /data/todir && echo now-a-file > /data/todir \
 && rm /data/tofile && mkdir /data/tofile && echo inside > /data/tofile/x \
 && rm -rf /home/app && mkdir /home/app && touch /home/app/new \
 && mv /data/rename-me /data/renamed \
 && mv /usr/local /usr/local2 \
 && ln /data/link-src /data/hard && ln /added /added-hard \
 && ln -s /added /added-sym && ln -s / /etc/evil \
 && mkfifo /fifo
COPY --from=other /out /copied
COPY --from=other /out /etc/
"#;

/// `tar -tv --numeric-owner` of each layer of the image `tag` (to show a difference, if
/// any), through `bake save`.
fn listings(bake: &Bake, snapshotter: Option<&str>, tag: &str) -> Vec<String> {
    let dir = tempfile::Builder::new()
        .prefix("bake-it-copy-save-")
        .tempdir_in(scratch_dir())
        .unwrap();
    let archive = dir.path().join("image.tar");
    ok(
        bake,
        snapshotter,
        &["save", "-o", archive.to_str().unwrap(), tag],
    );
    saved_layers(&archive)
}

fn image_id(bake: &Bake, snapshotter: Option<&str>, tag: &str) -> String {
    ok(bake, snapshotter, &["images", "-q", "--no-trunc", tag])
        .stdout
        .trim()
        .to_string()
}

fn build(bake: &Bake, snapshotter: Option<&str>, ctx: &Path, tag: &str, base: &str) -> Output {
    let [a, b] = base_arg(base);
    ok(
        bake,
        snapshotter,
        &[
            "build",
            "--progress=plain",
            "-t",
            tag,
            &a,
            &b,
            ctx.to_str().unwrap(),
        ],
    )
}

fn context(dockerfile: &str) -> tempfile::TempDir {
    let ctx = tempfile::Builder::new()
        .prefix("bake-it-copy-ctx-")
        .tempdir_in(scratch_dir())
        .unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    ctx
}

#[test]
fn copy_snapshotter_builds_the_same_image_as_overlayfs() {
    let Some((_registry, base, overlay)) = setup() else {
        return;
    };
    let copy = Bake::new();
    let ctx = context(DOCKERFILE);
    build(&overlay, Some("overlay"), ctx.path(), "same:1", &base);
    build(&copy, Some("copy"), ctx.path(), "same:1", &base);
    let (a, b) = (
        listings(&overlay, None, "same:1"),
        listings(&copy, None, "same:1"),
    );
    assert_eq!(a.len(), 5, "{a:#?}");
    for (n, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "layer {n} differs:\n--- overlay\n{x}\n--- copy\n{y}");
    }
    assert_eq!(
        image_id(&overlay, None, "same:1"),
        image_id(&copy, None, "same:1")
    );
    // What the RUN did, as the copied build's layer shows it.
    let run = &b[2];
    for entry in [
        "etc/evil -> /",
        "home/app/.wh..wh..opq",
        "var/.wh.tmp",
        "data/.wh.gone",
        "usr/.wh.local",
        "data/renamed",
        "data/link-src link to data/hard",
        "data/tofile/.wh..wh..opq",
    ] {
        assert!(run.contains(entry), "no {entry:?} in\n{run}");
    }
    // The image runs, with the same content either way.
    let out = ok(
        &copy,
        None,
        &[
            "run",
            "--rm",
            "same:1",
            "cat",
            "/etc/second",
            "/copied/file",
            "/data/todir",
        ],
    );
    assert_eq!(out.stdout, "second\nbuilt\nnow-a-file\n");
}

#[test]
fn a_copied_container_keeps_its_changes_across_stop_commit_and_start() {
    let Some((_registry, base, bake)) = setup() else {
        return;
    };
    let mode = Some("copy");
    ok(&bake, mode, &["pull", "-q", &base]);
    let name = format!("copyctr-{}", std::process::id());
    ok(
        &bake,
        mode,
        &["run", "-d", "--name", &name, &base, "sleep", "300"],
    );
    ok(
        &bake,
        mode,
        &[
            "exec",
            &name,
            "sh",
            "-c",
            "echo hello > /written && rm /etc/hostname",
        ],
    );
    // The root is the copied tree (a bind mount), not an overlay.
    let mounts = ok(&bake, mode, &["exec", &name, "cat", "/proc/self/mountinfo"]).stdout;
    let root = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("no root in {mounts}"));
    assert!(
        root.contains("copy-tree") && !root.contains(" - overlay "),
        "{root}"
    );
    // Running: diff and commit see the change at once, as with overlayfs.
    let diff = ok(&bake, mode, &["diff", &name]).stdout;
    assert!(diff.contains("A /written"), "{diff}");
    assert!(diff.contains("D /etc/hostname"), "{diff}");
    ok(&bake, mode, &["commit", &name, "copied:running"]);
    let out = ok(
        &bake,
        mode,
        &["run", "--rm", "copied:running", "cat", "/written"],
    );
    assert_eq!(out.stdout, "hello\n");

    ok(
        &bake,
        mode,
        &["exec", &name, "sh", "-c", "echo again > /second"],
    );
    ok(&bake, mode, &["stop", "-t", "1", &name]);
    // `bake cp` into the stopped container writes through a copied view.
    let host_file = scratch_dir().join(format!("copy-cp-{}", std::process::id()));
    std::fs::write(&host_file, "from the host\n").unwrap();
    let dst = format!("{name}:/fromhost");
    ok(&bake, mode, &["cp", host_file.to_str().unwrap(), &dst]);
    std::fs::remove_file(&host_file).unwrap();
    let diff = ok(&bake, mode, &["diff", &name]).stdout;
    assert!(
        diff.contains("A /written") && diff.contains("A /second") && diff.contains("A /fromhost"),
        "{diff}"
    );
    assert!(
        !diff.contains("/proc") && !diff.contains("/etc/hosts"),
        "stubs: {diff}"
    );
    ok(&bake, mode, &["commit", &name, "copied:stopped"]);
    let out = ok(
        &bake,
        mode,
        &[
            "run",
            "--rm",
            "copied:stopped",
            "sh",
            "-c",
            "cat /written /second; test -e /etc/hostname || echo deleted",
        ],
    );
    assert_eq!(out.stdout, "hello\nagain\ndeleted\n", "{out}");

    // Restarted: repopulated from the image and the upper dir.
    ok(&bake, mode, &["start", &name]);
    let out = ok(
        &bake,
        mode,
        &[
            "exec",
            &name,
            "sh",
            "-c",
            "cat /written /second /fromhost; ls /etc/hostname 2>&1 || true",
        ],
    );
    assert!(
        out.stdout.starts_with("hello\nagain\nfrom the host\n"),
        "{out}"
    );
    assert!(out.stdout.contains("No such file"), "{out}");
    ok(&bake, mode, &["rm", "-f", &name]);
}

/// A copied container whose supervisor is killed (SIGKILL of a foreground `bake run`
/// kills its sandbox too) never gets its final sync; its next start writes the tree it
/// left into the upper dir, so that its changes survive as they do with overlayfs.
#[test]
fn a_copied_container_whose_supervisor_was_killed_keeps_its_changes() {
    let Some((_registry, base, bake)) = setup() else {
        return;
    };
    let mode = Some("copy");
    ok(&bake, mode, &["pull", "-q", &base]);
    let name = format!("copykill-{}", std::process::id());
    let id = ok(
        &bake,
        mode,
        &["run", "-d", "--name", &name, &base, "sleep", "300"],
    )
    .stdout
    .trim()
    .to_string();
    ok(
        &bake,
        mode,
        &["exec", &name, "sh", "-c", "echo kept > /kept"],
    );
    let dir = bake.root().join("containers").join(&id);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).unwrap()).unwrap();
    let supervisor = state["supervisor"].as_u64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ok(&bake, mode, &["ps", "-a"])
        .stdout
        .lines()
        .any(|l| l.contains(&name) && l.contains("Exited"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the container runs on"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ok(&bake, mode, &["start", &name]);
    let out = ok(&bake, mode, &["exec", &name, "cat", "/kept"]);
    assert_eq!(out.stdout, "kept\n", "{out}");
    let stale = dir.join(format!(".bake-sandbox-{supervisor}"));
    assert!(!stale.exists(), "{} left behind", stale.display());
    ok(&bake, mode, &["rm", "-f", &name]);
}

#[test]
fn an_unknown_snapshotter_is_refused_by_name() {
    let Some((_registry, base, bake)) = setup() else {
        return;
    };
    let out = run(&bake, Some("bogus"), &["run", "--rm", &base, "true"]);
    assert_eq!(out.code, 125, "{out}");
    assert!(
        out.stderr.contains("BAKE_SNAPSHOTTER") && out.stderr.contains("bogus"),
        "{out}"
    );
    let ctx = context("ARG BASE\nFROM $BASE\nRUN true\n");
    let [a, b] = base_arg(&base);
    let out = run(
        &bake,
        Some("bogus"),
        &["build", &a, &b, ctx.path().to_str().unwrap()],
    );
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("BAKE_SNAPSHOTTER"), "{out}");
}

#[test]
fn symlinks_in_a_copied_build_never_reach_the_host() {
    let Some((_registry, base, bake)) = setup() else {
        return;
    };
    let sentinel_dir = tempfile::Builder::new()
        .prefix("bake-it-copy-sentinel-")
        .tempdir_in(scratch_dir())
        .unwrap();
    let sentinel = sentinel_dir.path().join("sentinel");
    std::fs::write(&sentinel, "untouched").unwrap();
    let host = sentinel_dir.path().display();
    // A lower layer with links to the host's paths, then a RUN that writes through
    // them and swaps directories for links: all of it must stay in the image.
    let df = format!(
        "ARG BASE\nFROM $BASE AS src\nRUN ln -s / /etc/evil\nFROM $BASE\n\
         RUN ln -s {host} /hostdir && ln -s / /etc/evil && mkdir /d && ln -s {host}/sentinel /d/s\n\
         RUN echo pwned > /hostdir/sentinel; echo pwned > /d/s; echo pwned > /etc/evil{host}/sentinel; \
         rm -rf /d && ln -s {host} /d && rm /hostdir && mkdir /hostdir && echo in > /hostdir/sentinel\n\
         COPY --from=src /etc/evil/etc/hostname /copied\n"
    );
    let ctx = context(&df);
    build(&bake, Some("copy"), ctx.path(), "evil:1", &base);
    assert_eq!(std::fs::read_to_string(&sentinel).unwrap(), "untouched");
    assert_eq!(std::fs::read_dir(sentinel_dir.path()).unwrap().count(), 1);
    let out = ok(
        &bake,
        Some("copy"),
        &[
            "run",
            "--rm",
            "evil:1",
            "cat",
            "/hostdir/sentinel",
            "/copied",
        ],
    );
    assert_eq!(out.stdout, "in\nbusybox\n");
}

#[test]
fn rootless_copy_builds_what_rootless_overlayfs_builds() {
    use crate::rootless::{user, RANGED};
    let Some(user) = user(RANGED, true) else {
        return;
    };
    let registry = crate::harness::Registry::start();
    let base = registry.with_busybox();
    let ctx = user.context(
        "copy-ctx",
        "ARG BASE\nFROM $BASE AS src\nRUN echo s > /s\nRUN echo t > /t\nFROM $BASE\n\
         RUN echo hi > /x && chown 1000:1000 /x\n\
         RUN rm /etc/hostname && rm -rf /home/app && mkdir /home/app && touch /home/app/new\n\
         COPY --from=src /s /t /etc/\n",
    );
    let base_arg = format!("BASE={base}");
    let home = format!("HOME=/home/{}", user.name);
    let mut listings = Vec::new();
    for mode in ["overlay", "copy"] {
        let store = format!("BAKE_ROOT={}", user.dir.path().join(mode).display());
        let env = [
            home.as_str(),
            store.as_str(),
            "SOURCE_DATE_EPOCH=1704067200",
        ];
        let snapshotter = format!("BAKE_SNAPSHOTTER={mode}");
        let env: Vec<&str> = env.into_iter().chain([snapshotter.as_str()]).collect();
        let out = user.run_env(
            &env,
            &[
                "build",
                "-t",
                "rl:1",
                "--build-arg",
                &base_arg,
                ctx.to_str().unwrap(),
            ],
        );
        assert_eq!(out.code, 0, "{mode}: {out}");
        let archive = user.dir.path().join(format!("{mode}.tar"));
        let out = user.run_env(&env, &["save", "-o", archive.to_str().unwrap(), "rl:1"]);
        assert_eq!(out.code, 0, "{mode}: {out}");
        listings.push(saved_layers(&archive));
        let out = user.run_env(&env, &["run", "--rm", "rl:1", "stat", "-c", "%u:%g", "/x"]);
        assert_eq!(out.stdout.trim(), "1000:1000", "{mode}: {out}");
        let out = user.run_env(
            &env,
            &["run", "--rm", "rl:1", "cat", "/proc/self/mountinfo"],
        );
        assert_eq!(
            out.stdout.contains("copy-tree"),
            mode == "copy",
            "{mode}: {out}"
        );
    }
    assert_eq!(listings[0], listings[1], "overlay vs copy");
    let run = &listings[1][2];
    assert!(
        run.contains("home/app/.wh..wh..opq") && run.contains("etc/.wh.hostname"),
        "{run}"
    );
    assert!(listings[1][1].contains(" 1000/1000 "), "{:?}", listings[1]);
    // Nothing the copies made belongs to the host's root.
    let owned = Command::new("find")
        .arg(user.dir.path())
        .args(["-uid", "0"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&owned.stdout), "");
}
