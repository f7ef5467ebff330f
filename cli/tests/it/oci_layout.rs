//! OCI image layouts: `bake save --format oci-dir|oci-archive` is read by
//! skopeo, umoci and oci-image-tool; `bake load` reads them back (and
//! layouts skopeo wrote), from a directory, a file or stdin.

use std::process::{Command, Stdio};

use crate::harness::{build_case, busybox_layout, scratch_dir, setup, skip, Bake};

const RESULT: &str = "built by RUN\nhello from the context\n";

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn has(tool: &str) -> Option<String> {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    (!found).then(|| format!("`{tool}` is not installed"))
}

#[test]
fn oci_dir_and_archive_are_read_by_skopeo_umoci_and_oci_image_tool() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    if skip(has("oci-image-tool")) {
        return;
    }
    build_case(&bake, "two-stage", "app:1", &base, &[]);
    let work = tempfile::tempdir_in(scratch_dir()).unwrap();
    let dir = work.path().join("layout");
    let dir_s = dir.to_str().unwrap();
    bake.ok(&["save", "--format", "oci-dir", "-o", dir_s, "app:1"]);

    let info = ok(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{dir_s}:1")));
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["Layers"].as_array().unwrap().len(), 3, "{info}");

    ok(Command::new("oci-image-tool")
        .args(["validate", "--type", "image", "--ref", "name=1"])
        .arg(&dir));

    let bundle = work.path().join("bundle");
    ok(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{dir_s}:1"))
        .arg(&bundle));
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/app/result.txt")).unwrap(),
        RESULT
    );

    // The tar form, zstd-compressed: skopeo reads it, bake loads it.
    let archive = work.path().join("app.tar");
    bake.ok(&[
        "save",
        "--format",
        "oci-archive",
        "--compression",
        "zstd",
        "-o",
        archive.to_str().unwrap(),
        "app:1",
    ]);
    let raw = ok(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci-archive:{}:1", archive.display())));
    assert!(raw.contains("tar+zstd"), "{raw}");

    for input in [&archive, &dir] {
        let fresh = Bake::new();
        let out = fresh.ok(&["load", "-i", input.to_str().unwrap()]);
        assert_eq!(out.stdout, "Loaded image: app:1\n", "{out}");
        assert_eq!(fresh.ok(&["run", "--rm", "app:1"]).stdout, RESULT);
    }

    // From stdin too.
    let fresh = Bake::new();
    let out = fresh
        .cmd()
        .arg("load")
        .stdin(std::fs::File::open(&archive).unwrap())
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fresh.ok(&["run", "--rm", "app:1"]).stdout, RESULT);
}

#[test]
fn a_layout_written_by_skopeo_loads_and_runs() {
    let Some((_reg, _base, bake)) = setup() else {
        return;
    };
    let work = tempfile::tempdir_in(scratch_dir()).unwrap();
    let archive = work.path().join("bb.tar");
    ok(Command::new("skopeo")
        .arg("copy")
        .arg("--quiet")
        .arg(format!("oci:{}:latest", busybox_layout().display()))
        .arg(format!("oci-archive:{}:bb:1", archive.display())));
    let out = bake.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out.stdout, "Loaded image: bb:1\n", "{out}");
    assert_eq!(
        bake.ok(&["run", "--rm", "bb:1", "echo", "hi"]).stdout,
        "hi\n"
    );

    // A bare tag names nothing: the image is loaded by id.
    let out = bake.ok(&["load", "-i", busybox_layout().to_str().unwrap()]);
    assert!(out.stdout.starts_with("Loaded image ID: sha256:"), "{out}");
}
