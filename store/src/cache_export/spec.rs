//! BuildKit's cache config (`application/vnd.buildkit.cacheconfig.v0`) as
//! JSON types: the `layers` (blobs with parent indexes), the `records`
//! (cache keys pointing at layers) and bake's own `bake.cacheMounts`
//! extension, which BuildKit's decoder ignores (unknown fields are dropped
//! by Go's `encoding/json`). See `docs/cache-export.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::oci::Digest;

/// Media type of the cache config blob.
pub const CACHE_CONFIG_MEDIA_TYPE: &str = "application/vnd.buildkit.cacheconfig.v0";
/// The image-config field BuildKit's inline cache lives under.
pub const INLINE_CACHE_FIELD: &str = "moby.buildkit.cache.v0";
/// Descriptor annotation naming a layer blob's uncompressed digest.
pub const ANNOTATION_UNCOMPRESSED: &str = "containerd.io/uncompressed";
/// Descriptor annotation with a layer's creation time (BuildKit).
pub const ANNOTATION_CREATED: &str = "buildkit/createdat";
/// Descriptor annotation naming the `RUN --mount=type=cache` id a
/// cache-mount layer holds (bake's extension).
pub const ANNOTATION_CACHE_MOUNT: &str = "dev.bake.cache-mount.id";
/// The prefix of bake's record digests: bake's keys are blake3, so they are
/// written `blake3:<hex>` rather than passed off as sha256.
pub const KEY_PREFIX: &str = "blake3:";

/// The whole cache config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheConfig {
    /// Layer blobs, each with the index of its parent (-1: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<CacheLayer>,
    /// Cache records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<CacheRecord>,
    /// bake: contents of `RUN --mount=type=cache` directories.
    #[serde(
        default,
        rename = "bake.cacheMounts",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cache_mounts: Vec<CacheMountEntry>,
}

/// One layer blob of the cache.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheLayer {
    /// The compressed blob's digest (one of the manifest's layers).
    pub blob: Digest,
    /// Index of the parent layer, -1 for none. Go writes this field with
    /// `omitempty`, so a missing `parent` means 0, not "none": the default
    /// mirrors what BuildKit's own decoder reads.
    #[serde(default)]
    pub parent: i64,
    /// What the layer is (newer BuildKit writes these here too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<LayerAnnotations>,
}

/// `annotations` of a cache layer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerAnnotations {
    /// The blob's media type.
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// sha256 of the uncompressed tar.
    #[serde(rename = "diffID", default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<Digest>,
    /// Blob size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// RFC 3339 creation time.
    #[serde(rename = "createdAt", default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// One cache record: a cache key and the result it names.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// Results: the top layer of the result's chain.
    #[serde(rename = "layers", default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<CacheResult>,
    /// Results made of several chains (BuildKit's merge ops).
    #[serde(rename = "chains", default, skip_serializing_if = "Vec::is_empty")]
    pub chained: Vec<ChainedResult>,
    /// The cache key (`sha256:…` from BuildKit, `blake3:…` from bake).
    #[serde(default)]
    pub digest: String,
    /// Records this one depends on, per input (BuildKit's key graph; bake's
    /// keys already cover their inputs' content, so bake writes none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Vec<CacheInput>>,
}

/// A record's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheResult {
    /// Index of the result's top layer.
    pub layer: i64,
    /// RFC 3339 creation time.
    #[serde(rename = "createdAt", default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// A result made of several layer chains stacked in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChainedResult {
    /// Top layer index of each chain, bottom first.
    #[serde(default)]
    pub layers: Vec<i64>,
    /// RFC 3339 creation time.
    #[serde(rename = "createdAt", default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// A link from a record to one it depends on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheInput {
    /// BuildKit's selector (a path inside the input), may be empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Index of the record depended on.
    #[serde(default)]
    pub link: i64,
}

/// bake's extension: one `RUN --mount=type=cache` directory's contents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheMountEntry {
    /// The mount's `id`.
    pub id: String,
    /// Index into `layers` of the tar of its contents.
    pub layer: usize,
    /// Owner uid of the directory itself (the tar holds its contents only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Owner gid of the directory itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Permission bits of the directory itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// Extra annotations of a descriptor, by name.
pub type Annotations = BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_parent_reads_as_zero_as_in_go() {
        let blob = Digest::of(b"x");
        let json = format!(
            r#"{{"layers":[{{"blob":"{blob}","parent":-1}},{{"blob":"{blob}"}}],
                "records":[{{"digest":"sha256:{h}","layers":[{{"layer":1,"createdAt":"2024-01-01T00:00:00Z"}}],
                "inputs":[[{{"selector":"","link":0}}]]}}],"future":1}}"#,
            h = blob.hex()
        );
        let c: CacheConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(c.layers[0].parent, -1);
        assert_eq!(c.layers[1].parent, 0);
        assert_eq!(c.records[0].results[0].layer, 1);
        assert_eq!(c.records[0].inputs[0][0].link, 0);
    }
}
