//! Cross-repository blob mounts: a push sends no layer bytes for blobs that
//! bake knows another repository of the same registry holds (pulled from
//! there or pushed there before); the registry links them instead.

use std::process::Command;

use crate::harness::{base_arg, build_case, setup, Output, Registry};

/// The layer digests of `name` as skopeo sees them.
fn layers(name: &str) -> Vec<String> {
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    info["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

/// The HTTP status of `HEAD /v2/<repo>/blobs/<digest>`.
fn head_blob(reg: &Registry, repo: &str, digest: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-I"])
        .arg(format!("http://{}/v2/{repo}/blobs/{digest}", reg.addr))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn lines_with<'a>(out: &'a Output, word: &str) -> Vec<&'a str> {
    out.stdout.lines().filter(|l| l.contains(word)).collect()
}

#[test]
fn a_push_to_a_second_repository_mounts_every_blob() {
    let Some((reg, base, bake)) = setup() else {
        return;
    };
    let one = format!("{}/a/one:1", reg.addr);
    build_case(&bake, "two-stage", &one, &base, &[]);

    // The base layer came from library/busybox on this registry: mounted
    // from there; the layers the build made are uploaded.
    let first = bake.ok(&["push", &one]);
    assert!(
        !lines_with(&first, "Mounted from library/busybox").is_empty(),
        "{first}"
    );
    assert!(!lines_with(&first, ": Pushed").is_empty(), "{first}");

    let two = format!("{}/b/two:1", reg.addr);
    bake.ok(&["tag", &one, &two]);
    let second = bake.ok(&["push", &two]);
    assert!(lines_with(&second, ": Pushing").is_empty(), "{second}");
    assert!(lines_with(&second, ": Pushed").is_empty(), "{second}");
    let layer_digests = layers(&two);
    // Every layer and the config were mounted, most from a/one (the base
    // layer may name either repository: both hold it).
    assert_eq!(
        lines_with(&second, "Mounted from").len(),
        layer_digests.len() + 1,
        "{second}"
    );
    assert!(
        lines_with(&second, "Mounted from a/one").len() >= layer_digests.len(),
        "{second}"
    );
    for digest in &layer_digests {
        assert_eq!(head_blob(&reg, "b/two", digest), "200", "{digest}");
    }
    assert_eq!(layers(&one), layer_digests);
}

#[test]
fn a_registry_cache_pushed_to_a_second_repository_mounts_its_blobs() {
    let Some((reg, base, bake)) = setup() else {
        return;
    };
    let host = &reg.addr;
    let first = format!("type=registry,ref={host}/cache/one:c,mode=max");
    let (ctx, out) = build_case(&bake, "two-stage", "app:1", &base, &["--cache-to", &first]);
    // The first export uploads what the registry lacks; the base layer
    // came from library/busybox and is mounted from there.
    let summary = |out: &Output| {
        out.stderr
            .lines()
            .find(|l| l.contains("exported cache to"))
            .unwrap_or_else(|| panic!("no export line in:\n{out}"))
            .to_string()
    };
    let line = summary(&out);
    assert!(!line.contains(" 0 pushed"), "{line}");

    let second = format!("type=registry,ref={host}/cache/two:c,mode=max");
    let [a, b] = base_arg(&base);
    let out = bake.ok(&[
        "build",
        "--progress=plain",
        "-t",
        "app:1",
        &a,
        &b,
        "--cache-to",
        &second,
        ctx.path().to_str().unwrap(),
    ]);
    // Every blob of the second cache (layers and cache config) is linked
    // from the first repository: none is uploaded.
    let line = summary(&out);
    assert!(line.contains(" 0 pushed"), "{line}");
    assert!(!line.contains(" 0 mounted"), "{line}");
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{host}/cache/two:c"))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    let blobs: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(std::iter::once(&manifest["config"]))
        .map(|d| d["digest"].as_str().unwrap())
        .collect();
    assert!(
        line.contains(&format!("{} mounted", blobs.len())),
        "{line} ({} blobs)",
        blobs.len()
    );
    for digest in blobs {
        assert_eq!(head_blob(&reg, "cache/two", digest), "200", "{digest}");
    }
}
