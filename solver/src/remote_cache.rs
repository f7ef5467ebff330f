//! Imported build caches (`--cache-from`) as a second lookup layer under
//! the store's own cache index, and the records a solve used, for
//! `--cache-to`.
//!
//! A hit in an imported cache is lazy: the vertex's result is the chain of
//! layers the record names (diff ids and chain ids), with no snapshot
//! behind them yet. [`RemoteCaches::materialize`] fetches and unpacks the
//! missing layers only when a vertex that actually runs needs their files,
//! or when they are the target's (an image in the store is its config
//! over snapshots). A fully cached build therefore copies only the final
//! image's layers into the store.

use std::sync::{Arc, Mutex};

use bake_store::cache_export::{spec::KEY_PREFIX, ExportRecord, Imported};
use bake_store::{Layer, Store};

use crate::digest::Key;

/// The caches given with `--cache-from`, searched in order.
#[derive(Clone, Debug, Default)]
pub struct RemoteCaches {
    imports: Vec<Arc<Imported>>,
}

impl RemoteCaches {
    /// Caches searched in the order given.
    pub fn new(imports: Vec<Arc<Imported>>) -> RemoteCaches {
        RemoteCaches { imports }
    }

    /// The imported caches.
    pub fn imports(&self) -> &[Arc<Imported>] {
        &self.imports
    }

    /// The record digest bake writes for a cache key.
    pub fn record_digest(key: &Key) -> String {
        format!("{KEY_PREFIX}{}", key.to_hex())
    }

    /// The layer chain an imported cache holds for `key`, if any.
    pub fn lookup(&self, key: &Key) -> Option<Vec<Layer>> {
        let digest = Self::record_digest(key);
        self.imports
            .iter()
            .find_map(|i| i.lookup(&digest))
            .map(|chain| Imported::layers_of(&chain))
    }

    /// Makes every layer of `chain` a snapshot in `store`, fetching the
    /// missing ones from whichever imported cache holds them. A chain
    /// whose snapshots all exist costs a `stat` per layer.
    ///
    /// # Errors
    /// [`bake_store::cache_export::Error::NotImported`] when a missing
    /// layer is in no cache, or the fetch/unpack error.
    pub fn materialize(
        &self,
        store: &Store,
        chain: &[Layer],
    ) -> Result<(), bake_store::cache_export::Error> {
        if chain.iter().all(|l| store.has_snapshot(&l.chain_id)) {
            return Ok(());
        }
        // Each cache fills what it can bottom up; the next one continues
        // from there.
        for import in &self.imports {
            if let (_, true) = import.materialize(store, chain)? {
                return Ok(());
            }
        }
        let missing = chain
            .iter()
            .find(|l| !store.has_snapshot(&l.chain_id))
            .expect("a layer is still missing");
        Err(bake_store::cache_export::Error::NotImported {
            diff_id: missing.diff_id.clone(),
        })
    }
}

/// The cache records a solve used (hits and fresh results), for export.
#[derive(Debug, Default)]
pub(crate) struct Used {
    records: Mutex<Vec<ExportRecord>>,
}

impl Used {
    pub(crate) fn add(&self, key: &Key, layers: &[Layer]) {
        self.records
            .lock()
            .expect("records lock")
            .push(ExportRecord {
                key: key.to_hex(),
                layers: layers.to_vec(),
            });
    }

    pub(crate) fn take(&self) -> Vec<ExportRecord> {
        std::mem::take(&mut *self.records.lock().expect("records lock"))
    }
}

/// The cache-mount ids the exec vertices of `graph` use, each once.
pub fn cache_mount_ids(graph: &crate::ir::Graph) -> Vec<String> {
    let mut ids: Vec<String> = graph
        .vertices
        .iter()
        .filter_map(|v| match &v.op {
            crate::ir::Op::Exec(e) => Some(e.mounts.iter()),
            _ => None,
        })
        .flatten()
        .filter_map(|m| match &m.kind {
            crate::ir::MountKind::Cache { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use bake_store::cache_export::local;

    #[test]
    fn a_hit_is_layers_without_snapshots_until_materialized() {
        let t = tempfile::tempdir().unwrap();
        let built = Store::open(&t.path().join("a")).unwrap();
        let upper = built.temp_dir("t").unwrap().keep();
        std::fs::write(upper.join("f"), "x").unwrap();
        let layer = built.commit_snapshot(&upper, None, Some(0)).unwrap();
        let key = Key::of(b"step");
        let records = [ExportRecord {
            key: key.to_hex(),
            layers: vec![layer.clone()],
        }];
        let cache = built.cache_manifest(&records, &[], &[]).unwrap();
        let dir = t.path().join("cache");
        local::write(&built, &cache, &dir).unwrap();

        let caches = RemoteCaches::new(vec![Arc::new(local::open(&dir).unwrap())]);
        assert_eq!(caches.lookup(&Key::of(b"other")), None);
        let hit = caches.lookup(&key).unwrap();
        assert_eq!(hit[0].chain_id, layer.chain_id);

        let fresh = Store::open(&t.path().join("b")).unwrap();
        assert!(!fresh.has_snapshot(&layer.chain_id));
        caches.materialize(&fresh, &hit).unwrap();
        assert!(fresh.has_snapshot(&layer.chain_id));

        let mut foreign = hit.clone();
        foreign[0].diff_id = bake_store::oci::Digest::of(b"nowhere");
        foreign[0].chain_id = bake_store::ChainId(foreign[0].diff_id.clone());
        assert!(matches!(
            caches.materialize(&fresh, &foreign),
            Err(bake_store::cache_export::Error::NotImported { .. })
        ));
    }
}
