//! `ADD <git remote>#ref:subdir`: a real repository served over dumb HTTP
//! (`git update-server-info` + `python3 -m http.server`), built into an
//! image; the files, `.git`, `--keep-git-dir`, `--checksum` and the cache
//! (a moved branch reruns the ADD, an unchanged one is cached) checked as a
//! user sees them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::harness::{layer_steps, scratch_dir, setup, skip, Bake, Output};

/// Runs `git ARGS` in `dir` with a fixed identity; panics on failure.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=bake", "-c", "user.email=bake@example.com"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A work repository, its bare clone under `served/repo.git`, and a
/// `python3 -m http.server` serving `served/` on a free port (killed on
/// drop).
struct GitServer {
    dir: TempDir,
    child: Child,
    port: u16,
}

impl GitServer {
    /// A repo with `sub/hello.txt`, `sub/nested/deep.txt` and `top.txt` on
    /// branch `main`, tagged `v1`.
    fn start() -> GitServer {
        let dir = tempfile::Builder::new()
            .prefix("bake-it-git-")
            .tempdir_in(scratch_dir())
            .unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir_all(work.join("sub/nested")).unwrap();
        std::fs::write(work.join("sub/hello.txt"), "hello from git\n").unwrap();
        std::fs::write(work.join("sub/nested/deep.txt"), "deep\n").unwrap();
        std::fs::write(work.join("top.txt"), "top\n").unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["add", "."]);
        git(&work, &["commit", "-q", "-m", "one"]);
        git(&work, &["tag", "v1"]);
        git(&work, &["tag", "-a", "-m", "annotated", "v1-annotated"]);
        std::fs::create_dir(dir.path().join("served")).unwrap();
        git(
            dir.path(),
            &["clone", "-q", "--bare", "work", "served/repo.git"],
        );
        git(&dir.path().join("served/repo.git"), &["update-server-info"]);
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .current_dir(dir.path().join("served"))
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
        GitServer { dir, child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/repo.git", self.port)
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// Commits `sub/hello.txt` = `content` on `main` and publishes it.
    fn commit_hello(&self, content: &str) -> String {
        let work = self.work();
        std::fs::write(work.join("sub/hello.txt"), content).unwrap();
        git(&work, &["commit", "-q", "-am", "change"]);
        self.publish();
        git(&work, &["rev-parse", "HEAD"])
    }

    /// Adds `vendor/lib` as a submodule (its own served repo, `lib.git`,
    /// named by a URL relative to the superproject's) and publishes.
    fn add_submodule(&self) {
        let lib = self.dir.path().join("lib-work");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(lib.join("lib.txt"), "from the submodule\n").unwrap();
        git(&lib, &["init", "-q", "-b", "main"]);
        git(&lib, &["add", "."]);
        git(&lib, &["commit", "-q", "-m", "lib"]);
        let bare = self.dir.path().join("served/lib.git");
        git(
            self.dir.path(),
            &["clone", "-q", "--bare", "lib-work", "served/lib.git"],
        );
        git(&bare, &["update-server-info"]);
        let work = self.work();
        git(
            &work,
            &[
                "-c",
                "protocol.file.allow=always",
                "submodule",
                "add",
                "-q",
                bare.to_str().unwrap(),
                "vendor/lib",
            ],
        );
        git(
            &work,
            &[
                "config",
                "-f",
                ".gitmodules",
                "submodule.vendor/lib.url",
                "../lib.git",
            ],
        );
        git(&work, &["add", ".gitmodules"]);
        git(&work, &["commit", "-q", "-m", "submodule"]);
        self.publish();
    }

    /// Pushes every branch and tag to the served bare repo and refreshes
    /// its dumb-HTTP info files.
    fn publish(&self) {
        let bare = self.dir.path().join("served/repo.git");
        git(
            &self.work(),
            &[
                "push",
                "-q",
                "--force",
                bare.to_str().unwrap(),
                "main",
                "--tags",
            ],
        );
        git(&bare, &["update-server-info"]);
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn have_tools() -> bool {
    for tool in ["git", "python3"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if skip((!found).then(|| format!("`{tool}` is not installed"))) {
            return false;
        }
    }
    true
}

/// A context holding only `dockerfile`.
fn context(dockerfile: &str) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("bake-it-addgit-")
        .tempdir_in(scratch_dir())
        .unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
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

/// Whether the (single) ADD step was reported CACHED.
fn add_cached(out: &Output) -> bool {
    let steps = layer_steps(&out.stderr);
    let add: Vec<_> = steps.iter().filter(|s| s.1.starts_with("ADD")).collect();
    assert_eq!(add.len(), 1, "one ADD step expected:\n{out}");
    add[0].2
}

#[test]
fn add_git_tag_subdir_files_cache_and_moved_branch() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    if !have_tools() {
        return;
    }
    let server = GitServer::start();
    let url = server.url();

    // A tag and a subdir: the subdir's files, owned by root, no .git,
    // every mtime the commit's time.
    let time = git(&server.work(), &["log", "-1", "--format=%ct", "v1"]);
    let ctx = context(&format!("ARG BASE\nFROM $BASE\nADD {url}#v1:sub /app/\n"));
    let out = build(&bake, &base, ctx.path(), "git:tag");
    assert_eq!(out.code, 0, "{out}");
    let run = bake.ok(&[
        "run",
        "--rm",
        "git:tag",
        "sh",
        "-c",
        "cat /app/hello.txt /app/nested/deep.txt; ls -a /app; stat -c '%u:%g %Y' /app/hello.txt /app/nested",
    ]);
    assert_eq!(
        run.stdout,
        format!("hello from git\ndeep\n.\n..\nhello.txt\nnested\n0:0 {time}\n0:0 {time}\n"),
        "{run}"
    );

    // An annotated tag names the same commit: same files.
    let annotated = context(&format!(
        "ARG BASE\nFROM $BASE\nADD {url}#v1-annotated:sub/nested /deep/\n"
    ));
    let out = build(&bake, &base, annotated.path(), "git:annotated");
    assert_eq!(out.code, 0, "{out}");
    let run = bake.ok(&["run", "--rm", "git:annotated", "cat", "/deep/deep.txt"]);
    assert_eq!(run.stdout, "deep\n");

    // Unchanged remote: the ADD is cached.
    let again = build(&bake, &base, ctx.path(), "git:tag");
    assert_eq!(again.code, 0, "{again}");
    assert!(add_cached(&again), "rebuild should be CACHED:\n{again}");

    // A branch: cached while it stays, rerun once it moves.
    let branch = context(&format!("ARG BASE\nFROM $BASE\nADD {url}#main:sub /app/\n"));
    let first = build(&bake, &base, branch.path(), "git:main");
    assert_eq!(first.code, 0, "{first}");
    let same = build(&bake, &base, branch.path(), "git:main");
    assert!(
        add_cached(&same),
        "unchanged branch should be CACHED:\n{same}"
    );
    server.commit_hello("second version\n");
    let moved = build(&bake, &base, branch.path(), "git:main");
    assert_eq!(moved.code, 0, "{moved}");
    assert!(
        !add_cached(&moved),
        "a moved branch must rerun the ADD:\n{moved}"
    );
    let run = bake.ok(&["run", "--rm", "git:main", "cat", "/app/hello.txt"]);
    assert_eq!(run.stdout, "second version\n");
    // The tag did not move: still the first content, still cached.
    let tag_again = build(&bake, &base, ctx.path(), "git:tag");
    assert!(add_cached(&tag_again), "{tag_again}");
}

#[test]
fn add_git_keep_git_dir_default_branch_and_commit_checksum() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    if !have_tools() {
        return;
    }
    let server = GitServer::start();
    let url = server.url();
    let head = git(&server.work(), &["rev-parse", "HEAD"]);

    // No fragment: the default branch, whole tree; --keep-git-dir keeps
    // a repository that git inside the image could use.
    let ctx = context(&format!(
        "ARG BASE\nFROM $BASE\nADD --keep-git-dir {url} /src\n"
    ));
    let out = build(&bake, &base, ctx.path(), "git:keep");
    assert_eq!(out.code, 0, "{out}");
    let run = bake.ok(&[
        "run",
        "--rm",
        "git:keep",
        "sh",
        "-c",
        "cat /src/top.txt /src/sub/hello.txt; test -d /src/.git && echo has-git; cat /src/.git/HEAD",
    ]);
    assert_eq!(
        run.stdout,
        format!("top\nhello from git\nhas-git\n{head}\n"),
        "{run}"
    );

    // Without the flag there is no .git; a full commit id as the ref.
    let ctx = context(&format!("ARG BASE\nFROM $BASE\nADD {url}#{head} /src\n"));
    let out = build(&bake, &base, ctx.path(), "git:commit");
    assert_eq!(out.code, 0, "{out}");
    let run = bake.ok(&[
        "run",
        "--rm",
        "git:commit",
        "sh",
        "-c",
        "ls -a /src | tr '\\n' ' '",
    ]);
    assert_eq!(run.stdout, ". .. sub top.txt ", "{run}");

    // --checksum: the commit the ref must resolve to.
    let ok = context(&format!(
        "ARG BASE\nFROM $BASE\nADD --checksum={head} {url}#v1 /src\n"
    ));
    let out = build(&bake, &base, ok.path(), "git:sum");
    assert_eq!(out.code, 0, "{out}");
    let wrong = "0123456789012345678901234567890123456789";
    let bad = context(&format!(
        "ARG BASE\nFROM $BASE\nADD --checksum={wrong} {url}#v1 /src\n"
    ));
    let out = build(&bake, &base, bad.path(), "git:badsum");
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stderr
            .contains(&format!("expected commit {wrong}, got {head}")),
        "{out}"
    );
}

#[test]
fn add_git_errors_name_the_missing_ref_and_subdir() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    if !have_tools() {
        return;
    }
    let server = GitServer::start();
    let url = server.url();
    let ctx = context(&format!(
        "ARG BASE\nFROM $BASE\nADD {url}#no-such-branch /src\n"
    ));
    let out = build(&bake, &base, ctx.path(), "git:noref");
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stderr
            .contains("git ref \"no-such-branch\" not found in"),
        "{out}"
    );
    let ctx = context(&format!("ARG BASE\nFROM $BASE\nADD {url}#v1:nope /src\n"));
    let out = build(&bake, &base, ctx.path(), "git:nosub");
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stderr.contains("subdirectory \"nope\" not found in"),
        "{out}"
    );
}

#[test]
fn add_git_checks_out_submodules_without_their_git_links() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    if !have_tools() {
        return;
    }
    let server = GitServer::start();
    server.add_submodule();
    let url = server.url();
    let ctx = context(&format!("ARG BASE\nFROM $BASE\nADD {url}#main /src\n"));
    let out = build(&bake, &base, ctx.path(), "git:submodule");
    assert_eq!(out.code, 0, "{out}");
    let run = bake.ok(&[
        "run",
        "--rm",
        "git:submodule",
        "sh",
        "-c",
        "cat /src/vendor/lib/lib.txt; ls -a /src/vendor/lib | tr '\\n' ' '; test -e /src/.git || echo no-git",
    ]);
    assert_eq!(
        run.stdout, "from the submodule\n. .. lib.txt no-git\n",
        "{run}"
    );
}
