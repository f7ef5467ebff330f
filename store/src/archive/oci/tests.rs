//! OCI layout round trips (directory and tar), names, compression and
//! kind detection.

use std::fs;

use super::*;
use crate::layer::Compression;
use crate::oci::RootFs;

fn store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    (d, s)
}

fn build(s: &Store, files: &[(&str, &str)]) -> Digest {
    let u = s.temp_dir("upper").unwrap();
    for (name, content) in files {
        fs::write(u.path().join(name), content).unwrap();
    }
    let l = s.commit_snapshot(u.path(), None, Some(0)).unwrap();
    s.put_image(&ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![l.diff_id],
        },
        ..Default::default()
    })
    .unwrap()
}

fn amd64() -> PlatformSpec {
    "linux/amd64".parse().unwrap()
}

#[test]
fn a_directory_layout_round_trips_names_and_files() {
    let (_d, a) = store();
    let id = build(&a, &[("f", "hello")]);
    let r: Reference = "localhost:5000/team/app:1".parse().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("layout");
    a.save_oci_layout(
        &[(id.clone(), vec![r.clone()])],
        &ExportOptions::default(),
        OciTarget::Dir(&dir),
    )
    .unwrap();
    let index: Index = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index.manifests.len(), 1);
    assert_eq!(index.manifests[0].annotations[REF_NAME], "1");
    let manifest: Manifest = serde_json::from_slice(
        &fs::read(dir.join(blob_entry(&index.manifests[0].digest))).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest.layers[0].media_type, media_types::OCI_LAYER_GZIP);

    let (_e, b) = store();
    let loaded = b.load_oci_dir(&dir, &amd64()).unwrap();
    assert_eq!(loaded, vec![(id.clone(), vec![r.clone()])]);
    assert_eq!(b.resolve(&r.to_string()).unwrap(), Some(id.clone()));
    let layers = b.image_layers(&id).unwrap();
    assert_eq!(
        fs::read_to_string(b.snapshot_diff_dir(&layers[0].chain_id).join("f")).unwrap(),
        "hello"
    );

    // Saving another tag into the same directory keeps the first entry.
    let r2: Reference = "app:2".parse().unwrap();
    a.save_oci_layout(
        &[(id.clone(), vec![r2])],
        &ExportOptions::default(),
        OciTarget::Dir(&dir),
    )
    .unwrap();
    let index: Index = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index.manifests.len(), 2);
}

#[test]
fn a_tar_layout_round_trips_with_zstd_and_is_recognised() {
    let (_d, a) = store();
    let id = build(&a, &[("f", "zz")]);
    let r: Reference = "app:z".parse().unwrap();
    let mut tar = Vec::new();
    let zstd = ExportOptions {
        compression: Compression::Zstd,
        ..Default::default()
    };
    a.save_oci_layout(
        &[(id.clone(), vec![r.clone()])],
        &zstd,
        OciTarget::Tar(&mut tar),
    )
    .unwrap();
    assert_eq!(stream_kind(&tar[..512]), ArchiveKind::Oci);
    let (_e, b) = store();
    let loaded = b.load_oci_archive(&tar[..], &amd64()).unwrap();
    assert_eq!(loaded, vec![(id.clone(), vec![r])]);
    // The zstd blob was kept as the layer's blob.
    let m = b.image_manifest(&id, &zstd, true).unwrap();
    assert_eq!(m.manifest.layers[0].media_type, media_types::OCI_LAYER_ZSTD);

    let mut docker = Vec::new();
    a.save_docker_archive(&[(id, vec![])], &mut docker).unwrap();
    assert_eq!(stream_kind(&docker[..512]), ArchiveKind::Docker);
}

#[test]
fn a_corrupt_blob_is_refused() {
    let (_d, a) = store();
    let id = build(&a, &[("f", "x")]);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("l");
    a.save_oci_layout(
        &[(id, vec![])],
        &ExportOptions::default(),
        OciTarget::Dir(&dir),
    )
    .unwrap();
    let index: Index = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let path = dir.join(blob_entry(&index.manifests[0].digest));
    let mut bytes = fs::read(&path).unwrap();
    bytes.push(b' ');
    fs::write(&path, bytes).unwrap();
    let (_e, b) = store();
    let err = b.load_oci_dir(&dir, &amd64()).unwrap_err();
    assert!(matches!(err, Error::Blob { .. }), "{err}");
}

#[test]
fn only_the_blob_a_layer_came_as_is_kept_over_the_asked_compression() {
    let (_d, a) = store();
    let id = build(&a, &[("f", "kept?")]);
    let mut tar = Vec::new();
    a.save_docker_archive(&[(id.clone(), vec![])], &mut tar)
        .unwrap();
    // Loaded from a docker-archive: the layer came as a plain tar.
    let (_e, b) = store();
    b.load_docker_archive(&tar[..]).unwrap();
    let zstd = ExportOptions {
        compression: Compression::Zstd,
        ..Default::default()
    };
    b.image_manifest(&id, &ExportOptions::default(), true)
        .unwrap();
    let m = b.image_manifest(&id, &zstd, true).unwrap();
    assert_eq!(m.manifest.layers[0].media_type, media_types::OCI_LAYER_ZSTD);

    // Loaded as gzip: kept, unless forced.
    let mut oci = Vec::new();
    a.save_oci_layout(
        &[(id.clone(), vec![])],
        &ExportOptions::default(),
        OciTarget::Tar(&mut oci),
    )
    .unwrap();
    let (_f, c) = store();
    c.load_oci_archive(&oci[..], &amd64()).unwrap();
    let m = c.image_manifest(&id, &zstd, true).unwrap();
    assert_eq!(m.manifest.layers[0].media_type, media_types::OCI_LAYER_GZIP);
    let forced = ExportOptions {
        force: true,
        ..zstd
    };
    let m = c.image_manifest(&id, &forced, true).unwrap();
    assert_eq!(m.manifest.layers[0].media_type, media_types::OCI_LAYER_ZSTD);
}
