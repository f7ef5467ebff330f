//! `--cache-to type=inline`: the cache config in the image's own config,
//! under `moby.buildkit.cache.v0` (base64 of the cacheconfig JSON, as Go
//! marshals a byte slice), whose layer blobs are the image manifest's. Only
//! records of the final image's steps fit (BuildKit's inline cache is
//! `mode=min` only).

use std::collections::HashMap;

use base64::Engine as _;

use super::spec::{
    CacheConfig, CacheLayer, CacheRecord, CacheResult, LayerAnnotations, INLINE_CACHE_FIELD,
    KEY_PREFIX,
};
use super::{Error, ExportRecord};
use crate::export::ExportOptions;
use crate::layout::Store;
use crate::snapshots::Layer;

impl Store {
    /// The inline cache value for an image made of `layers`, holding the
    /// `records` whose result is a bottom part of it. The layers are
    /// exported as `opts` says, so the blobs are the ones a push with the
    /// same options sends.
    ///
    /// # Errors
    /// [`Error::Layer`] when a layer cannot be exported.
    pub fn inline_cache(
        &self,
        records: &[ExportRecord],
        layers: &[Layer],
        opts: &ExportOptions,
    ) -> Result<String, Error> {
        let mut config = CacheConfig::default();
        let mut at = HashMap::new();
        for (i, layer) in layers.iter().enumerate() {
            let d = self
                .layer_blob(layer, opts)
                .map_err(|source| Error::Layer {
                    diff_id: layer.diff_id.clone(),
                    source,
                })?;
            config.layers.push(CacheLayer {
                blob: d.digest,
                parent: i as i64 - 1,
                annotations: Some(LayerAnnotations {
                    media_type: Some(d.media_type),
                    diff_id: Some(layer.diff_id.clone()),
                    size: Some(d.size as i64),
                    created_at: None,
                }),
            });
            at.insert(&layer.chain_id, i);
        }
        let mut seen = std::collections::HashSet::new();
        for r in records {
            let Some(&top) = r.layers.last().and_then(|l| at.get(&l.chain_id)) else {
                continue;
            };
            if seen.insert(&r.key) {
                config.records.push(CacheRecord {
                    results: vec![CacheResult {
                        layer: top as i64,
                        created_at: None,
                    }],
                    digest: format!("{KEY_PREFIX}{}", r.key),
                    ..CacheRecord::default()
                });
            }
        }
        let json = crate::oci::canonical_json(&config).expect("cache configs serialise");
        Ok(base64::engine::general_purpose::STANDARD.encode(json))
    }
}

/// `config` (an image config's JSON object) with the inline cache field
/// added as its last member, leaving every other byte as it was.
pub fn with_inline_cache(config: &[u8], value: &str) -> Vec<u8> {
    let end = config
        .iter()
        .rposition(|&b| b == b'}')
        .expect("an image config is a JSON object");
    let empty = config[..end]
        .iter()
        .rev()
        .find(|b| !b.is_ascii_whitespace())
        == Some(&b'{');
    let mut out = config[..end].to_vec();
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(&serde_json::to_vec(&INLINE_CACHE_FIELD).expect("a string serialises"));
    out.push(b':');
    out.extend_from_slice(&serde_json::to_vec(value).expect("a string serialises"));
    out.extend_from_slice(&config[end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_is_appended_and_parses_back() {
        let out = with_inline_cache(br#"{"a":1}"#, "eyJ9");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(v[INLINE_CACHE_FIELD], "eyJ9");
        let out = with_inline_cache(b"{}", "x");
        assert_eq!(out, br#"{"moby.buildkit.cache.v0":"x"}"#);
    }
}
