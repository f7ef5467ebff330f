//! docker-archive round trips, docker's entry order, and broken archives.

use std::fs;

use super::*;
use crate::oci::{ImageConfig, RootFs};

fn store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    (d, s)
}

/// An image of `layers` (each a list of files), committed like a build.
fn build(s: &Store, layers: &[&[(&str, &str)]]) -> Digest {
    let mut parent: Option<ChainId> = None;
    let mut diff_ids = Vec::new();
    for files in layers {
        let u = s.temp_dir("upper").unwrap();
        for (name, content) in *files {
            fs::write(u.path().join(name), content).unwrap();
        }
        let l = s
            .commit_snapshot(u.path(), parent.as_ref(), Some(0))
            .unwrap();
        diff_ids.push(l.diff_id.clone());
        parent = Some(l.chain_id);
    }
    s.put_image(&ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn save_then_load_round_trips_images_tags_and_files() {
    let (_d, a) = store();
    let base: &[(&str, &str)] = &[("base", "b")];
    let one = build(&a, &[base, &[("one", "1")]]);
    let two = build(&a, &[base, &[("two", "2")]]);
    let r1: Reference = "app:1".parse().unwrap();
    let r2: Reference = "localhost:5000/team/app:2".parse().unwrap();
    let mut tar = Vec::new();
    a.save_docker_archive(
        &[
            (one.clone(), vec![r1.clone()]),
            (two.clone(), vec![r2.clone()]),
        ],
        &mut tar,
    )
    .unwrap();

    // The manifest and the shared base layer appear once.
    let mut names = Vec::new();
    let mut ar = tar::Archive::new(&tar[..]);
    let mut manifest = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let n = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        if n == "manifest.json" {
            e.read_to_end(&mut manifest).unwrap();
        }
        names.push(n);
    }
    assert_eq!(names[0], "manifest.json");
    assert_eq!(names.iter().filter(|n| n.ends_with("layer.tar")).count(), 3);
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(m[0]["RepoTags"][0], "app:1");
    assert_eq!(m[1]["RepoTags"][0], "localhost:5000/team/app:2");
    assert_eq!(m[0]["Config"], format!("{}.json", one.hex()));

    let (_e, b) = store();
    let loaded = b.load_docker_archive(&tar[..]).unwrap();
    assert_eq!(
        loaded,
        vec![(one.clone(), vec![r1]), (two.clone(), vec![r2])]
    );
    assert_eq!(b.resolve("app:1").unwrap(), Some(one.clone()));
    let layers = b.image_layers(&two).unwrap();
    assert_eq!(layers, a.image_layers(&two).unwrap());
    let top = b.snapshot_diff_dir(&layers[1].chain_id);
    assert_eq!(fs::read_to_string(top.join("two")).unwrap(), "2");
    assert_eq!(fs::read_dir(b.tmp_dir()).unwrap().count(), 0);

    // Saving from the loaded store gives the same archive.
    let mut again = Vec::new();
    b.save_docker_archive(
        &[
            (one, vec!["app:1".parse().unwrap()]),
            (two, vec!["localhost:5000/team/app:2".parse().unwrap()]),
        ],
        &mut again,
    )
    .unwrap();
    assert_eq!(tar, again);
}

/// Re-orders an archive the way `docker save` writes it: layers and configs
/// first, `manifest.json` last, plus files bake does not need.
fn docker_order(tar: &[u8]) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut ar = tar::Archive::new(tar);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        entries.push((h, data));
    }
    entries.rotate_left(2);
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path("abc/VERSION").unwrap();
    h.set_size(3);
    h.set_cksum();
    b.append(&h, &b"1.0"[..]).unwrap();
    for (h, data) in &entries {
        b.append(h, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn manifest_after_the_layers_is_loaded_too() {
    let (_d, a) = store();
    let id = build(&a, &[&[("f", "x")]]);
    let mut tar = Vec::new();
    a.save_docker_archive(&[(id.clone(), vec!["x:1".parse().unwrap()])], &mut tar)
        .unwrap();
    let (_e, b) = store();
    let loaded = b.load_docker_archive(&docker_order(&tar)[..]).unwrap();
    assert_eq!(loaded[0].0, id);
    assert_eq!(b.image_layers(&id).unwrap().len(), 1);
    // The unreferenced VERSION file was not kept.
    assert!(!b.has_blob(&Digest::of(b"1.0")));
    assert_eq!(fs::read_dir(b.tmp_dir()).unwrap().count(), 0);
}

#[test]
fn a_layer_that_does_not_match_its_diff_id_is_refused() {
    let (_d, a) = store();
    let id = build(&a, &[&[("f", "x")]]);
    let mut tar = Vec::new();
    a.save_docker_archive(&[(id, vec![])], &mut tar).unwrap();
    // Flip the content byte of `f` inside the nested layer tar.
    let pos = tar.windows(1).rposition(|w| w == b"x").unwrap();
    tar[pos] = b'y';
    let (_e, b) = store();
    let e = b.load_docker_archive(&tar[..]).unwrap_err();
    let msg = format!("{e}: {}", std::error::Error::source(&e).unwrap());
    assert!(msg.contains("diff id mismatch"), "{msg}");
}

#[test]
fn archives_without_a_manifest_or_with_missing_files_are_refused() {
    let (_d, s) = store();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path("x").unwrap();
    h.set_size(1);
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    assert!(matches!(
        s.load_docker_archive(&tar[..]),
        Err(Error::Manifest(_))
    ));

    let mut b = tar::Builder::new(Vec::new());
    let m = br#"[{"Config":"c.json","RepoTags":null,"Layers":[]}]"#;
    let mut h = tar::Header::new_gnu();
    h.set_path("manifest.json").unwrap();
    h.set_size(m.len() as u64);
    h.set_cksum();
    b.append(&h, &m[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let e = s.load_docker_archive(&tar[..]).unwrap_err();
    assert!(
        matches!(&e, Error::Missing { entry } if entry == "c.json"),
        "{e}"
    );
}

#[test]
fn paths_normalise_and_aliases_resolve() {
    assert_eq!(normalise("./a//b/../c"), "a/c");
    let mut aliases = HashMap::new();
    aliases.insert("b/layer.tar".to_string(), "a/layer.tar".to_string());
    assert_eq!(resolve_alias(&aliases, "./b/layer.tar"), "a/layer.tar");
    aliases.insert("a/layer.tar".to_string(), "b/layer.tar".to_string());
    let _ = resolve_alias(&aliases, "a/layer.tar"); // a cycle terminates
}
