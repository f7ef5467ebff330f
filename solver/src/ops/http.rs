//! `ADD <http(s) url>`: a file downloaded into a store temp dir.
//!
//! BuildKit's behaviour: the file is named after the URL's last path
//! component (the frontend fixes it), has mode 0600 and the mtime of the
//! `Last-Modified` header (else the Unix epoch). Its content key is the
//! sha256 of the content, so without `--checksum` the file is fetched on
//! every build to learn that key; with `--checksum` the key is the checksum
//! and the download happens only when a consumer actually runs
//! ([`Remote::dir`] is lazy), so a cached `ADD --checksum` does no network
//! I/O at all.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use bake_store::oci::Digest;
use bake_store::Store;
use sha2::{Digest as _, Sha256};

use crate::digest::Key;

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request failed or the server answered with an error status.
    #[error("downloading {url}: {message}")]
    Request {
        /// The URL.
        url: String,
        /// ureq's description (status line or transport error).
        message: String,
    },
    /// Reading the body or writing the file failed.
    #[error("downloading {url} into {path:?}")]
    Write {
        /// The URL.
        url: String,
        /// The file being written.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `--checksum` is not `sha256:<hex>`.
    #[error("invalid checksum {0:?}: expected sha256:<64 hex digits>")]
    InvalidChecksum(String),
    /// The content does not match `--checksum`.
    #[error("digest mismatch for {url}: expected {expected}, got {actual}")]
    Mismatch {
        /// The URL.
        url: String,
        /// `--checksum`.
        expected: Digest,
        /// What was downloaded.
        actual: Digest,
    },
    /// No temp dir could be made in the store.
    #[error(transparent)]
    Layout(#[from] bake_store::layout::Error),
}

/// A downloaded file: the directory holding it (removed on drop) and the
/// digest of its content.
struct Fetched {
    dir: tempfile::TempDir,
    digest: Digest,
}

/// An HTTP source of one solve: fetched at most once, on first need.
pub struct Remote {
    store: Arc<Store>,
    url: String,
    filename: String,
    checksum: Option<Digest>,
    fetched: OnceLock<Fetched>,
    fetching: Mutex<()>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.url)
            .field("filename", &self.filename)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Remote {
    fn eq(&self, other: &Remote) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Remote {
    /// A source for `url`, saved as `filename`, verified against `checksum`.
    ///
    /// # Errors
    /// [`Error::InvalidChecksum`].
    pub fn new(
        store: Arc<Store>,
        url: &str,
        filename: &str,
        checksum: Option<&str>,
    ) -> Result<Remote, Error> {
        let checksum = checksum
            .map(|c| {
                c.parse::<Digest>()
                    .map_err(|_| Error::InvalidChecksum(c.to_string()))
            })
            .transpose()?;
        Ok(Remote {
            store,
            url: url.to_string(),
            filename: filename.to_string(),
            checksum,
            fetched: OnceLock::new(),
            fetching: Mutex::new(()),
        })
    }

    /// The content key: from `--checksum` without any I/O, else from the
    /// content (which downloads it now).
    ///
    /// # Errors
    /// Download failures.
    pub fn key(&self) -> Result<Key, Error> {
        let digest = match &self.checksum {
            Some(c) => c.clone(),
            None => self.fetch()?.digest.clone(),
        };
        Ok(Key::of(
            format!("bake.http.v1\0{}\0{digest}", self.filename).as_bytes(),
        ))
    }

    /// The directory holding the file, downloading it first if needed.
    ///
    /// # Errors
    /// Download failures, a checksum mismatch.
    pub fn dir(&self) -> Result<&Path, Error> {
        Ok(self.fetch()?.dir.path())
    }

    fn fetch(&self) -> Result<&Fetched, Error> {
        if let Some(f) = self.fetched.get() {
            return Ok(f);
        }
        let _one_at_a_time = self.fetching.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = self.fetched.get() {
            return Ok(f);
        }
        let fetched = download(&self.store, &self.url, &self.filename)?;
        if let Some(expected) = &self.checksum {
            if *expected != fetched.digest {
                return Err(Error::Mismatch {
                    url: self.url.clone(),
                    expected: expected.clone(),
                    actual: fetched.digest,
                });
            }
        }
        Ok(self.fetched.get_or_init(|| fetched))
    }
}

/// GETs `url` into a fresh store temp dir as `filename` (mode 0600, mtime
/// from `Last-Modified`), hashing while writing.
fn download(store: &Store, url: &str, filename: &str) -> Result<Fetched, Error> {
    let response = ureq::AgentBuilder::new()
        .user_agent(concat!("bake/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Duration::from_secs(30))
        .build()
        .get(url)
        .call()
        .map_err(|e| Error::Request {
            url: url.to_string(),
            message: e.to_string(),
        })?;
    let mtime = response
        .header("Last-Modified")
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        .and_then(|t| u64::try_from(t.timestamp()).ok())
        .map_or(SystemTime::UNIX_EPOCH, |s| {
            SystemTime::UNIX_EPOCH + Duration::from_secs(s)
        });
    let dir = store.temp_dir("http")?;
    let path = dir.path().join(filename);
    let werr = |source| Error::Write {
        url: url.to_string(),
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(werr)?;
    let mut body = response.into_reader();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(werr(e)),
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(werr)?;
    }
    // The umask may have narrowed the mode; BuildKit's is exactly 0600.
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(werr)?;
    file.set_times(fs::FileTimes::new().set_modified(mtime).set_accessed(mtime))
        .map_err(werr)?;
    Ok(Fetched {
        dir,
        digest: Digest::from_sha256(hasher.finalize().into()),
    })
}
