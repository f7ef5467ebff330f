//! OCI image layouts (image-spec `image-layout.md`): a directory, or a tar
//! of one (`oci-archive`), holding `oci-layout`, `index.json` and
//! `blobs/sha256/<hex>`. What `skopeo copy oci:…`, `umoci`, `buildx
//! --output type=oci` and `podman save --format oci-archive` read and write.
//!
//! Each tag becomes one `index.json` entry annotated with
//! `org.opencontainers.image.ref.name` (the tag alone, as skopeo and umoci
//! look it up) and `io.containerd.image.name` (the full reference, as
//! buildx and containerd write it), so loading the layout back restores the
//! names. Blobs are named by their digest, so a loader verifies each one as
//! it stores it, in any order the tar has them.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::blobs;
use crate::export::{self, ExportOptions};
use crate::layout::Store;
use crate::oci::{canonical_json, media_types, Descriptor, Digest, ImageConfig, Index, Manifest};
use crate::reference::Reference;
use crate::registry::{select_manifest, PlatformSpec};
use crate::snapshots::{self, ChainId};

/// The annotation skopeo, umoci and the image-spec use for a tag.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd and buildx use for the full image name.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// `index.json` and manifests are small; anything bigger is not a layout.
const MAX_JSON: u64 = 16 << 20;
/// The `oci-layout` file's content.
const LAYOUT_VERSION: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Why an OCI layout could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image could not be exported from the store.
    #[error("cannot export image")]
    Export(#[source] Box<export::Error>),
    /// Writing the layout failed.
    #[error("cannot write {entry} of the OCI layout")]
    Write {
        /// The file within the layout.
        entry: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Reading the layout failed.
    #[error("cannot read {entry} of the OCI layout")]
    Read {
        /// The file within the layout.
        entry: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A blob could not be stored (its content does not match its name?).
    #[error("cannot store {entry} of the OCI layout")]
    Blob {
        /// The file within the layout.
        entry: String,
        /// The cause.
        #[source]
        source: blobs::Error,
    },
    /// The input is not an OCI layout, or a document in it is malformed.
    #[error("not a valid OCI layout: {0}")]
    Invalid(String),
    /// A blob named by the index or a manifest is not in the layout.
    #[error("the OCI layout lacks blob {0}")]
    Missing(Digest),
    /// An index lists no manifest for the platform.
    #[error("OCI layout: {0}")]
    Platform(#[source] crate::registry::Error),
    /// A layer could not be unpacked.
    #[error("layer {digest}")]
    Layer {
        /// The layer blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: Box<snapshots::Error>,
    },
    /// The loaded image could not be tagged.
    #[error("cannot tag {reference}")]
    Tag {
        /// The reference.
        reference: String,
        /// The cause.
        #[source]
        source: Box<crate::images::Error>,
    },
}

/// Where an OCI layout goes.
pub enum OciTarget<'a> {
    /// A directory (created if missing; an existing layout is added to).
    Dir(&'a Path),
    /// A tar stream (`oci-archive`).
    Tar(&'a mut dyn Write),
}

/// Writes files of a layout into a directory or a tar.
trait Sink {
    fn exists(&self, path: &str) -> bool;
    fn put(&mut self, path: &str, size: u64, content: &mut dyn Read) -> Result<(), Error>;
}

struct DirSink(PathBuf);

impl Sink for DirSink {
    fn exists(&self, path: &str) -> bool {
        self.0.join(path).is_file()
    }

    fn put(&mut self, path: &str, _size: u64, content: &mut dyn Read) -> Result<(), Error> {
        let write_err = |source| Error::Write {
            entry: path.to_string(),
            source,
        };
        let target = self.0.join(path);
        let dir = target.parent().expect("layout paths have a parent");
        fs::create_dir_all(dir).map_err(write_err)?;
        // Temp + rename: a reader of the layout never sees half a file.
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(write_err)?;
        io::copy(content, &mut tmp).map_err(write_err)?;
        tmp.as_file().sync_all().map_err(write_err)?;
        tmp.persist(&target).map_err(|e| write_err(e.error))?;
        Ok(())
    }
}

struct TarSink<'a> {
    builder: tar::Builder<&'a mut dyn Write>,
    written: std::collections::BTreeSet<String>,
}

impl Sink for TarSink<'_> {
    fn exists(&self, path: &str) -> bool {
        self.written.contains(path)
    }

    fn put(&mut self, path: &str, size: u64, content: &mut dyn Read) -> Result<(), Error> {
        let write_err = |source| Error::Write {
            entry: path.to_string(),
            source,
        };
        let mut h = tar::Header::new_gnu();
        h.set_path(path).map_err(write_err)?;
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        self.builder.append(&h, content).map_err(write_err)?;
        self.written.insert(path.to_string());
        Ok(())
    }
}

fn blob_entry(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

impl Store {
    /// Writes the images as an OCI layout, one `index.json` entry per tag
    /// (one unnamed entry for an image saved by id), layers compressed as
    /// `export` says (see [`Store::image_manifest`]).
    ///
    /// # Errors
    /// [`Error::Export`] when an image cannot be exported, [`Error::Write`]
    /// when the target fails.
    pub fn save_oci_layout(
        &self,
        images: &[(Digest, Vec<Reference>)],
        export: &ExportOptions,
        target: OciTarget<'_>,
    ) -> Result<(), Error> {
        let mut entries = Vec::new();
        let mut blobs: Vec<Descriptor> = Vec::new();
        for (id, refs) in images {
            let m = self
                .image_manifest(id, export, true)
                .map_err(|e| Error::Export(Box::new(e)))?;
            for d in std::iter::once(&m.manifest.config).chain(&m.manifest.layers) {
                blobs.push(d.clone());
            }
            let manifest = Descriptor {
                media_type: m.media_type.clone(),
                digest: m.digest.clone(),
                size: m.bytes.len() as u64,
                platform: None,
                annotations: BTreeMap::new(),
            };
            blobs.push(manifest.clone());
            let tagged: Vec<&Reference> = refs.iter().filter(|r| r.tag.is_some()).collect();
            if tagged.is_empty() {
                entries.push(manifest.clone());
            }
            for r in tagged {
                let mut entry = manifest.clone();
                let tag = r.tag.clone().expect("filtered");
                entry.annotations.insert(REF_NAME.into(), tag);
                entry
                    .annotations
                    .insert(CONTAINERD_NAME.into(), r.to_string());
                entries.push(entry);
            }
        }
        match target {
            OciTarget::Dir(dir) => {
                let mut sink = DirSink(dir.to_path_buf());
                // Adding to an existing layout keeps its other entries.
                let old = match fs::read(dir.join("index.json")) {
                    Ok(bytes) => {
                        serde_json::from_slice::<Index>(&bytes)
                            .map_err(|e| Error::Invalid(format!("index.json: {e}")))?
                            .manifests
                    }
                    Err(_) => Vec::new(),
                };
                let names: Vec<_> = entries
                    .iter()
                    .map(|e| e.annotations.get(REF_NAME))
                    .collect();
                let mut all: Vec<Descriptor> = old
                    .into_iter()
                    .filter(|e| {
                        !e.annotations.contains_key(REF_NAME)
                            || !names.contains(&e.annotations.get(REF_NAME))
                    })
                    .collect();
                all.extend(entries);
                self.write_layout(&mut sink, &blobs, all)
            }
            OciTarget::Tar(out) => {
                let mut sink = TarSink {
                    builder: tar::Builder::new(out),
                    written: Default::default(),
                };
                self.write_layout(&mut sink, &blobs, entries)?;
                sink.builder.finish().map_err(|source| Error::Write {
                    entry: "(end of archive)".into(),
                    source,
                })
            }
        }
    }

    /// Writes an OCI layout directory (created if missing) holding `blobs`
    /// from the store, those it lacks, and exactly `entries` in an
    /// `index.json` replaced in one rename; files are written to a temp
    /// name, fsynced and renamed, so a reader sees the old layout or the
    /// new one. The build cache's local exporter writes its layout here.
    ///
    /// # Errors
    /// [`Error::Blob`] when a blob is missing from the store,
    /// [`Error::Write`] naming the file that could not be written.
    pub(crate) fn write_layout_dir(
        &self,
        dir: &Path,
        blobs: &[Descriptor],
        entries: Vec<Descriptor>,
    ) -> Result<(), Error> {
        self.write_layout(&mut DirSink(dir.to_path_buf()), blobs, entries)
    }

    fn write_layout(
        &self,
        sink: &mut dyn Sink,
        blobs: &[Descriptor],
        entries: Vec<Descriptor>,
    ) -> Result<(), Error> {
        sink.put(
            "oci-layout",
            LAYOUT_VERSION.len() as u64,
            &mut &LAYOUT_VERSION[..],
        )?;
        for d in blobs {
            let entry = blob_entry(&d.digest);
            if sink.exists(&entry) {
                continue;
            }
            let mut file = self.open_blob(&d.digest).map_err(|source| Error::Blob {
                entry: entry.clone(),
                source,
            })?;
            sink.put(&entry, d.size, &mut file)?;
        }
        let index = Index {
            schema_version: 2,
            media_type: Some(media_types::OCI_INDEX.to_string()),
            manifests: entries,
            annotations: BTreeMap::new(),
        };
        let bytes = canonical_json(&index).expect("indexes serialise");
        sink.put("index.json", bytes.len() as u64, &mut &bytes[..])
    }

    /// Loads every image an OCI layout directory's `index.json` lists (for
    /// an index entry, the manifest for `platform`): blobs are copied into
    /// the store and verified, layers unpacked, names restored from the
    /// annotations. Returns each image id with its names.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `dir` is not a layout, [`Error::Missing`],
    /// [`Error::Blob`] for a blob whose content does not match its name,
    /// [`Error::Layer`] for a hostile or mismatching layer.
    pub fn load_oci_dir(
        &self,
        dir: &Path,
        platform: &PlatformSpec,
    ) -> Result<Vec<(Digest, Vec<Reference>)>, Error> {
        let index = read_small(&dir.join("index.json"), "index.json")?;
        if !dir.join("oci-layout").is_file() {
            return Err(Error::Invalid(format!(
                "{} has no oci-layout file",
                dir.display()
            )));
        }
        let fetch = |d: &Digest| -> Result<(), Error> {
            if self.has_blob(d) {
                return Ok(());
            }
            let entry = blob_entry(d);
            let file = File::open(dir.join(&entry)).map_err(|_| Error::Missing(d.clone()))?;
            self.put_blob(file, Some(d))
                .map_err(|source| Error::Blob { entry, source })?;
            Ok(())
        };
        self.load_index(&index, platform, &fetch)
    }

    /// Loads an OCI layout tar (`oci-archive`, or a docker ≥ 25 `docker
    /// save` tar, which is one too), reading the stream once: every
    /// `blobs/sha256/<hex>` entry is stored as it streams past, verified
    /// against its name, and `index.json` is read whenever it comes.
    ///
    /// # Errors
    /// As [`Store::load_oci_dir`].
    pub fn load_oci_archive(
        &self,
        input: impl Read,
        platform: &PlatformSpec,
    ) -> Result<Vec<(Digest, Vec<Reference>)>, Error> {
        let mut archive = tar::Archive::new(input);
        let mut index = None;
        let read_err = |entry: &str| {
            let entry = entry.to_string();
            move |source| Error::Read { entry, source }
        };
        for entry in archive.entries().map_err(read_err("(start)"))? {
            let mut entry = entry.map_err(read_err("(next entry)"))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = name.trim_start_matches("./").to_string();
            if name == "index.json" {
                let mut bytes = Vec::new();
                (&mut entry)
                    .take(MAX_JSON)
                    .read_to_end(&mut bytes)
                    .map_err(read_err(&name))?;
                index = Some(bytes);
            } else if let Some(hex) = name.strip_prefix("blobs/sha256/") {
                let d: Digest = format!("sha256:{hex}")
                    .parse()
                    .map_err(|e| Error::Invalid(format!("{name}: {e}")))?;
                self.put_blob(&mut entry, Some(&d))
                    .map_err(|source| Error::Blob {
                        entry: name,
                        source,
                    })?;
            }
        }
        let index = index.ok_or_else(|| Error::Invalid("no index.json in the archive".into()))?;
        let fetch = |d: &Digest| {
            if self.has_blob(d) {
                Ok(())
            } else {
                Err(Error::Missing(d.clone()))
            }
        };
        self.load_index(&index, platform, &fetch)
    }

    fn load_index(
        &self,
        index: &[u8],
        platform: &PlatformSpec,
        fetch: &dyn Fn(&Digest) -> Result<(), Error>,
    ) -> Result<Vec<(Digest, Vec<Reference>)>, Error> {
        let index: Index = serde_json::from_slice(index)
            .map_err(|e| Error::Invalid(format!("index.json: {e}")))?;
        let mut loaded: Vec<(Digest, Vec<Reference>)> = Vec::new();
        for entry in &index.manifests {
            let Some(id) = self.load_entry(entry, platform, fetch, 0)? else {
                continue;
            };
            let name = entry_name(entry);
            let at = match loaded.iter().position(|(i, _)| *i == id) {
                Some(at) => at,
                None => {
                    loaded.push((id.clone(), Vec::new()));
                    loaded.len() - 1
                }
            };
            if let Some((reference, manifest)) = name {
                self.tag(&reference, &id).map_err(|source| Error::Tag {
                    reference: reference.to_string(),
                    source: Box::new(source),
                })?;
                self.remember_manifest(&id, &reference, &manifest);
                loaded[at].1.push(reference);
            }
        }
        Ok(loaded)
    }

    /// Loads the image one index entry names; `None` for entries that are
    /// neither a manifest nor an index (attestations, artifacts).
    fn load_entry(
        &self,
        entry: &Descriptor,
        platform: &PlatformSpec,
        fetch: &dyn Fn(&Digest) -> Result<(), Error>,
        depth: usize,
    ) -> Result<Option<Digest>, Error> {
        let mt = entry.media_type.as_str();
        if mt == media_types::OCI_INDEX || mt == media_types::DOCKER_MANIFEST_LIST {
            if depth > 2 {
                return Err(Error::Invalid("indexes nested too deep".into()));
            }
            let index: Index = self.json_blob(&entry.digest, fetch)?;
            let chosen = select_manifest(&index, platform, &entry.digest.to_string())
                .map_err(Error::Platform)?
                .clone();
            return self.load_entry(&chosen, platform, fetch, depth + 1);
        }
        if mt != media_types::OCI_MANIFEST && mt != media_types::DOCKER_MANIFEST {
            return Ok(None);
        }
        let manifest: Manifest = self.json_blob(&entry.digest, fetch)?;
        let config: ImageConfig = self.json_blob(&manifest.config.digest, fetch)?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != manifest.layers.len() {
            return Err(Error::Invalid(format!(
                "manifest {} has {} layers but its config {} diff ids",
                entry.digest,
                manifest.layers.len(),
                diff_ids.len()
            )));
        }
        let mut parent: Option<ChainId> = None;
        for (layer, diff_id) in manifest.layers.iter().zip(diff_ids) {
            let chain = ChainId::of(parent.as_ref(), diff_id);
            if !self.has_snapshot(&chain) || !self.has_blob(&layer.digest) {
                fetch(&layer.digest)?;
                self.unpack_layer(
                    &layer.digest,
                    &layer.media_type,
                    parent.as_ref(),
                    Some(diff_id),
                )
                .map_err(|source| Error::Layer {
                    digest: layer.digest.clone(),
                    source: Box::new(source),
                })?;
            }
            parent = Some(chain);
        }
        Ok(Some(manifest.config.digest))
    }

    /// A JSON blob of the layout, brought into the store and parsed.
    fn json_blob<T: serde::de::DeserializeOwned>(
        &self,
        d: &Digest,
        fetch: &dyn Fn(&Digest) -> Result<(), Error>,
    ) -> Result<T, Error> {
        fetch(d)?;
        let bytes = self.read_blob(d).map_err(|source| Error::Blob {
            entry: blob_entry(d),
            source,
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Invalid(format!("{}: {e}", blob_entry(d))))
    }
}

/// The name an index entry gives its image: the full name containerd and
/// buildx write, else a `ref.name` that is itself a reference (`app:1`,
/// `reg/app:1`); a bare tag (`latest`, as skopeo writes) names nothing.
fn entry_name(entry: &Descriptor) -> Option<(Reference, Digest)> {
    let full = entry
        .annotations
        .get(CONTAINERD_NAME)
        .cloned()
        .or_else(|| {
            entry
                .annotations
                .get(REF_NAME)
                .filter(|n| n.contains(':') || n.contains('/'))
                .cloned()
        })?;
    let reference: Reference = full.parse().ok()?;
    reference.tag.as_ref()?;
    Some((reference, entry.digest.clone()))
}

fn read_small(path: &Path, entry: &str) -> Result<Vec<u8>, Error> {
    let file = File::open(path).map_err(|_| {
        Error::Invalid(format!(
            "{} has no {entry}",
            path.parent().unwrap_or(path).display()
        ))
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_JSON)
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Read {
            entry: entry.to_string(),
            source,
        })?;
    Ok(bytes)
}

/// What kind of image archive a tar is, from the names of its entries
/// (`manifest.json` → docker-archive, else `index.json` → OCI layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveKind {
    /// `docker save` / `bake save` (also docker ≥ 25, which writes both).
    Docker,
    /// An OCI layout tar.
    Oci,
}

/// Looks through a tar's headers (seeking past contents) for the files that
/// tell the archive kinds apart.
///
/// # Errors
/// [`Error::Read`] when the file is not a readable tar, [`Error::Invalid`]
/// when it has neither `manifest.json` nor `index.json`.
pub fn archive_kind(file: &mut File) -> Result<ArchiveKind, Error> {
    use std::io::{Seek, SeekFrom};
    let read_err = |source| Error::Read {
        entry: "(archive headers)".into(),
        source,
    };
    let mut kind = None;
    {
        let mut archive = tar::Archive::new(&mut *file);
        for entry in archive.entries_with_seek().map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            match name.trim_start_matches("./") {
                "manifest.json" => {
                    kind = Some(ArchiveKind::Docker);
                    break;
                }
                "index.json" => kind = Some(ArchiveKind::Oci),
                _ => {}
            }
        }
    }
    file.seek(SeekFrom::Start(0)).map_err(read_err)?;
    kind.ok_or_else(|| Error::Invalid("neither manifest.json nor index.json in the tar".into()))
}

/// Guesses the kind of a tar *stream* from its first entry's name: OCI
/// layout tars start with `blobs/`, `oci-layout` or `index.json`; anything
/// else is taken for a docker-archive.
pub fn stream_kind(first_header: &[u8]) -> ArchiveKind {
    let end = first_header[..100.min(first_header.len())]
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(100.min(first_header.len()));
    let name = String::from_utf8_lossy(&first_header[..end]);
    let name = name.trim_start_matches("./");
    if name.starts_with("blobs") || name == "oci-layout" || name == "index.json" {
        ArchiveKind::Oci
    } else {
        ArchiveKind::Docker
    }
}

#[cfg(test)]
mod tests;
