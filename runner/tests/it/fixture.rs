//! A busybox rootfs (built once, used as the read-only lower) and per-test upper dirs.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bake_runner::{run, Error, Exit, Network, Plan, Rootfs, Stdio, Stream};
use tempfile::TempDir;

pub const BUSYBOX: &str = "/usr/bin/busybox";

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\n";
const GROUP: &str = "root:x:0:\nwheel:x:10:app\napp:x:1000:\n";

/// The shared lower layer: /bin/busybox + applet links, /etc/passwd, /etc/group,
/// /lowerfile, a non-executable /notexec. No /proc, /dev, /sys, /etc/hosts: the
/// sandbox must create (and then remove) those stubs.
pub fn lower() -> &'static Path {
    static LOWER: OnceLock<TempDir> = OnceLock::new();
    LOWER
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            std::fs::create_dir_all(root.join("bin")).unwrap();
            std::fs::create_dir_all(root.join("etc")).unwrap();
            std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
            let list = std::process::Command::new(BUSYBOX)
                .arg("--list")
                .output()
                .unwrap();
            for applet in String::from_utf8_lossy(&list.stdout).lines() {
                if applet != "busybox" {
                    std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
                }
            }
            std::fs::write(root.join("etc/passwd"), PASSWD).unwrap();
            std::fs::write(root.join("etc/group"), GROUP).unwrap();
            std::fs::write(root.join("lowerfile"), "from the lower layer\n").unwrap();
            std::fs::write(root.join("notexec"), "#!/bin/sh\necho no\n").unwrap();
            dir
        })
        .path()
}

/// A fresh upper and work dir.
pub struct Fixture {
    pub dir: TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("upper")).unwrap();
        std::fs::create_dir(dir.path().join("work")).unwrap();
        Fixture { dir }
    }

    pub fn upper(&self) -> PathBuf {
        self.dir.path().join("upper")
    }

    /// A plan running `args` as root in `/` with the busybox lower.
    pub fn plan(&self, args: &[&str]) -> Plan {
        Plan {
            rootfs: Rootfs {
                lowers: vec![lower().to_path_buf()],
                upper: self.upper(),
                work: self.dir.path().join("work"),
            },
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![],
            cwd: "/".into(),
            user: String::new(),
            hostname: "bake-test".into(),
            network: Network::Host,
            mounts: vec![],
            hosts: vec![],
            readonly_rootfs: false,
            privileged: false,
        }
    }

    /// Entries of the upper dir, recursively, relative, sorted.
    pub fn upper_entries(&self) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                out.push(path.strip_prefix(base).unwrap().display().to_string());
                if path.symlink_metadata().unwrap().is_dir() {
                    walk(base, &path, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.upper(), &self.upper(), &mut out);
        out.sort();
        out
    }
}

/// What a piped run produced.
pub struct Outcome {
    pub exit: Result<Exit, Error>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// The exit, which must be a success, and stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        match self.exit {
            Ok(Exit::Code(0)) => self.stdout,
            other => panic!(
                "{other:?}; stdout {:?}; stderr {:?}",
                self.stdout, self.stderr
            ),
        }
    }
}

pub fn run_piped(plan: &Plan) -> Outcome {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let exit = run(plan, Stdio::Piped, &mut |stream, bytes| match stream {
        Stream::Stdout => stdout.extend_from_slice(bytes),
        Stream::Stderr => stderr.extend_from_slice(bytes),
    });
    Outcome {
        exit,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}
