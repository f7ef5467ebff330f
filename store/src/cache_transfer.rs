//! Build caches in a registry (`--cache-to type=registry,ref=…` /
//! `--cache-from type=registry,ref=…`, and `type=inline` reads): the cache
//! manifest of [`crate::cache_export`] pushed and pulled with the
//! distribution client. Only the manifest and the config are read when a
//! cache is opened; layer blobs are fetched when a build needs them.
//!
//! Kept apart from [`crate::transfer`] (images) on purpose: a cache is not
//! an image, it is never tagged in the store or unpacked as a whole. Its
//! blobs still travel the image's way (`Store::send_blob`: HEAD, then a
//! cross-repository mount, then an upload with retries), so a cache pushed
//! next to its image mounts the layers the image push sent.

use crate::cache_export::{BlobSource, CacheManifest, Imported};
use crate::layout::Store;
use crate::oci::{media_types, Descriptor, Digest};
use crate::reference::Reference;
use crate::registry::{Client, RegistryOptions};
use crate::transfer::{self, TransferEvent};

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
    /// Pushes a cache manifest and its blobs to `reference`, reporting
    /// each blob to `progress`; returns the manifest digest.
    ///
    /// Blobs go the way an image's do ([`Store::push_with`]), a few at a
    /// time: a HEAD skips those the repository has, a cross-repository
    /// mount links those another repository of the registry is known to
    /// hold (the image's own layers, pushed or pulled before), the rest
    /// are uploaded with the client's retries; the repository is then
    /// recorded as holding them. The manifest goes last.
    ///
    /// # Errors
    /// [`Error::Blob`] when a blob of the cache is missing from the store
    /// (checked before anything is sent), [`Error::Registry`] when the
    /// registry refuses.
    pub fn push_cache(
        &self,
        cache: &CacheManifest,
        reference: &Reference,
        opts: &RegistryOptions,
        progress: &dyn Fn(TransferEvent),
    ) -> Result<Digest, Error> {
        let registry_err = |op| registry_error(reference, op);
        let blobs: Vec<&Descriptor> = cache.blobs().collect();
        for d in &blobs {
            self.open_blob(&d.digest).map_err(|source| Error::Blob {
                digest: d.digest.clone(),
                reference: reference.to_string(),
                source,
            })?;
        }
        let client = Client::new(&reference.registry, opts).map_err(registry_err("connect to"))?;
        let repo = reference.repository.as_str();
        let known = self.known_blobs();
        transfer::run_parallel(
            blobs.len(),
            |i, emit, cancel| self.send_blob(&client, &known, repo, blobs[i], emit, cancel),
            progress,
            |_, ()| Ok(()),
        )
        .map_err(registry_err("push blob to"))?;
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
