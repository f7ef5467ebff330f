//! Making a cache manifest from the records a build used.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;

use super::mounts::CacheMountDir;
use super::spec::{
    CacheConfig, CacheLayer, CacheMountEntry, CacheRecord, CacheResult, LayerAnnotations,
    ANNOTATION_CACHE_MOUNT, ANNOTATION_UNCOMPRESSED, CACHE_CONFIG_MEDIA_TYPE, KEY_PREFIX,
};
use super::{Error, Imported};
use crate::export::ExportOptions;
use crate::layout::Store;
use crate::oci::{canonical_json, media_types, Descriptor, Digest, Manifest};
use crate::snapshots::{ChainId, Layer};

/// One build step's cache record to export: its key (bake's hex) and its
/// whole layer chain, bottom first.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportRecord {
    /// The cache key, hex (written as `blake3:<hex>`).
    pub key: String,
    /// The step's result chain.
    pub layers: Vec<Layer>,
}

/// A cache manifest ready to be written somewhere: every blob it names is
/// in the store.
#[derive(Clone, Debug)]
pub struct CacheManifest {
    /// The OCI image manifest's bytes.
    pub manifest: Vec<u8>,
    /// Their digest.
    pub digest: Digest,
    /// The config descriptor (the cacheconfig document).
    pub config: Descriptor,
    /// The layer blobs, in manifest order.
    pub layers: Vec<Descriptor>,
}

impl CacheManifest {
    /// Every blob the manifest names, config first.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        std::iter::once(&self.config).chain(&self.layers)
    }
}

/// Builds the cache config's layer list, one entry per chain id.
struct Layers<'a> {
    store: &'a Store,
    imports: &'a [&'a Imported],
    config: Vec<CacheLayer>,
    descriptors: Vec<Descriptor>,
    by_chain: HashMap<ChainId, usize>,
}

impl Layers<'_> {
    /// The index of `chain`'s top layer, adding it and its parents.
    fn chain(&mut self, chain: &[Layer]) -> Result<Option<usize>, Error> {
        let mut parent: i64 = -1;
        let mut top = None;
        for layer in chain {
            let index = match self.by_chain.get(&layer.chain_id) {
                Some(&i) => i,
                None => {
                    let d = self.blob(layer)?;
                    let i = self.config.len();
                    self.config.push(CacheLayer {
                        blob: d.digest.clone(),
                        parent,
                        annotations: Some(LayerAnnotations {
                            media_type: Some(d.media_type.clone()),
                            diff_id: Some(layer.diff_id.clone()),
                            size: Some(d.size as i64),
                            created_at: None,
                        }),
                    });
                    self.by_chain.insert(layer.chain_id.clone(), i);
                    self.descriptors.push(d);
                    i
                }
            };
            parent = index as i64;
            top = Some(index);
        }
        Ok(top)
    }

    /// The layer's blob: exported from its snapshot, or (a step that was a
    /// hit in an imported cache and never unpacked) copied from that cache.
    fn blob(&self, layer: &Layer) -> Result<Descriptor, Error> {
        let mut d = if self.store.has_snapshot(&layer.chain_id) {
            self.store
                .layer_blob(layer, &ExportOptions::default())
                .map_err(|source| Error::Layer {
                    diff_id: layer.diff_id.clone(),
                    source,
                })?
        } else {
            let (import, d) = self
                .imports
                .iter()
                .find_map(|i| i.blob_of(&layer.diff_id).map(|d| (i, d)))
                .ok_or_else(|| Error::NotImported {
                    diff_id: layer.diff_id.clone(),
                })?;
            import.fetch_blob(self.store, &d)?;
            d
        };
        d.annotations = BTreeMap::from([(
            ANNOTATION_UNCOMPRESSED.to_string(),
            layer.diff_id.to_string(),
        )]);
        Ok(d)
    }
}

impl Store {
    /// A cache manifest for `records` (and the contents of the cache-mount
    /// directories `mounts`): every layer exported as a gzip blob (or the
    /// blob it was pulled as), the cacheconfig and the manifest stored as
    /// blobs. Layers of steps that hit an imported cache and were never
    /// unpacked are copied from `imports`.
    ///
    /// # Errors
    /// [`Error::Layer`] when a layer cannot be exported, [`Error::NotImported`]
    /// when a layer is neither in the store nor in `imports`,
    /// [`Error::PackMount`] for an unreadable cache-mount directory.
    pub fn cache_manifest(
        &self,
        records: &[ExportRecord],
        mounts: &[CacheMountDir],
        imports: &[&Imported],
    ) -> Result<CacheManifest, Error> {
        let mut layers = Layers {
            store: self,
            imports,
            config: Vec::new(),
            descriptors: Vec::new(),
            by_chain: HashMap::new(),
        };
        let mut config = CacheConfig::default();
        let mut seen = std::collections::HashSet::new();
        for r in records {
            if !seen.insert(&r.key) {
                continue;
            }
            let Some(top) = layers.chain(&r.layers)? else {
                continue;
            };
            config.records.push(CacheRecord {
                results: vec![CacheResult {
                    layer: top as i64,
                    created_at: None,
                }],
                digest: format!("{KEY_PREFIX}{}", r.key),
                ..CacheRecord::default()
            });
        }
        for m in mounts {
            let (mut d, diff_id) = self.pack_cache_mount(m)?;
            d.annotations = BTreeMap::from([
                (ANNOTATION_UNCOMPRESSED.to_string(), diff_id.to_string()),
                (ANNOTATION_CACHE_MOUNT.to_string(), m.id.clone()),
            ]);
            let meta = std::fs::metadata(&m.dir).map_err(Error::io("stat", &m.dir))?;
            config.cache_mounts.push(CacheMountEntry {
                id: m.id.clone(),
                layer: layers.config.len(),
                uid: Some(meta.uid()),
                gid: Some(meta.gid()),
                mode: Some(meta.mode() & 0o7777),
            });
            layers.config.push(CacheLayer {
                blob: d.digest.clone(),
                parent: -1,
                annotations: Some(LayerAnnotations {
                    media_type: Some(d.media_type.clone()),
                    diff_id: Some(diff_id),
                    size: Some(d.size as i64),
                    created_at: None,
                }),
            });
            layers.descriptors.push(d);
        }
        config.layers = layers.config;
        let config_bytes = canonical_json(&config).expect("cache configs serialise");
        let config_digest = self
            .put_blob_bytes(&config_bytes)
            .map_err(Error::blob(&Digest::of(&config_bytes)))?;
        let config = Descriptor {
            media_type: CACHE_CONFIG_MEDIA_TYPE.to_string(),
            digest: config_digest,
            size: config_bytes.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        };
        // A blob named twice (the same diff on two parents) is listed once.
        let mut listed = std::collections::HashSet::new();
        let descriptors: Vec<Descriptor> = layers
            .descriptors
            .into_iter()
            .filter(|d| listed.insert(d.digest.clone()))
            .collect();
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media_types::OCI_MANIFEST.to_string()),
            config: config.clone(),
            layers: descriptors.clone(),
            annotations: BTreeMap::new(),
        };
        let bytes = canonical_json(&manifest).expect("manifests serialise");
        let digest = self
            .put_blob_bytes(&bytes)
            .map_err(Error::blob(&Digest::of(&bytes)))?;
        Ok(CacheManifest {
            manifest: bytes,
            digest,
            config,
            layers: descriptors,
        })
    }
}
