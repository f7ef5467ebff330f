//! A cache as an OCI image layout directory (`--cache-to type=local,dest=`
//! / `--cache-from type=local,src=`): `oci-layout`, `index.json` with one
//! entry (the cache manifest, tagged `latest` as BuildKit tags it) and
//! `blobs/sha256/<hex>`. `skopeo inspect --raw oci:DIR` reads it.

use std::collections::BTreeMap;
use std::path::Path;

use super::{BlobSource, CacheManifest, Error, Imported};
use crate::archive::oci::REF_NAME;
use crate::layout::Store;
use crate::oci::{media_types, Descriptor, Index};

/// The tag BuildKit gives the cache in a local layout.
pub const TAG: &str = "latest";

/// Writes `cache` into the layout at `dest` (created if missing) with the
/// OCI-layout writer `bake save --format oci-dir` uses: blobs the
/// directory lacks are copied from the store, then `index.json` is
/// replaced in one rename, so a reader sees the old cache or the new one.
/// Blobs of earlier exports stay (as with BuildKit's local exporter).
///
/// # Errors
/// [`Error::Layout`] naming the file that could not be written.
pub fn write(store: &Store, cache: &CacheManifest, dest: &Path) -> Result<(), Error> {
    let manifest = Descriptor {
        media_type: media_types::OCI_MANIFEST.to_string(),
        digest: cache.digest.clone(),
        size: cache.manifest.len() as u64,
        platform: None,
        annotations: BTreeMap::from([(REF_NAME.to_string(), TAG.to_string())]),
    };
    let blobs: Vec<Descriptor> = cache
        .blobs()
        .cloned()
        .chain(std::iter::once(manifest.clone()))
        .collect();
    store
        .write_layout_dir(dest, &blobs, vec![manifest])
        .map_err(|source| Error::Layout {
            dest: dest.to_path_buf(),
            source: Box::new(source),
        })
}

/// Opens the cache in the layout at `src`: the `index.json` entry tagged
/// `latest` (else the only entry).
///
/// # Errors
/// [`Error::Io`] when `src` has no `index.json`, [`Error::Invalid`] or
/// [`Error::NotACache`] for what it holds.
pub fn open(src: &Path) -> Result<Imported, Error> {
    let name = src.display().to_string();
    let index_path = src.join("index.json");
    let bytes = std::fs::read(&index_path).map_err(Error::io("read", &index_path))?;
    let index: Index = serde_json::from_slice(&bytes).map_err(|e| Error::Invalid {
        what: "index.json",
        source_name: name.clone(),
        reason: e.to_string(),
    })?;
    let entry = index
        .manifests
        .iter()
        .find(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(TAG))
        .or_else(|| {
            index
                .manifests
                .first()
                .filter(|_| index.manifests.len() == 1)
        })
        .ok_or_else(|| Error::Invalid {
            what: "index.json",
            source_name: name.clone(),
            reason: format!("no entry tagged `{TAG}`"),
        })?;
    let source = BlobSource::Dir(src.to_path_buf());
    let manifest = source.read(entry, &name)?;
    Imported::parse(&name, source, &manifest)
}
