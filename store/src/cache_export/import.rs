//! A parsed cache ([`Imported`]): records by key, layer chains, and where
//! the blobs are. Nothing is fetched when a cache is opened except the
//! manifest and the config; a layer blob is copied into the store and
//! unpacked only when a build step needs its files.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use base64::Engine as _;

use super::spec::{
    CacheConfig, CacheMountEntry, ANNOTATION_CACHE_MOUNT, ANNOTATION_UNCOMPRESSED,
    CACHE_CONFIG_MEDIA_TYPE, INLINE_CACHE_FIELD,
};
use super::Error;
use crate::layout::Store;
use crate::oci::{media_types, Descriptor, Digest, Index, Manifest};
use crate::registry::Client;
use crate::snapshots::{ChainId, Layer};

/// Largest manifest or config read whole.
pub(crate) const MAX_DOCUMENT_BYTES: u64 = 16 << 20;

/// Where an imported cache's blobs are.
pub enum BlobSource {
    /// An OCI layout directory (`blobs/sha256/<hex>`).
    Dir(PathBuf),
    /// A registry repository.
    Registry {
        /// A client for the registry's host (boxed: it is large).
        client: Box<Client>,
        /// The repository.
        repo: String,
    },
}

impl std::fmt::Debug for BlobSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobSource::Dir(d) => write!(f, "Dir({})", d.display()),
            BlobSource::Registry { client, repo } => {
                write!(f, "Registry({}/{repo})", client.host())
            }
        }
    }
}

impl BlobSource {
    /// Opens a blob for reading (a registry blob is verified as it is read).
    pub(crate) fn open(&self, digest: &Digest) -> Result<Box<dyn Read + '_>, Error> {
        match self {
            BlobSource::Dir(dir) => {
                let path = dir.join("blobs/sha256").join(digest.hex());
                let file = std::fs::File::open(&path).map_err(Error::io("open", &path))?;
                Ok(Box::new(file))
            }
            BlobSource::Registry { client, repo } => {
                let reader = client
                    .open_blob(repo, digest)
                    .map_err(|source| Error::Registry {
                        what: format!("blob {digest} of {}/{repo}", client.host()),
                        source: Box::new(source),
                    })?;
                Ok(Box::new(reader))
            }
        }
    }

    /// Reads a small blob whole and checks its digest.
    pub(crate) fn read(&self, d: &Descriptor, name: &str) -> Result<Vec<u8>, Error> {
        let mut bytes = Vec::new();
        self.open(&d.digest)?
            .take(MAX_DOCUMENT_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::Invalid {
                what: "blob",
                source_name: name.to_string(),
                reason: format!("{}: {e}", d.digest),
            })?;
        if Digest::of(&bytes) != d.digest {
            return Err(Error::Invalid {
                what: "blob",
                source_name: name.to_string(),
                reason: format!("{} does not match its content", d.digest),
            });
        }
        Ok(bytes)
    }
}

/// A layer of an imported cache.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedLayer {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// The blob.
    pub blob: Descriptor,
}

/// A cache read from a directory, a registry or an image's config.
#[derive(Debug)]
pub struct Imported {
    name: String,
    source: BlobSource,
    layers: Vec<Option<ImportedLayer>>,
    /// Record digest (`blake3:<hex>` for bake, `sha256:…` for BuildKit) →
    /// layer indexes, bottom first.
    records: HashMap<String, Vec<usize>>,
    by_diff: HashMap<Digest, usize>,
    mounts: Vec<(CacheMountEntry, usize)>,
}

/// A cache-mount directory an imported cache holds.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedMount {
    /// The mount id.
    pub id: String,
    /// The tar of its contents.
    pub layer: ImportedLayer,
    /// Owner (uid, gid) of the directory itself, if recorded.
    pub owner: Option<(u32, u32)>,
    /// Permission bits of the directory itself, if recorded.
    pub mode: Option<u32>,
}

impl Imported {
    /// Parses a cache from its manifest: an OCI/Docker image manifest whose
    /// config is a cacheconfig (bake, BuildKit `image-manifest=true`), an
    /// index listing the layers and the cacheconfig (BuildKit's default),
    /// or an image manifest whose config carries an inline cache
    /// (`moby.buildkit.cache.v0`). Only the config is read from `source`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for malformed documents, [`Error::NotACache`] for
    /// an image without an inline cache.
    pub fn parse(name: &str, source: BlobSource, manifest: &[u8]) -> Result<Imported, Error> {
        let invalid = |what: &'static str, reason: String| Error::Invalid {
            what,
            source_name: name.to_string(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_slice(manifest).map_err(|e| invalid("manifest", e.to_string()))?;
        let (config, descriptors, image_diff_ids) = if value.get("manifests").is_some() {
            let index: Index =
                serde_json::from_value(value).map_err(|e| invalid("index", e.to_string()))?;
            let (configs, layers): (Vec<_>, Vec<_>) = index
                .manifests
                .into_iter()
                .partition(|d| d.media_type == CACHE_CONFIG_MEDIA_TYPE);
            let config = configs
                .first()
                .ok_or_else(|| invalid("index", format!("no {CACHE_CONFIG_MEDIA_TYPE} entry")))?;
            let bytes = source.read(config, name)?;
            let config: CacheConfig = serde_json::from_slice(&bytes)
                .map_err(|e| invalid("cache config", e.to_string()))?;
            (config, layers, Vec::new())
        } else {
            let m: Manifest =
                serde_json::from_value(value).map_err(|e| invalid("manifest", e.to_string()))?;
            let bytes = source.read(&m.config, name)?;
            if m.config.media_type == CACHE_CONFIG_MEDIA_TYPE {
                let config: CacheConfig = serde_json::from_slice(&bytes)
                    .map_err(|e| invalid("cache config", e.to_string()))?;
                (config, m.layers, Vec::new())
            } else if [media_types::OCI_CONFIG, media_types::DOCKER_CONFIG]
                .contains(&m.config.media_type.as_str())
            {
                let (config, diff_ids) = inline(&bytes).map_err(|r| invalid("image config", r))?;
                let config = config.ok_or_else(|| Error::NotACache {
                    source_name: name.to_string(),
                    media_type: format!("{} without {INLINE_CACHE_FIELD}", m.config.media_type),
                })?;
                (config, m.layers, diff_ids)
            } else {
                return Err(Error::NotACache {
                    source_name: name.to_string(),
                    media_type: m.config.media_type,
                });
            }
        };
        Ok(Imported::from_config(
            name,
            source,
            &config,
            &descriptors,
            &image_diff_ids,
        ))
    }

    /// Resolves the config against the descriptors. A layer whose diff id
    /// is known nowhere, or whose blob the manifest does not list, is
    /// unusable, and so is every record that needs it.
    fn from_config(
        name: &str,
        source: BlobSource,
        config: &CacheConfig,
        descriptors: &[Descriptor],
        image_diff_ids: &[Digest],
    ) -> Imported {
        let by_blob: HashMap<&Digest, (usize, &Descriptor)> = descriptors
            .iter()
            .enumerate()
            .map(|(i, d)| (&d.digest, (i, d)))
            .collect();
        let layers: Vec<Option<ImportedLayer>> = config
            .layers
            .iter()
            .map(|l| {
                let &(position, d) = by_blob.get(&l.blob)?;
                let a = l.annotations.as_ref();
                let diff_id = a
                    .and_then(|a| a.diff_id.clone())
                    .or_else(|| {
                        d.annotations
                            .get(ANNOTATION_UNCOMPRESSED)
                            .and_then(|s| s.parse().ok())
                    })
                    .or_else(|| image_diff_ids.get(position).cloned())?;
                let mut blob = d.clone();
                if let Some(mt) = a.and_then(|a| a.media_type.clone()) {
                    if blob.media_type.is_empty() {
                        blob.media_type = mt;
                    }
                }
                Some(ImportedLayer { diff_id, blob })
            })
            .collect();
        let chain_of = |top: i64| -> Option<Vec<usize>> {
            let mut out = Vec::new();
            let mut at = top;
            while at >= 0 {
                let i = usize::try_from(at).ok()?;
                layers.get(i)?.as_ref()?;
                if out.len() > layers.len() {
                    return None; // a parent cycle
                }
                out.push(i);
                at = config.layers[i].parent;
            }
            out.reverse();
            Some(out)
        };
        let mut records = HashMap::new();
        for r in &config.records {
            let chain = if let Some(result) = r.results.first() {
                chain_of(result.layer)
            } else if let Some(chained) = r.chained.first() {
                chained
                    .layers
                    .iter()
                    .map(|&top| chain_of(top))
                    .collect::<Option<Vec<_>>>()
                    .map(|parts| parts.concat())
            } else {
                None
            };
            if let Some(chain) = chain.filter(|c| !c.is_empty()) {
                records.insert(r.digest.clone(), chain);
            }
        }
        let by_diff = layers
            .iter()
            .enumerate()
            .filter_map(|(i, l)| Some((l.as_ref()?.diff_id.clone(), i)))
            .collect();
        let mut mounts: Vec<(CacheMountEntry, usize)> = config
            .cache_mounts
            .iter()
            .filter(|m| matches!(layers.get(m.layer), Some(Some(_))))
            .map(|m| (m.clone(), m.layer))
            .collect();
        // A descriptor annotated as a cache mount but not in the config's
        // list (hand-made caches) still counts.
        for (i, l) in layers.iter().enumerate() {
            if let Some(id) = l
                .as_ref()
                .and_then(|l| l.blob.annotations.get(ANNOTATION_CACHE_MOUNT))
            {
                if !mounts.iter().any(|(m, _)| m.id == *id) {
                    let entry = CacheMountEntry {
                        id: id.clone(),
                        layer: i,
                        uid: None,
                        gid: None,
                        mode: None,
                    };
                    mounts.push((entry, i));
                }
            }
        }
        Imported {
            name: name.to_string(),
            source,
            layers,
            records,
            by_diff,
            mounts,
        }
    }

    /// The directory or reference the cache came from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many records are usable.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record is usable.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The layer chain recorded for a record digest (`blake3:<hex>` for
    /// bake's keys), bottom first.
    pub fn lookup(&self, digest: &str) -> Option<Vec<ImportedLayer>> {
        let chain = self.records.get(digest)?;
        chain.iter().map(|&i| self.layers[i].clone()).collect()
    }

    /// The layer chain of a hit as the solver hands it on: chain ids from
    /// the diff ids, sizes of the blobs (the real size is learnt when a
    /// layer is unpacked).
    pub fn layers_of(chain: &[ImportedLayer]) -> Vec<Layer> {
        let diff_ids: Vec<Digest> = chain.iter().map(|l| l.diff_id.clone()).collect();
        ChainId::chain(&diff_ids)
            .into_iter()
            .zip(chain)
            .map(|(chain_id, l)| Layer {
                diff_id: l.diff_id.clone(),
                chain_id,
                size: l.blob.size,
            })
            .collect()
    }

    /// The blob this cache holds for a diff id.
    pub fn blob_of(&self, diff_id: &Digest) -> Option<Descriptor> {
        let i = *self.by_diff.get(diff_id)?;
        self.layers[i].as_ref().map(|l| l.blob.clone())
    }

    /// Cache-mount ids this cache holds contents for, with their blobs.
    pub fn cache_mounts(&self) -> Vec<ImportedMount> {
        self.mounts
            .iter()
            .filter_map(|(m, i)| {
                Some(ImportedMount {
                    id: m.id.clone(),
                    layer: self.layers[*i].clone()?,
                    owner: m.uid.zip(m.gid),
                    mode: m.mode,
                })
            })
            .collect()
    }

    /// Opens one of this cache's blobs for reading.
    pub(super) fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + '_>, Error> {
        self.source.open(digest)
    }

    /// Copies a blob of this cache into the store (verified), unless it is
    /// there.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Registry`] when it cannot be read,
    /// [`Error::Blob`] on a digest mismatch.
    pub fn fetch_blob(&self, store: &Store, d: &Descriptor) -> Result<(), Error> {
        if store.has_blob(&d.digest) {
            return Ok(());
        }
        let reader = self.source.open(&d.digest)?;
        store
            .put_blob(reader, Some(&d.digest))
            .map_err(Error::blob(&d.digest))?;
        Ok(())
    }

    /// Makes every layer of `chain` a snapshot, fetching and unpacking
    /// those that are missing (bottom first; a present snapshot is never
    /// touched). Returns how many were unpacked. Layers this cache does
    /// not hold are left to the caller: `Ok(false)` in the second field
    /// says some were missing.
    ///
    /// # Errors
    /// As [`Imported::fetch_blob`], and [`Error::Layer`] when a blob does
    /// not unpack to its diff id.
    pub fn materialize(&self, store: &Store, chain: &[Layer]) -> Result<(usize, bool), Error> {
        let mut unpacked = 0;
        for (i, layer) in chain.iter().enumerate() {
            if store.has_snapshot(&layer.chain_id) {
                continue;
            }
            let Some(blob) = self.blob_of(&layer.diff_id) else {
                return Ok((unpacked, false));
            };
            self.fetch_blob(store, &blob)?;
            let parent = i.checked_sub(1).map(|p| &chain[p].chain_id);
            store
                .unpack_layer(&blob.digest, &blob.media_type, parent, Some(&layer.diff_id))
                .map_err(|source| Error::Layer {
                    diff_id: layer.diff_id.clone(),
                    source,
                })?;
            unpacked += 1;
        }
        Ok((unpacked, true))
    }
}

/// The inline cache of an image config (`moby.buildkit.cache.v0`: base64
/// of a cacheconfig, whose layer blobs are the image manifest's) and the
/// image's diff ids.
fn inline(config: &[u8]) -> Result<(Option<CacheConfig>, Vec<Digest>), String> {
    let value: serde_json::Value = serde_json::from_slice(config).map_err(|e| e.to_string())?;
    let diff_ids = value
        .pointer("/rootfs/diff_ids")
        .and_then(|v| serde_json::from_value::<Vec<Digest>>(v.clone()).ok())
        .unwrap_or_default();
    let Some(field) = value.get(INLINE_CACHE_FIELD) else {
        return Ok((None, diff_ids));
    };
    let bytes = match field {
        serde_json::Value::String(s) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| format!("{INLINE_CACHE_FIELD}: {e}"))?,
        other => serde_json::to_vec(other).map_err(|e| e.to_string())?,
    };
    let cache = serde_json::from_slice(&bytes).map_err(|e| format!("{INLINE_CACHE_FIELD}: {e}"))?;
    Ok((Some(cache), diff_ids))
}
