//! What every end-to-end test needs: a private store, a registry, the busybox
//! base image, and a way to say "skipped: why" that CI does not accept.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub use crate::token_issuer::TokenIssuer;

/// The repository root (for `testdata/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A testdata case directory.
pub fn testdata(case: &str) -> PathBuf {
    repo_root().join("testdata").join(case)
}

/// Returns true (and says why) when a prerequisite is missing, so the test
/// can return early. Under CI (`CI` set) a missing prerequisite is a failure:
/// CI installs everything and must not skip.
pub fn skip(missing: Option<String>) -> bool {
    let Some(why) = missing else { return false };
    if std::env::var_os("CI").is_some() {
        panic!("CI must not skip end-to-end tests, but: {why}");
    }
    eprintln!("skipped: {why}");
    true
}

/// What this machine lacks for the end-to-end tests, if anything.
pub fn missing_prerequisites() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("needs root (namespaces, overlayfs)".into());
    }
    for tool in ["docker-registry", "skopeo", "umoci", "busybox"] {
        if which(tool).is_none() {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    })
}

/// A private bake store; every command runs with `BAKE_ROOT` pointing at it.
pub struct Bake {
    root: TempDir,
}

impl Bake {
    /// A fresh, empty store under the system temp dir.
    pub fn new() -> Bake {
        Bake {
            root: tempfile::Builder::new()
                .prefix("bake-it-store-")
                .tempdir_in(scratch_dir())
                .unwrap(),
        }
    }

    /// The store's root directory (`BAKE_ROOT`).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `bake ARGS…` with this store.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_bake"));
        c.env("BAKE_ROOT", self.root.path());
        c.env_remove("SOURCE_DATE_EPOCH");
        c.stdin(Stdio::null());
        c
    }

    /// Runs `bake ARGS…` and returns (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd().args(args).output().unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `bake ARGS…` and panics with its output unless it exits 0.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_eq!(out.code, 0, "bake {args:?} failed:\n{out}");
        out
    }
}

/// The outcome of one bake command.
pub struct Output {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Where tests put stores and registries: on disk (overlayfs upper dirs
/// cannot live on tmpfs-backed overlay), not necessarily /tmp.
pub fn scratch_dir() -> PathBuf {
    let d = std::env::var_os("BAKE_TEST_TMP")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/bake-tests"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The password of [`Registry::start_with_basic_auth`].
pub const REGISTRY_PASSWORD: &str = "secret";
/// bcrypt (cost 4) of [`REGISTRY_PASSWORD`], so no `htpasswd` tool is needed.
const REGISTRY_PASSWORD_BCRYPT: &str =
    "$2b$04$oxQkF2fh32xhlxNoIoOLBOZmj5B07l8L7H65RAeLoW9iEMY7aA07O";

/// A `docker-registry` serving plain HTTP on a free loopback port, with its
/// own storage; stopped when dropped.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    _dir: TempDir,
}

impl Registry {
    /// Starts a registry and waits until `/v2/` answers.
    pub fn start() -> Registry {
        Registry::start_with(|_| String::new())
    }

    /// A registry that wants basic auth (htpasswd): `user` /
    /// [`REGISTRY_PASSWORD`].
    pub fn start_with_basic_auth(user: &str) -> Registry {
        Registry::start_with(|dir| {
            let htpasswd = dir.join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{REGISTRY_PASSWORD_BCRYPT}\n")).unwrap();
            format!(
                "auth:\n  htpasswd:\n    realm: bake-test\n    path: {}\n",
                htpasswd.display()
            )
        })
    }

    /// A registry that wants bearer tokens from a [`TokenIssuer`] (started
    /// with it) where `user` / [`REGISTRY_PASSWORD`] may pull and push.
    pub fn start_with_token_auth(user: &str) -> (Registry, TokenIssuer) {
        let issuer = TokenIssuer::start();
        issuer.add_user(user, REGISTRY_PASSWORD, &["pull", "push"]);
        let registry = Registry::start_with(|_| issuer.registry_config());
        (registry, issuer)
    }

    /// Starts a registry whose config ends with the `auth:` section that
    /// `auth(dir)` returns (empty: none).
    fn start_with(auth: impl FnOnce(&Path) -> String) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("bake-it-registry-")
            .tempdir_in(scratch_dir())
            .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n",
                dir.path().join("data").display()
            ) + &auth(dir.path()),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let reg = Registry {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(&reg.addr).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    /// Pushes the busybox fixture as `ADDR/library/busybox:latest` and
    /// returns that reference.
    pub fn with_busybox(&self) -> String {
        let reference = format!("{}/library/busybox:latest", self.addr);
        let status = Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:latest", busybox_layout().display()))
            .arg(format!("docker://{reference}"))
            .status()
            .unwrap();
        assert!(
            status.success(),
            "skopeo copy of the busybox fixture failed"
        );
        reference
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The busybox base image as an OCI layout, built once per test process by
/// `testdata/fixtures/busybox-image.sh`.
pub fn busybox_layout() -> &'static Path {
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("bake-it-busybox-")
            .tempdir_in(scratch_dir())
            .unwrap()
            .keep();
        let layout = dir.join("layout");
        let status = Command::new("bash")
            .arg(testdata("fixtures").join("busybox-image.sh"))
            .arg(&layout)
            .status()
            .unwrap();
        assert!(status.success(), "busybox fixture failed");
        layout
    })
}

/// Copies a testdata case into a fresh context directory (so tests may
/// modify it) and returns it.
pub fn context(case: &str) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("bake-it-ctx-")
        .tempdir_in(scratch_dir())
        .unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", testdata(case).display()))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

/// Step numbers (`#N`) of plain-progress lines naming an instruction that
/// makes a layer, and whether each was reported `CACHED`.
pub fn layer_steps(plain: &str) -> Vec<(String, String, bool)> {
    let mut steps = Vec::new();
    for line in plain.lines() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((num, text)) = rest.split_once(' ') else {
            continue;
        };
        if !text.starts_with('[') {
            continue;
        }
        let Some((_, instr)) = text.split_once("] ") else {
            continue;
        };
        let kw = instr.split_whitespace().next().unwrap_or("");
        if ["RUN", "COPY", "ADD"].contains(&kw) {
            let cached = plain
                .lines()
                .any(|l| l.trim_end() == format!("#{num} CACHED"));
            steps.push((num.to_string(), instr.to_string(), cached));
        }
    }
    steps.dedup();
    steps
}

/// The usual start of an end-to-end test: prerequisites checked, a registry
/// holding the busybox base, and an empty store. `None` means skipped.
pub fn setup() -> Option<(Registry, String, Bake)> {
    if skip(missing_prerequisites()) {
        return None;
    }
    let registry = Registry::start();
    let base = registry.with_busybox();
    Some((registry, base, Bake::new()))
}

/// `--build-arg BASE=<base>` as two arguments.
pub fn base_arg(base: &str) -> [String; 2] {
    ["--build-arg".to_string(), format!("BASE={base}")]
}

/// Builds `case` (a testdata dir copied to a fresh context) tagged `tag`,
/// with plain progress; returns the context and the command's output.
pub fn build_case(
    bake: &Bake,
    case: &str,
    tag: &str,
    base: &str,
    extra: &[&str],
) -> (TempDir, Output) {
    let ctx = context(case);
    let ctx_path = ctx.path().to_str().unwrap().to_string();
    let [a, b] = base_arg(base);
    let mut args = vec![
        "build",
        "--progress=plain",
        "-t",
        tag,
        a.as_str(),
        b.as_str(),
    ];
    args.extend_from_slice(extra);
    args.push(&ctx_path);
    let out = bake.ok(&args);
    (ctx, out)
}

/// Builds an already prepared context again, tagged `tag`, with plain
/// progress (what a user does after editing files).
pub fn rebuild(bake: &Bake, ctx: &TempDir, tag: &str, base: &str) -> Output {
    let [a, b] = base_arg(base);
    bake.ok(&[
        "build",
        "--progress=plain",
        "-t",
        tag,
        &a,
        &b,
        ctx.path().to_str().unwrap(),
    ])
}
