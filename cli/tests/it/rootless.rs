//! Rootless mode: `bake build`, `run` and `push` as an unprivileged user, through a
//! user namespace mapped with that user's `/etc/subuid` range (or, without one, a
//! single id). The harness runs as root, so these tests make system users of their
//! own (`useradd --system`), add their subordinate ranges when missing, and run the
//! real `bake` binary as them with `runuser`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use tempfile::TempDir;

use crate::harness::{missing_prerequisites, scratch_dir, skip, Output, Registry};

/// The user with a subordinate id range.
pub(crate) const RANGED: &str = "bake-rootless-test";
/// The user without one (single mapping).
const SINGLE: &str = "bake-rootless-single";
/// How many subordinate ids [`RANGED`] gets (podman's default).
const RANGE_COUNT: u32 = 65536;

/// Serialises useradd and the edits of /etc/subuid and /etc/subgid.
static ACCOUNTS: Mutex<()> = Mutex::new(());

/// An unprivileged user with a store of its own.
pub(crate) struct User {
    pub(crate) name: &'static str,
    uid: u32,
    /// First host id of the subordinate range, if any.
    sub_start: Option<u32>,
    /// Owned by the user: the store, contexts, outputs.
    pub(crate) dir: TempDir,
    bake: PathBuf,
}

fn id_of(name: &str, flag: &str) -> u32 {
    let out = Command::new("id").args([flag, name]).output().unwrap();
    assert!(out.status.success(), "id {flag} {name} failed");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The subordinate range `file` gives `name`, adding one past every existing range
/// when `add` and there is none; with `!add`, removes any (our own user only).
fn subordinate(file: &str, name: &str, add: bool) -> Option<u32> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mine = |l: &&str| l.split(':').next() == Some(name);
    if !add {
        if text.lines().any(|l| mine(&l)) {
            let kept: String = text
                .lines()
                .filter(|l| !mine(l))
                .map(|l| format!("{l}\n"))
                .collect();
            std::fs::write(file, kept).unwrap();
        }
        return None;
    }
    if let Some(line) = text.lines().find(mine) {
        return line.split(':').nth(1).and_then(|s| s.parse().ok());
    }
    let end = text
        .lines()
        .filter_map(|l| {
            let mut p = l.split(':').skip(1);
            let start: u32 = p.next()?.parse().ok()?;
            let count: u32 = p.next()?.parse().ok()?;
            Some(start + count)
        })
        .max()
        .unwrap_or(0)
        .max(100_000);
    let mut out = text;
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("{name}:{end}:{RANGE_COUNT}\n"));
    std::fs::write(file, out).unwrap();
    Some(end)
}

/// Creates (once) the system user `name`, with or without subordinate ranges, and a
/// fresh directory it owns. `None` (with a printed reason) when this host cannot.
pub(crate) fn user(name: &'static str, ranged: bool) -> Option<User> {
    if skip(missing_prerequisites()) {
        return None;
    }
    let tools = ["useradd", "runuser", "newuidmap", "newgidmap"];
    if let Some(tool) = tools.iter().find(|t| which(t).is_none()) {
        skip(Some(format!(
            "{tool} not installed (scripts/install-deps.sh)"
        )));
        return None;
    }
    let _guard = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
    if !Command::new("id")
        .arg(name)
        .output()
        .unwrap()
        .status
        .success()
    {
        let status = Command::new("useradd")
            .args(["--system", "--create-home", "--shell", "/bin/sh", name])
            .status()
            .unwrap();
        assert!(status.success(), "useradd {name} failed");
    }
    let sub_start = subordinate("/etc/subuid", name, ranged);
    let sub_gid = subordinate("/etc/subgid", name, ranged);
    assert_eq!(sub_start.is_some(), sub_gid.is_some());
    let uid = id_of(name, "-u");
    let dir = tempfile::Builder::new()
        .prefix("bake-it-rootless-")
        .tempdir_in(scratch_dir())
        .unwrap();
    std::os::unix::fs::chown(dir.path(), Some(uid), Some(id_of(name, "-g"))).unwrap();
    // The user must be able to execute the binary where cargo put it; if a parent
    // directory is closed to it, a copy in its own directory will do.
    let built = PathBuf::from(env!("CARGO_BIN_EXE_bake"));
    let reachable = Command::new("runuser")
        .args(["-u", name, "--", "test", "-x"])
        .arg(&built)
        .status()
        .unwrap()
        .success();
    let bake = if reachable {
        built
    } else {
        let copy = dir.path().join("bake");
        std::fs::copy(&built, &copy).unwrap();
        copy
    };
    Some(User {
        name,
        uid,
        sub_start,
        dir,
        bake,
    })
}

fn which(tool: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

impl User {
    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// `bake ARGS…` as this user, with a clean environment and its private store.
    fn run(&self, args: &[&str]) -> Output {
        let store = format!("BAKE_ROOT={}", self.store().display());
        self.run_env(&[&format!("HOME=/home/{}", self.name), &store], args)
    }

    /// `bake ARGS…` as this user with only `PATH` and `env` set.
    pub(crate) fn run_env(&self, env: &[&str], args: &[&str]) -> Output {
        let out = Command::new("runuser")
            .args(["-u", self.name, "--", "env", "-i"])
            .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .args(env)
            .arg(&self.bake)
            .args(args)
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_eq!(out.code, 0, "bake {args:?} as {} failed:\n{out}", self.name);
        out
    }

    /// A build context (owned by the user) holding `dockerfile`.
    pub(crate) fn context(&self, name: &str, dockerfile: &str) -> PathBuf {
        let ctx = self.dir.path().join(name);
        std::fs::create_dir(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        let status = Command::new("chown")
            .args(["-R", self.name])
            .arg(&ctx)
            .status()
            .unwrap();
        assert!(status.success());
        ctx
    }

    /// Paths under the user's store owned by host uid `uid` (as `find` sees them).
    fn store_files_owned_by(&self, uid: u32) -> Vec<String> {
        let out = Command::new("find")
            .arg(self.store())
            .args(["-uid", &uid.to_string()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// `tar -tvf --numeric-owner` of every layer of a `bake save` archive, bottom first.
pub(crate) fn saved_layers(archive: &Path) -> Vec<String> {
    let dir = tempfile::Builder::new()
        .prefix("bake-it-rootless-save-")
        .tempdir_in(scratch_dir())
        .unwrap();
    let status = Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .arg("-xf")
        .arg(archive)
        .status()
        .unwrap();
    assert!(status.success());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| {
            let out = Command::new("tar")
                .args(["--numeric-owner", "-tvf"])
                .arg(dir.path().join(layer.as_str().unwrap()))
                .output()
                .unwrap();
            assert!(out.status.success());
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect()
}

/// The `tar -tv` line of `path` in a listing.
fn entry<'a>(listing: &'a str, path: &str) -> Option<&'a str> {
    listing
        .lines()
        .find(|l| l.split_whitespace().nth(5) == Some(path))
}

const DOCKERFILE: &str = "\
ARG BASE
FROM $BASE
RUN echo hi > /x && chown 1000:1000 /x
RUN rm /etc/hostname && rm -rf /home/app && mkdir /home/app && touch /home/app/new
";

#[test]
fn rootless_build_run_push_keep_image_ownership() {
    let Some(user) = user(RANGED, true) else {
        return;
    };
    let sub_start = user.sub_start.unwrap();
    let registry = Registry::start();
    let base = registry.with_busybox();
    let ctx = user.context("ctx", DOCKERFILE);
    let base_arg = format!("BASE={base}");
    user.ok(&[
        "build",
        "--progress=plain",
        "-t",
        "rootless:1",
        "--build-arg",
        &base_arg,
        ctx.to_str().unwrap(),
    ]);

    // The layers as any other tool sees them: the RUN's chown is uid 1000 in the tar
    // (not the host's subordinate id), the deletions are OCI whiteouts.
    let archive = user.dir.path().join("saved.tar");
    user.ok(&["save", "-o", archive.to_str().unwrap(), "rootless:1"]);
    let layers = saved_layers(&archive);
    assert_eq!(layers.len(), 3, "{layers:?}");
    let x = entry(&layers[1], "x").unwrap_or_else(|| panic!("no /x in {}", layers[1]));
    assert!(x.contains(" 1000/1000 "), "{x}");
    assert!(
        entry(&layers[2], "etc/.wh.hostname").is_some(),
        "{}",
        layers[2]
    );
    assert!(
        entry(&layers[2], "home/app/.wh..wh..opq").is_some(),
        "{}",
        layers[2]
    );
    let new = entry(&layers[2], "home/app/new").unwrap();
    assert!(new.contains(" 0/0 "), "{new}");

    // Running it: root inside, the file's owner as built, the whiteouts applied.
    let out = user.ok(&["run", "--rm", "rootless:1", "id", "-u"]);
    assert_eq!(out.stdout.trim(), "0");
    let out = user.ok(&["run", "--rm", "rootless:1", "stat", "-c", "%u:%g", "/x"]);
    assert_eq!(out.stdout.trim(), "1000:1000");
    let out = user.run(&["run", "--rm", "rootless:1", "ls", "/etc/hostname"]);
    assert_ne!(out.code, 0, "{out}");
    let out = user.ok(&["run", "--rm", "-u", "app", "rootless:1", "id", "-u"]);
    assert_eq!(out.stdout.trim(), "1000");

    // On disk, the store belongs to the user and its subordinate ids, never to root.
    assert_eq!(user.store_files_owned_by(0), Vec::<String>::new());
    assert!(!user.store_files_owned_by(user.uid).is_empty());
    assert!(
        !user.store_files_owned_by(sub_start + 999).is_empty(),
        "nothing owned by host uid {} (image uid 1000)",
        sub_start + 999
    );

    // Push, and read it back with skopeo as root.
    let pushed = format!("{}/rootless/image:1", registry.addr);
    user.ok(&["tag", "rootless:1", &pushed]);
    user.ok(&["push", &pushed]);
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{pushed}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 3);

    // What rootless mode cannot do is refused by name, with Docker's 125.
    let out = user.run(&["run", "--rm", "--memory", "64m", "rootless:1", "true"]);
    assert_eq!(out.code, 125, "{out}");
    assert!(
        out.stderr.contains("rootless") && out.stderr.contains("--memory"),
        "{out}"
    );
}

#[test]
fn rootless_containers_outlive_the_command_that_started_them() {
    let Some(user) = user(RANGED, true) else {
        return;
    };
    let registry = Registry::start();
    let base = registry.with_busybox();
    user.ok(&["pull", &base]);
    // As image uid 1000 (a subordinate id on the host): only a process in the same
    // user namespace may signal it or join its namespaces, so every bake command must
    // share one (the `bake-userns` holder).
    let name = format!("rootless-{}", std::process::id());
    user.ok(&[
        "run", "-d", "--name", &name, "-u", "app", &base, "sleep", "300",
    ]);
    let out = user.ok(&["exec", &name, "id", "-u"]);
    assert_eq!(out.stdout.trim(), "1000");
    let out = user.ok(&["exec", &name, "cat", "/etc/passwd"]);
    assert!(out.stdout.contains("app:x:1000"), "{out}");
    user.ok(&["stop", "-t", "1", &name]);
    let out = user.ok(&["ps", "-a"]);
    assert!(out.stdout.contains("Exited"), "{out}");
    user.ok(&["rm", &name]);
}

#[test]
fn rootless_bridge_network_works_or_says_why_not() {
    let Some(user) = user(RANGED, true) else {
        return;
    };
    let registry = Registry::start();
    let base = registry.with_busybox();
    user.ok(&["pull", &base]);
    let out = user.run(&[
        "run",
        "--rm",
        "--network",
        "bridge",
        &base,
        "cat",
        "/etc/resolv.conf",
    ]);
    // slirp4netns opens /dev/net/tun as the user: hosts that keep it root-only
    // (mode 0600) get a clear refusal instead of slirp4netns's own failure.
    let tun_open = Command::new("runuser")
        .args([
            "-u",
            user.name,
            "--",
            "test",
            "-r",
            "/dev/net/tun",
            "-a",
            "-w",
        ])
        .arg("/dev/net/tun")
        .status()
        .unwrap()
        .success();
    if tun_open {
        assert_eq!(out.code, 0, "{out}");
        assert!(out.stdout.contains("nameserver 10.0.2.3"), "{out}");
    } else {
        assert_eq!(out.code, 125, "{out}");
        assert!(
            out.stderr.contains("rootless") && out.stderr.contains("/dev/net/tun"),
            "{out}"
        );
    }
}

#[test]
fn rootless_without_subordinate_ids_maps_one_id() {
    let Some(user) = user(SINGLE, false) else {
        return;
    };
    let registry = Registry::start();
    let base = registry.with_busybox();
    let ctx = user.context(
        "ctx",
        "ARG BASE\nFROM $BASE\nRUN echo hi > /x && rm /etc/hostname && rm -rf /home/app && mkdir /home/app\n",
    );
    let base_arg = format!("BASE={base}");
    user.ok(&[
        "build",
        "-t",
        "single:1",
        "--build-arg",
        &base_arg,
        ctx.to_str().unwrap(),
    ]);
    let out = user.ok(&["run", "--rm", "single:1", "cat", "/proc/self/uid_map"]);
    let map: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(map, ["0", &user.uid.to_string(), "1"], "{out}");
    // The base's uid 1000 cannot be represented: it is unpacked as 0 (documented).
    let out = user.ok(&["run", "--rm", &base, "stat", "-c", "%u", "/home/app"]);
    assert_eq!(out.stdout.trim(), "0");
    let archive = user.dir.path().join("saved.tar");
    user.ok(&["save", "-o", archive.to_str().unwrap(), "single:1"]);
    let layers = saved_layers(&archive);
    assert_eq!(layers.len(), 2, "{layers:?}");
    assert!(
        entry(&layers[1], "etc/.wh.hostname").is_some(),
        "{}",
        layers[1]
    );
    assert!(
        entry(&layers[1], "home/app/.wh..wh..opq").is_some(),
        "{}",
        layers[1]
    );
    // Nor can the image's other users be switched to.
    let out = user.run(&["run", "--rm", "-u", "app", &base, "id"]);
    assert_eq!(out.code, 125, "{out}");
    assert!(
        out.stderr.contains("uid 1000, gid 1000: not mapped"),
        "{out}"
    );
    // A chown to an unmapped id fails in the RUN, loudly.
    let ctx = user.context(
        "chown",
        "ARG BASE\nFROM $BASE\nRUN touch /y && chown 1000 /y\n",
    );
    let out = user.run(&[
        "build",
        "--progress=plain",
        "--build-arg",
        &base_arg,
        ctx.to_str().unwrap(),
    ]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("Invalid argument"), "{out}");
    assert_eq!(user.store_files_owned_by(0), Vec::<String>::new());

    // Without BAKE_ROOT the store is the user's own, not /var/lib/bake: root of the
    // user namespace is still the user.
    let home = user.dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(user.uid), None).unwrap();
    let home_env = format!("HOME={}", home.display());
    let out = user.run_env(&[&home_env], &["pull", &base]);
    assert_eq!(out.code, 0, "{out}");
    assert!(home.join(".local/share/bake/blobs").is_dir());
}
