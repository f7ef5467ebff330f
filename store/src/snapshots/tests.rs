//! Snapshot tests: commit, unpack, export and their round trips.

use std::fs;
use std::io::Read;

use super::*;
use crate::oci::media_types;

fn store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    (d, s)
}

/// An upper dir inside the store's tmp/, as the runner makes them.
fn upper(s: &Store, files: &[(&str, &str)]) -> tempfile::TempDir {
    let t = s.temp_dir("upper").unwrap();
    for (name, content) in files {
        let p = t.path().join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
    t
}

#[test]
fn chain_ids_follow_the_oci_rule() {
    let a = Digest::of(b"a");
    let b = Digest::of(b"b");
    let chain = ChainId::chain(&[a.clone(), b.clone()]);
    assert_eq!(chain[0], ChainId(a.clone()));
    assert_eq!(chain[1].0, Digest::of(format!("{a} {b}").as_bytes()));
}

#[test]
fn commit_renames_the_upper_dir_into_place() {
    let (_d, s) = store();
    let u = upper(&s, &[("etc/hello", "hi")]);
    let layer = s.commit_snapshot(u.path(), None, Some(0)).unwrap();
    assert!(!u.path().exists());
    assert!(s.has_snapshot(&layer.chain_id));
    let diff = s.snapshot_diff_dir(&layer.chain_id);
    assert_eq!(fs::read_to_string(diff.join("etc/hello")).unwrap(), "hi");
    assert_eq!(s.snapshot_layer(&layer.chain_id).unwrap(), layer);

    // Same content again: same layer, the new upper is dropped.
    let u2 = upper(&s, &[("etc/hello", "hi")]);
    let again = s.commit_snapshot(u2.path(), None, Some(0)).unwrap();
    assert_eq!(again, layer);
    assert!(!u2.path().exists());

    // On top of a parent: another chain.
    let u3 = upper(&s, &[("etc/hello", "hi")]);
    let child = s
        .commit_snapshot(u3.path(), Some(&layer.chain_id), Some(0))
        .unwrap();
    assert_eq!(child.diff_id, layer.diff_id);
    assert_eq!(
        child.chain_id,
        ChainId::of(Some(&layer.chain_id), &layer.diff_id)
    );
}

#[test]
fn export_reproduces_the_diff_id_and_reuses_the_blob() {
    let (_d, s) = store();
    let u = upper(&s, &[("a", "1"), ("b/c", "2")]);
    let layer = s.commit_snapshot(u.path(), None, Some(1)).unwrap();
    let gz = s.export_layer(&layer, Compression::Gzip).unwrap();
    assert_eq!(gz.media_type, media_types::OCI_LAYER_GZIP);
    assert!(s.has_blob(&gz.digest));
    // Decompressing the blob gives exactly the diff id.
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(s.open_blob(&gz.digest).unwrap())
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(Digest::of(&tar), layer.diff_id);
    assert_eq!(tar.len() as u64, layer.size);
    // Second export: the same blob, no new work.
    assert_eq!(s.export_layer(&layer, Compression::Gzip).unwrap(), gz);
    let zst = s.export_layer(&layer, Compression::Zstd).unwrap();
    assert_eq!(zst.media_type, media_types::OCI_LAYER_ZSTD);
    let plain = s.export_layer(&layer, Compression::Uncompressed).unwrap();
    assert_eq!(plain.digest, layer.diff_id);
}

#[test]
fn unpack_layer_keeps_the_pulled_blob_and_verifies_the_diff_id() {
    let (_d, s) = store();
    // Make a "pulled" gzip blob from a tree.
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("f"), b"content").unwrap();
    let mut enc = Encoder::new(Vec::new(), Compression::Gzip).unwrap();
    let tarball = layer::pack(src.path(), None, &mut enc).unwrap();
    let blob = s.put_blob_bytes(&enc.finish().unwrap()).unwrap();

    let wrong = Digest::of(b"nope");
    let e = s
        .unpack_layer(&blob, media_types::DOCKER_LAYER_GZIP, None, Some(&wrong))
        .unwrap_err();
    assert!(matches!(e, Error::DiffIdMismatch { .. }), "{e}");
    assert_eq!(
        fs::read_dir(s.tmp_dir()).unwrap().count(),
        0,
        "staging cleaned up"
    );

    let layer = s
        .unpack_layer(
            &blob,
            media_types::DOCKER_LAYER_GZIP,
            None,
            Some(&tarball.diff_id),
        )
        .unwrap();
    assert_eq!(layer.diff_id, tarball.diff_id);
    let diff = s.snapshot_diff_dir(&layer.chain_id);
    assert_eq!(fs::read(diff.join("f")).unwrap(), b"content");
    // The export is the original blob, with its original media type.
    let d = s.export_layer(&layer, Compression::Gzip).unwrap();
    assert_eq!(d.digest, blob);
    assert_eq!(d.media_type, media_types::DOCKER_LAYER_GZIP);
    // The uncompressed tar comes from the blob, byte for byte.
    let mut out = Vec::new();
    assert_eq!(s.write_layer_tar(&layer, &mut out).unwrap(), tarball.size);
    assert_eq!(Digest::of(&out), tarball.diff_id);
    // Unpacking again is a no-op that still records the variant.
    assert_eq!(
        s.unpack_layer(
            &blob,
            media_types::OCI_LAYER_GZIP,
            None,
            Some(&tarball.diff_id)
        )
        .unwrap(),
        layer
    );
}

#[test]
fn a_mislabelled_blob_is_recorded_with_its_real_compression() {
    let (_d, s) = store();
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("f"), b"x").unwrap();
    let mut enc = Encoder::new(Vec::new(), Compression::Zstd).unwrap();
    layer::pack(src.path(), None, &mut enc).unwrap();
    let blob = s.put_blob_bytes(&enc.finish().unwrap()).unwrap();
    let layer = s
        .unpack_layer(&blob, media_types::OCI_LAYER_TAR, None, None)
        .unwrap();
    let d = s.export_layer(&layer, Compression::Zstd).unwrap();
    assert_eq!(d.digest, blob);
    assert_eq!(d.media_type, media_types::OCI_LAYER_ZSTD);
}

#[test]
fn missing_snapshot_is_named() {
    let (_d, s) = store();
    let c = ChainId(Digest::of(b"x"));
    let e = s.snapshot_layer(&c).unwrap_err();
    assert!(e.to_string().contains(&c.to_string()), "{e}");
}
