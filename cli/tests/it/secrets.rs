//! `RUN --mount=type=secret` and `type=ssh`: readable while the RUN runs,
//! absent from every layer, the cache key and the history.

use std::process::Command;

use crate::cache_flags::context_with;
use crate::harness::{base_arg, scratch_dir, setup, Bake};

/// The RUNs record digests of what they saw, never the secrets themselves.
const DOCKERFILE: &str = "ARG BASE\nFROM $BASE\n\
RUN --mount=type=secret,id=tok md5sum < /run/secrets/tok > /saw-file\n\
RUN --mount=type=secret,id=envtok,env=TOKEN,target=/opt/envtok printf %s \"$TOKEN\" | md5sum > /saw-env\n\
RUN --mount=type=secret,id=tok,mode=0440,uid=7,gid=8 stat -c '%a %u %g' /run/secrets/tok > /saw-stat\n\
RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo skipped > /saw-absent\n";

/// `md5sum` of `data` as busybox prints it for stdin.
fn md5(data: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg("printf %s \"$1\" | md5sum")
        .arg("sh")
        .arg(data)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// The bytes of every layer of `tag`, decompressed and concatenated, from
/// `bake save`.
fn layer_bytes(bake: &Bake, tag: &str) -> Vec<u8> {
    let dir = tempfile::tempdir_in(scratch_dir()).unwrap();
    let archive = dir.path().join("image.tar");
    bake.ok(&["save", "-o", archive.to_str().unwrap(), tag]);
    let unpacked = dir.path().join("x");
    std::fs::create_dir(&unpacked).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(st.success());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(unpacked.join("manifest.json")).unwrap()).unwrap();
    let layers = manifest[0]["Layers"].as_array().unwrap();
    assert!(!layers.is_empty());
    let mut all = Vec::new();
    for layer in layers {
        let path = unpacked.join(layer.as_str().unwrap());
        let out = Command::new("zcat").arg("-f").arg(&path).output().unwrap();
        assert!(out.status.success(), "zcat {}", path.display());
        all.extend_from_slice(&out.stdout);
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn a_secret_is_readable_in_run_and_absent_from_layers_keys_and_history() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let ctx = context_with(&[("Dockerfile", DOCKERFILE)]);
    let secret_dir = tempfile::tempdir_in(scratch_dir()).unwrap();
    let secret = secret_dir.path().join("tok");
    std::fs::write(&secret, "s3cr3t-file").unwrap();
    let src = format!("id=tok,src={}", secret.display());
    let run = |bake: &Bake| {
        let [a, b] = base_arg(&base);
        let out = bake
            .cmd()
            .env("ENV_SECRET", "s3cr3t-env")
            .args([
                "build",
                "--progress=plain",
                "-t",
                "sec:1",
                &a,
                &b,
                "--secret",
                &src,
                "--secret",
                "id=envtok,env=ENV_SECRET",
                ctx.path().to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "build failed:\n{stderr}");
        stderr
    };
    let first = run(&bake);
    assert!(
        !first.contains("s3cr3t"),
        "a secret in the progress:\n{first}"
    );
    let out = bake.ok(&[
        "run",
        "--rm",
        "sec:1",
        "cat",
        "/saw-file",
        "/saw-env",
        "/saw-stat",
        "/saw-absent",
    ]);
    let want = format!(
        "{}{}440 7 8\nskipped\n",
        md5("s3cr3t-file"),
        md5("s3cr3t-env")
    );
    assert_eq!(out.stdout, want);

    // Not in any layer: neither the content nor the mount point.
    let bytes = layer_bytes(&bake, "sec:1");
    for needle in ["s3cr3t", "run/secrets", "opt/envtok"] {
        assert!(!contains(&bytes, needle), "`{needle}` is in a layer");
    }
    let out = bake.ok(&[
        "run",
        "--rm",
        "sec:1",
        "sh",
        "-c",
        "ls -a /run /opt 2>&1; true",
    ]);
    assert!(
        !out.stdout.contains("secrets") && !out.stdout.contains("envtok"),
        "{out}"
    );
    // Not in the config or its history.
    let inspect = bake.ok(&["inspect", "sec:1"]);
    assert!(!inspect.stdout.contains("s3cr3t"), "{inspect}");

    // Not in the cache key: a changed secret reuses every step, as in
    // BuildKit.
    std::fs::write(&secret, "changed").unwrap();
    let again = run(&bake);
    assert!(
        crate::harness::layer_steps(&again).iter().all(|s| s.2),
        "a step reran although only a secret changed:\n{again}"
    );
    let out = bake.ok(&["run", "--rm", "sec:1", "cat", "/saw-file"]);
    assert_eq!(out.stdout, md5("s3cr3t-file"));
}

#[test]
fn a_required_secret_that_was_not_given_fails_the_build() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let df = "ARG BASE\nFROM $BASE\nRUN --mount=type=secret,id=nope,required true\n";
    let ctx = context_with(&[("Dockerfile", df)]);
    let [a, b] = base_arg(&base);
    let out = bake.run(&[
        "build",
        "--progress=plain",
        &a,
        &b,
        ctx.path().to_str().unwrap(),
    ]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("secret nope not found"), "{out}");
}

#[test]
fn ssh_forwards_the_agent_socket() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let dir = tempfile::tempdir_in(scratch_dir()).unwrap();
    let sock = dir.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let df = "ARG BASE\nFROM $BASE\n\
        RUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && echo \"$SSH_AUTH_SOCK\" | wc -c > /ssh-ok\n";
    let ctx = context_with(&[("Dockerfile", df)]);
    let [a, b] = base_arg(&base);
    let out = bake
        .cmd()
        .env("SSH_AUTH_SOCK", &sock)
        .args(["build", "-q", "-t", "ssh:1", &a, &b, "--ssh", "default"])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = bake.ok(&["run", "--rm", "ssh:1", "cat", "/ssh-ok"]);
    // The socket was at BuildKit's default path ("/run/buildkit/ssh_agent.0\n").
    assert_eq!(run.stdout.trim(), "26");
    assert!(!contains(&layer_bytes(&bake, "ssh:1"), "ssh_agent"));
}

/// `env=` without `target=`: the secret is a variable and no file, as in
/// BuildKit; with a target it is both (the first test).
#[test]
fn a_secret_with_env_and_no_target_is_only_a_variable() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let df = "ARG BASE\nFROM $BASE\n\
        RUN --mount=type=secret,id=tok,env=TOK sh -c 'test ! -e /run/secrets/tok && test ! -e /run/secrets && printf %s \"$TOK\" | md5sum > /saw'\n";
    let ctx = context_with(&[("Dockerfile", df)]);
    let [a, b] = base_arg(&base);
    let out = bake
        .cmd()
        .env("ENV_ONLY_SECRET", "s3cr3t-env-only")
        .args(["build", "-q", "-t", "envonly:1", &a, &b])
        .args(["--secret", "id=tok,env=ENV_ONLY_SECRET"])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = bake.ok(&["run", "--rm", "envonly:1", "cat", "/saw"]);
    // md5("s3cr3t-env-only")
    let want = {
        let o = Command::new("sh")
            .args(["-c", "printf %s s3cr3t-env-only | md5sum"])
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(run.stdout.trim(), want.trim());
    assert!(!contains(&layer_bytes(&bake, "envonly:1"), "s3cr3t"));
}

/// `uid`, `gid` and `mode` of an ssh mount apply to the socket the RUN
/// sees (a forwarding socket of its own), not to the host's agent socket.
#[test]
fn an_ssh_mount_has_the_asked_owner_and_mode() {
    use std::os::unix::fs::PermissionsExt;
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let dir = tempfile::tempdir_in(scratch_dir()).unwrap();
    let sock = dir.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).unwrap();
    let df = "ARG BASE\nFROM $BASE\n\
        RUN --mount=type=ssh,uid=1000,gid=1001,mode=0660 stat -c '%u %g %a' \"$SSH_AUTH_SOCK\" > /ssh-stat\n\
        RUN --mount=type=ssh stat -c '%u %g %a' \"$SSH_AUTH_SOCK\" > /ssh-default\n";
    let ctx = context_with(&[("Dockerfile", df)]);
    let [a, b] = base_arg(&base);
    let out = bake
        .cmd()
        .args(["build", "-q", "-t", "sshmode:1", &a, &b])
        .arg("--ssh")
        .arg(format!("default={}", sock.display()))
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = bake.ok(&[
        "run",
        "--rm",
        "sshmode:1",
        "cat",
        "/ssh-stat",
        "/ssh-default",
    ]);
    assert_eq!(run.stdout, "1000 1001 660\n0 0 600\n");
    // The host's socket is untouched.
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}
