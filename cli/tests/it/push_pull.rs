//! push and pull against a real registry, checked with skopeo and umoci.

use std::process::Command;

use crate::harness::{build_case, scratch_dir, setup, Bake};

#[test]
fn push_then_inspect_unpack_and_pull_into_a_fresh_store() {
    let Some((reg, base, bake)) = setup() else {
        return;
    };
    let name = format!("{}/team/app:1", reg.addr);
    build_case(&bake, "two-stage", &name, &base, &[]);
    bake.ok(&["push", &name]);

    // skopeo sees an OCI image with the right config
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--config"])
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["cat", "/app/result.txt"])
    );
    assert_eq!(config["os"], "linux");

    // umoci unpacks it and the file is there
    let work = tempfile::tempdir_in(scratch_dir()).unwrap();
    let layout = work.path().join("layout");
    let ok = Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{name}"))
        .arg(format!("oci:{}:x", layout.display()))
        .status()
        .unwrap();
    assert!(ok.success(), "skopeo copy failed");
    let bundle = work.path().join("bundle");
    let out = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:x", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = std::fs::read_to_string(bundle.join("rootfs/app/result.txt")).unwrap();
    assert_eq!(result, "built by RUN\nhello from the context\n");
    assert!(
        bundle.join("rootfs/bin/busybox").is_file(),
        "base layer missing"
    );

    // a second push finds every blob in place
    let again = bake.ok(&["push", &name]);
    assert!(
        !again.stdout.contains("Pushed") && !again.stderr.contains("Pushed"),
        "an unchanged image uploaded blobs again:\n{again}"
    );

    // a fresh store pulls it and runs it
    let fresh = Bake::new();
    fresh.ok(&["pull", &name]);
    assert_eq!(
        fresh.ok(&["run", "--rm", &name]).stdout,
        "built by RUN\nhello from the context\n"
    );
}

#[test]
fn pull_a_base_image_and_run_it() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    bake.ok(&["pull", &base]);
    let out = bake.ok(&[
        "run",
        "--rm",
        &base,
        "sh",
        "-c",
        "id -un; cat /etc/hostname",
    ]);
    assert_eq!(out.stdout, "root\nbusybox\n");
    let images = bake.ok(&["images"]);
    assert!(images.stdout.contains("library/busybox"), "{images}");
}
