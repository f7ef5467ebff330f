//! Build caches in a registry (`--cache-to type=registry,ref=…` /
//! `--cache-from type=registry,ref=…`, and `type=inline` reads): the cache
//! manifest of [`crate::cache_export`] pushed and pulled with the
//! distribution client. Only the manifest and the config are read when a
//! cache is opened; layer blobs are fetched when a build needs them.
//!
//! Kept apart from [`crate::transfer`] (images) on purpose: a cache is not
//! an image, it is never tagged in the store or unpacked as a whole.

use crate::cache_export::{BlobSource, CacheManifest, Imported};
use crate::layout::Store;
use crate::oci::{media_types, Digest};
use crate::reference::Reference;
use crate::registry::{Client, RegistryOptions};

/// Why a cache could not be pushed or pulled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry failed.
    #[error("{op} {reference}")]
    Registry {
        /// What was being done.
        op: &'static str,
        /// The cache reference.
        reference: String,
        /// The cause.
        #[source]
        source: Box<crate::registry::Error>,
    },
    /// A blob to push is missing from the store.
    #[error("cannot read blob {digest} to push to {reference}")]
    Blob {
        /// The blob.
        digest: Digest,
        /// The cache reference.
        reference: String,
        /// The cause.
        #[source]
        source: crate::blobs::Error,
    },
    /// The registry holds something that is not a usable cache.
    #[error(transparent)]
    Cache(#[from] Box<crate::cache_export::Error>),
}

impl Store {
    /// Pushes a cache manifest and its blobs (those the repository lacks)
    /// to `reference`; returns the manifest digest.
    ///
    /// # Errors
    /// [`Error::Registry`] when the registry refuses, [`Error::Blob`] when a
    /// blob is missing locally.
    pub fn push_cache(
        &self,
        cache: &CacheManifest,
        reference: &Reference,
        opts: &RegistryOptions,
    ) -> Result<Digest, Error> {
        let registry_err = |op| registry_error(reference, op);
        let client = Client::new(&reference.registry, opts).map_err(registry_err("connect to"))?;
        let repo = reference.repository.as_str();
        for d in cache.blobs() {
            if client
                .head_blob(repo, &d.digest)
                .map_err(registry_err("check blob for"))?
            {
                continue;
            }
            let mut file = self.open_blob(&d.digest).map_err(|source| Error::Blob {
                digest: d.digest.clone(),
                reference: reference.to_string(),
                source,
            })?;
            client
                .put_blob(repo, &d.digest, d.size, &mut file)
                .map_err(registry_err("push blob to"))?;
        }
        let tag = match (&reference.tag, &reference.digest) {
            (Some(t), _) => t.clone(),
            (None, Some(d)) => d.to_string(),
            (None, None) => "latest".to_string(),
        };
        client
            .put_manifest(repo, &tag, &cache.manifest, media_types::OCI_MANIFEST)
            .map_err(registry_err("push cache manifest to"))
    }

    /// Opens the cache at `reference`: a cache manifest (bake, BuildKit
    /// `image-manifest=true`), a cache index (BuildKit's default), or an
    /// image whose config carries an inline cache. Reads the manifest and
    /// the config only.
    ///
    /// # Errors
    /// [`Error::Registry`] (e.g. the reference does not exist),
    /// [`Error::Cache`] when it holds no cache.
    pub fn open_registry_cache(
        &self,
        reference: &Reference,
        opts: &RegistryOptions,
    ) -> Result<Imported, Error> {
        open(reference, opts)
    }
}

fn open(reference: &Reference, opts: &RegistryOptions) -> Result<Imported, Error> {
    let registry_err = |op| registry_error(reference, op);
    let client = Client::new(&reference.registry, opts).map_err(registry_err("connect to"))?;
    let repo = reference.repository.clone();
    let asked = reference.manifest_ref();
    let (bytes, _, _) = client
        .get_manifest(&repo, &asked)
        .map_err(registry_err("get cache manifest"))?;
    let source = BlobSource::Registry {
        client: Box::new(client),
        repo,
    };
    Imported::parse(&reference.to_string(), source, &bytes).map_err(|e| Error::Cache(Box::new(e)))
}

/// Turns a registry failure of `op` on `reference` into this module's error.
fn registry_error(
    reference: &Reference,
    op: &'static str,
) -> impl FnOnce(crate::registry::Error) -> Error {
    let reference = reference.to_string();
    move |source| Error::Registry {
        op,
        reference,
        source: Box::new(source),
    }
}
