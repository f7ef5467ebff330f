//! COPY and ADD flags end to end: `--link`, `--parents` (with `**` and the
//! `./` pivot), `--exclude`, local archive extraction (tar, gzip, bzip2,
//! xz, zstd) and `--unpack`, `--checksum`, `--from=<image>` and
//! `--from=<index>`, and `HEALTHCHECK NONE` / `STOPSIGNAL` / `EXPOSE` from
//! variables. (ONBUILD, HEALTHCHECK, STOPSIGNAL, MAINTAINER and EXPOSE
//! ranges are covered in `instructions.rs`.)

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::harness::{scratch_dir, setup, skip, Bake, Output};

/// A context with a Dockerfile and `(path, content)` files (parents made).
fn context(dockerfile: &str, files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("bake-it-flags-")
        .tempdir_in(scratch_dir())
        .unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    for (name, content) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    dir
}

fn build(bake: &Bake, base: &str, ctx: &Path, tag: &str) -> Output {
    let base_arg = format!("BASE={base}");
    bake.run(&[
        "build",
        "--progress=plain",
        "-t",
        tag,
        "--build-arg",
        &base_arg,
        ctx.to_str().unwrap(),
    ])
}

/// `sh -c SCRIPT` in `image`; its stdout.
fn sh(bake: &Bake, image: &str, script: &str) -> String {
    bake.ok(&["run", "--rm", image, "sh", "-c", script]).stdout
}

fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    !skip((!found).then(|| format!("`{tool}` is not installed")))
}

#[test]
fn copy_link_parents_and_exclude() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let dockerfile = "ARG BASE\nFROM $BASE\n\
        COPY --link x/a.txt /link/\n\
        COPY --parents x/a.txt y/a.txt /parents/\n\
        COPY --parents ./x/./y/*.txt /pivot/\n\
        COPY --parents **/r.txt /star/\n\
        COPY --parents x/y /dir/\n\
        COPY --exclude=*.md docs /docs/\n\
        COPY --exclude=*.md --exclude=hom2* hom* /hom/\n\
        ADD --exclude=sub docs /adocs/\n";
    let ctx = context(
        dockerfile,
        &[
            ("x/a.txt", "xa\n"),
            ("y/a.txt", "ya\n"),
            ("x/y/b.txt", "xyb\n"),
            ("x/y/c.md", "xyc\n"),
            ("deep/p/q/r.txt", "r\n"),
            ("top/r.txt", "top r\n"),
            ("docs/keep.txt", "keep\n"),
            ("docs/skip.md", "skip\n"),
            ("docs/sub/skip.md", "skip\n"),
            ("docs/sub/keep2.txt", "keep2\n"),
            ("hom1.txt", "1\n"),
            ("hom2.txt", "2\n"),
            ("hom3.md", "3\n"),
        ],
    );
    let out = build(&bake, &base, ctx.path(), "flags:copy");
    assert_eq!(out.code, 0, "{out}");
    let files = sh(
        &bake,
        "flags:copy",
        "cd / && find link parents pivot star dir docs hom adocs -type f | sort",
    );
    assert_eq!(
        files,
        "adocs/keep.txt\nadocs/skip.md\n\
         dir/x/y/b.txt\ndir/x/y/c.md\n\
         docs/keep.txt\ndocs/sub/keep2.txt\ndocs/sub/skip.md\n\
         hom/hom1.txt\n\
         link/a.txt\n\
         parents/x/a.txt\nparents/y/a.txt\n\
         pivot/y/b.txt\n\
         star/deep/p/q/r.txt\nstar/top/r.txt\n",
        "{out}"
    );
    let content = sh(
        &bake,
        "flags:copy",
        "cat /link/a.txt /parents/x/a.txt /parents/y/a.txt /pivot/y/b.txt /star/deep/p/q/r.txt",
    );
    assert_eq!(content, "xa\nxa\nya\nxyb\nr\n");
}

/// Writes `payload/dir/f.txt` and `payload/top.txt` into archives of every
/// kind bake must detect by content (names without the usual extensions).
fn make_archives(dir: &Path) {
    let script = r#"
import io, tarfile, gzip, sys
d = sys.argv[1]
def tar_bytes():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in [("dir/f.txt", b"in a dir\n"), ("top.txt", b"top\n")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o640
            info.mtime = 1700000000
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()
raw = tar_bytes()
open(d + "/plain-tar", "wb").write(raw)
for mode, name in [("w:gz", "gz-tar"), ("w:bz2", "bz2-tar"), ("w:xz", "xz-tar")]:
    with tarfile.open(d + "/" + name, mode) as t:
        with tarfile.open(fileobj=io.BytesIO(raw)) as src:
            for m in src.getmembers():
                t.addfile(m, src.extractfile(m))
open(d + "/not-a-tar.gz", "wb").write(gzip.compress(b"just text\n"))
"#;
    let st = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success(), "python3 could not make the archives");
    let st = Command::new("zstd")
        .args(["-q", "-f", "-o"])
        .arg(dir.join("zstd-tar"))
        .arg(dir.join("plain-tar"))
        .status()
        .unwrap();
    assert!(st.success(), "zstd failed");
}

/// `python3 -m http.server` on a free port over `dir`, killed on drop.
struct FileServer {
    child: Child,
    port: u16,
}

impl FileServer {
    fn start(dir: &Path) -> FileServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 -m http.server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "http.server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        FileServer { child, port }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn add_extracts_local_archives_by_content_and_unpack_controls_it() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    if !have("python3") || !have("zstd") {
        return;
    }
    let served = tempfile::Builder::new()
        .prefix("bake-it-flags-srv-")
        .tempdir_in(scratch_dir())
        .unwrap();
    make_archives(served.path());
    let server = FileServer::start(served.path());
    let url = format!("http://127.0.0.1:{}", server.port);
    let dockerfile = format!(
        "ARG BASE\nFROM $BASE\n\
         ADD plain-tar /u/tar/\n\
         ADD gz-tar /u/gz/\n\
         ADD bz2-tar /u/bz2/\n\
         ADD xz-tar /u/xz/\n\
         ADD zstd-tar /u/zst/\n\
         ADD --unpack=false gz-tar /kept/\n\
         ADD not-a-tar.gz /raw/\n\
         ADD {url}/gz-tar /remote-default/\n\
         ADD --unpack=true {url}/xz-tar /remote-unpacked/\n"
    );
    let ctx = context(&dockerfile, &[]);
    for name in [
        "plain-tar",
        "gz-tar",
        "bz2-tar",
        "xz-tar",
        "zstd-tar",
        "not-a-tar.gz",
    ] {
        std::fs::copy(served.path().join(name), ctx.path().join(name)).unwrap();
    }
    let out = build(&bake, &base, ctx.path(), "flags:archives");
    assert_eq!(out.code, 0, "{out}");
    let extracted = sh(
        &bake,
        "flags:archives",
        "for k in tar gz bz2 xz zst; do cat /u/$k/dir/f.txt /u/$k/top.txt; stat -c '%a %Y' /u/$k/top.txt; done",
    );
    assert_eq!(
        extracted,
        "in a dir\ntop\n640 1700000000\n".repeat(5),
        "{out}"
    );
    let kept = sh(
        &bake,
        "flags:archives",
        "ls /kept /raw /remote-default; gunzip -c /raw/not-a-tar.gz; cat /remote-unpacked/top.txt",
    );
    assert_eq!(
        kept, "/kept:\ngz-tar\n\n/raw:\nnot-a-tar.gz\n\n/remote-default:\ngz-tar\njust text\ntop\n",
        "{out}"
    );
}

#[test]
fn add_checksum_mismatch_and_checksum_on_a_local_file_are_errors() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    if !have("python3") {
        return;
    }
    let served = tempfile::Builder::new()
        .prefix("bake-it-flags-srv-")
        .tempdir_in(scratch_dir())
        .unwrap();
    std::fs::write(served.path().join("f.txt"), "served\n").unwrap();
    let server = FileServer::start(served.path());
    let wrong = format!("sha256:{}", "0".repeat(64));
    let ctx = context(
        &format!(
            "ARG BASE\nFROM $BASE\nADD --checksum={wrong} http://127.0.0.1:{}/f.txt /f.txt\n",
            server.port
        ),
        &[],
    );
    let out = build(&bake, &base, ctx.path(), "flags:badsum");
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "digest mismatch for http://127.0.0.1:{}/f.txt: expected {wrong}, got sha256:",
            server.port
        )),
        "{out}"
    );
    let ctx = context(
        &format!("ARG BASE\nFROM $BASE\nADD --checksum={wrong} local.txt /f.txt\n"),
        &[("local.txt", "x\n")],
    );
    let out = build(&bake, &base, ctx.path(), "flags:localsum");
    assert_ne!(out.code, 0, "{out}");
    // The diagnostic may wrap its headline: compare words.
    let words: Vec<&str> = out
        .stderr
        .split_whitespace()
        .filter(|w| *w != "│")
        .collect();
    let flat = words.join(" ");
    assert!(
        flat.contains("Dockerfile:3:5: checksum can't be specified for non-HTTP(S) sources"),
        "{out}"
    );
}

#[test]
fn copy_from_an_image_reference_and_a_stage_index() {
    let Some((reg, base, bake)) = setup() else {
        return;
    };
    // An image no FROM names: COPY --from pulls it by reference.
    let tools = format!("{}/other/tools:1", reg.addr);
    let status = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ])
        .arg(format!("docker://{base}"))
        .arg(format!("docker://{tools}"))
        .status()
        .unwrap();
    assert!(status.success(), "skopeo copy to {tools} failed");
    let dockerfile = format!(
        "ARG BASE\n\
         FROM $BASE AS first\n\
         RUN echo from-stage-0 > /zero.txt\n\
         FROM $BASE\n\
         ARG TOOLS={tools}\n\
         COPY --from=0 /zero.txt /got/zero.txt\n\
         COPY --from={tools} /bin/busybox /got/busybox\n\
         COPY --from={tools} /bin/busybox /got/busybox2\n"
    );
    let ctx = context(&dockerfile, &[]);
    let out = build(&bake, &base, ctx.path(), "flags:from");
    assert_eq!(out.code, 0, "{out}");
    let got = sh(
        &bake,
        "flags:from",
        "cat /got/zero.txt; cmp /bin/busybox /got/busybox && cmp /bin/busybox /got/busybox2 && echo same",
    );
    assert_eq!(got, "from-stage-0\nsame\n", "{out}");
    // A stage index must name an earlier stage, not the current one.
    let ctx = context("ARG BASE\nFROM $BASE\nCOPY --from=0 /x /x\n", &[]);
    let out = build(&bake, &base, ctx.path(), "flags:badindex");
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("Dockerfile:3:"), "{out}");
}

#[test]
fn healthcheck_none_stopsignal_and_expose_from_variables() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let parent = "ARG BASE\nFROM $BASE\nHEALTHCHECK --retries=2 CMD [\"true\"]\n";
    let ctx = context(parent, &[]);
    let out = build(&bake, &base, ctx.path(), "flags:hc-parent");
    assert_eq!(out.code, 0, "{out}");
    let child = "FROM flags:hc-parent\n\
        ARG SIG=SIGQUIT\n\
        ARG FIRST=7000\n\
        HEALTHCHECK NONE\n\
        STOPSIGNAL $SIG\n\
        EXPOSE ${FIRST}-7001/udp 9000/tcp\n";
    let ctx = context(child, &[]);
    let out = bake.run(&[
        "build",
        "--progress=plain",
        "-t",
        "flags:hc-child",
        ctx.path().to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out}");
    let inspect = bake.ok(&["inspect", "flags:hc-child"]);
    let v: Value = serde_json::from_str(&inspect.stdout).unwrap();
    let c = &v[0]["Config"];
    assert_eq!(c["Healthcheck"]["Test"], serde_json::json!(["NONE"]), "{c}");
    assert_eq!(c["StopSignal"], "SIGQUIT");
    let ports: Vec<&String> = c["ExposedPorts"].as_object().unwrap().keys().collect();
    assert_eq!(ports, ["7000/udp", "7001/udp", "9000/tcp"]);
}

#[test]
fn a_base_image_of_another_platform_is_warned_at_its_from_line() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    // The first build pulls the base (this host's platform) into the
    // store; a stage for another platform then finds it tagged locally.
    let ctx = context("ARG BASE\nFROM $BASE\n", &[]);
    let out = build(&bake, &base, ctx.path(), "flags:native");
    assert_eq!(out.code, 0, "{out}");
    let host = if cfg!(target_arch = "aarch64") {
        "linux/arm64"
    } else {
        "linux/amd64"
    };
    let other = if host == "linux/arm64" {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    let ctx = context(
        &format!("ARG BASE=busybox\nFROM --platform={other} $BASE\nLABEL x=y\n"),
        &[],
    );
    let base_arg = format!("BASE={base}");
    let out = bake.run(&[
        "build",
        "--check",
        "--build-arg",
        &base_arg,
        ctx.path().to_str().unwrap(),
    ]);
    for expected in [
        "WARNING: InvalidBaseImagePlatform - https://docs.docker.com/go/dockerfile/rule/invalid-base-image-platform/",
        &format!("Base image {base} was pulled with platform \"{host}\", expected \"{other}\" for current build"),
        "Dockerfile:2:",
    ] {
        assert!(out.stdout.contains(expected), "missing {expected:?}:\n{out}");
    }
}
