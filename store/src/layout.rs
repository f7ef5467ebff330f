//! The store's directory layout, temporary directories, atomic small-file
//! writes and the store-wide lock.
//!
//! ```text
//! blobs/sha256/<hex>   snapshots/<chain-hex>/   cache/   refs/   tmp/   containers/   lock
//! ```
//! Everything is written under `tmp/` first and renamed into place, so a
//! killed process never leaves a half-written object under a real name.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

/// Why the store could not be opened, locked or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A store directory could not be created.
    #[error("cannot create store directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A temporary file or directory under `tmp/` could not be created.
    #[error("cannot create a temporary entry in {path}")]
    Temp {
        /// The `tmp/` directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock the store at {path}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A small metadata file could not be written into place.
    #[error("cannot write {path}")]
    Write {
        /// The final path of the file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A bake store rooted at one directory. Cheap to clone; all state is on disk,
/// so several processes can share a store (see [`Store::lock_shared`]).
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// The sub-directories [`Store::open`] creates.
const DIRS: &[&str] = &[
    "blobs/sha256",
    "snapshots",
    "cache",
    "refs",
    "tmp",
    "containers",
];

impl Store {
    /// Opens (creating if needed) the store at `root`.
    ///
    /// # Errors
    /// [`Error::CreateDir`] when a directory cannot be created.
    pub fn open(root: &Path) -> Result<Store, Error> {
        for dir in DIRS {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(|source| Error::CreateDir { path, source })?;
        }
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The solver's memo of context file stats, so an unchanged file is not
    /// hashed again: a hint, safe to lose.
    pub fn stat_cache_file(&self) -> PathBuf {
        self.root.join("cache").join("stat-cache")
    }

    /// Where builds hold a lock file per cache key they are building, so two
    /// processes sharing the store build a step once.
    pub fn build_claims_dir(&self) -> PathBuf {
        self.root.join("cache").join("building")
    }

    /// Where the directories of `RUN --mount=type=cache` live; `prune --all`
    /// removes them and `du` counts them.
    pub fn cache_mounts_dir(&self) -> PathBuf {
        self.root.join("cache").join("mounts")
    }

    /// The directory of cache mount `id` (`cache/mounts/<blake3(id)>`: any id
    /// becomes a safe file name). The RUN that mounts it and the cache export
    /// and import of `cache-mounts=true` all find it here.
    pub fn cache_mount_dir(&self, id: &str) -> PathBuf {
        self.cache_mounts_dir()
            .join(blake3::hash(id.as_bytes()).to_hex().as_str())
    }

    /// Where the store lives when neither `--root` nor `BAKE_ROOT` says
    /// otherwise: `/var/lib/bake` for root (like docker and podman), else the
    /// XDG data directory, so a rootless user never needs privileges. Root of a
    /// user namespace (rootless mode) is the user, not the host's root.
    pub fn default_root() -> PathBuf {
        if rustix::process::geteuid().is_root() && !crate::userns::in_user_namespace() {
            return PathBuf::from("/var/lib/bake");
        }
        match std::env::var_os("XDG_DATA_HOME") {
            // The XDG spec says relative values are invalid and must be ignored.
            Some(dir) if Path::new(&dir).is_absolute() => Path::new(&dir).join("bake"),
            _ => {
                let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
                Path::new(&home).join(".local/share/bake")
            }
        }
    }

    /// `tmp/`: in-flight writes. It is on the store's file system so that
    /// finished work can be renamed into place.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A fresh directory under `tmp/`, removed (with its contents) on drop.
    /// `purpose` becomes part of the name so a leftover is recognisable.
    ///
    /// # Errors
    /// [`Error::Temp`] when the directory cannot be created.
    pub fn temp_dir(&self, purpose: &str) -> Result<tempfile::TempDir, Error> {
        let prefix: String = purpose
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .chain(std::iter::once('-'))
            .collect();
        let tmp = self.tmp_dir();
        tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(&tmp)
            .map_err(|source| Error::Temp { path: tmp, source })
    }

    /// Takes the store lock shared: every process that writes into the store
    /// holds it, so that garbage collection (exclusive) never deletes an
    /// object between its write and the tag or cache record that keeps it.
    /// The lock is released when the guard drops.
    ///
    /// # Errors
    /// [`Error::Lock`] when the lock file cannot be opened or locked.
    pub fn lock_shared(&self) -> Result<StoreLock, Error> {
        self.lock(FlockOperation::LockShared)
    }

    /// Takes the store lock exclusively (garbage collection), waiting for
    /// every writer to finish.
    ///
    /// # Errors
    /// [`Error::Lock`] when the lock file cannot be opened or locked.
    pub fn lock_exclusive(&self) -> Result<StoreLock, Error> {
        self.lock(FlockOperation::LockExclusive)
    }

    fn lock(&self, op: FlockOperation) -> Result<StoreLock, Error> {
        let path = self.root.join("lock");
        let lock_err = |source| Error::Lock {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(lock_err)?;
        rustix::fs::flock(&file, op).map_err(|e| lock_err(e.into()))?;
        Ok(StoreLock { _file: file })
    }

    /// Writes a small file atomically: to `tmp/`, fsync, rename over `path`.
    /// Readers see the old or the new content, never a torn one.
    pub(crate) fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), Error> {
        let write_err = |source| Error::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut tmp = tempfile::NamedTempFile::new_in(self.tmp_dir()).map_err(write_err)?;
        tmp.write_all(bytes).map_err(write_err)?;
        tmp.as_file().sync_all().map_err(write_err)?;
        set_mode(tmp.as_file(), 0o644).map_err(write_err)?;
        tmp.persist(path).map_err(|e| write_err(e.error))?;
        Ok(())
    }
}

fn set_mode(file: &File, mode: u32) -> std::io::Result<()> {
    rustix::fs::fchmod(file, rustix::fs::Mode::from_raw_mode(mode)).map_err(Into::into)
}

/// Holds the store lock (shared or exclusive) until dropped.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

/// Turns an arbitrary name (a reference, a cache key) into one safe file
/// name: `[A-Za-z0-9._-]` kept, everything else `%XX`. Names that would be
/// too long for a file system become their sha256 instead; the file's
/// content says what it is, so nothing is lost.
pub(crate) fn escape_file_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.len() > 200 || out.starts_with('.') {
        return format!("h-{}", crate::oci::Digest::of(name.as_bytes()).hex());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for d in DIRS {
            assert!(store.root().join(d).is_dir(), "{d} missing");
        }
        // Opening twice is fine.
        Store::open(dir.path()).unwrap();
    }

    #[test]
    fn temp_dir_is_under_tmp_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t = store.temp_dir("run/1").unwrap();
        let p = t.path().to_path_buf();
        assert!(p.starts_with(store.tmp_dir()));
        assert!(p
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("run-1-"));
        fs::write(p.join("x"), b"x").unwrap();
        drop(t);
        assert!(!p.exists());
    }

    #[test]
    fn shared_locks_coexist_and_exclusive_waits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.lock_shared().unwrap();
        let _b = store.lock_shared().unwrap();
        // A non-blocking exclusive attempt must fail while shared locks exist.
        let f = File::open(store.root().join("lock")).unwrap();
        assert!(rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive).is_err());
        drop(a);
        drop(_b);
        rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive).unwrap();
    }

    #[test]
    fn write_atomic_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let p = store.root().join("refs/x.json");
        store.write_atomic(&p, b"one").unwrap();
        store.write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn escape_keeps_safe_names_and_escapes_the_rest() {
        assert_eq!(
            escape_file_name("docker.io/library/app:1"),
            "docker.io%2Flibrary%2Fapp%3A1"
        );
        assert_eq!(escape_file_name("abc-1_2.3"), "abc-1_2.3");
        assert!(escape_file_name(&"a/".repeat(200)).starts_with("h-"));
        assert!(escape_file_name("..").starts_with("h-"));
    }
}
