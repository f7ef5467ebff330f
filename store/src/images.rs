//! Images and tags: an image is its config blob (its id is the config's
//! digest) plus the snapshots its `rootfs.diff_ids` name; a tag is a small
//! file in `refs/` naming an image id. Manifests used by pulls and pushes
//! are remembered per image so a later push can reuse one unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::blobs;
use crate::layer::Compression;
use crate::layout::{self, escape_file_name, Store};
use crate::oci::{canonical_json, Digest, ImageConfig, Manifest};
use crate::reference::{self, Reference};
use crate::snapshots::{self, ChainId, Layer};

/// A config bigger than this is not an image config (layers are large), so
/// id-prefix lookups never read a layer into memory.
const MAX_CONFIG_SIZE: u64 = 8 << 20;
/// Shorter id prefixes are too ambiguous to accept (docker's rule too).
const MIN_PREFIX: usize = 4;

/// One row of `bake images`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSummary {
    /// The tag (`None` for an untagged image).
    pub reference: Option<Reference>,
    /// The image id (config digest).
    pub id: Digest,
    /// The config's `created`.
    pub created: Option<String>,
    /// Sum of the uncompressed layer sizes present in the store.
    pub size: u64,
}

/// Why an image operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config could not be stored or read.
    #[error("image config {id}")]
    Blob {
        /// The image id.
        id: String,
        /// The cause.
        #[source]
        source: blobs::Error,
    },
    /// The config blob is not a valid image config.
    #[error("blob {id} is not an image config")]
    ParseConfig {
        /// The image id.
        id: Digest,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The image is not in the store.
    #[error("image {id} not found in the store")]
    UnknownImage {
        /// The image id.
        id: Digest,
    },
    /// A tag file could not be written.
    #[error("cannot tag {reference}")]
    WriteRef {
        /// The reference.
        reference: String,
        /// The cause.
        #[source]
        source: layout::Error,
    },
    /// A tag file or `refs/` could not be read or removed.
    #[error("cannot access {path}")]
    Refs {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `untag` of a reference that is not tagged.
    #[error("no such tag: {0}")]
    NotTagged(String),
    /// `resolve` was given neither an id nor a valid reference.
    #[error("`{input}` is neither an image id nor a valid reference")]
    InvalidReference {
        /// The input.
        input: String,
        /// Why it is not a reference.
        #[source]
        source: reference::Error,
    },
    /// An id prefix matches several images.
    #[error("image id prefix `{prefix}` is ambiguous: {count} images match")]
    Ambiguous {
        /// The prefix.
        prefix: String,
        /// How many images match.
        count: usize,
    },
    /// One of the image's layers is not unpacked in the store.
    #[error("image {image}: layer {index} (diff id {diff_id}) has no snapshot {chain}")]
    MissingSnapshot {
        /// The image id.
        image: Digest,
        /// The layer's position, bottom first.
        index: usize,
        /// The layer's diff id.
        diff_id: Digest,
        /// The snapshot that should hold it.
        chain: ChainId,
    },
    /// A snapshot record could not be read.
    #[error("image {image}: cannot read a layer")]
    Snapshot {
        /// The image id.
        image: Digest,
        /// The cause.
        #[source]
        source: snapshots::Error,
    },
}

/// `refs/<escaped reference>.json`.
#[derive(Serialize, Deserialize)]
struct Tag {
    reference: String,
    id: Digest,
}

/// `refs/manifests/<image-hex>.json`: manifests known to describe an image.
#[derive(Default, Serialize, Deserialize)]
struct Manifests {
    /// By layer compression (`gzip`, `zstd`, `uncompressed`, or `none` for
    /// an image without layers).
    by_compression: BTreeMap<String, Digest>,
    /// `repository@manifest-digest` seen in pulls and pushes (RepoDigests).
    repo_digests: BTreeSet<String>,
}

impl Store {
    fn ref_path(&self, reference: &Reference) -> PathBuf {
        let name = escape_file_name(&reference.to_string());
        self.root().join("refs").join(format!("{name}.json"))
    }

    fn manifests_path(&self, id: &Digest) -> PathBuf {
        self.root()
            .join("refs/manifests")
            .join(format!("{}.json", id.hex()))
    }

    /// Stores an image config (as canonical JSON); returns the image id.
    ///
    /// # Errors
    /// [`Error::Blob`] when the blob cannot be written.
    pub fn put_image(&self, config: &ImageConfig) -> Result<Digest, Error> {
        let bytes = canonical_json(config).expect("image configs serialise");
        self.put_blob_bytes(&bytes).map_err(|source| Error::Blob {
            id: Digest::of(&bytes).to_string(),
            source,
        })
    }

    /// The config of an image.
    ///
    /// # Errors
    /// [`Error::Blob`] when missing, [`Error::ParseConfig`] when not a config.
    pub fn image_config(&self, id: &Digest) -> Result<ImageConfig, Error> {
        let bytes = self.read_blob(id).map_err(|source| Error::Blob {
            id: id.to_string(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| Error::ParseConfig {
            id: id.clone(),
            source,
        })
    }

    /// Points `reference` at image `id` (replacing what it pointed at).
    ///
    /// # Errors
    /// [`Error::UnknownImage`] when the config is not stored.
    pub fn tag(&self, reference: &Reference, id: &Digest) -> Result<(), Error> {
        if !self.has_blob(id) {
            return Err(Error::UnknownImage { id: id.clone() });
        }
        let tag = Tag {
            reference: reference.to_string(),
            id: id.clone(),
        };
        let bytes = serde_json::to_vec(&tag).expect("tags serialise");
        self.write_atomic(&self.ref_path(reference), &bytes)
            .map_err(|source| Error::WriteRef {
                reference: reference.to_string(),
                source,
            })
    }

    /// Removes a tag (the image stays until garbage collection).
    ///
    /// # Errors
    /// [`Error::NotTagged`] when the reference is not a tag.
    pub fn untag(&self, reference: &Reference) -> Result<(), Error> {
        let path = self.ref_path(reference);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::NotTagged(reference.familiar()))
            }
            Err(source) => Err(Error::Refs { path, source }),
        }
    }

    fn read_tag(&self, path: &std::path::Path) -> Result<Option<Tag>, Error> {
        match fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Refs {
                    path: path.to_path_buf(),
                    source: e.into(),
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Refs {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Finds an image by tag (`app:1`), by id (`sha256:<hex>` or bare hex)
    /// or by a unique id prefix of at least 4 hex digits, as docker does:
    /// a tag wins over an id prefix that happens to look the same.
    ///
    /// # Errors
    /// [`Error::InvalidReference`] for input that is neither,
    /// [`Error::Ambiguous`] for a prefix matching several images.
    pub fn resolve(&self, name_or_id: &str) -> Result<Option<Digest>, Error> {
        let is_hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
        if let Some(hex) = name_or_id.strip_prefix("sha256:") {
            if !is_hex(hex) || hex.len() > 64 {
                return Ok(None);
            }
            return self.resolve_prefix(&hex.to_ascii_lowercase());
        }
        if name_or_id.len() == 64 && is_hex(name_or_id) {
            return self.resolve_prefix(&name_or_id.to_ascii_lowercase());
        }
        match name_or_id.parse::<Reference>() {
            Ok(r) => {
                if let Some(tag) = self.read_tag(&self.ref_path(&r))? {
                    return Ok(Some(tag.id));
                }
            }
            Err(source) if !is_hex(name_or_id) => {
                return Err(Error::InvalidReference {
                    input: name_or_id.to_string(),
                    source,
                })
            }
            Err(_) => {}
        }
        if is_hex(name_or_id) && name_or_id.len() >= MIN_PREFIX {
            return self.resolve_prefix(&name_or_id.to_ascii_lowercase());
        }
        Ok(None)
    }

    fn resolve_prefix(&self, prefix: &str) -> Result<Option<Digest>, Error> {
        let dir = self.root().join("blobs/sha256");
        let mut found = Vec::new();
        let entries = fs::read_dir(&dir).map_err(|source| Error::Refs {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| Error::Refs {
                path: dir.clone(),
                source,
            })?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with(prefix) {
                continue;
            }
            let Ok(d) = format!("sha256:{name}").parse::<Digest>() else {
                continue;
            };
            if self.is_image(&d) {
                found.push(d);
            }
        }
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            count => Err(Error::Ambiguous {
                prefix: prefix.to_string(),
                count,
            }),
        }
    }

    /// Whether a blob is an image config: small, and parses as one.
    fn is_image(&self, d: &Digest) -> bool {
        let small = fs::metadata(self.blob_path(d)).is_ok_and(|m| m.len() <= MAX_CONFIG_SIZE);
        small && self.image_config(d).is_ok()
    }

    /// One row per tag, sorted by the familiar reference.
    ///
    /// # Errors
    /// [`Error::Refs`] when `refs/` or a tag file cannot be read.
    pub fn list_images(&self) -> Result<Vec<ImageSummary>, Error> {
        let dir = self.root().join("refs");
        let refs_err = |source| Error::Refs {
            path: dir.clone(),
            source,
        };
        let mut rows = Vec::new();
        for entry in fs::read_dir(&dir).map_err(refs_err)? {
            let path = entry.map_err(refs_err)?.path();
            if path.extension().is_none_or(|e| e != "json") || !path.is_file() {
                continue;
            }
            let Some(tag) = self.read_tag(&path)? else {
                continue;
            };
            let config = self.image_config(&tag.id).ok();
            rows.push(ImageSummary {
                reference: tag.reference.parse().ok(),
                created: config.as_ref().and_then(|c| c.created.clone()),
                size: config.map_or(0, |c| self.layers_size(&c)),
                id: tag.id,
            });
        }
        rows.sort_by_key(|r| (r.reference.as_ref().map(Reference::familiar), r.id.clone()));
        Ok(rows)
    }

    fn layers_size(&self, config: &ImageConfig) -> u64 {
        ChainId::chain(&config.rootfs.diff_ids)
            .iter()
            .filter_map(|c| self.snapshot_layer(c).ok())
            .map(|l| l.size)
            .sum()
    }

    /// The image's layers, bottom first, each backed by a snapshot.
    ///
    /// # Errors
    /// [`Error::MissingSnapshot`] naming the first layer not in the store.
    pub fn image_layers(&self, id: &Digest) -> Result<Vec<Layer>, Error> {
        let config = self.image_config(id)?;
        let chains = ChainId::chain(&config.rootfs.diff_ids);
        let mut layers = Vec::with_capacity(chains.len());
        for (index, (chain, diff_id)) in chains.iter().zip(&config.rootfs.diff_ids).enumerate() {
            match self.snapshot_layer(chain) {
                Ok(layer) => layers.push(layer),
                Err(snapshots::Error::Missing { .. }) => {
                    return Err(Error::MissingSnapshot {
                        image: id.clone(),
                        index,
                        diff_id: diff_id.clone(),
                        chain: chain.clone(),
                    })
                }
                Err(source) => {
                    return Err(Error::Snapshot {
                        image: id.clone(),
                        source,
                    })
                }
            }
        }
        Ok(layers)
    }

    /// Remembers that the stored manifest `manifest_digest` describes image
    /// `id` (after a pull or push), so a later push with the same layer
    /// compression reuses it byte for byte. Best effort: a manifest that is
    /// not stored, not for this image or not writable is not remembered —
    /// the cost is only building a new manifest next time.
    pub fn remember_manifest(&self, id: &Digest, reference: &Reference, manifest_digest: &Digest) {
        let Ok(bytes) = self.read_blob(manifest_digest) else {
            return;
        };
        let Ok(manifest) = serde_json::from_slice::<Manifest>(&bytes) else {
            return;
        };
        if manifest.config.digest != *id {
            return;
        }
        let kinds: BTreeSet<_> = manifest
            .layers
            .iter()
            .map(|l| Compression::from_media_type(&l.media_type))
            .collect();
        let key = match kinds.iter().next() {
            None => "none".to_string(),
            Some(Some(c)) if kinds.len() == 1 => compression_key(*c).to_string(),
            _ => return,
        };
        let mut record = self.manifests(id);
        record.by_compression.insert(key, manifest_digest.clone());
        record
            .repo_digests
            .insert(format!("{}@{manifest_digest}", reference.name()));
        let path = self.manifests_path(id);
        if let Some(dir) = path.parent() {
            let _ = fs::create_dir_all(dir);
        }
        let _ = self.write_atomic(&path, &serde_json::to_vec(&record).expect("serialises"));
    }

    fn manifests(&self, id: &Digest) -> Manifests {
        fs::read(self.manifests_path(id))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// A stored manifest for image `id` whose layers use `compression`, if a
    /// pull or push recorded one.
    pub fn manifest_for(&self, id: &Digest, compression: Compression) -> Option<Digest> {
        let record = self.manifests(id);
        [compression_key(compression), "none"]
            .iter()
            .filter_map(|k| record.by_compression.get(*k))
            .find(|d| self.has_blob(d))
            .cloned()
    }

    /// Every manifest recorded for an image (garbage collection keeps them).
    pub(crate) fn recorded_manifests(&self, id: &Digest) -> Vec<Digest> {
        self.manifests(id).by_compression.into_values().collect()
    }

    /// `repository@manifest-digest` strings for an image (docker's
    /// RepoDigests), from remembered pulls and pushes.
    pub fn repo_digests(&self, id: &Digest) -> Vec<String> {
        self.manifests(id).repo_digests.into_iter().collect()
    }
}

fn compression_key(c: Compression) -> &'static str {
    match c {
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
        Compression::Uncompressed => "uncompressed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{media_types, Descriptor, RootFs};

    fn store() -> (tempfile::TempDir, Store) {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        (d, s)
    }

    fn config(diff_ids: Vec<Digest>, created: &str) -> ImageConfig {
        ImageConfig {
            created: Some(created.into()),
            architecture: "amd64".into(),
            os: "linux".into(),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids,
            },
            ..Default::default()
        }
    }

    /// A one-layer image whose layer is committed from a real directory.
    fn image(s: &Store, content: &str) -> (Digest, Layer) {
        let u = s.temp_dir("upper").unwrap();
        std::fs::write(u.path().join("f"), content).unwrap();
        let layer = s.commit_snapshot(u.path(), None, None).unwrap();
        let id = s
            .put_image(&config(vec![layer.diff_id.clone()], "2024-01-01T00:00:00Z"))
            .unwrap();
        (id, layer)
    }

    #[test]
    fn put_image_is_content_addressed_and_canonical() {
        let (_d, s) = store();
        let c = config(vec![], "2024-01-01T00:00:00Z");
        let id = s.put_image(&c).unwrap();
        assert_eq!(id, Digest::of(&canonical_json(&c).unwrap()));
        assert_eq!(s.image_config(&id).unwrap(), c);
        assert_eq!(s.put_image(&c).unwrap(), id);
    }

    #[test]
    fn tag_resolve_untag() {
        let (_d, s) = store();
        let (id, layer) = image(&s, "x");
        let r: Reference = "app:1".parse().unwrap();
        s.tag(&r, &id).unwrap();
        assert_eq!(s.resolve("app:1").unwrap(), Some(id.clone()));
        assert_eq!(
            s.resolve("docker.io/library/app:1").unwrap(),
            Some(id.clone())
        );
        assert_eq!(s.resolve(&id.to_string()).unwrap(), Some(id.clone()));
        assert_eq!(s.resolve(id.hex()).unwrap(), Some(id.clone()));
        assert_eq!(s.resolve(&id.hex()[..6]).unwrap(), Some(id.clone()));
        assert_eq!(
            s.resolve(&format!("sha256:{}", &id.hex()[..8])).unwrap(),
            Some(id.clone())
        );
        // The layer's blob-free snapshot is not an image; a 3-digit prefix is too short.
        assert_eq!(s.resolve(&id.hex()[..3]).unwrap(), None);
        assert_eq!(s.resolve("app:2").unwrap(), None);
        assert!(matches!(
            s.resolve("Bad:Ref"),
            Err(Error::InvalidReference { .. })
        ));

        let rows = s.list_images().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].reference.as_ref().unwrap().familiar(), "app:1");
        assert_eq!(rows[0].size, layer.size);
        assert_eq!(rows[0].created.as_deref(), Some("2024-01-01T00:00:00Z"));

        s.untag(&r).unwrap();
        assert_eq!(s.resolve("app:1").unwrap(), None);
        assert!(matches!(s.untag(&r), Err(Error::NotTagged(_))));
        assert!(s.list_images().unwrap().is_empty());
    }

    #[test]
    fn tagging_an_unknown_image_fails() {
        let (_d, s) = store();
        let r: Reference = "app".parse().unwrap();
        assert!(matches!(
            s.tag(&r, &Digest::of(b"nothing")),
            Err(Error::UnknownImage { .. })
        ));
    }

    #[test]
    fn ambiguous_prefixes_are_reported() {
        let (_d, s) = store();
        let ids: Vec<Digest> = (0..40)
            .map(|i| s.put_image(&config(vec![], &format!("t{i}"))).unwrap())
            .collect();
        // 40 ids over 16 first hex digits: some digit is shared (pigeonhole).
        let shared = (0..16u32)
            .map(|i| char::from_digit(i, 16).unwrap().to_string())
            .find(|p| {
                ids.iter()
                    .filter(|d| d.hex().starts_with(p.as_str()))
                    .count()
                    > 1
            })
            .unwrap();
        let e = s.resolve_prefix(&shared).unwrap_err();
        assert!(e.to_string().contains("ambiguous"), "{e}");
    }

    #[test]
    fn image_layers_names_the_missing_snapshot() {
        let (_d, s) = store();
        let (id, layer) = image(&s, "x");
        assert_eq!(s.image_layers(&id).unwrap(), vec![layer.clone()]);
        let missing = Digest::of(b"missing");
        let id2 = s
            .put_image(&config(vec![layer.diff_id.clone(), missing.clone()], "t"))
            .unwrap();
        let e = s.image_layers(&id2).unwrap_err();
        assert!(e.to_string().contains(&missing.to_string()), "{e}");
        assert!(matches!(e, Error::MissingSnapshot { index: 1, .. }));
    }

    #[test]
    fn remembered_manifests_are_found_by_compression() {
        let (_d, s) = store();
        let (id, layer) = image(&s, "x");
        let gz = s.export_layer(&layer, Compression::Gzip).unwrap();
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media_types::OCI_MANIFEST.into()),
            config: Descriptor {
                media_type: media_types::OCI_CONFIG.into(),
                digest: id.clone(),
                size: s.read_blob(&id).unwrap().len() as u64,
                platform: None,
                annotations: Default::default(),
            },
            layers: vec![gz],
            annotations: Default::default(),
        };
        let m = s
            .put_blob_bytes(&canonical_json(&manifest).unwrap())
            .unwrap();
        let r: Reference = "localhost:5000/app:1".parse().unwrap();
        s.remember_manifest(&id, &r, &m);
        assert_eq!(s.manifest_for(&id, Compression::Gzip), Some(m.clone()));
        assert_eq!(s.manifest_for(&id, Compression::Zstd), None);
        assert_eq!(s.repo_digests(&id), vec![format!("localhost:5000/app@{m}")]);
        // A manifest for another image is ignored.
        let (other, _) = image(&s, "y");
        s.remember_manifest(&other, &r, &m);
        assert_eq!(s.manifest_for(&other, Compression::Gzip), None);
        // The manifests directory is not mistaken for a tag.
        assert!(s.list_images().unwrap().is_empty());
    }
}
