//! Cross-repository blob mounts: a push sends no layer bytes for blobs that
//! bake knows another repository of the same registry holds (pulled from
//! there or pushed there before); the registry links them instead.

use std::process::Command;

use crate::harness::{build_case, setup, Output, Registry};

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
