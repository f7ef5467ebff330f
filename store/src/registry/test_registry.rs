//! A real registry for tests: Debian's `docker-registry` (CNCF distribution
//! v2) serving a temp directory on a free loopback port, killed on drop.
//!
//! `TestRegistry::start()` returns `None` after printing
//! `skipped: docker-registry not installed` when the binary is missing, so
//! a test reads `let Some(reg) = TestRegistry::start() else { return };`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::oci::Digest;

/// A bcrypt hash (cost 4) of [`PASSWORD`], so tests need no bcrypt crate
/// or `htpasswd` binary to write an htpasswd file.
pub(crate) const PASSWORD_BCRYPT: &str =
    "$2b$04$oxQkF2fh32xhlxNoIoOLBOZmj5B07l8L7H65RAeLoW9iEMY7aA07O";
/// The password [`PASSWORD_BCRYPT`] hashes.
pub(crate) const PASSWORD: &str = "secret";

/// A running `docker-registry serve`.
pub(crate) struct TestRegistry {
    child: Child,
    /// `127.0.0.1:<port>`, as a reference's registry part.
    pub(crate) host: String,
    storage: PathBuf,
    dir: tempfile::TempDir,
}

/// `name` on `$PATH`, if there.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

impl TestRegistry {
    /// An open registry (no authentication).
    pub(crate) fn start() -> Option<TestRegistry> {
        TestRegistry::start_with(None)
    }

    /// A registry that wants basic auth: `user` / [`PASSWORD`].
    pub(crate) fn start_with_basic_auth(user: &str) -> Option<TestRegistry> {
        TestRegistry::start_with(Some(user))
    }

    fn start_with(user: Option<&str>) -> Option<TestRegistry> {
        let Some(program) = find_program("docker-registry") else {
            println!("skipped: docker-registry not installed");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).expect("storage dir");
        // Two registries started at once could draw the same port between
        // dropping the listener and binding it; retry a few times.
        for _ in 0..5 {
            let host = format!("127.0.0.1:{}", free_port());
            let mut config = format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {host}\n",
                storage.display()
            );
            if let Some(user) = user {
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, format!("{user}:{PASSWORD_BCRYPT}\n")).expect("htpasswd");
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: bake-test\n    path: {}\n",
                    htpasswd.display()
                ));
            }
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).expect("write registry config");
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
            let mut child = Command::new(&program)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log fd"))
                .stderr(log)
                .spawn()
                .expect("spawn docker-registry");
            if wait_ready(&mut child, &host, &dir.path().join("registry.log")) {
                return Some(TestRegistry {
                    child,
                    host,
                    storage,
                    dir,
                });
            }
            // It exited, most likely because the port was taken: try another.
        }
        panic!(
            "docker-registry did not start; log:\n{}",
            std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
        );
    }

    /// What the registry logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Where the registry keeps a blob's bytes (to corrupt it in a test).
    pub(crate) fn blob_data_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

/// Polls `/v2/` until it answers; `false` if the process died first.
fn wait_ready(child: &mut Child, host: &str, log: &Path) -> bool {
    let url = format!("http://{host}/v2/");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        match ureq::get(&url).timeout(Duration::from_secs(2)).call() {
            Ok(_) | Err(ureq::Error::Status(_, _)) => {
                // Another registry started at the same moment may hold the
                // port while ours dies failing to bind it: look again.
                std::thread::sleep(Duration::from_millis(200));
                return matches!(child.try_wait(), Ok(None));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let _ = child.kill();
    panic!(
        "docker-registry on {host} not ready after 20 s; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
