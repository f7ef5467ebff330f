use std::collections::BTreeMap;

use super::spec::{ANNOTATION_UNCOMPRESSED, CACHE_CONFIG_MEDIA_TYPE};
use super::*;
use crate::layout::Store;
use crate::oci::{canonical_json, media_types, Descriptor, Digest, Index};

fn store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    (d, s)
}

/// A built layer with one file.
fn layer(s: &Store, parent: Option<&crate::ChainId>, name: &str) -> crate::Layer {
    let upper = s.temp_dir("test").unwrap().keep();
    std::fs::write(upper.join(name), name).unwrap();
    s.commit_snapshot(&upper, parent, Some(0)).unwrap()
}

#[test]
fn an_exported_local_cache_imports_lazily_into_a_fresh_store() {
    let (_d, s) = store();
    let l0 = layer(&s, None, "a");
    let l1 = layer(&s, Some(&l0.chain_id), "b");
    let records = [
        ExportRecord {
            key: "00".repeat(32),
            layers: vec![l0.clone()],
        },
        ExportRecord {
            key: "11".repeat(32),
            layers: vec![l0.clone(), l1.clone()],
        },
    ];
    let cache = s.cache_manifest(&records, &[], &[]).unwrap();
    assert_eq!(cache.layers.len(), 2);
    let dir = tempfile::tempdir().unwrap();
    local::write(&s, &cache, dir.path()).unwrap();

    let imported = local::open(dir.path()).unwrap();
    assert_eq!(imported.len(), 2);
    let chain = imported
        .lookup(&format!("blake3:{}", "11".repeat(32)))
        .unwrap();
    let layers = Imported::layers_of(&chain);
    assert_eq!(
        layers.iter().map(|l| &l.chain_id).collect::<Vec<_>>(),
        [&l0.chain_id, &l1.chain_id]
    );
    assert!(imported.lookup("blake3:22").is_none());

    // Nothing is fetched until asked; then both layers unpack.
    let (_d2, fresh) = store();
    assert!(!fresh.has_snapshot(&l1.chain_id));
    assert_eq!(imported.materialize(&fresh, &layers).unwrap(), (2, true));
    assert!(fresh.has_snapshot(&l1.chain_id));
    let file = fresh.snapshot_diff_dir(&l1.chain_id).join("b");
    assert_eq!(std::fs::read_to_string(file).unwrap(), "b");
    assert_eq!(imported.materialize(&fresh, &layers).unwrap(), (0, true));
}

#[test]
fn a_buildkit_index_cache_is_parsed() {
    // BuildKit's default form: an index listing the layer blobs and the
    // cacheconfig; a missing `parent` means 0 (Go's omitempty).
    let (_d, s) = store();
    let l0 = layer(&s, None, "x");
    let l1 = layer(&s, Some(&l0.chain_id), "y");
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let mut descriptors = Vec::new();
    for l in [&l0, &l1] {
        let mut d = s.export_layer(l, crate::Compression::Gzip).unwrap();
        std::fs::copy(s.blob_path(&d.digest), blobs.join(d.digest.hex())).unwrap();
        d.annotations =
            BTreeMap::from([(ANNOTATION_UNCOMPRESSED.to_string(), l.diff_id.to_string())]);
        descriptors.push(d);
    }
    let key = format!("sha256:{}", "ab".repeat(32));
    let config = format!(
        r#"{{"layers":[{{"blob":"{}","parent":-1}},{{"blob":"{}"}}],
            "records":[{{"digest":"sha256:{}"}},
                       {{"digest":"{key}","layers":[{{"layer":1,"createdAt":"2024-01-01T00:00:00Z"}}],
                         "inputs":[[{{"selector":"","link":0}}]]}}]}}"#,
        descriptors[0].digest,
        descriptors[1].digest,
        "cd".repeat(32)
    );
    let put = |bytes: &[u8]| {
        let d = Digest::of(bytes);
        std::fs::write(blobs.join(d.hex()), bytes).unwrap();
        d
    };
    let config_digest = put(config.as_bytes());
    let mut manifests = descriptors.clone();
    manifests.push(Descriptor {
        media_type: CACHE_CONFIG_MEDIA_TYPE.into(),
        digest: config_digest,
        size: config.len() as u64,
        platform: None,
        annotations: BTreeMap::new(),
    });
    let index = canonical_json(&Index {
        schema_version: 2,
        media_type: Some(media_types::OCI_INDEX.into()),
        manifests,
        annotations: BTreeMap::new(),
    })
    .unwrap();
    let index_digest = put(&index);
    let top = canonical_json(&Index {
        schema_version: 2,
        media_type: Some(media_types::OCI_INDEX.into()),
        manifests: vec![Descriptor {
            media_type: media_types::OCI_INDEX.into(),
            digest: index_digest,
            size: index.len() as u64,
            platform: None,
            annotations: BTreeMap::from([(
                "org.opencontainers.image.ref.name".into(),
                "latest".into(),
            )]),
        }],
        annotations: BTreeMap::new(),
    })
    .unwrap();
    std::fs::write(dir.path().join("index.json"), top).unwrap();

    let imported = local::open(dir.path()).unwrap();
    // The record without results is not usable; the other one is.
    assert_eq!(imported.len(), 1);
    let chain = imported.lookup(&key).unwrap();
    assert_eq!(
        chain.iter().map(|l| &l.diff_id).collect::<Vec<_>>(),
        [&l0.diff_id, &l1.diff_id]
    );
}

#[test]
fn a_directory_without_a_cache_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(local::open(dir.path()), Err(Error::Io { .. })));
    std::fs::write(dir.path().join("index.json"), b"{").unwrap();
    assert!(matches!(
        local::open(dir.path()),
        Err(Error::Invalid { .. })
    ));
}

#[test]
fn cache_mounts_are_exported_and_restored_only_where_missing() {
    let (_d, s) = store();
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("sub")).unwrap();
    std::fs::write(src.path().join("sub/pkg"), "data").unwrap();
    let mounts = [CacheMountDir {
        id: "pkgs".into(),
        dir: src.path().to_path_buf(),
    }];
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(src.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let cache = s.cache_manifest(&[], &mounts, &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    local::write(&s, &cache, dir.path()).unwrap();
    let target = tempfile::tempdir().unwrap();
    let at = target.path().join("mounts");
    let imported = local::open(dir.path()).unwrap();
    assert!(imported.restore_mounts(&|_| None).unwrap().is_empty());
    let restored = imported.restore_mounts(&|id| Some(at.join(id))).unwrap();
    assert_eq!(restored, ["pkgs"]);
    assert_eq!(
        std::fs::read_to_string(at.join("pkgs/sub/pkg")).unwrap(),
        "data"
    );
    std::fs::write(at.join("pkgs/sub/pkg"), "newer").unwrap();
    let mode = std::fs::metadata(at.join("pkgs"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o1777);
    assert!(imported
        .restore_mounts(&|id| Some(at.join(id)))
        .unwrap()
        .is_empty());
    assert_eq!(
        std::fs::read_to_string(at.join("pkgs/sub/pkg")).unwrap(),
        "newer"
    );
}
