//! The distribution form of a stored image: a manifest over compressed
//! layer blobs, made when the image leaves the store (push, OCI layout,
//! `--output`), with the compression asked for.
//!
//! Layers bake built are exported in the asked compression (once, then the
//! blob is reused). Layers that came from a registry or an archive keep the
//! blob they came with unless `force` says to re-compress them, so a pulled
//! image pushed elsewhere keeps its digests (BuildKit's `force-compression`).

use crate::layer::Compression;
use crate::layout::Store;
use crate::oci::{canonical_json, media_types, Descriptor, Digest, Manifest};
use crate::snapshots::{self, Layer};
use crate::{blobs, images};

/// How layers are compressed when an image leaves the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportOptions {
    /// The compression of new blobs.
    pub compression: Compression,
    /// Level for new blobs (`None`: the compression's default).
    pub level: Option<i32>,
    /// Re-compress layers whose kept blob has another compression.
    pub force: bool,
}

impl Default for ExportOptions {
    /// gzip, default level, kept blobs kept: what every registry and runtime
    /// reads.
    fn default() -> Self {
        ExportOptions {
            compression: Compression::Gzip,
            level: None,
            force: false,
        }
    }
}

/// A manifest ready to be sent: its bytes (stored as a blob), digest,
/// media type and parsed form.
#[derive(Clone, Debug)]
pub struct ImageManifest {
    /// sha256 of `bytes`.
    pub digest: Digest,
    /// The manifest exactly as stored and sent.
    pub bytes: Vec<u8>,
    /// Its media type (OCI, or Docker schema 2 for a pulled one kept as is).
    pub media_type: String,
    /// The parsed manifest.
    pub manifest: Manifest,
}

/// Why an image could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image or its layers could not be read.
    #[error("image {id}")]
    Image {
        /// The image id.
        id: Digest,
        /// The cause.
        #[source]
        source: Box<images::Error>,
    },
    /// A layer could not be exported as a blob.
    #[error("layer {diff_id}")]
    Layer {
        /// The layer's diff id.
        diff_id: Digest,
        /// The cause.
        #[source]
        source: Box<snapshots::Error>,
    },
    /// The manifest could not be stored.
    #[error("cannot store the manifest of image {id}")]
    Blob {
        /// The image id.
        id: Digest,
        /// The cause.
        #[source]
        source: blobs::Error,
    },
}

fn is_manifest(media_type: &str) -> bool {
    media_type == media_types::OCI_MANIFEST || media_type == media_types::DOCKER_MANIFEST
}

impl Store {
    /// The blob a layer leaves the store as, under `opts` (see the module
    /// docs), with an OCI media type.
    ///
    /// # Errors
    /// [`snapshots::Error`] when the layer cannot be read or exported.
    pub fn layer_blob(
        &self,
        layer: &Layer,
        opts: &ExportOptions,
    ) -> Result<Descriptor, snapshots::Error> {
        if let Some(d) = self.existing_layer_blob(layer, opts)? {
            return Ok(d);
        }
        let mut d = self.export_layer_at(layer, opts.compression, opts.level)?;
        normalise(&mut d);
        Ok(d)
    }

    /// The blob [`Store::layer_blob`] would pick without making one, or
    /// `None` when it would have to export the layer.
    ///
    /// # Errors
    /// As [`Store::layer_blob`].
    pub fn existing_layer_blob(
        &self,
        layer: &Layer,
        opts: &ExportOptions,
    ) -> Result<Option<Descriptor>, snapshots::Error> {
        let (packed, variants) = self.layer_blobs(&layer.chain_id)?;
        let usable = |v: &&Descriptor| self.has_blob(&v.digest);
        // The first variant of a pulled or loaded layer is the blob it came
        // as; later ones are bake's own exports, which do not pin anything.
        let kept = if opts.force || packed {
            None
        } else {
            variants.first().filter(usable).filter(|v| {
                matches!(
                    Compression::from_media_type(&v.media_type),
                    Some(Compression::Gzip | Compression::Zstd)
                )
            })
        };
        let found = variants
            .iter()
            .filter(usable)
            .find(|v| Compression::from_media_type(&v.media_type) == Some(opts.compression))
            .or(kept);
        Ok(found.map(|v| {
            let mut d = v.clone();
            normalise(&mut d);
            d
        }))
    }

    /// The manifest image `id` leaves the store with under `opts`.
    ///
    /// A manifest recorded by a pull or an earlier push is reused byte for
    /// byte when its layers are exactly the blobs `opts` picks (so a pulled
    /// image keeps its upstream digest); with `oci_only`, only if it is an
    /// OCI manifest (OCI layouts). Otherwise an OCI manifest is built and
    /// stored.
    ///
    /// # Errors
    /// [`Error::Image`] for a missing image or snapshot, [`Error::Layer`]
    /// when a layer cannot be exported.
    pub fn image_manifest(
        &self,
        id: &Digest,
        opts: &ExportOptions,
        oci_only: bool,
    ) -> Result<ImageManifest, Error> {
        let image_err = |source| Error::Image {
            id: id.clone(),
            source: Box::new(source),
        };
        let layers = self.image_layers(id).map_err(image_err)?;
        let config_bytes = self.read_blob(id).map_err(|source| {
            image_err(images::Error::Blob {
                id: id.to_string(),
                source,
            })
        })?;
        let mut descriptors = Vec::with_capacity(layers.len());
        for layer in &layers {
            let d = self
                .layer_blob(layer, opts)
                .map_err(|source| Error::Layer {
                    diff_id: layer.diff_id.clone(),
                    source: Box::new(source),
                })?;
            descriptors.push(d);
        }
        for c in [
            opts.compression,
            Compression::Gzip,
            Compression::Zstd,
            Compression::Uncompressed,
        ] {
            if let Some(found) = self.remembered(id, c, &descriptors, oci_only) {
                return Ok(found);
            }
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media_types::OCI_MANIFEST.to_string()),
            config: Descriptor {
                media_type: media_types::OCI_CONFIG.to_string(),
                digest: Digest::of(&config_bytes),
                size: config_bytes.len() as u64,
                platform: None,
                annotations: Default::default(),
            },
            layers: descriptors,
            annotations: Default::default(),
        };
        let bytes = canonical_json(&manifest).expect("manifests serialise");
        let digest = self.put_blob_bytes(&bytes).map_err(|source| Error::Blob {
            id: id.clone(),
            source,
        })?;
        Ok(ImageManifest {
            digest,
            bytes,
            media_type: media_types::OCI_MANIFEST.to_string(),
            manifest,
        })
    }

    /// A remembered manifest for `id` whose layers are the `wanted` blobs.
    fn remembered(
        &self,
        id: &Digest,
        compression: Compression,
        wanted: &[Descriptor],
        oci_only: bool,
    ) -> Option<ImageManifest> {
        let digest = self.manifest_for(id, compression)?;
        let bytes = self.read_blob(&digest).ok()?;
        let manifest: Manifest = serde_json::from_slice(&bytes).ok()?;
        let media_type = manifest
            .media_type
            .clone()
            .unwrap_or_else(|| media_types::OCI_MANIFEST.to_string());
        let same_layers = manifest.layers.len() == wanted.len()
            && manifest
                .layers
                .iter()
                .zip(wanted)
                .all(|(a, b)| a.digest == b.digest);
        let usable = manifest.config.digest == *id
            && same_layers
            && is_manifest(&media_type)
            && (!oci_only || media_type == media_types::OCI_MANIFEST);
        usable.then_some(ImageManifest {
            digest,
            bytes,
            media_type,
            manifest,
        })
    }
}

/// A layer descriptor as a manifest lists it: no platform or annotations,
/// and the OCI name of its media type (a blob pulled with a Docker media
/// type goes by its OCI name in an OCI manifest; the bytes are the same).
fn normalise(d: &mut Descriptor) {
    d.platform = None;
    d.annotations.clear();
    if let Some(c) = Compression::from_media_type(&d.media_type) {
        d.media_type = c.media_type().to_string();
    }
}
