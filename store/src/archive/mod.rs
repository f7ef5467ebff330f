//! docker-archive: the tar `docker save` writes and `docker load` /
//! `podman load` read — `manifest.json`
//! (`[{"Config": "<hex>.json", "RepoTags": [...], "Layers": ["<hex>/layer.tar", ...]}]`),
//! the config files, one uncompressed tar per layer and the legacy
//! `repositories` file.
//!
//! Saving writes `manifest.json` first so that bake's own loader can apply
//! layers as they stream past; docker itself writes it last, so loading
//! spools every entry seen before `manifest.json` into an uncommitted blob
//! and keeps only what the manifest references. Layer tars are kept as
//! uncompressed blobs: they are the exact bytes the diff ids name, so a
//! later push or save reproduces them even when bake's packer would not.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::blobs::{self, BlobWriter};
use crate::images;
use crate::layout::Store;
use crate::oci::{media_types, Digest};
use crate::reference::{self, Reference};
use crate::snapshots::{self, ChainId, Layer};

pub mod oci;

/// `manifest.json` is tiny; anything bigger is not a docker archive.
const MAX_MANIFEST: u64 = 16 << 20;

/// Why an archive could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image to save could not be read from the store.
    #[error("cannot save image {id}")]
    Image {
        /// The image id.
        id: Digest,
        /// The cause.
        #[source]
        source: Box<images::Error>,
    },
    /// A layer could not be written into the archive or applied from it.
    #[error("layer {diff_id}")]
    Layer {
        /// The layer's diff id.
        diff_id: Digest,
        /// The cause.
        #[source]
        source: snapshots::Error,
    },
    /// A layer's tar is not as long as its record says.
    #[error("layer {diff_id} produced {actual} bytes, expected {expected}")]
    LayerSize {
        /// The layer's diff id.
        diff_id: Digest,
        /// Its recorded size.
        expected: u64,
        /// What was written.
        actual: u64,
    },
    /// Writing the archive failed.
    #[error("cannot write archive entry `{entry}`")]
    Write {
        /// The entry being written.
        entry: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Reading the archive failed.
    #[error("cannot read archive entry `{entry}`")]
    Read {
        /// The entry being read (empty before the first).
        entry: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An entry could not be stored as a blob.
    #[error("cannot store archive entry `{entry}`")]
    Blob {
        /// The entry.
        entry: String,
        /// The cause.
        #[source]
        source: blobs::Error,
    },
    /// `manifest.json` is missing or malformed.
    #[error("not a docker archive: {0}")]
    Manifest(String),
    /// `manifest.json` names a file the archive does not contain.
    #[error("docker archive is missing `{entry}` named by manifest.json")]
    Missing {
        /// The file.
        entry: String,
    },
    /// A config lists a different number of layers than the manifest.
    #[error("{config}: config has {diff_ids} diff ids but manifest.json lists {layers} layers")]
    LayerCount {
        /// The config file.
        config: String,
        /// Layers in the config.
        diff_ids: usize,
        /// Layers in the manifest.
        layers: usize,
    },
    /// A `RepoTags` entry is not a valid reference.
    #[error("bad RepoTags entry `{tag}`")]
    Tag {
        /// The entry.
        tag: String,
        /// The cause.
        #[source]
        source: reference::Error,
    },
    /// Reading a loaded config or applying a tag failed.
    #[error("cannot register loaded image {config}")]
    Register {
        /// The config file.
        config: String,
        /// The cause.
        #[source]
        source: Box<images::Error>,
    },
}

/// One element of `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn write_err(entry: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Write {
        entry: entry.to_string(),
        source,
    }
}

fn header(path: &str, size: u64, kind: tar::EntryType) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_gnu();
    h.set_path(path)?;
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    Ok(h)
}

fn append<W: Write>(b: &mut tar::Builder<W>, path: &str, data: &[u8]) -> Result<(), Error> {
    let h = header(path, data.len() as u64, tar::EntryType::Regular).map_err(write_err(path))?;
    b.append(&h, data).map_err(write_err(path))
}

impl Store {
    /// Writes the images, with the given tags, as a docker-archive tar.
    /// Layers shared between images are written once; layer tars are
    /// streamed (see [`Store::write_layer_tar`]), never held in memory.
    ///
    /// # Errors
    /// [`Error::Image`] for an image that is missing or not fully unpacked,
    /// [`Error::Layer`] when a layer no longer matches its diff id,
    /// [`Error::Write`] when `out` fails.
    pub fn save_docker_archive(
        &self,
        images: &[(Digest, Vec<Reference>)],
        out: impl Write,
    ) -> Result<(), Error> {
        let mut manifest = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut configs = BTreeMap::new();
        let mut layers: Vec<Layer> = Vec::new();
        for (id, refs) in images {
            let image_err = |source| Error::Image {
                id: id.clone(),
                source: Box::new(source),
            };
            let image_layers = self.image_layers(id).map_err(image_err)?;
            let config = self.read_blob(id).map_err(|source| Error::Image {
                id: id.clone(),
                source: Box::new(images::Error::Blob {
                    id: id.to_string(),
                    source,
                }),
            })?;
            let mut repo_tags = Vec::new();
            for r in refs {
                // Docker archives carry tags only; a digest pins a manifest
                // that the archive does not contain.
                let Some(tag) = &r.tag else { continue };
                let name = r.familiar_name();
                repo_tags.push(format!("{name}:{tag}"));
                if let Some(top) = image_layers.last() {
                    repositories
                        .entry(name)
                        .or_default()
                        .insert(tag.clone(), top.diff_id.hex().to_string());
                }
            }
            manifest.push(Entry {
                config: format!("{}.json", id.hex()),
                repo_tags: Some(repo_tags),
                layers: image_layers
                    .iter()
                    .map(|l| format!("{}/layer.tar", l.diff_id.hex()))
                    .collect(),
            });
            configs.insert(id.hex().to_string(), config);
            for l in image_layers {
                if !layers.iter().any(|x| x.diff_id == l.diff_id) {
                    layers.push(l);
                }
            }
        }

        let mut b = tar::Builder::new(out);
        let json = serde_json::to_vec(&manifest).expect("manifests serialise");
        append(&mut b, "manifest.json", &json)?;
        let json = serde_json::to_vec(&repositories).expect("repositories serialise");
        append(&mut b, "repositories", &json)?;
        for (hex, config) in &configs {
            append(&mut b, &format!("{hex}.json"), config)?;
        }
        for layer in &layers {
            let dir = format!("{}/", layer.diff_id.hex());
            let h = header(&dir, 0, tar::EntryType::Directory).map_err(write_err(&dir))?;
            b.append(&h, io::empty()).map_err(write_err(&dir))?;
            let path = format!("{}/layer.tar", layer.diff_id.hex());
            // The size must be in the header before the bytes: the record
            // knows it, and write_layer_tar verifies the bytes match.
            let h = header(&path, layer.size, tar::EntryType::Regular).map_err(write_err(&path))?;
            let w = b.get_mut();
            w.write_all(h.as_bytes()).map_err(write_err(&path))?;
            let written = self
                .write_layer_tar(layer, &mut *w)
                .map_err(|source| Error::Layer {
                    diff_id: layer.diff_id.clone(),
                    source,
                })?;
            if written != layer.size {
                return Err(Error::LayerSize {
                    diff_id: layer.diff_id.clone(),
                    expected: layer.size,
                    actual: written,
                });
            }
            let pad = (512 - written % 512) % 512;
            w.write_all(&vec![0; pad as usize])
                .map_err(write_err(&path))?;
        }
        b.into_inner().map_err(write_err("(end of archive)"))?;
        Ok(())
    }

    /// Loads a docker-archive tar (from `docker save`, `podman save` or
    /// bake), reading the stream once: configs and layer tars become blobs,
    /// each layer is unpacked (safely) into a snapshot and checked against
    /// its config's diff id, and `RepoTags` are tagged. Returns each image
    /// id with the references it was tagged as.
    ///
    /// # Errors
    /// [`Error::Manifest`] for a tar without a valid `manifest.json`,
    /// [`Error::Missing`] for a file it names that is absent,
    /// [`Error::Layer`] for a hostile or mismatching layer.
    pub fn load_docker_archive(
        &self,
        input: impl Read,
    ) -> Result<Vec<(Digest, Vec<Reference>)>, Error> {
        let mut archive = tar::Archive::new(input);
        let mut manifest: Option<Vec<Entry>> = None;
        // Entries seen before manifest.json, not yet known to be needed.
        let mut pending: HashMap<String, BlobWriter> = HashMap::new();
        let mut stored: HashMap<String, Digest> = HashMap::new();
        // Legacy archives link duplicate layer.tar files to the first copy.
        let mut aliases: HashMap<String, String> = HashMap::new();
        let mut last = String::new();
        let entries = archive.entries().map_err(|source| Error::Read {
            entry: last.clone(),
            source,
        })?;
        for entry in entries {
            let mut entry = entry.map_err(|source| Error::Read {
                entry: last.clone(),
                source,
            })?;
            let name = normalise(&String::from_utf8_lossy(&entry.path_bytes()));
            last.clone_from(&name);
            let kind = entry.header().entry_type();
            if kind.is_symlink() || kind.is_hard_link() {
                if let Some(target) = entry.link_name_bytes() {
                    let target = String::from_utf8_lossy(&target).into_owned();
                    let target = if kind.is_symlink() {
                        let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                        normalise(&format!("{dir}/{target}"))
                    } else {
                        normalise(&target)
                    };
                    aliases.insert(name, target);
                }
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let read_err = |source| Error::Read {
                entry: name.clone(),
                source,
            };
            match name.as_str() {
                "manifest.json" => {
                    let mut bytes = Vec::new();
                    (&mut entry)
                        .take(MAX_MANIFEST)
                        .read_to_end(&mut bytes)
                        .map_err(read_err)?;
                    let m: Vec<Entry> = serde_json::from_slice(&bytes)
                        .map_err(|e| Error::Manifest(format!("manifest.json: {e}")))?;
                    for (path, writer) in pending.drain() {
                        if referenced(&m, &aliases, &path) {
                            let (d, _) = writer.commit(None).map_err(|source| Error::Blob {
                                entry: path.clone(),
                                source,
                            })?;
                            stored.insert(path, d);
                        }
                    }
                    manifest = Some(m);
                }
                "repositories" => {}
                _ => match &manifest {
                    Some(m) if referenced(m, &aliases, &name) => {
                        let (d, _) =
                            self.put_blob(&mut entry, None)
                                .map_err(|source| Error::Blob {
                                    entry: name.clone(),
                                    source,
                                })?;
                        stored.insert(name, d);
                    }
                    Some(_) => {}
                    None => {
                        let blob_err = |source| Error::Blob {
                            entry: name.clone(),
                            source,
                        };
                        let mut w = self.blob_writer().map_err(blob_err)?;
                        io::copy(&mut entry, &mut w).map_err(read_err)?;
                        pending.insert(name, w);
                    }
                },
            }
        }
        drop(pending);
        let manifest =
            manifest.ok_or_else(|| Error::Manifest("no manifest.json in the archive".into()))?;
        let lookup = |path: &str| -> Result<Digest, Error> {
            let path = resolve_alias(&aliases, path);
            stored
                .get(&path)
                .cloned()
                .ok_or(Error::Missing { entry: path })
        };
        let mut loaded = Vec::new();
        for entry in &manifest {
            let id = lookup(&entry.config)?;
            let register_err = |source| Error::Register {
                config: entry.config.clone(),
                source: Box::new(source),
            };
            let config = self.image_config(&id).map_err(register_err)?;
            let diff_ids = &config.rootfs.diff_ids;
            if diff_ids.len() != entry.layers.len() {
                return Err(Error::LayerCount {
                    config: entry.config.clone(),
                    diff_ids: diff_ids.len(),
                    layers: entry.layers.len(),
                });
            }
            let mut parent: Option<ChainId> = None;
            for (path, diff_id) in entry.layers.iter().zip(diff_ids) {
                let blob = lookup(path)?;
                let layer = self
                    .unpack_layer(
                        &blob,
                        media_types::OCI_LAYER_TAR,
                        parent.as_ref(),
                        Some(diff_id),
                    )
                    .map_err(|source| Error::Layer {
                        diff_id: diff_id.clone(),
                        source,
                    })?;
                parent = Some(layer.chain_id);
            }
            let mut refs = Vec::new();
            for tag in entry.repo_tags.iter().flatten() {
                let r: Reference = tag.parse().map_err(|source| Error::Tag {
                    tag: tag.clone(),
                    source,
                })?;
                self.tag(&r, &id).map_err(register_err)?;
                refs.push(r);
            }
            loaded.push((id, refs));
        }
        Ok(loaded)
    }
}

/// `./a//b/../c` → `a/c`: archive paths as the manifest spells them.
fn normalise(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

fn resolve_alias(aliases: &HashMap<String, String>, path: &str) -> String {
    let mut path = normalise(path);
    // Bounded: a link cycle must not hang the loader.
    for _ in 0..8 {
        match aliases.get(&path) {
            Some(target) => path.clone_from(target),
            None => break,
        }
    }
    path
}

fn referenced(manifest: &[Entry], aliases: &HashMap<String, String>, path: &str) -> bool {
    manifest.iter().any(|e| {
        std::iter::once(&e.config)
            .chain(&e.layers)
            .any(|p| resolve_alias(aliases, p) == path)
    })
}

#[cfg(test)]
mod tests;
