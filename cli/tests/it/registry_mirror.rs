//! Short names and registry mirrors: `busybox` means
//! `docker.io/library/busybox:latest`, and a pull of `docker.io/...` tries
//! the mirrors from `--registry-mirror` and the config file first. Docker
//! Hub is unreachable here, so every pull that succeeds proves the mirror
//! served it and the upstream was never needed.

use std::process::Command;

use crate::harness::{scratch_dir, setup, Bake, Output, Registry};

fn run_with_config(bake: &Bake, config: &std::path::Path, args: &[&str]) -> Output {
    let mut cmd: Command = bake.cmd();
    let out = cmd.env("BAKE_CONFIG", config).args(args).output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn the_mirror_flag_serves_short_docker_hub_names() {
    let Some((reg, _base, bake)) = setup() else {
        return;
    };
    let out = bake.ok(&["--registry-mirror", &reg.addr, "pull", "busybox"]);
    assert!(
        out.stdout.contains(&format!("Trying mirror {}", reg.addr)),
        "{out}"
    );
    assert!(!out.stdout.contains("failed"), "{out}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l == "docker.io/library/busybox:latest"),
        "{out}"
    );
    assert_eq!(
        bake.ok(&["run", "--rm", "busybox", "echo", "via mirror"])
            .stdout,
        "via mirror\n"
    );
}

#[test]
fn config_file_mirrors_are_tried_in_order_for_pulls_and_from() {
    let Some((reg, _base, _bake)) = setup() else {
        return;
    };
    // The first mirror does not have the image: the second one serves it.
    let empty = Registry::start();
    let dir = tempfile::Builder::new()
        .prefix("bake-it-config-")
        .tempdir_in(scratch_dir())
        .unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[registries.\"docker.io\"]\nmirrors = [\"{}\", \"http://{}\"]\n",
            empty.addr, reg.addr
        ),
    )
    .unwrap();

    let bake = Bake::new();
    let out = run_with_config(
        &bake,
        &config,
        &["pull", "docker.io/library/busybox:latest"],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout
            .contains(&format!("Mirror {} failed", empty.addr)),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!("Trying mirror {}", reg.addr)),
        "{out}"
    );

    // FROM busybox resolves through the same mirrors.
    let ctx = tempfile::Builder::new()
        .prefix("bake-it-ctx-")
        .tempdir_in(scratch_dir())
        .unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN echo built from the mirror > /b\nCMD [\"cat\", \"/b\"]\n",
    )
    .unwrap();
    let builder = Bake::new();
    let ctx_path = ctx.path().to_str().unwrap();
    let out = run_with_config(
        &builder,
        &config,
        &["build", "--progress=plain", "-t", "mirrored:1", ctx_path],
    );
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        builder.ok(&["run", "--rm", "mirrored:1"]).stdout,
        "built from the mirror\n"
    );

    // A typo in the file is an error naming it, not a silently lost mirror.
    std::fs::write(&config, "[registries.\"docker.io\"]\nmirror = [\"x\"]\n").unwrap();
    let out = run_with_config(&Bake::new(), &config, &["pull", "busybox"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stderr.contains("config.toml") && out.stderr.contains("mirror"),
        "{out}"
    );
}
