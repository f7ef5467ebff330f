//! [`Store::fsck`]: every blob's digest, every snapshot's record and
//! chain, every tag's image, every cache record.

use std::fs::{self, File};
use std::io;
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use super::{remove_any, Error, Inventory};
use crate::layout::Store;
use crate::oci::Digest;
use crate::snapshots::ChainId;

/// One problem [`Store::fsck`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Damage {
    /// A blob's content does not hash to its name.
    Blob {
        /// The blob's name.
        digest: Digest,
        /// What it hashes to (`None`: unreadable).
        actual: Option<Digest>,
    },
    /// A snapshot's `layer.json` is missing or unreadable, its `diff/` is
    /// missing, its chain id does not follow from its record, or its parent
    /// is missing.
    Snapshot {
        /// The snapshot.
        chain: ChainId,
        /// What is wrong.
        reason: String,
    },
    /// A tag is unreadable or its image (config or a snapshot) is missing.
    Tag {
        /// The tag file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A cache record is unreadable.
    CacheRecord {
        /// The record file.
        path: PathBuf,
    },
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Blob {
                digest,
                actual: Some(a),
            } => write!(f, "blob {digest}: content hashes to {a}"),
            Damage::Blob { digest, .. } => write!(f, "blob {digest}: unreadable"),
            Damage::Snapshot { chain, reason } => write!(f, "snapshot {chain}: {reason}"),
            Damage::Tag { path, reason } => write!(f, "tag {}: {reason}", path.display()),
            Damage::CacheRecord { path } => {
                write!(f, "cache record {}: unreadable", path.display())
            }
        }
    }
}

/// What [`Store::fsck`] checked and found.
#[derive(Clone, Debug, Default)]
pub struct FsckReport {
    /// Blobs verified.
    pub blobs: usize,
    /// Snapshots checked.
    pub snapshots: usize,
    /// Tags checked.
    pub tags: usize,
    /// Cache records checked.
    pub cache_records: usize,
    /// Problems found (and, with `repair`, removed).
    pub damage: Vec<Damage>,
}

fn hash_file(path: &std::path::Path) -> io::Result<Digest> {
    let mut h = Sha256::new();
    io::copy(&mut File::open(path)?, &mut h)?;
    Ok(Digest::from_sha256(h.finalize().into()))
}

impl Store {
    /// Verifies the store: every blob's sha256 against its name, every
    /// snapshot's `layer.json` (readable, `diff/` present, chain id =
    /// chain(parent, diff id), parent present), every tag (config readable
    /// and an image config, every snapshot of its chain present) and every
    /// cache record (readable). Snapshot contents are not re-packed (that
    /// costs a full read of every layer). With `repair`, broken objects are
    /// removed — tags of broken images included — under the exclusive lock;
    /// without, a shared lock is enough.
    ///
    /// # Errors
    /// [`Error::Lock`] or [`Error::Io`] when the store cannot be read.
    pub fn fsck(&self, repair: bool) -> Result<FsckReport, Error> {
        let _lock = if repair {
            self.lock_exclusive()
        } else {
            self.lock_shared()
        }
        .map_err(Error::Lock)?;
        let inv: Inventory = self.inventory()?;
        let mut report = FsckReport::default();

        for digest in inv.blobs.keys() {
            report.blobs += 1;
            let path = self.blob_path(digest);
            let actual = hash_file(&path).ok();
            if actual.as_ref() != Some(digest) {
                report.damage.push(Damage::Blob {
                    digest: digest.clone(),
                    actual,
                });
                if repair {
                    remove_any(&path)?;
                }
            }
        }

        // Parents before children would need a topological order; instead
        // repeat until nothing more breaks (a removed parent breaks its
        // children in the next round).
        let mut broken: Vec<ChainId> = Vec::new();
        loop {
            let mut found = false;
            for chain in inv.snapshots.keys() {
                if broken.contains(chain) {
                    continue;
                }
                if let Some(reason) = self.snapshot_problem(chain, &broken) {
                    report.damage.push(Damage::Snapshot {
                        chain: chain.clone(),
                        reason,
                    });
                    broken.push(chain.clone());
                    found = true;
                }
            }
            if !found {
                break;
            }
        }
        report.snapshots = inv.snapshots.len();
        if repair {
            for chain in &broken {
                self.remove_tree(&self.root().join("snapshots").join(chain.0.hex()))?;
            }
        }

        for (path, id) in &inv.tags {
            report.tags += 1;
            let reason = match id {
                None => Some("unreadable".to_string()),
                Some(id) => self.image_problem(id, &broken),
            };
            if let Some(reason) = reason {
                report.damage.push(Damage::Tag {
                    path: path.clone(),
                    reason,
                });
                if repair {
                    remove_any(path)?;
                }
            }
        }
        for (path, record) in &inv.cache {
            report.cache_records += 1;
            // A record whose snapshots were pruned is a miss, not damage:
            // the solver rebuilds the step.
            if record.is_none() {
                report
                    .damage
                    .push(Damage::CacheRecord { path: path.clone() });
                if repair {
                    remove_any(path)?;
                }
            }
        }
        Ok(report)
    }

    fn snapshot_problem(&self, chain: &ChainId, broken: &[ChainId]) -> Option<String> {
        let (layer, parent) = match self.snapshot_record(chain) {
            Ok(x) => x,
            Err(e) => return Some(format!("layer.json: {e}")),
        };
        if !self.snapshot_diff_dir(chain).is_dir() {
            return Some("diff/ is missing".into());
        }
        let expected = ChainId::of(parent.as_ref(), &layer);
        if expected != *chain {
            return Some(format!("layer.json says chain {expected}"));
        }
        match parent {
            Some(p) if !self.has_snapshot(&p) || broken.contains(&p) => {
                Some(format!("parent {p} is missing or broken"))
            }
            _ => None,
        }
    }

    fn image_problem(&self, id: &Digest, broken: &[ChainId]) -> Option<String> {
        let config = match self.image_config(id) {
            Ok(c) => c,
            Err(e) => return Some(format!("image {id}: {e}")),
        };
        if fs::metadata(self.blob_path(id)).is_err() {
            return Some(format!("config {id} is missing"));
        }
        for chain in ChainId::chain(&config.rootfs.diff_ids) {
            if !self.has_snapshot(&chain) || broken.contains(&chain) {
                return Some(format!("image {id}: snapshot {chain} is missing or broken"));
            }
        }
        None
    }
}
