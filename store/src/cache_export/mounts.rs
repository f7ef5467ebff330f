//! bake's extension to the cache format: the contents of
//! `RUN --mount=type=cache` directories as extra layers, keyed by mount id
//! (moby/buildkit#1512), so an ephemeral CI runner keeps its package
//! caches. A directory is restored only where the store has none for the
//! id: a local cache is always newer than an imported one.

use std::path::{Path, PathBuf};

use super::{Error, Imported, ImportedMount};
use crate::blobs::DigestReader;
use crate::layer::{self, Compression, Encoder};
use crate::layout::Store;
use crate::oci::{Descriptor, Digest};

/// A cache-mount directory to export.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheMountDir {
    /// The mount's `id`.
    pub id: String,
    /// Its directory in the store.
    pub dir: PathBuf,
}

impl Store {
    /// Packs a cache-mount directory into a gzip blob; returns its
    /// descriptor and diff id.
    pub(super) fn pack_cache_mount(
        &self,
        m: &CacheMountDir,
    ) -> Result<(Descriptor, Digest), Error> {
        let pack_err = |source| Error::PackMount {
            id: m.id.clone(),
            path: m.dir.clone(),
            source,
        };
        let io_err = |source: std::io::Error| Error::PackMount {
            id: m.id.clone(),
            path: m.dir.clone(),
            source: layer::Error::Write {
                entry: "(compressed stream)".into(),
                source,
            },
        };
        let new_blob = |source| Error::Blob {
            digest: format!("(cache mount {})", m.id),
            source,
        };
        let writer = self.blob_writer().map_err(new_blob)?;
        let mut encoder = Encoder::new(writer, Compression::Gzip).map_err(io_err)?;
        let tarball = layer::pack(&m.dir, None, &mut encoder).map_err(pack_err)?;
        let writer = encoder.finish().map_err(io_err)?;
        let (digest, size) = writer.commit(None).map_err(new_blob)?;
        Ok((
            Descriptor {
                media_type: Compression::Gzip.media_type().to_string(),
                digest,
                size,
                platform: None,
                annotations: Default::default(),
            },
            tarball.diff_id,
        ))
    }
}

impl Imported {
    /// Restores every cache mount this cache holds that the build wants
    /// (`dir_of(id)` is `Some(dir)`) and whose directory does not exist yet;
    /// returns the ids restored. The tar is unpacked beneath a staging
    /// directory next to the target (with the same safe unpacker as
    /// layers), given the recorded owner and mode, and renamed into place.
    ///
    /// # Errors
    /// [`Error::DigestMismatch`] for a blob whose bytes are not the ones
    /// its digest names (nothing of it is restored), [`Error::UnpackMount`]
    /// for a malformed tar or unwritable directory.
    pub fn restore_mounts(
        &self,
        dir_of: &dyn Fn(&str) -> Option<PathBuf>,
    ) -> Result<Vec<String>, Error> {
        let mut restored = Vec::new();
        for m in self.cache_mounts() {
            let Some(dir) = dir_of(&m.id) else { continue };
            if dir.exists() {
                continue;
            }
            self.restore_mount(&m, &dir)?;
            restored.push(m.id);
        }
        Ok(restored)
    }

    fn restore_mount(&self, m: &ImportedMount, dir: &Path) -> Result<(), Error> {
        let blob = &m.layer.blob;
        let unpack_err = |source| Error::UnpackMount {
            id: m.id.clone(),
            path: dir.to_path_buf(),
            source,
        };
        let parent = dir.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(parent).map_err(Error::io("mkdir", parent))?;
        let staging = tempfile::Builder::new()
            .prefix(".import-")
            .tempdir_in(parent)
            .map_err(Error::io("mkdir", parent))?;
        let staged = staging.path().join("dir");
        std::fs::create_dir(&staged).map_err(Error::io("mkdir", &staged))?;
        // A local cache directory is not verified by anyone else (a
        // registry's blob reader is): hash the blob while it is unpacked.
        let mut raw = DigestReader::new(self.open_blob(&blob.digest)?);
        let unpacked = layer::decompress(&mut raw, Some(&blob.media_type))
            .map_err(|source| layer::Error::Write {
                entry: "(compressed stream)".into(),
                source,
            })
            .and_then(|(_, reader)| layer::unpack(reader, &staged));
        // The tar ends before the compressed stream does (its trailer, a
        // truncated or padded blob): the digest covers every byte. A blob
        // that does not match is reported as that, not as the malformed
        // tar it probably also is; the staged files are dropped either way.
        let blob_name = format!("{} of {}", blob.digest, self.name());
        std::io::copy(&mut raw, &mut std::io::sink()).map_err(|source| Error::Io {
            op: "read cache blob",
            path: PathBuf::from(&blob_name),
            source,
        })?;
        let (actual, _) = raw.finish();
        if actual != blob.digest {
            return Err(Error::DigestMismatch {
                blob: blob.digest.clone(),
                source_name: self.name().to_string(),
                actual,
            });
        }
        unpacked.map_err(unpack_err)?;
        if let Some((uid, gid)) = m.owner {
            std::os::unix::fs::chown(&staged, Some(uid), Some(gid))
                .map_err(Error::io("chown", &staged))?;
        }
        if let Some(mode) = m.mode {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))
                .map_err(Error::io("chmod", &staged))?;
        }
        // Another build may have restored or created it meanwhile: keep
        // that one.
        let _ = std::fs::rename(&staged, dir);
        Ok(())
    }
}
