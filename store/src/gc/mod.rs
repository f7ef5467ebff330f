//! Garbage collection ([`Store::prune`]), space accounting
//! ([`Store::disk_usage`]) and verification ([`Store::fsck`]).
//!
//! Collection is mark-and-sweep under the store's exclusive lock (every
//! writer holds it shared, so nothing is half-way between being written and
//! being referenced). Roots: tags, containers (`containers/*/config.json`
//! naming an `image_id` or snapshot lowers) and cache records. From an
//! image, its config blob, every snapshot of its chain, their kept blobs
//! and the manifests recorded for it are live. Everything else goes.
//! A snapshot is renamed into `tmp/` before it is deleted, so a collection
//! killed half-way never leaves half a snapshot under its real name.

mod fsck;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::cache::CacheRecord;
use crate::layout::{self, Store};
use crate::oci::Digest;
use crate::snapshots::ChainId;

pub use fsck::{Damage, FsckReport};

/// Why a collection or scan failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store lock could not be taken.
    #[error("cannot lock the store")]
    Lock(#[source] layout::Error),
    /// A directory of the store could not be listed or an entry removed.
    #[error("cannot {op} {path}")]
    Io {
        /// `list`, `remove`, `rename`, `read`.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What [`Store::prune`] may take.
#[derive(Clone, Debug, Default)]
pub struct PruneOptions {
    /// Drop every cache record (and cache mounts) too.
    pub all: bool,
    /// Drop cache records older than this.
    pub until: Option<Duration>,
    /// Then drop the oldest cache records until the store uses at most this.
    pub keep_storage: Option<u64>,
}

/// What a prune removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Blobs deleted.
    pub blobs: usize,
    /// Snapshots deleted.
    pub snapshots: usize,
    /// Cache records deleted.
    pub cache_records: usize,
    /// Bytes reclaimed (blob lengths plus snapshot tar sizes).
    pub reclaimed: u64,
}

/// One row of `bake du`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// How many.
    pub count: usize,
    /// Bytes.
    pub size: u64,
    /// Bytes a `prune --all` would free.
    pub reclaimable: u64,
}

/// What uses space in the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Tagged images (size: their snapshots, shared ones counted once).
    pub images: Usage,
    /// All snapshots (unpacked layers).
    pub snapshots: Usage,
    /// All blobs (compressed layers, configs, manifests).
    pub blobs: Usage,
    /// Cache records (size: snapshots only the cache keeps) and cache mounts.
    pub cache: Usage,
    /// Containers (size: their writable layers).
    pub containers: Usage,
}

/// The store's objects as found on disk.
#[derive(Default)]
pub(crate) struct Inventory {
    /// Blob → length.
    pub blobs: BTreeMap<Digest, u64>,
    /// Snapshot → tar size from its record (0 when unreadable).
    pub snapshots: BTreeMap<ChainId, u64>,
    /// Cache record file → record (`None`: unreadable).
    pub cache: BTreeMap<PathBuf, Option<CacheRecord>>,
    /// Tag file → image id (`None`: unreadable).
    pub tags: BTreeMap<PathBuf, Option<Digest>>,
    /// Images and snapshots named by containers.
    pub container_images: Vec<Digest>,
    /// Snapshots containers use as lowers.
    pub container_snapshots: Vec<ChainId>,
}

/// The live set.
#[derive(Default)]
struct Marks {
    blobs: BTreeSet<Digest>,
    snapshots: BTreeSet<ChainId>,
}

fn list(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.path()).map_err(io_err("list", dir)))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(Error::Io {
            op: "list",
            path: dir.to_path_buf(),
            source,
        }),
    }
}

fn hex_digest(path: &Path) -> Option<Digest> {
    format!("sha256:{}", path.file_name()?.to_str()?)
        .parse()
        .ok()
}

/// Bytes under `path` (files' lengths), not following symlinks.
pub(crate) fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .map(|it| it.flatten().map(|e| tree_size(&e.path())).sum())
        .unwrap_or(0)
}

impl Store {
    pub(crate) fn inventory(&self) -> Result<Inventory, Error> {
        let root = self.root();
        let mut inv = Inventory::default();
        for path in list(&root.join("blobs/sha256"))? {
            if let (Some(d), Ok(meta)) = (hex_digest(&path), fs::symlink_metadata(&path)) {
                inv.blobs.insert(d, meta.len());
            }
        }
        for path in list(&root.join("snapshots"))? {
            if let Some(d) = hex_digest(&path) {
                let chain = ChainId(d);
                let size = self.snapshot_layer(&chain).map_or(0, |l| l.size);
                inv.snapshots.insert(chain, size);
            }
        }
        for path in list(&root.join("cache"))? {
            if path.extension().is_some_and(|e| e == "json") && path.is_file() {
                let record = fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                inv.cache.insert(path, record);
            }
        }
        for path in list(&root.join("refs"))? {
            if path.extension().is_some_and(|e| e == "json") && path.is_file() {
                #[derive(serde::Deserialize)]
                struct Tag {
                    id: Digest,
                }
                let id = fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Tag>(&b).ok())
                    .map(|t| t.id);
                inv.tags.insert(path, id);
            }
        }
        let snapshots_dir = root.join("snapshots");
        for dir in list(&root.join("containers"))? {
            // The cli owns the container format; only these two fields
            // matter here, read loosely so a format change cannot make GC
            // delete a container's layers (a container that cannot be read
            // keeps nothing alive, though: see the docs of `prune`).
            let Ok(bytes) = fs::read(dir.join("config.json")) else {
                continue;
            };
            let Ok(config) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue;
            };
            if let Some(id) = config["image_id"].as_str().and_then(|s| s.parse().ok()) {
                inv.container_images.push(id);
            }
            for lower in config["plan"]["rootfs"]["lowers"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let Some(p) = lower.as_str().map(Path::new) else {
                    continue;
                };
                if let Ok(rest) = p.strip_prefix(&snapshots_dir) {
                    if let Some(d) = rest.iter().next().and_then(|h| hex_digest(Path::new(h))) {
                        inv.container_snapshots.push(ChainId(d));
                    }
                }
            }
        }
        Ok(inv)
    }

    /// Marks an image: its config, its chain's snapshots and their blobs,
    /// and the manifests recorded for it.
    fn mark_image(&self, id: &Digest, marks: &mut Marks) {
        if !marks.blobs.insert(id.clone()) {
            return;
        }
        if let Ok(config) = self.image_config(id) {
            self.mark_chain(&config.rootfs.diff_ids, marks);
        }
        for d in self.recorded_manifests(id) {
            marks.blobs.insert(d);
        }
    }

    fn mark_chain(&self, diff_ids: &[Digest], marks: &mut Marks) {
        for chain in ChainId::chain(diff_ids) {
            self.mark_snapshot(&chain, marks);
        }
    }

    fn mark_snapshot(&self, chain: &ChainId, marks: &mut Marks) {
        if !marks.snapshots.insert(chain.clone()) {
            return;
        }
        if let Ok((_, variants)) = self.layer_blobs(chain) {
            marks.blobs.extend(variants.into_iter().map(|v| v.digest));
        }
    }

    fn mark(&self, inv: &Inventory, cache: bool) -> Marks {
        let mut marks = Marks::default();
        for id in inv.tags.values().flatten().chain(&inv.container_images) {
            self.mark_image(id, &mut marks);
        }
        for chain in &inv.container_snapshots {
            // A container's lowers include every parent already.
            self.mark_snapshot(chain, &mut marks);
        }
        if cache {
            for record in inv.cache.values().flatten() {
                self.mark_chain(&record.layers, &mut marks);
            }
        }
        marks
    }

    /// Removes what nothing needs (see the module docs), holding the store
    /// lock exclusively (waiting for running builds, pulls and pushes).
    /// Unreadable cache records and records whose snapshots are gone are
    /// dropped too; temporary files older than ten minutes are removed.
    ///
    /// # Errors
    /// [`Error::Lock`], or [`Error::Io`] naming what could not be removed.
    pub fn prune(&self, opts: &PruneOptions) -> Result<PruneReport, Error> {
        let _lock = self.lock_exclusive().map_err(Error::Lock)?;
        let mut report = PruneReport::default();
        let mut inv = self.inventory()?;
        let now = SystemTime::now();
        let too_old = |r: &CacheRecord| match opts.until {
            Some(until) => chrono::DateTime::parse_from_rfc3339(&r.created)
                .map(|t| SystemTime::from(t) + until < now)
                .unwrap_or(true),
            None => false,
        };
        let drop_records: Vec<PathBuf> = inv
            .cache
            .iter()
            .filter(|(_, r)| match r {
                None => true,
                Some(r) => opts.all || too_old(r),
            })
            .map(|(p, _)| p.clone())
            .collect();
        for path in drop_records {
            self.drop_record(&mut inv, &path, &mut report)?;
        }
        if opts.all {
            let mounts = self.cache_mounts_dir();
            if mounts.exists() {
                self.remove_tree(&mounts)?;
            }
        }
        self.sweep(&inv, &mut report)?;

        if let Some(budget) = opts.keep_storage {
            // Oldest first: dropping a record frees only what nothing else
            // keeps, so re-sweep after each until under budget.
            let mut records: Vec<(String, PathBuf)> = inv
                .cache
                .iter()
                .filter_map(|(p, r)| Some((r.as_ref()?.created.clone(), p.clone())))
                .collect();
            records.sort();
            for (_, path) in records {
                let inv_now = self.inventory()?;
                let used: u64 =
                    inv_now.blobs.values().sum::<u64>() + inv_now.snapshots.values().sum::<u64>();
                if used <= budget {
                    break;
                }
                inv = inv_now;
                self.drop_record(&mut inv, &path, &mut report)?;
                self.sweep(&inv, &mut report)?;
            }
        }
        self.clean_tmp(Duration::from_secs(600))?;
        Ok(report)
    }

    fn drop_record(
        &self,
        inv: &mut Inventory,
        path: &Path,
        report: &mut PruneReport,
    ) -> Result<(), Error> {
        match fs::remove_file(path) {
            Ok(()) => report.cache_records += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    op: "remove",
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
        inv.cache.remove(path);
        Ok(())
    }

    fn sweep(&self, inv: &Inventory, report: &mut PruneReport) -> Result<(), Error> {
        let marks = self.mark(inv, true);
        // Roots first (manifest records of images that are gone), then
        // snapshots top-down is not needed: each goes by one rename.
        for path in list(&self.root().join("refs/manifests"))? {
            let live = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|h| format!("sha256:{h}").parse::<Digest>().ok())
                .is_some_and(|id| marks.blobs.contains(&id));
            if !live {
                let _ = fs::remove_file(&path);
            }
        }
        for (chain, size) in &inv.snapshots {
            if marks.snapshots.contains(chain) {
                continue;
            }
            self.remove_tree(&self.root().join("snapshots").join(chain.0.hex()))?;
            report.snapshots += 1;
            report.reclaimed += size;
        }
        for (digest, size) in &inv.blobs {
            if marks.blobs.contains(digest) {
                continue;
            }
            let path = self.blob_path(digest);
            match fs::remove_file(&path) {
                Ok(()) => {
                    report.blobs += 1;
                    report.reclaimed += size;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(Error::Io {
                        op: "remove",
                        path,
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// Renames `path` into `tmp/` (atomic: it is gone from its real name at
    /// once), then deletes it.
    pub(crate) fn remove_tree(&self, path: &Path) -> Result<(), Error> {
        let name = path
            .file_name()
            .map_or_else(|| "x".into(), |n| n.to_os_string());
        let mut doomed = self.tmp_dir().join("gc-");
        doomed.as_mut_os_string().push(&name);
        let _ = fs::remove_dir_all(&doomed);
        match fs::rename(path, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(Error::Io {
                    op: "rename",
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
        remove_any(&doomed)
    }

    fn clean_tmp(&self, older_than: Duration) -> Result<(), Error> {
        let now = SystemTime::now();
        for path in list(&self.tmp_dir())? {
            let old = fs::symlink_metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t + older_than < now);
            let doomed = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("gc-"));
            if old || doomed {
                remove_any(&path)?;
            }
        }
        Ok(())
    }

    /// What uses space, by kind (see [`DiskUsage`]).
    ///
    /// # Errors
    /// [`Error::Io`] when a store directory cannot be listed.
    pub fn disk_usage(&self) -> Result<DiskUsage, Error> {
        let inv = self.inventory()?;
        let mut du = DiskUsage::default();
        let live = self.mark(&inv, true);
        let images_only = {
            let mut marks = Marks::default();
            for id in inv.tags.values().flatten() {
                self.mark_image(id, &mut marks);
            }
            marks
        };
        let without_cache = self.mark(&inv, false);
        let tagged: BTreeSet<&Digest> = inv.tags.values().flatten().collect();
        du.images.count = tagged.len();
        du.images.size = images_only
            .snapshots
            .iter()
            .filter_map(|c| inv.snapshots.get(c))
            .sum();
        du.snapshots.count = inv.snapshots.len();
        du.snapshots.size = inv.snapshots.values().sum();
        du.snapshots.reclaimable = inv
            .snapshots
            .iter()
            .filter(|(c, _)| !without_cache.snapshots.contains(*c))
            .map(|(_, s)| s)
            .sum();
        du.blobs.count = inv.blobs.len();
        du.blobs.size = inv.blobs.values().sum();
        du.blobs.reclaimable = inv
            .blobs
            .iter()
            .filter(|(d, _)| !without_cache.blobs.contains(*d))
            .map(|(_, s)| s)
            .sum();
        let mounts = self.cache_mounts_dir();
        du.cache.count = inv.cache.len() + list(&mounts)?.len();
        let cache_only: u64 = inv
            .snapshots
            .iter()
            .filter(|(c, _)| live.snapshots.contains(*c) && !without_cache.snapshots.contains(*c))
            .map(|(_, s)| s)
            .sum();
        du.cache.size = cache_only + tree_size(&mounts);
        du.cache.reclaimable = du.cache.size;
        let containers = list(&self.root().join("containers"))?;
        du.containers.count = containers.len();
        du.containers.size = containers.iter().map(|c| tree_size(c)).sum();
        Ok(du)
    }
}

/// Deletes a file or a tree, ignoring what is already gone.
fn remove_any(path: &Path) -> Result<(), Error> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => Ok(()),
    };
    match result {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Io {
            op: "remove",
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}
