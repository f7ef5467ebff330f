//! Content-addressed blobs: `blobs/sha256/<hex>`.
//!
//! A blob is written to `tmp/`, hashed while it is written, fsynced, checked
//! against the digest the caller expects and only then renamed to its real
//! name. A reader therefore never sees a half-written or wrong object, and
//! writing a blob that exists is a no-op.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use crate::layout::Store;
use crate::oci::Digest;

/// Why a blob could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The temporary file under `tmp/` could not be created.
    #[error("cannot create a temporary blob in {path}")]
    CreateTemp {
        /// `tmp/`.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Reading the content or writing it to the temporary file failed.
    #[error("cannot write blob {expected}")]
    Write {
        /// The digest the blob was meant to have (`unknown` if none).
        expected: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The content does not hash to the expected digest; nothing was stored.
    #[error("blob content has digest {actual}, expected {expected}")]
    DigestMismatch {
        /// What the caller said.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// The finished blob could not be renamed into `blobs/sha256/`.
    #[error("cannot move blob into place at {path}")]
    Persist {
        /// The blob's final path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A stored blob could not be read.
    #[error("cannot read blob {path}")]
    Read {
        /// The blob's path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl Store {
    /// Where the blob with digest `d` lives (whether or not it exists).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root().join("blobs/sha256").join(d.hex())
    }

    /// Whether the blob is stored.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Stores everything `reader` yields; returns its digest and length.
    /// When `expected` is given and already stored, the reader is not read.
    ///
    /// # Errors
    /// [`Error::DigestMismatch`] when the content does not match `expected`
    /// (nothing is stored), or an I/O error naming the step.
    pub fn put_blob(
        &self,
        mut reader: impl Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), Error> {
        if let Some(d) = expected {
            if let Ok(meta) = fs::metadata(self.blob_path(d)) {
                return Ok((d.clone(), meta.len()));
            }
        }
        let mut writer = self.blob_writer()?;
        io::copy(&mut reader, &mut writer).map_err(|source| Error::Write {
            expected: expected.map_or_else(|| "unknown".into(), ToString::to_string),
            source,
        })?;
        writer.commit(expected)
    }

    /// Stores a small in-memory blob (configs, manifests).
    ///
    /// # Errors
    /// As [`Store::put_blob`].
    pub fn put_blob_bytes(&self, bytes: &[u8]) -> Result<Digest, Error> {
        let d = Digest::of(bytes);
        self.put_blob(bytes, Some(&d)).map(|(d, _)| d)
    }

    /// A writer for a blob whose digest is known only at the end (a layer
    /// being compressed, a download). Nothing is stored until
    /// [`BlobWriter::commit`]; dropping it removes the temporary file.
    ///
    /// # Errors
    /// [`Error::CreateTemp`] when `tmp/` is not writable.
    pub fn blob_writer(&self) -> Result<BlobWriter, Error> {
        let tmp = self.tmp_dir();
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp)
            .map_err(|source| Error::CreateTemp { path: tmp, source })?;
        Ok(BlobWriter {
            store: self.clone(),
            file,
            hasher: Sha256::new(),
            len: 0,
        })
    }

    /// Reads a whole blob into memory: for configs and manifests only; stream
    /// layers with [`Store::open_blob`].
    ///
    /// # Errors
    /// [`Error::Read`] when the blob is missing or unreadable.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>, Error> {
        let path = self.blob_path(d);
        fs::read(&path).map_err(|source| Error::Read { path, source })
    }

    /// Opens a blob for streaming.
    ///
    /// # Errors
    /// [`Error::Read`] when the blob is missing or unreadable.
    pub fn open_blob(&self, d: &Digest) -> Result<File, Error> {
        let path = self.blob_path(d);
        File::open(&path).map_err(|source| Error::Read { path, source })
    }
}

/// A blob being written (see [`Store::blob_writer`]).
pub struct BlobWriter {
    store: Store,
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    len: u64,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of what was written so far.
    pub fn digest(&self) -> Digest {
        Digest::from_sha256(self.hasher.clone().finalize().into())
    }

    /// Fsyncs, verifies against `expected` and renames the blob into place.
    /// If a blob with that digest already exists, the new copy is dropped.
    ///
    /// # Errors
    /// [`Error::DigestMismatch`] (nothing stored), or an I/O error.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64), Error> {
        let actual = Digest::from_sha256(self.hasher.finalize().into());
        if let Some(expected) = expected {
            if *expected != actual {
                return Err(Error::DigestMismatch {
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        let path = self.store.blob_path(&actual);
        if path.is_file() {
            return Ok((actual, self.len));
        }
        let persist_err = |source| Error::Persist {
            path: path.clone(),
            source,
        };
        let file = self.file;
        file.as_file().sync_all().map_err(persist_err)?;
        // Blobs are immutable; read-only makes an accidental write fail.
        rustix::fs::fchmod(file.as_file(), rustix::fs::Mode::from_raw_mode(0o444))
            .map_err(|e| persist_err(e.into()))?;
        file.persist(&path).map_err(|e| persist_err(e.error))?;
        // Make the rename itself durable.
        if let Some(dir) = path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(persist_err)?;
        }
        Ok((actual, self.len))
    }
}

/// Counts and hashes every byte written through it: how bake computes diff
/// ids and blob digests while streaming, without a second pass.
pub struct DigestWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> DigestWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        DigestWriter {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// The digest and length of everything written, and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        (
            Digest::from_sha256(self.hasher.finalize().into()),
            self.len,
            self.inner,
        )
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Counts and hashes every byte read through it (verification of a stream
/// as it is consumed).
pub struct DigestReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> DigestReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        DigestReader {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// The digest and length of everything read so far.
    pub fn finish(self) -> (Digest, u64) {
        (Digest::from_sha256(self.hasher.finalize().into()), self.len)
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn put_and_read_round_trip() {
        let (_d, s) = store();
        let d = s.put_blob_bytes(b"hello").unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert!(s.has_blob(&d));
        assert_eq!(s.read_blob(&d).unwrap(), b"hello");
        // Idempotent.
        assert_eq!(s.put_blob(&b"hello"[..], None).unwrap(), (d, 5));
        assert_eq!(fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn mismatch_stores_nothing() {
        let (_d, s) = store();
        let wrong = Digest::of(b"other");
        let err = s.put_blob(&b"hello"[..], Some(&wrong)).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(!s.has_blob(&wrong));
        assert!(!s.has_blob(&Digest::of(b"hello")));
        assert_eq!(fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let (_d, s) = store();
        let mut w = s.blob_writer().unwrap();
        w.write_all(b"partial").unwrap();
        drop(w);
        assert_eq!(fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
        assert_eq!(
            fs::read_dir(s.root().join("blobs/sha256")).unwrap().count(),
            0
        );
    }

    #[test]
    fn missing_blob_error_names_the_path() {
        let (_d, s) = store();
        let err = s.read_blob(&Digest::of(b"x")).unwrap_err();
        assert!(err.to_string().contains("blobs/sha256/"), "{err}");
    }

    #[test]
    fn digest_reader_and_writer_agree() {
        let mut r = DigestReader::new(&b"abc"[..]);
        let mut w = DigestWriter::new(Vec::new());
        io::copy(&mut r, &mut w).unwrap();
        let (d1, n1) = r.finish();
        let (d2, n2, out) = w.finish();
        assert_eq!((d1.clone(), n1), (d2, n2));
        assert_eq!(d1, Digest::of(b"abc"));
        assert_eq!(out, b"abc");
    }
}
