//! [`KnownBlobs`]: which repositories of a registry are known to hold a
//! blob, so that a push can ask the registry to mount the blob from one of
//! them (`POST …/blobs/uploads/?mount=<digest>&from=<repo>`) instead of
//! sending its bytes again.
//!
//! A pull or push records, per registry host, every blob it saw in a
//! repository: one small file per (host, digest) listing repositories, one
//! a line, appended to. It is a hint: a registry may have deleted the blob
//! since, and then the mount simply falls back to an upload. So recording
//! is best effort — a store that cannot write the hint still pushes and
//! pulls — and reading tolerates anything.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::layout::escape_file_name;
use crate::oci::Digest;

/// Repositories tried per blob before uploading it.
const MAX_SOURCES: usize = 3;

/// The blob → repositories record of one store (`<root>/registry/known-blobs`).
#[derive(Clone, Debug)]
pub struct KnownBlobs {
    dir: PathBuf,
}

impl KnownBlobs {
    /// The record kept under `dir` (created when first written).
    pub fn new(dir: &Path) -> KnownBlobs {
        KnownBlobs {
            dir: dir.to_path_buf(),
        }
    }

    fn file(&self, host: &str, digest: &Digest) -> PathBuf {
        self.dir.join(escape_file_name(host)).join(digest.hex())
    }

    /// Notes that `host/repo` holds `digest`. Best effort (see the module
    /// doc): a failure to write only loses a future mount.
    pub fn record(&self, host: &str, digest: &Digest, repo: &str) {
        if self.repos(host, digest).iter().any(|r| r == repo) {
            return;
        }
        let path = self.file(host, digest);
        if let Some(parent) = path.parent() {
            let _ = fs::create_dir_all(parent);
        }
        // One short line per append: concurrent writers do not interleave.
        if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(&path) {
            let _ = file.write_all(format!("{repo}\n").as_bytes());
        }
    }

    /// Repositories of `host` known to hold `digest`, most recently
    /// recorded first, without `except` (the push's own repository), at
    /// most a few.
    pub fn sources(&self, host: &str, digest: &Digest, except: &str) -> Vec<String> {
        let mut repos = self.repos(host, digest);
        repos.reverse();
        repos.retain(|r| r != except);
        repos.truncate(MAX_SOURCES);
        repos
    }

    fn repos(&self, host: &str, digest: &Digest) -> Vec<String> {
        let text = fs::read_to_string(self.file(host, digest)).unwrap_or_default();
        let mut repos: Vec<String> = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if !repos.iter().any(|r| r == line) {
                repos.push(line.to_string());
            }
        }
        repos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_per_host_and_lists_the_latest_first_without_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let known = KnownBlobs::new(&dir.path().join("known"));
        let d = Digest::of(b"layer");
        assert!(known.sources("h:5000", &d, "x").is_empty());
        known.record("h:5000", &d, "a/one");
        known.record("h:5000", &d, "b/two");
        known.record("h:5000", &d, "a/one");
        known.record("other", &d, "c/three");
        assert_eq!(known.sources("h:5000", &d, "x"), ["b/two", "a/one"]);
        assert_eq!(known.sources("h:5000", &d, "b/two"), ["a/one"]);
        assert_eq!(known.sources("other", &d, "x"), ["c/three"]);
        assert!(known
            .sources("h:5000", &Digest::of(b"other"), "x")
            .is_empty());
    }

    #[test]
    fn an_unwritable_record_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let known = KnownBlobs::new(&blocker.join("known"));
        let d = Digest::of(b"layer");
        known.record("h", &d, "a");
        assert!(known.sources("h", &d, "x").is_empty());
    }
}
