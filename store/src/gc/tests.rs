//! Collection keeps what tags, cache records and containers need; fsck
//! finds (and repairs) damage.

use std::fs;

use super::*;
use crate::oci::{ImageConfig, RootFs};
use crate::reference::Reference;

fn store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    (d, s)
}

/// A two-layer image (shared base + `top`), with a gzip blob exported.
fn image(s: &Store, top: &str) -> (Digest, Vec<crate::snapshots::Layer>) {
    let mut layers = Vec::new();
    let mut parent = None;
    for content in ["base", top] {
        let u = s.temp_dir("upper").unwrap();
        fs::write(u.path().join("f"), content).unwrap();
        let l = s
            .commit_snapshot(u.path(), parent.as_ref(), Some(0))
            .unwrap();
        parent = Some(l.chain_id.clone());
        s.export_layer(&l, crate::Compression::Gzip).unwrap();
        layers.push(l);
    }
    let id = s
        .put_image(&ImageConfig {
            architecture: "amd64".into(),
            os: "linux".into(),
            created: Some(top.into()),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: layers.iter().map(|l| l.diff_id.clone()).collect(),
            },
            ..Default::default()
        })
        .unwrap();
    (id, layers)
}

#[test]
fn prune_keeps_tagged_images_and_cache_unless_all() {
    let (_d, s) = store();
    let (kept, kept_layers) = image(&s, "kept");
    let (cached, cached_layers) = image(&s, "cached");
    let (gone, gone_layers) = image(&s, "gone");
    s.tag(&"app:1".parse::<Reference>().unwrap(), &kept)
        .unwrap();
    s.cache_put(
        "k",
        &CacheRecord {
            layers: cached_layers.iter().map(|l| l.diff_id.clone()).collect(),
            created: "2020-01-01T00:00:00Z".into(),
        },
    )
    .unwrap();
    let before = s.disk_usage().unwrap();
    assert_eq!(before.images.count, 1);
    assert_eq!(before.snapshots.count, 4);

    let report = s.prune(&PruneOptions::default()).unwrap();
    assert_eq!(report.snapshots, 1, "{report:?}");
    assert!(report.blobs >= 2, "{report:?}"); // config + gzip of the top layer
    assert!(!s.has_snapshot(&gone_layers[1].chain_id));
    assert!(!s.has_blob(&gone));
    assert!(s.has_snapshot(&cached_layers[1].chain_id));
    assert!(s.has_blob(&kept));
    assert_eq!(s.image_layers(&kept).unwrap(), kept_layers);
    assert!(!s.fsck(false).unwrap().damage.iter().any(|_| true));

    // `until` drops the old record; --all would too.
    let report = s
        .prune(&PruneOptions {
            until: Some(Duration::from_secs(3600)),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(report.cache_records, 1);
    assert!(!s.has_snapshot(&cached_layers[1].chain_id));
    assert!(s.has_snapshot(&kept_layers[0].chain_id));
    assert!(!s.has_blob(&cached));
    assert_eq!(
        s.prune(&PruneOptions {
            all: true,
            ..Default::default()
        })
        .unwrap()
        .snapshots,
        0
    );
    assert_eq!(s.image_layers(&kept).unwrap(), kept_layers);
}

#[test]
fn containers_keep_their_image() {
    let (_d, s) = store();
    let (id, layers) = image(&s, "ctr");
    let dir = s.root().join("containers/abc");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("config.json"),
        format!(r#"{{"image_id":"{id}","plan":{{"rootfs":{{"lowers":[]}}}}}}"#),
    )
    .unwrap();
    s.prune(&PruneOptions {
        all: true,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.image_layers(&id).unwrap(), layers);
}

#[test]
fn keep_storage_drops_the_oldest_cache_first() {
    let (_d, s) = store();
    let (_, old) = image(&s, "old");
    let (_, new) = image(&s, "new");
    for (key, layers, created) in [
        ("a", &old, "2020-01-01T00:00:00Z"),
        ("b", &new, "2024-01-01T00:00:00Z"),
    ] {
        s.cache_put(
            key,
            &CacheRecord {
                layers: layers.iter().map(|l| l.diff_id.clone()).collect(),
                created: created.into(),
            },
        )
        .unwrap();
    }
    s.prune(&PruneOptions::default()).unwrap();
    let used = {
        let du = s.disk_usage().unwrap();
        du.blobs.size + du.snapshots.size
    };
    let report = s
        .prune(&PruneOptions {
            keep_storage: Some(used - 1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(report.cache_records, 1);
    assert!(!s.has_snapshot(&old[1].chain_id));
    assert!(s.has_snapshot(&new[1].chain_id));
}

#[test]
fn fsck_finds_and_repairs_damage() {
    let (_d, s) = store();
    let (id, layers) = image(&s, "x");
    let r: Reference = "app:x".parse().unwrap();
    s.tag(&r, &id).unwrap();
    assert!(s.fsck(false).unwrap().damage.is_empty());

    // A flipped blob byte and a snapshot record that lies.
    let (_, variants) = s.layer_blobs(&layers[1].chain_id).unwrap();
    let blob = s.blob_path(&variants[0].digest);
    let mut bytes = fs::read(&blob).unwrap();
    bytes[0] ^= 1;
    fs::set_permissions(&blob, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::write(&blob, bytes).unwrap();
    let record = s
        .root()
        .join("snapshots")
        .join(layers[0].chain_id.0.hex())
        .join("layer.json");
    fs::write(&record, b"{").unwrap();

    let report = s.fsck(false).unwrap();
    let text: Vec<String> = report.damage.iter().map(ToString::to_string).collect();
    assert!(text.iter().any(|t| t.starts_with("blob ")), "{text:?}");
    // The base is broken, so is the top (its parent), so is the tag.
    assert_eq!(
        report
            .damage
            .iter()
            .filter(|d| matches!(d, Damage::Snapshot { .. }))
            .count(),
        2,
        "{text:?}"
    );
    assert!(
        report
            .damage
            .iter()
            .any(|d| matches!(d, Damage::Tag { .. })),
        "{text:?}"
    );

    let repaired = s.fsck(true).unwrap();
    assert_eq!(repaired.damage.len(), report.damage.len());
    assert!(s.fsck(false).unwrap().damage.is_empty());
    assert_eq!(s.resolve("app:x").unwrap(), None);
}
