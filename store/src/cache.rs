//! The cache index: `cache/<key>.json`, one record per build-step cache key,
//! naming the layers (diff ids) that step produced. A hit hands back layer
//! references; nothing is unpacked until a later step needs the files.

use serde::{Deserialize, Serialize};

use crate::layout::{self, escape_file_name, Store};
use crate::oci::Digest;

/// What a cached build step produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The step's whole layer chain as diff ids, bottom first.
    pub layers: Vec<Digest>,
    /// RFC 3339 time the record was written (for LRU eviction).
    pub created: String,
}

/// Why a cache record could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The record could not be written into `cache/`.
    #[error("cannot write cache record `{key}`")]
    Write {
        /// The cache key.
        key: String,
        /// The cause.
        #[source]
        source: layout::Error,
    },
}

impl Store {
    fn cache_path(&self, key: &str) -> std::path::PathBuf {
        self.root()
            .join("cache")
            .join(format!("{}.json", escape_file_name(key)))
    }

    /// The record for `key`. A missing or unreadable record is a miss: the
    /// step simply runs again and rewrites it.
    pub fn cache_get(&self, key: &str) -> Option<CacheRecord> {
        let bytes = std::fs::read(self.cache_path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes the record for `key` atomically (readers see the old record or
    /// the new one).
    ///
    /// # Errors
    /// [`Error::Write`] when the file cannot be written.
    pub fn cache_put(&self, key: &str, record: &CacheRecord) -> Result<(), Error> {
        let bytes = crate::oci::canonical_json(record).expect("cache records serialise");
        self.write_atomic(&self.cache_path(key), &bytes)
            .map_err(|source| Error::Write {
                key: key.to_string(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_and_miss() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        assert_eq!(s.cache_get("abc"), None);
        let r = CacheRecord {
            layers: vec![Digest::of(b"a"), Digest::of(b"b")],
            created: "2024-01-01T00:00:00Z".into(),
        };
        s.cache_put("abc", &r).unwrap();
        assert_eq!(s.cache_get("abc"), Some(r.clone()));
        // Odd keys stay inside cache/.
        s.cache_put("../../evil", &r).unwrap();
        assert_eq!(s.cache_get("../../evil"), Some(r));
        assert!(!d.path().join("evil.json").exists());
        std::fs::write(s.cache_path("bad"), b"{").unwrap();
        assert_eq!(s.cache_get("bad"), None);
    }
}
