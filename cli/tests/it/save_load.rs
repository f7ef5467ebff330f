//! save and load: docker-archive tarballs move images between stores.

use std::process::Command;

use crate::harness::{build_case, scratch_dir, setup, Bake};

#[test]
fn save_then_load_into_a_fresh_store_runs_the_same() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    build_case(&bake, "two-stage", "app:1", &base, &[]);
    let dir = tempfile::tempdir_in(scratch_dir()).unwrap();
    let archive = dir.path().join("app.tar");
    bake.ok(&["save", "-o", archive.to_str().unwrap(), "app:1"]);

    let listing = Command::new("tar")
        .arg("-tf")
        .arg(&archive)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.lines().any(|l| l == "manifest.json"),
        "not a docker-archive:\n{listing}"
    );

    // skopeo reads it as a docker-archive too
    let out = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("docker-archive:{}", archive.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let fresh = Bake::new();
    fresh.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(
        fresh.ok(&["run", "--rm", "app:1"]).stdout,
        "built by RUN\nhello from the context\n"
    );
}
