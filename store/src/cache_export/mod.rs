//! Build-cache export and import in BuildKit's cache manifest format, so CI
//! runners with fresh stores share one cache (`bake build --cache-to` /
//! `--cache-from`).
//!
//! A cache is an image manifest whose config is a
//! `application/vnd.buildkit.cacheconfig.v0` document ([`spec`]) and whose
//! layers are the layer blobs the records point at (plus, with
//! `cache-mounts=true`, tars of `RUN --mount=type=cache` directories).
//! [`crate::Store::cache_manifest`] makes one from the records a build used;
//! [`local`] writes and reads it as an OCI image layout; the registry side
//! lives in [`crate::cache_transfer`]. [`Imported`] is a parsed cache: a
//! lookup from cache key to layer chain, whose blobs are fetched and
//! unpacked only when a build step needs the files ([`Imported::materialize`]).
//! See `docs/cache-export.md`.

mod export;
mod import;
pub mod inline;
pub mod local;
mod mounts;
pub mod spec;

pub use export::{CacheManifest, ExportRecord};
pub use import::{BlobSource, Imported, ImportedLayer, ImportedMount};
pub use mounts::CacheMountDir;

use std::path::PathBuf;

use crate::oci::Digest;

/// Why a cache could not be exported or imported.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A layer of a record could not be exported as a blob.
    #[error("cannot export layer {diff_id} to the cache")]
    Layer {
        /// The layer.
        diff_id: Digest,
        /// The cause.
        #[source]
        source: crate::snapshots::Error,
    },
    /// A blob could not be read from or written into the store.
    #[error("cache blob {digest}")]
    Blob {
        /// The blob.
        digest: String,
        /// The cause.
        #[source]
        source: crate::blobs::Error,
    },
    /// A cache-mount directory could not be packed.
    #[error("cannot pack cache mount `{id}` ({})", path.display())]
    PackMount {
        /// The mount id.
        id: String,
        /// Its directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: crate::layer::Error,
    },
    /// A cache-mount tar could not be unpacked.
    #[error("cannot restore cache mount `{id}` into {}", path.display())]
    UnpackMount {
        /// The mount id.
        id: String,
        /// Its directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: crate::layer::Error,
    },
    /// A file of a cache directory could not be read or written.
    #[error("cannot {op} {}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The cache's OCI layout directory could not be written.
    #[error("cannot write the cache to {}", dest.display())]
    Layout {
        /// The layout directory.
        dest: PathBuf,
        /// The cause (names the file).
        #[source]
        source: Box<crate::archive::oci::Error>,
    },
    /// A document of the cache is not what it should be.
    #[error("invalid cache {what} in {source_name}: {reason}")]
    Invalid {
        /// Which document.
        what: &'static str,
        /// The cache (directory or reference).
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// The manifest is neither a cache manifest nor an image with an inline
    /// cache.
    #[error("{source_name} holds no build cache (manifest config is {media_type})")]
    NotACache {
        /// The cache (directory or reference).
        source_name: String,
        /// The config media type found.
        media_type: String,
    },
    /// A blob of an imported cache does not hash to its digest (a corrupt
    /// or tampered cache directory).
    #[error(
        "cache blob {blob} in {source_name} does not match its content (it hashes to {actual})"
    )]
    DigestMismatch {
        /// The digest the cache names the blob by.
        blob: Digest,
        /// The cache (directory or reference).
        source_name: String,
        /// What its bytes hash to.
        actual: Digest,
    },
    /// A layer a cache hit named is in none of the imported caches.
    #[error("layer {diff_id} is in no imported cache")]
    NotImported {
        /// The layer.
        diff_id: Digest,
    },
    /// Talking to the registry that holds the cache failed.
    #[error("cache {what}")]
    Registry {
        /// What was being done, with the reference.
        what: String,
        /// The cause.
        #[source]
        source: Box<crate::registry::Error>,
    },
}

impl Error {
    fn io(op: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.to_path_buf();
        move |source| Error::Io { op, path, source }
    }

    fn blob(digest: &Digest) -> impl FnOnce(crate::blobs::Error) -> Error {
        let digest = digest.to_string();
        move |source| Error::Blob { digest, source }
    }
}

#[cfg(test)]
mod tests;
