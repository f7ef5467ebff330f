//! Snapshots: unpacked layers, `snapshots/<chain-hex>/diff` (an
//! overlay-format diff dir, usable as an overlayfs lowerdir) plus
//! `snapshots/<chain-hex>/layer.json` (diff id, parent, size and the
//! compressed blobs known for the layer).
//!
//! A build keeps its layers unpacked and only knows their diff ids; a
//! compressed blob is made the first time the layer leaves the store
//! ([`Store::export_layer`]) and remembered, so the next push reuses it.
//! Pulled layers remember the blob they came from.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::blobs;
use crate::blobs::DigestWriter;
use crate::layer::{self, Compression, Encoder};
use crate::layout::{self, Store};
use crate::oci::{Descriptor, Digest};

/// An OCI chain id: names a layer *together with everything below it*, so
/// the same diff on different parents is a different snapshot.
/// `chain(L0) = diff(L0)`, `chain(Ln) = sha256(chain(Ln-1) + " " + diff(Ln))`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChainId(pub Digest);

impl ChainId {
    /// The chain id of `diff_id` on top of `parent`.
    pub fn of(parent: Option<&ChainId>, diff_id: &Digest) -> ChainId {
        match parent {
            None => ChainId(diff_id.clone()),
            Some(p) => {
                let mut h = Sha256::new();
                h.update(p.0.to_string().as_bytes());
                h.update(b" ");
                h.update(diff_id.to_string().as_bytes());
                ChainId(Digest::from_sha256(h.finalize().into()))
            }
        }
    }

    /// The chain ids of a stack of diff ids, bottom first.
    pub fn chain(diff_ids: &[Digest]) -> Vec<ChainId> {
        let mut out: Vec<ChainId> = Vec::with_capacity(diff_ids.len());
        for d in diff_ids {
            let next = ChainId::of(out.last(), d);
            out.push(next);
        }
        out
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One layer of an image as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Layer {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Which snapshot holds it.
    pub chain_id: ChainId,
    /// Length of the uncompressed tar (what `bake images` adds up).
    pub size: u64,
}

/// `layer.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    diff_id: Digest,
    parent: Option<ChainId>,
    size: u64,
    /// True when bake's own packer produced the diff id from this diff dir
    /// (built layers): re-packing with `epoch` then reproduces it exactly.
    packed: bool,
    /// The `SOURCE_DATE_EPOCH` the diff id was computed with.
    epoch: Option<i64>,
    /// Compressed (or plain) blobs of this layer's tar.
    variants: Vec<Descriptor>,
}

/// Why a snapshot could not be made, read or exported.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A staging directory under `tmp/` could not be made.
    #[error("cannot prepare a snapshot")]
    Stage(#[source] layout::Error),
    /// Packing the upper dir (or re-packing a snapshot) failed.
    #[error("cannot pack {path}")]
    Pack {
        /// The directory being packed.
        path: PathBuf,
        /// The cause.
        #[source]
        source: layer::Error,
    },
    /// Applying a layer tar failed.
    #[error("cannot unpack layer {what}")]
    Unpack {
        /// The blob digest or description of the stream.
        what: String,
        /// The cause.
        #[source]
        source: layer::Error,
    },
    /// Decompressing or compressing a layer stream failed.
    #[error("cannot {op} layer {diff_id}")]
    Stream {
        /// `decompress` or `compress`.
        op: &'static str,
        /// The layer (or blob) concerned.
        diff_id: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A blob could not be read or written.
    #[error("blob {digest} of a layer")]
    Blob {
        /// The blob.
        digest: String,
        /// The cause.
        #[source]
        source: blobs::Error,
    },
    /// The layer's content does not match its diff id.
    #[error("layer diff id mismatch for {what}: expected {expected}, got {actual}")]
    DiffIdMismatch {
        /// Where the content came from.
        what: String,
        /// The diff id it should have.
        expected: Digest,
        /// The diff id it has.
        actual: Digest,
    },
    /// A directory could not be moved into or out of `snapshots/`.
    #[error("cannot move {from} to {to}")]
    Rename {
        /// Source path.
        from: PathBuf,
        /// Destination path.
        to: PathBuf,
        /// The cause (EXDEV: the upper dir is not on the store's file system).
        #[source]
        source: io::Error,
    },
    /// A superseded upper dir could not be removed.
    #[error("cannot remove {path}")]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The snapshot does not exist.
    #[error("snapshot {chain} not found in the store")]
    Missing {
        /// The chain id.
        chain: ChainId,
    },
    /// `layer.json` could not be read or parsed.
    #[error("cannot read snapshot record {path}")]
    ReadRecord {
        /// `layer.json`.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `layer.json` could not be written.
    #[error("cannot write a snapshot record")]
    WriteRecord(#[source] layout::Error),
}

impl Store {
    /// `snapshots/<chain-hex>`.
    fn snapshot_dir(&self, chain: &ChainId) -> PathBuf {
        self.root().join("snapshots").join(chain.0.hex())
    }

    /// The overlay-format diff dir of a snapshot (whether or not it exists).
    pub fn snapshot_diff_dir(&self, chain: &ChainId) -> PathBuf {
        self.snapshot_dir(chain).join("diff")
    }

    /// Whether the snapshot is complete in the store. Snapshots appear by
    /// one rename of a finished directory, so existence means complete.
    pub fn has_snapshot(&self, chain: &ChainId) -> bool {
        self.snapshot_dir(chain).join("layer.json").is_file()
    }

    /// The layer a snapshot holds.
    ///
    /// # Errors
    /// [`Error::Missing`] when there is no such snapshot.
    pub fn snapshot_layer(&self, chain: &ChainId) -> Result<Layer, Error> {
        let r = self.read_record(chain)?;
        Ok(Layer {
            diff_id: r.diff_id,
            chain_id: chain.clone(),
            size: r.size,
        })
    }

    fn read_record(&self, chain: &ChainId) -> Result<Record, Error> {
        let path = self.snapshot_dir(chain).join("layer.json");
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::Missing {
                    chain: chain.clone(),
                })
            }
            Err(source) => return Err(Error::ReadRecord { path, source }),
        };
        serde_json::from_slice(&bytes).map_err(|e| Error::ReadRecord {
            path,
            source: e.into(),
        })
    }

    fn write_record(&self, dir: &Path, record: &Record) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(record).expect("records serialise");
        self.write_atomic(&dir.join("layer.json"), &bytes)
            .map_err(Error::WriteRecord)
    }

    /// Remembers another blob of a layer. Concurrent writers may race and
    /// drop each other's variant; that only costs a re-export later.
    fn add_variant(&self, chain: &ChainId, variant: Descriptor) -> Result<Record, Error> {
        let mut record = self.read_record(chain)?;
        if !record.variants.iter().any(|v| v.digest == variant.digest) {
            record.variants.push(variant);
            self.write_record(&self.snapshot_dir(chain), &record)?;
        }
        Ok(record)
    }

    /// Moves a finished staging directory to `snapshots/<chain>`. If another
    /// process won the race, its snapshot is kept and ours dropped: both
    /// hold the same content by construction.
    fn install(&self, staging: tempfile::TempDir, chain: &ChainId) -> Result<(), Error> {
        let to = self.snapshot_dir(chain);
        match fs::rename(staging.path(), &to) {
            Ok(()) => {
                let mut staging = staging;
                staging.disable_cleanup(true);
                Ok(())
            }
            Err(_) if self.has_snapshot(chain) => Ok(()),
            Err(source) => Err(Error::Rename {
                from: staging.path().to_path_buf(),
                to,
                source,
            }),
        }
    }

    /// Turns an upper dir into a snapshot on top of `parent`: packs it
    /// deterministically (through sha256 only, nothing written) to get the
    /// diff id, then renames `upper` into `snapshots/`. `upper` is consumed:
    /// if the snapshot already exists, `upper` is deleted instead.
    /// `epoch` (SOURCE_DATE_EPOCH) clamps mtimes in the tar and is
    /// remembered so later exports reproduce the diff id.
    ///
    /// # Errors
    /// [`Error::Pack`] when `upper` cannot be read, [`Error::Rename`] when it
    /// is not on the store's file system.
    pub fn commit_snapshot(
        &self,
        upper: &Path,
        parent: Option<&ChainId>,
        epoch: Option<i64>,
    ) -> Result<Layer, Error> {
        let tarball = layer::pack(upper, epoch, io::sink()).map_err(|source| Error::Pack {
            path: upper.to_path_buf(),
            source,
        })?;
        let chain = ChainId::of(parent, &tarball.diff_id);
        let layer = Layer {
            diff_id: tarball.diff_id.clone(),
            chain_id: chain.clone(),
            size: tarball.size,
        };
        if self.has_snapshot(&chain) {
            fs::remove_dir_all(upper).map_err(|source| Error::Remove {
                path: upper.to_path_buf(),
                source,
            })?;
            return Ok(layer);
        }
        let staging = self.temp_dir("commit").map_err(Error::Stage)?;
        let diff = staging.path().join("diff");
        fs::rename(upper, &diff).map_err(|source| Error::Rename {
            from: upper.to_path_buf(),
            to: diff.clone(),
            source,
        })?;
        let record = Record {
            diff_id: tarball.diff_id,
            parent: parent.cloned(),
            size: tarball.size,
            packed: true,
            epoch,
            variants: Vec::new(),
        };
        self.write_record(staging.path(), &record)?;
        self.install(staging, &chain)?;
        Ok(layer)
    }

    /// Unpacks a stored layer blob (gzip, zstd or plain, by media type or
    /// magic) into a snapshot on top of `parent`, safely (see
    /// [`layer::unpack`]), verifying the diff id when one is expected. The
    /// blob is remembered as a variant, so a push sends it unchanged.
    /// Nothing is unpacked if the snapshot for `expected_diff_id` exists.
    ///
    /// # Errors
    /// [`Error::Blob`] when the blob is missing, [`Error::Unpack`] for a
    /// malformed or hostile tar, [`Error::DiffIdMismatch`].
    pub fn unpack_layer(
        &self,
        blob: &Digest,
        media_type: &str,
        parent: Option<&ChainId>,
        expected_diff_id: Option<&Digest>,
    ) -> Result<Layer, Error> {
        let blob_err = |source| Error::Blob {
            digest: blob.to_string(),
            source,
        };
        let file = self.open_blob(blob).map_err(blob_err)?;
        let size = file
            .metadata()
            .map_err(|source| {
                blob_err(blobs::Error::Read {
                    path: self.blob_path(blob),
                    source,
                })
            })?
            .len();
        let variant = |detected: Compression| Descriptor {
            // Keep the media type the blob came with unless it lies.
            media_type: if Compression::from_media_type(media_type) == Some(detected) {
                media_type.to_string()
            } else {
                detected.media_type().to_string()
            },
            digest: blob.clone(),
            size,
            platform: None,
            annotations: Default::default(),
        };
        if let Some(expected) = expected_diff_id {
            let chain = ChainId::of(parent, expected);
            if self.has_snapshot(&chain) {
                let mut head = [0u8; 4];
                let n = self
                    .open_blob(blob)
                    .and_then(|mut f| {
                        f.read(&mut head).map_err(|source| blobs::Error::Read {
                            path: self.blob_path(blob),
                            source,
                        })
                    })
                    .map_err(blob_err)?;
                let detected = Compression::from_media_type(media_type)
                    .filter(|c| *c != Compression::Uncompressed)
                    .unwrap_or_else(|| Compression::sniff(&head[..n]));
                self.add_variant(&chain, variant(detected))?;
                return self.snapshot_layer(&chain);
            }
        }
        let what = blob.to_string();
        let (detected, reader) =
            layer::decompress(file, Some(media_type)).map_err(|source| Error::Stream {
                op: "decompress",
                diff_id: what.clone(),
                source,
            })?;
        self.unpack_stream(
            reader,
            &what,
            parent,
            expected_diff_id,
            Some(variant(detected)),
        )
    }

    /// Unpacks an uncompressed tar stream into a new snapshot.
    fn unpack_stream(
        &self,
        reader: impl Read,
        what: &str,
        parent: Option<&ChainId>,
        expected_diff_id: Option<&Digest>,
        variant: Option<Descriptor>,
    ) -> Result<Layer, Error> {
        let staging = self.temp_dir("unpack").map_err(Error::Stage)?;
        let diff = staging.path().join("diff");
        fs::create_dir(&diff).map_err(|source| Error::Unpack {
            what: what.to_string(),
            source: layer::Error::Target {
                path: diff.clone(),
                source,
            },
        })?;
        let tarball = layer::unpack(reader, &diff).map_err(|source| Error::Unpack {
            what: what.to_string(),
            source,
        })?;
        if let Some(expected) = expected_diff_id {
            if *expected != tarball.diff_id {
                return Err(Error::DiffIdMismatch {
                    what: what.to_string(),
                    expected: expected.clone(),
                    actual: tarball.diff_id,
                });
            }
        }
        let chain = ChainId::of(parent, &tarball.diff_id);
        if self.has_snapshot(&chain) {
            if let Some(v) = variant {
                self.add_variant(&chain, v)?;
            }
            return self.snapshot_layer(&chain);
        }
        let record = Record {
            diff_id: tarball.diff_id.clone(),
            parent: parent.cloned(),
            size: tarball.size,
            packed: false,
            epoch: None,
            variants: variant.into_iter().collect(),
        };
        self.write_record(staging.path(), &record)?;
        self.install(staging, &chain)?;
        Ok(Layer {
            diff_id: tarball.diff_id,
            chain_id: chain,
            size: tarball.size,
        })
    }

    /// The layer as a blob with the given compression, for a push or an OCI
    /// export: an existing variant if there is one, else the tar is produced
    /// once (see [`Store::write_layer_tar`]), compressed into a blob and
    /// remembered. The descriptor keeps the media type the blob was pulled
    /// with (a Docker media type for Docker-pulled layers).
    ///
    /// # Errors
    /// [`Error::Missing`], [`Error::DiffIdMismatch`] when the snapshot no
    /// longer reproduces its diff id, or an I/O error naming the step.
    pub fn export_layer(
        &self,
        layer: &Layer,
        compression: Compression,
    ) -> Result<Descriptor, Error> {
        self.export_layer_at(layer, compression, None)
    }

    /// As [`Store::export_layer`], with a compression level for a blob that
    /// has to be made (an existing variant is reused whatever its level).
    ///
    /// # Errors
    /// As [`Store::export_layer`].
    pub fn export_layer_at(
        &self,
        layer: &Layer,
        compression: Compression,
        level: Option<i32>,
    ) -> Result<Descriptor, Error> {
        self.export_layer_mirrored(layer, compression, level, None)
    }

    /// As [`Store::export_layer_at`], also writing every byte of a blob it
    /// makes to `mirror` as it is made, so a push can upload the blob while
    /// it is compressed instead of after. A failing mirror is dropped (the
    /// caller learns of it from its own end) and the blob is still stored:
    /// the export never depends on the network. Nothing is mirrored when a
    /// stored variant is reused.
    ///
    /// # Errors
    /// As [`Store::export_layer`].
    pub fn export_layer_mirrored(
        &self,
        layer: &Layer,
        compression: Compression,
        level: Option<i32>,
        mirror: Option<&mut dyn Write>,
    ) -> Result<Descriptor, Error> {
        let record = self.read_record(&layer.chain_id)?;
        if let Some(v) = record.variants.iter().find(|v| {
            Compression::from_media_type(&v.media_type) == Some(compression)
                && self.has_blob(&v.digest)
        }) {
            return Ok(v.clone());
        }
        let diff_id = layer.diff_id.to_string();
        let stream_err = |source| Error::Stream {
            op: "compress",
            diff_id: diff_id.clone(),
            source,
        };
        let writer = self.blob_writer().map_err(|source| Error::Blob {
            digest: "(new)".into(),
            source,
        })?;
        let tee = Tee {
            blob: writer,
            mirror,
        };
        let mut encoder = Encoder::with_level(tee, compression, level).map_err(stream_err)?;
        self.write_record_tar(layer, &record, &mut encoder)?;
        let writer = encoder.finish().map_err(stream_err)?.blob;
        let (digest, size) = writer.commit(None).map_err(|source| Error::Blob {
            digest: "(new)".into(),
            source,
        })?;
        let descriptor = Descriptor {
            media_type: compression.media_type().to_string(),
            digest,
            size,
            platform: None,
            annotations: Default::default(),
        };
        self.add_variant(&layer.chain_id, descriptor.clone())?;
        Ok(descriptor)
    }

    /// A snapshot's diff id and parent as its `layer.json` records them.
    ///
    /// # Errors
    /// [`Error::Missing`] or [`Error::ReadRecord`].
    pub fn snapshot_record(&self, chain: &ChainId) -> Result<(Digest, Option<ChainId>), Error> {
        let r = self.read_record(chain)?;
        Ok((r.diff_id, r.parent))
    }

    /// Whether bake packed the layer itself (a built layer) rather than
    /// unpacking it from a blob, and the blobs known for it.
    ///
    /// # Errors
    /// [`Error::Missing`] when there is no such snapshot.
    pub fn layer_blobs(&self, chain: &ChainId) -> Result<(bool, Vec<Descriptor>), Error> {
        let record = self.read_record(chain)?;
        Ok((record.packed, record.variants))
    }

    /// Writes the layer's uncompressed tar (exactly the bytes its diff id
    /// names) to `out`: from a plain variant, by re-packing a layer bake
    /// packed itself, or by decompressing a pulled blob, in that order of
    /// preference. Returns the tar's length.
    ///
    /// # Errors
    /// [`Error::DiffIdMismatch`] after writing when the bytes do not match
    /// (the output is then unusable), or an I/O error.
    pub fn write_layer_tar(&self, layer: &Layer, out: &mut dyn Write) -> Result<u64, Error> {
        let record = self.read_record(&layer.chain_id)?;
        self.write_record_tar(layer, &record, out)
    }

    fn write_record_tar(
        &self,
        layer: &Layer,
        record: &Record,
        out: &mut dyn Write,
    ) -> Result<u64, Error> {
        let mut writer = DigestWriter::new(out);
        let available = |c: Compression| {
            record.variants.iter().find(|v| {
                Compression::from_media_type(&v.media_type) == Some(c) && self.has_blob(&v.digest)
            })
        };
        let plain = available(Compression::Uncompressed);
        let compressed = available(Compression::Gzip).or_else(|| available(Compression::Zstd));
        let what;
        // A layer bake packed re-packs faster than a blob decompresses; a
        // pulled layer's own bytes are the only sure way to its diff id.
        if let Some(v) = plain.or(if record.packed { None } else { compressed }) {
            what = format!("blob {}", v.digest);
            let file = self.open_blob(&v.digest).map_err(|source| Error::Blob {
                digest: v.digest.to_string(),
                source,
            })?;
            let stream_err = |source| Error::Stream {
                op: "decompress",
                diff_id: v.digest.to_string(),
                source,
            };
            let (_, mut reader) =
                layer::decompress(file, Some(&v.media_type)).map_err(stream_err)?;
            io::copy(&mut reader, &mut writer).map_err(stream_err)?;
        } else {
            let diff = self.snapshot_diff_dir(&layer.chain_id);
            what = format!("snapshot {}", diff.display());
            layer::pack(&diff, record.epoch, &mut writer).map_err(|source| Error::Pack {
                path: diff.clone(),
                source,
            })?;
        }
        let (actual, size, _) = writer.finish();
        if actual != record.diff_id {
            return Err(Error::DiffIdMismatch {
                what,
                expected: record.diff_id.clone(),
                actual,
            });
        }
        Ok(size)
    }
}

/// The blob being written, and a best-effort copy of its bytes elsewhere.
struct Tee<'a> {
    blob: blobs::BlobWriter,
    mirror: Option<&'a mut dyn Write>,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.blob.write(buf)?;
        if let Some(mirror) = self.mirror.as_mut() {
            if mirror.write_all(&buf[..n]).is_err() {
                self.mirror = None;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.blob.flush()
    }
}

#[cfg(test)]
mod tests;
