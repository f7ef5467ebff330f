//! `Store::pull` and `Store::push` against a real `docker-registry`.

use std::cell::RefCell;
use std::process::Command;

use super::*;
use crate::oci::{canonical_json, ContainerConfig, Platform, RootFs};
use crate::registry::test_registry::{find_program, TestRegistry};
use crate::snapshots::Layer;

fn open_store(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("store")).unwrap()
}

/// A snapshot holding `files` on top of `parent`.
fn commit(store: &Store, parent: Option<&ChainId>, files: &[(&str, &[u8])]) -> Layer {
    let work = store.temp_dir("test").unwrap();
    let upper = work.path().join("upper");
    for (path, content) in files {
        let path = upper.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    store.commit_snapshot(&upper, parent, Some(0)).unwrap()
}

/// A two-layer image in a fresh store.
fn build_image(store: &Store) -> Digest {
    let bottom = commit(store, None, &[("etc/hello.txt", b"hello\n")]);
    let big: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let top = commit(
        store,
        Some(&bottom.chain_id),
        &[
            ("app/data.bin", &big),
            ("app/run.sh", b"#!/bin/sh\necho hi\n"),
        ],
    );
    let config = ImageConfig {
        created: Some("1970-01-01T00:00:00Z".into()),
        architecture: "amd64".into(),
        os: "linux".into(),
        config: Some(ContainerConfig {
            cmd: Some(vec!["/app/run.sh".into()]),
            ..Default::default()
        }),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![bottom.diff_id, top.diff_id],
        },
        ..Default::default()
    };
    store.put_image(&config).unwrap()
}

fn amd64() -> PlatformSpec {
    "linux/amd64".parse().unwrap()
}

fn reference(reg: &TestRegistry, name: &str) -> Reference {
    format!("{}/{name}", reg.host).parse().unwrap()
}

/// Runs `f` with a progress callback and returns what it reported.
fn with_events<T>(f: impl FnOnce(&dyn Fn(TransferEvent)) -> T) -> (T, Vec<TransferEvent>) {
    let events = RefCell::new(Vec::new());
    let out = f(&|e| events.borrow_mut().push(e));
    (out, events.into_inner())
}

fn count(events: &[TransferEvent], f: impl Fn(&TransferEvent) -> bool) -> usize {
    events.iter().filter(|e| f(e)).count()
}

#[test]
fn push_then_pull_into_a_fresh_store_gives_the_same_image() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let opts = RegistryOptions::default();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open_store(&dir_a), open_store(&dir_b));
    let id = build_image(&a);
    let target = reference(&reg, "team/app:v1");

    let (pushed, events) = with_events(|p| a.push(&id, &target, &opts, p));
    let manifest_digest = pushed.unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
    // Two layers and the config went up.
    assert_eq!(
        count(&events, |e| matches!(e, TransferEvent::Done { .. })),
        3,
        "{events:?}"
    );
    assert!(count(&events, |e| matches!(e, TransferEvent::Progress { .. })) >= 2);

    // Again: everything is already there.
    let (again, events) = with_events(|p| a.push(&id, &target, &opts, p));
    assert_eq!(again.unwrap(), manifest_digest);
    assert_eq!(
        count(&events, |e| matches!(e, TransferEvent::Skipped { .. })),
        3,
        "{events:?}"
    );

    if find_program("skopeo").is_some() {
        let out = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{target}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(info["Digest"], manifest_digest.to_string());
        assert_eq!(info["Layers"].as_array().unwrap().len(), 2);
    } else {
        println!("skipped: skopeo not installed (the skopeo inspect check)");
    }

    let (pulled, events) = with_events(|p| b.pull(&target, &amd64(), &opts, p));
    let pulled = pulled.unwrap();
    assert_eq!(pulled, id);
    assert_eq!(
        count(&events, |e| matches!(e, TransferEvent::Unpacking { .. })),
        2
    );
    assert!(events.contains(&TransferEvent::Resolved {
        reference: target.to_string(),
        manifest: manifest_digest.clone(),
    }));
    let layers = b.image_layers(&pulled).unwrap();
    assert_eq!(layers, a.image_layers(&id).unwrap());
    let hello = b
        .snapshot_diff_dir(&layers[0].chain_id)
        .join("etc/hello.txt");
    assert_eq!(std::fs::read(hello).unwrap(), b"hello\n");
    assert_eq!(b.resolve(&target.to_string()).unwrap(), Some(id.clone()));

    // A second pull finds every snapshot and downloads nothing.
    let (again, events) = with_events(|p| b.pull(&target, &amd64(), &opts, p));
    assert_eq!(again.unwrap(), id);
    assert_eq!(
        count(&events, |e| matches!(e, TransferEvent::Started { .. })),
        0
    );

    // Pushing the pulled image elsewhere reuses the pulled blobs.
    let copy = reference(&reg, "other/app:v1");
    assert_eq!(
        b.push(&pulled, &copy, &opts, &|_| {}).unwrap(),
        manifest_digest
    );
}

#[test]
fn a_push_to_another_repository_mounts_the_blobs_it_knows() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let opts = RegistryOptions::default();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open_store(&dir_a), open_store(&dir_b));
    let id = build_image(&a);
    a.push(&id, &reference(&reg, "a/one:1"), &opts, &|_| {})
        .unwrap();

    let (pushed, events) = with_events(|p| a.push(&id, &reference(&reg, "b/two:1"), &opts, p));
    pushed.unwrap();
    assert_eq!(mounted_from(&events, "a/one"), 3, "{events:?}");
    assert_eq!(
        count(&events, |e| matches!(e, TransferEvent::Started { .. })),
        0,
        "{events:?}"
    );
    let client = Client::new(&reg.host, &opts).unwrap();
    let (bytes, _, _) = client.get_manifest("b/two", "1").unwrap();
    let manifest: Manifest = serde_json::from_slice(&bytes).unwrap();
    for layer in &manifest.layers {
        assert!(client.head_blob("b/two", &layer.digest).unwrap());
    }

    // A store that pulled from b/two mounts from there.
    b.pull(&reference(&reg, "b/two:1"), &amd64(), &opts, &|_| {})
        .unwrap();
    let (pushed, events) = with_events(|p| b.push(&id, &reference(&reg, "c/three:1"), &opts, p));
    pushed.unwrap();
    assert_eq!(mounted_from(&events, "b/two"), 3, "{events:?}");

    // A blob the registry no longer has under the known repository is
    // uploaded after all.
    let dir_c = tempfile::tempdir().unwrap();
    let c = open_store(&dir_c);
    let other = build_image(&c);
    c.known_blobs()
        .record(&reg.host, &manifest.layers[0].digest, "nowhere/x");
    let (pushed, events) = with_events(|p| c.push(&other, &reference(&reg, "d/four:1"), &opts, p));
    pushed.unwrap();
    assert_eq!(mounted_from(&events, "nowhere/x"), 0, "{events:?}");
}

fn mounted_from(events: &[TransferEvent], from: &str) -> usize {
    count(
        events,
        |e| matches!(e, TransferEvent::Mounted { from: f, .. } if f == from),
    )
}

#[test]
fn pull_selects_the_platform_from_an_index_and_reads_docker_media_types() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let opts = RegistryOptions::default();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open_store(&dir_a), open_store(&dir_b));
    let id = build_image(&a);
    let pushed = reference(&reg, "multi/app:oci");
    a.push(&id, &pushed, &opts, &|_| {}).unwrap();

    // The same blobs under a Docker schema 2 manifest …
    let client = Client::new(&reg.host, &opts).unwrap();
    let (bytes, _, oci_digest) = client.get_manifest("multi/app", "oci").unwrap();
    let mut manifest: Manifest = serde_json::from_slice(&bytes).unwrap();
    manifest.media_type = Some(media_types::DOCKER_MANIFEST.into());
    manifest.config.media_type = media_types::DOCKER_CONFIG.into();
    for layer in &mut manifest.layers {
        layer.media_type = media_types::DOCKER_LAYER_GZIP.into();
    }
    let docker_bytes = canonical_json(&manifest).unwrap();
    let docker_digest = client
        .put_manifest(
            "multi/app",
            "docker",
            &docker_bytes,
            media_types::DOCKER_MANIFEST,
        )
        .unwrap();
    // … listed for arm64 in a manifest list that has amd64 → the OCI one.
    let entry = |digest: &Digest, size: usize, media_type: &str, arch: &str| Descriptor {
        media_type: media_type.into(),
        digest: digest.clone(),
        size: size as u64,
        platform: Some(Platform {
            architecture: arch.into(),
            os: "linux".into(),
            variant: None,
        }),
        annotations: Default::default(),
    };
    let index = Index {
        schema_version: 2,
        media_type: Some(media_types::DOCKER_MANIFEST_LIST.into()),
        manifests: vec![
            entry(
                &docker_digest,
                docker_bytes.len(),
                media_types::DOCKER_MANIFEST,
                "arm64",
            ),
            entry(&oci_digest, bytes.len(), media_types::OCI_MANIFEST, "amd64"),
        ],
        annotations: Default::default(),
    };
    client
        .put_manifest(
            "multi/app",
            "list",
            &canonical_json(&index).unwrap(),
            media_types::DOCKER_MANIFEST_LIST,
        )
        .unwrap();
    let list = reference(&reg, "multi/app:list");

    let (pulled, events) = with_events(|p| b.pull(&list, &amd64(), &opts, p));
    assert_eq!(pulled.unwrap(), id);
    assert!(events.contains(&TransferEvent::Resolved {
        reference: list.to_string(),
        manifest: oci_digest,
    }));
    // arm64 picks the Docker manifest: same image, blobs already local.
    let (pulled, events) =
        with_events(|p| b.pull(&list, &"linux/arm64".parse().unwrap(), &opts, p));
    assert_eq!(pulled.unwrap(), id);
    assert!(events.contains(&TransferEvent::Resolved {
        reference: list.to_string(),
        manifest: docker_digest,
    }));
    // A fresh store pulls the Docker manifest's blobs.
    let dir_c = tempfile::tempdir().unwrap();
    let c = open_store(&dir_c);
    assert_eq!(
        c.pull(
            &reference(&reg, "multi/app:docker"),
            &amd64(),
            &opts,
            &|_| {}
        )
        .unwrap(),
        id
    );

    let err = b
        .pull(&list, &"linux/s390x".parse().unwrap(), &opts, &|_| {})
        .unwrap_err();
    assert!(
        matches!(&err, Error::NoMatchingPlatform { available, .. } if available.len() == 2),
        "{err}"
    );
}

#[test]
fn a_corrupt_layer_fails_the_pull_and_stores_nothing() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let opts = RegistryOptions::default();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open_store(&dir_a), open_store(&dir_b));
    let id = build_image(&a);
    let target = reference(&reg, "bad/app:v1");
    a.push(&id, &target, &opts, &|_| {}).unwrap();
    let client = Client::new(&reg.host, &opts).unwrap();
    let (bytes, _, _) = client.get_manifest("bad/app", "v1").unwrap();
    let manifest: Manifest = serde_json::from_slice(&bytes).unwrap();
    let victim = &manifest.layers[1].digest;
    let path = reg.blob_data_path(victim);
    let mut data = std::fs::read(&path).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0x55;
    std::fs::write(&path, data).unwrap();

    let err = b.pull(&target, &amd64(), &opts, &|_| {}).unwrap_err();
    assert!(
        matches!(&err, Error::DigestMismatch { expected, .. } if expected == victim),
        "{err}"
    );
    assert!(!b.has_blob(victim));
    assert_eq!(b.resolve(&target.to_string()).unwrap(), None);

    let missing = reference(&reg, "bad/app:nope");
    let err = b.pull(&missing, &amd64(), &opts, &|_| {}).unwrap_err();
    assert!(err.to_string().contains("bad/app:nope"), "{err}");
}

#[test]
fn a_pulled_image_keeps_its_config_bytes_as_its_id() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let opts = RegistryOptions::default();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open_store(&dir_a), open_store(&dir_b));
    let id = build_image(&a);
    a.push(&id, &reference(&reg, "raw/app:base"), &opts, &|_| {})
        .unwrap();
    let client = Client::new(&reg.host, &opts).unwrap();
    let (bytes, _, _) = client.get_manifest("raw/app", "base").unwrap();
    let mut manifest: Manifest = serde_json::from_slice(&bytes).unwrap();

    // A config as another builder writes it: other key order, spaces,
    // fields bake does not model.
    let diff_ids = a.image_config(&id).unwrap().rootfs.diff_ids;
    let config = format!(
        r#"{{ "os": "linux", "architecture": "amd64", "docker_version": "27.0",
             "container_config": {{"Hostname": "x"}},
             "rootfs": {{ "diff_ids": ["{}", "{}"], "type": "layers" }} }}"#,
        diff_ids[0], diff_ids[1]
    );
    let config_digest = Digest::of(config.as_bytes());
    client
        .put_blob(
            "raw/app",
            &config_digest,
            config.len() as u64,
            &mut io::Cursor::new(config.as_bytes()),
        )
        .unwrap();
    manifest.config.digest = config_digest.clone();
    manifest.config.size = config.len() as u64;
    let manifest_bytes = canonical_json(&manifest).unwrap();
    let manifest_digest = client
        .put_manifest(
            "raw/app",
            "foreign",
            &manifest_bytes,
            media_types::OCI_MANIFEST,
        )
        .unwrap();

    let pulled = b
        .pull(
            &reference(&reg, "raw/app:foreign"),
            &amd64(),
            &opts,
            &|_| {},
        )
        .unwrap();
    assert_eq!(pulled, config_digest);
    assert_eq!(b.image_layers(&pulled).unwrap().len(), 2);
    assert_eq!(b.read_blob(&pulled).unwrap(), config.as_bytes());
    let copy = reference(&reg, "raw/copy:1");
    assert_eq!(
        b.push(&pulled, &copy, &opts, &|_| {}).unwrap(),
        manifest_digest
    );
}

/// Regression: a cancelled read returned `Interrupted`, which `io::copy`
/// retries forever, so a failed pull hung while another layer was still
/// downloading.
#[test]
fn a_failing_job_cancels_the_others() {
    let digest = Digest::of(b"endless");
    let result = run_parallel(
        2,
        |i, emit, cancel| {
            if i == 0 {
                std::thread::sleep(std::time::Duration::from_millis(50));
                return Err(Error::NotFound {
                    what: "first".into(),
                    url: String::new(),
                });
            }
            let mut endless = Tracked::new(io::repeat(7), &digest, emit, cancel);
            io::copy(&mut endless, &mut io::sink()).map_err(|source| Error::Io {
                op: "copy",
                url: String::new(),
                source,
            })?;
            Ok(())
        },
        &|_| {},
        |_, ()| Ok(()),
    );
    assert!(
        matches!(&result, Err(Error::NotFound { what, .. }) if what == "first"),
        "{result:?}"
    );
}
