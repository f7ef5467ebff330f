//! [`BlobReader`]: a downloading blob that verifies its digest.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use super::Error;
use crate::oci::Digest;

/// A blob being downloaded: hashes every byte read and, at the end of the
/// stream, fails with `InvalidData` if the bytes do not hash to the digest
/// asked for.
pub struct BlobReader {
    inner: Box<dyn Read + Send + Sync>,
    hasher: Sha256,
    expected: Digest,
    url: String,
    content_length: Option<u64>,
    mismatch: Option<Digest>,
    verified: bool,
}

impl BlobReader {
    /// Wraps a response body that should hash to `expected`.
    pub(super) fn new(
        inner: Box<dyn Read + Send + Sync>,
        expected: Digest,
        url: String,
        content_length: Option<u64>,
    ) -> BlobReader {
        BlobReader {
            inner,
            hasher: Sha256::new(),
            expected,
            url,
            content_length,
            mismatch: None,
            verified: false,
        }
    }

    /// The URL the blob comes from.
    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// The size the registry announced, if it did.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// [`Error::DigestMismatch`] if the stream ended and its digest was
    /// wrong.
    pub fn mismatch_error(&self) -> Option<Error> {
        self.mismatch.as_ref().map(|actual| Error::DigestMismatch {
            url: self.url.clone(),
            expected: self.expected.clone(),
            actual: actual.clone(),
        })
    }
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("url", &self.url)
            .field("expected", &self.expected)
            .field("content_length", &self.content_length)
            .finish_non_exhaustive()
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.hasher.update(&buf[..n]);
            return Ok(n);
        }
        if !buf.is_empty() && !self.verified {
            let actual = Digest::from_sha256(self.hasher.clone().finalize().into());
            if actual != self.expected {
                let message = format!(
                    "{}: digest mismatch: expected {}, got {actual}",
                    self.url, self.expected
                );
                self.mismatch = Some(actual);
                return Err(io::Error::new(io::ErrorKind::InvalidData, message));
            }
            self.verified = true;
        }
        Ok(0)
    }
}
