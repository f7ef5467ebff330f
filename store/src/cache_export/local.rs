//! A cache as an OCI image layout directory (`--cache-to type=local,dest=`
//! / `--cache-from type=local,src=`): `oci-layout`, `index.json` with one
//! entry (the cache manifest, tagged `latest` as BuildKit tags it) and
//! `blobs/sha256/<hex>`. `skopeo inspect --raw oci:DIR` reads it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use super::{BlobSource, CacheManifest, Error, Imported};
use crate::layout::Store;
use crate::oci::{canonical_json, media_types, Descriptor, Index};

/// The tag BuildKit gives the cache in a local layout.
pub const TAG: &str = "latest";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Writes `cache` into the layout at `dest` (created if missing): blobs the
/// directory lacks are copied from the store, then `index.json` is replaced
/// in one rename, so a reader sees the old cache or the new one. Blobs of
/// earlier exports stay (as with BuildKit's local exporter).
///
/// # Errors
/// [`Error::Io`] naming the file that could not be written.
pub fn write(store: &Store, cache: &CacheManifest, dest: &Path) -> Result<(), Error> {
    let blobs = dest.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(Error::io("create", &blobs))?;
    let manifest = Descriptor {
        media_type: media_types::OCI_MANIFEST.to_string(),
        digest: cache.digest.clone(),
        size: cache.manifest.len() as u64,
        platform: None,
        annotations: BTreeMap::from([(REF_NAME.to_string(), TAG.to_string())]),
    };
    for d in cache.blobs().chain(std::iter::once(&manifest)) {
        let to = blobs.join(d.digest.hex());
        if to.is_file() {
            continue;
        }
        let from = store.blob_path(&d.digest);
        let tmp = blobs.join(format!(".tmp-{}", d.digest.hex()));
        std::fs::copy(&from, &tmp).map_err(Error::io("copy", &from))?;
        std::fs::rename(&tmp, &to).map_err(Error::io("rename", &to))?;
    }
    write_file(
        &dest.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let index = Index {
        schema_version: 2,
        media_type: Some(media_types::OCI_INDEX.to_string()),
        manifests: vec![manifest],
        annotations: BTreeMap::new(),
    };
    let bytes = canonical_json(&index).expect("indexes serialise");
    write_file(&dest.join("index.json"), &bytes)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(Error::io("create", dir))?;
    tmp.write_all(bytes).map_err(Error::io("write", path))?;
    tmp.persist(path)
        .map_err(|e| Error::io("rename", path)(e.error))?;
    Ok(())
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
