//! `bake build --output`, `--push`, `--metadata-file` and `--compression`.

use std::process::Command;

use crate::harness::{build_case, scratch_dir, setup, Bake};

const RESULT: &str = "built by RUN\nhello from the context\n";

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn local_tar_oci_and_docker_outputs() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let work = tempfile::tempdir_in(scratch_dir()).unwrap();
    let local = work.path().join("rootfs");
    let tar = work.path().join("rootfs.tar");
    let oci = work.path().join("oci.tar");
    let docker = work.path().join("docker.tar");
    let outputs = [
        format!("type=local,dest={}", local.display()),
        format!("type=tar,dest={}", tar.display()),
        format!("type=oci,dest={}", oci.display()),
        format!("type=docker,dest={}", docker.display()),
    ];
    let mut extra = Vec::new();
    for o in &outputs {
        extra.push("--output");
        extra.push(o.as_str());
    }
    build_case(&bake, "two-stage", "app:out", &base, &extra);

    // local: the merged root file system, base layer included.
    assert_eq!(
        std::fs::read_to_string(local.join("app/result.txt")).unwrap(),
        RESULT
    );
    assert!(local.join("bin/busybox").is_file());
    // the files RUN removed in the build stage are not in the final stage
    assert!(!local.join("src").exists());

    let listing = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.lines().any(|l| l == "app/result.txt"), "{listing}");
    assert!(
        !listing.contains(".wh."),
        "whiteouts in a rootfs tar:\n{listing}"
    );

    let info = skopeo(&["inspect", &format!("oci-archive:{}:out", oci.display())]);
    assert!(info.contains("\"Layers\""), "{info}");

    let fresh = Bake::new();
    fresh.ok(&["load", "-i", docker.to_str().unwrap()]);
    assert_eq!(fresh.ok(&["run", "--rm", "app:out"]).stdout, RESULT);
}

#[test]
fn push_with_metadata_file_and_zstd_compression() {
    let Some((reg, base, bake)) = setup() else {
        return;
    };
    let name = format!("{}/team/out:1", reg.addr);
    let work = tempfile::tempdir_in(scratch_dir()).unwrap();
    let meta = work.path().join("meta.json");
    build_case(
        &bake,
        "two-stage",
        &name,
        &base,
        &[
            "--push",
            "--compression",
            "zstd",
            "--metadata-file",
            meta.to_str().unwrap(),
        ],
    );
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]))
    .unwrap();
    assert_eq!(meta["containerimage.digest"], inspect["Digest"], "{meta}");
    assert_eq!(meta["image.name"], name);
    let id = bake.ok(&["images", "-q", "--no-trunc", &name]).stdout;
    assert_eq!(
        meta["containerimage.config.digest"].as_str().unwrap(),
        id.trim()
    );

    // Built layers are zstd; the pulled base keeps its gzip blob …
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]);
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let types: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert!(types[0].ends_with("+gzip"), "{types:?}");
    assert!(types[1..].iter().all(|t| t.ends_with("+zstd")), "{types:?}");

    // … unless re-compression is forced.
    let forced = format!("{}/team/out:forced", reg.addr);
    bake.ok(&["tag", &name, &forced]);
    bake.ok(&[
        "push",
        "--compression",
        "zstd",
        "--force-compression",
        &forced,
    ]);
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{forced}"),
    ]);
    assert!(!raw.contains("+gzip"), "{raw}");

    // Both pull into a fresh store and run.
    let fresh = Bake::new();
    fresh.ok(&["pull", &forced]);
    assert_eq!(fresh.ok(&["run", "--rm", &forced]).stdout, RESULT);
}
