//! What decides a cache hit: `ADD <url>` content keys, `--no-cache-filter`,
//! `--pull`, and reproducible image ids with `SOURCE_DATE_EPOCH`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tempfile::TempDir;

use crate::harness::{base_arg, layer_steps, scratch_dir, setup, Bake, Output};

/// A context directory holding `files` (name, content).
pub fn context_with(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("bake-it-ctx-")
        .tempdir_in(scratch_dir())
        .unwrap();
    for (name, content) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    dir
}

/// `bake build --progress=plain -t TAG --build-arg BASE=… EXTRA… CTX`.
pub fn build(bake: &Bake, ctx: &Path, tag: &str, base: &str, extra: &[&str]) -> Output {
    let [a, b] = base_arg(base);
    let mut args = vec!["build", "--progress=plain", "-t", tag, &a, &b];
    args.extend_from_slice(extra);
    let ctx = ctx.to_str().unwrap();
    args.push(ctx);
    bake.ok(&args)
}

/// Whether the layer step whose instruction starts with `prefix` was CACHED.
pub fn cached(out: &Output, prefix: &str) -> bool {
    layer_steps(&out.stderr)
        .iter()
        .find(|s| s.1.starts_with(prefix))
        .unwrap_or_else(|| panic!("no step `{prefix}` in:\n{out}"))
        .2
}

/// A one-file HTTP server on 127.0.0.1: every GET answers the current body
/// with a fixed `Last-Modified`, and counts the requests.
struct FileServer {
    port: u16,
    body: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
}

/// `Last-Modified` the server sends, and the same instant in seconds.
const LAST_MODIFIED: (&str, i64) = ("Tue, 14 Nov 2023 22:13:20 GMT", 1_700_000_000);

impl FileServer {
    fn start(body: &str) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = Arc::new(Mutex::new(body.to_string()));
        let hits = Arc::new(AtomicUsize::new(0));
        let (b, h) = (Arc::clone(&body), Arc::clone(&hits));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                // Read the request head up to the blank line.
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" || line == "\n" {
                        break;
                    }
                    line.clear();
                }
                h.fetch_add(1, Ordering::SeqCst);
                let body = b.lock().unwrap().clone();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len(),
                    LAST_MODIFIED.0
                );
            }
        });
        FileServer { port, body, hits }
    }

    fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/files/{name}", self.port)
    }
}

#[test]
fn add_url_keys_on_content_and_a_checksum_skips_the_download() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let server = FileServer::start("first\n");
    let df = format!(
        "ARG BASE\nFROM $BASE\nADD {} /remote/\nRUN cat /remote/hello.txt > /copy\n",
        server.url("hello.txt")
    );
    let ctx = context_with(&[("Dockerfile", &df)]);
    let first = build(&bake, ctx.path(), "addurl:1", &base, &[]);
    assert!(!cached(&first, "ADD"), "{first}");
    let out = bake.ok(&[
        "run",
        "--rm",
        "addurl:1",
        "stat",
        "-c",
        "%a %u %Y",
        "/remote/hello.txt",
    ]);
    assert_eq!(out.stdout, format!("600 0 {}\n", LAST_MODIFIED.1));

    // Unchanged content: fetched again (that is how the key is learnt), but
    // every step is a hit.
    let before = server.hits.load(Ordering::SeqCst);
    let second = build(&bake, ctx.path(), "addurl:1", &base, &[]);
    assert!(server.hits.load(Ordering::SeqCst) > before);
    assert!(cached(&second, "ADD"), "{second}");
    assert!(cached(&second, "RUN"), "{second}");

    // Changed content: the ADD and what follows run again.
    *server.body.lock().unwrap() = "second\n".to_string();
    let third = build(&bake, ctx.path(), "addurl:1", &base, &[]);
    assert!(!cached(&third, "ADD"), "{third}");
    assert!(!cached(&third, "RUN"), "{third}");
    let out = bake.ok(&["run", "--rm", "addurl:1", "cat", "/copy"]);
    assert_eq!(out.stdout, "second\n");

    // With --checksum the key is known without a request: a rebuild makes
    // none.
    let sum = format!(
        "sha256:{}",
        hex_sha256(server.body.lock().unwrap().as_bytes())
    );
    let df = format!(
        "ARG BASE\nFROM $BASE\nADD --checksum={sum} {} /pinned.txt\n",
        server.url("hello.txt")
    );
    std::fs::write(ctx.path().join("Dockerfile"), df).unwrap();
    build(&bake, ctx.path(), "addurl:2", &base, &[]);
    let before = server.hits.load(Ordering::SeqCst);
    let again = build(&bake, ctx.path(), "addurl:2", &base, &[]);
    assert!(cached(&again, "ADD"), "{again}");
    assert_eq!(server.hits.load(Ordering::SeqCst), before, "{again}");
    let out = bake.ok(&["run", "--rm", "addurl:2", "cat", "/pinned.txt"]);
    assert_eq!(out.stdout, "second\n");

    // A wrong checksum fails the build.
    let df = format!(
        "ARG BASE\nFROM $BASE\nADD --checksum=sha256:{} {} /bad.txt\n",
        "0".repeat(64),
        server.url("hello.txt")
    );
    std::fs::write(ctx.path().join("Dockerfile"), df).unwrap();
    let [a, b] = base_arg(&base);
    let out = bake.run(&[
        "build",
        "--progress=plain",
        &a,
        &b,
        ctx.path().to_str().unwrap(),
    ]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("digest mismatch"), "{out}");
}

/// sha256 of `data` in hex, with the `sha256sum` tool.
fn hex_sha256(data: &[u8]) -> String {
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn no_cache_filter_reruns_the_named_stage_and_only_what_its_result_changes() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let df = "ARG BASE\n\
        FROM $BASE AS dep\n\
        RUN echo dep > /dep\n\
        FROM $BASE AS app\n\
        COPY --from=dep /dep /dep\n\
        RUN echo app > /app\n";
    let ctx = context_with(&[("Dockerfile", df)]);
    // A fixed epoch makes the rerun `dep` produce the same layer.
    let epoch = ["--build-arg", "SOURCE_DATE_EPOCH=1700000000"];
    let first = build(&bake, ctx.path(), "ncf:1", &base, &epoch);
    assert!(!cached(&first, "RUN echo dep"), "{first}");

    let mut args = epoch.to_vec();
    args.push("--no-cache-filter=dep");
    let out = build(&bake, ctx.path(), "ncf:1", &base, &args);
    assert!(!cached(&out, "RUN echo dep"), "{out}");
    assert!(
        cached(&out, "COPY --from=dep"),
        "same result, same key:\n{out}"
    );
    assert!(cached(&out, "RUN echo app"), "{out}");

    let mut args = epoch.to_vec();
    args.push("--no-cache-filter=app,unused-name-is-checked-below");
    let [a, b] = base_arg(&base);
    let mut all = vec!["build", "--progress=plain", &a, &b];
    all.extend_from_slice(&args);
    all.push(ctx.path().to_str().unwrap());
    let bad = bake.run(&all);
    assert_ne!(bad.code, 0, "{bad}");
    assert!(bad.stderr.contains("no stage named"), "{bad}");

    let mut args = epoch.to_vec();
    args.push("--no-cache-filter=app");
    let out = build(&bake, ctx.path(), "ncf:1", &base, &args);
    assert!(cached(&out, "RUN echo dep"), "{out}");
    assert!(!cached(&out, "COPY --from=dep"), "{out}");
    assert!(!cached(&out, "RUN echo app"), "{out}");
}

#[test]
fn pull_re_resolves_a_base_tag_that_moved_in_the_registry() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let df = "ARG BASE\nFROM $BASE\nRUN (cat /marker 2>/dev/null || echo none) > /seen\n";
    let ctx = context_with(&[("Dockerfile", df)]);
    build(&bake, ctx.path(), "pull:1", &base, &[]);

    // Someone else moves the base tag to a new image.
    let other = Bake::new();
    let v2 = context_with(&[(
        "Dockerfile",
        "ARG BASE\nFROM $BASE\nRUN echo v2 > /marker\n",
    )]);
    build(&other, v2.path(), &base, &base, &[]);
    other.ok(&["push", &base]);

    let stale = build(&bake, ctx.path(), "pull:1", &base, &[]);
    assert!(
        cached(&stale, "RUN"),
        "the local tag is used without --pull:\n{stale}"
    );
    let fresh = build(&bake, ctx.path(), "pull:1", &base, &["--pull"]);
    assert!(!cached(&fresh, "RUN"), "{fresh}");
    let out = bake.ok(&["run", "--rm", "pull:1", "cat", "/seen"]);
    assert_eq!(out.stdout, "v2\n");
}

#[test]
fn source_date_epoch_gives_the_same_image_id_on_two_clean_stores() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let df = "ARG BASE\n\
        FROM $BASE AS build\n\
        RUN mkdir -p /out/dir && echo built > /out/dir/file && ln -s dir/file /out/link\n\
        FROM $BASE\n\
        COPY hello.txt /app/\n\
        COPY --from=build /out /out\n\
        RUN echo run > /run.txt\n\
        ENV A=1\n\
        CMD [\"cat\", \"/app/hello.txt\"]\n";
    let ctx = context_with(&[("Dockerfile", df), ("hello.txt", "hello\n")]);
    let id = |bake: &Bake, how: &str| {
        let [a, b] = base_arg(&base);
        let mut cmd = bake.cmd();
        cmd.args(["build", "-q", &a, &b]);
        match how {
            "env" => {
                cmd.env("SOURCE_DATE_EPOCH", "1700000000");
            }
            _ => {
                cmd.args(["--build-arg", "SOURCE_DATE_EPOCH=1700000000"]);
            }
        }
        let out = cmd.arg(ctx.path()).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let first = id(&bake, "arg");
    // Time passes between the builds: mtimes of new files differ.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(ctx.path().join("hello.txt"), "hello\n").unwrap();
    let second = id(&Bake::new(), "arg");
    assert_eq!(first, second, "two clean stores gave different image ids");
    let third = id(&Bake::new(), "env");
    assert_eq!(
        first, third,
        "SOURCE_DATE_EPOCH from the environment differs"
    );
    let inspect = bake.ok(&["inspect", &first]);
    assert!(inspect.stdout.contains("2023-11-14T22:13:20Z"), "{inspect}");
}
