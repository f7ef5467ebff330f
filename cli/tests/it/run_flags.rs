//! `bake run` flags beyond the basics: --env-file, --tmpfs, --mount, --read-only,
//! --cap-add/--cap-drop, --init, --stop-signal/--stop-timeout, VOLUME from the
//! image, --pids-limit and --memory (cgroups).

use std::path::Path;

use crate::harness::{base_arg, scratch_dir, setup, Bake, Output};

/// Builds `dockerfile` (with `ARG BASE` available) in a fresh context, tagged `tag`.
pub fn build_inline(
    bake: &Bake,
    dockerfile: &str,
    tag: &str,
    base: &str,
    extra: &[&str],
) -> Output {
    let ctx = tempfile::Builder::new()
        .prefix("bake-it-ctx-")
        .tempdir_in(scratch_dir())
        .unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    let [a, b] = base_arg(base);
    let mut args = vec!["build", "--progress=plain", "-t", tag, &a, &b];
    args.extend_from_slice(extra);
    let path = ctx.path().to_str().unwrap().to_string();
    args.push(&path);
    bake.run(&args)
}

#[test]
fn env_file_tmpfs_mounts_and_read_only_root() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    bake.ok(&["pull", "-q", &base]);
    let host = tempfile::tempdir_in(scratch_dir()).unwrap();
    std::fs::write(host.path().join("in"), "host-data").unwrap();
    let env = host.path().join("env");
    std::fs::write(
        &env,
        "# comment\nA=from-file\n\nB=two words\nC=overridden\n",
    )
    .unwrap();
    let bind = format!(
        "type=bind,source={},target=/b,readonly",
        host.path().display()
    );
    let script = "echo \"$A|$B|$C\"; \
        touch /rootfile 2>/dev/null && echo root-writable; \
        touch /scratch/x /t2/x && echo tmpfs-writable; \
        for m in /scratch /t2; do grep \" $m \" /proc/mounts | cut -d' ' -f2,3; done; \
        grep ' /scratch ' /proc/mounts | grep -o 'size=[0-9a-z]*'; \
        cat /b/in; echo; echo no > /b/out 2>/dev/null && echo bind-writable; true";
    let out = bake.ok(&[
        "run",
        "--rm",
        "--read-only",
        "--env-file",
        env.to_str().unwrap(),
        "-e",
        "C=flag",
        "--tmpfs",
        "/scratch:size=1m",
        "--mount",
        "type=tmpfs,target=/t2",
        "--mount",
        &bind,
        &base,
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(
        out.stdout,
        "from-file|two words|flag\ntmpfs-writable\n/scratch tmpfs\n/t2 tmpfs\nsize=1024k\nhost-data\n",
        "{out}"
    );
    assert!(!host.path().join("out").exists());
    let bad = bake.run(&[
        "run",
        "--rm",
        "--mount",
        "type=npipe,target=/x",
        &base,
        "true",
    ]);
    assert_eq!(bad.code, 125, "{bad}");
    assert!(bad.stderr.contains("not supported"), "{bad}");
}

/// CapEff of the container's shell, as /proc shows it.
fn cap_eff(bake: &Bake, base: &str, flags: &[&str]) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[base, "sh", "-c", "grep CapEff /proc/self/status | cut -f2"]);
    bake.ok(&args).stdout.trim().to_string()
}

#[test]
fn capabilities_follow_docker_defaults_add_and_drop() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    bake.ok(&["pull", "-q", &base]);
    // Docker's default set.
    assert_eq!(cap_eff(&bake, &base, &[]), "00000000a80425fb");
    assert_eq!(
        cap_eff(&bake, &base, &["--cap-add", "NET_ADMIN"]),
        "00000000a80435fb"
    );
    assert_eq!(
        cap_eff(&bake, &base, &["--cap-drop", "chown"]),
        "00000000a80425fa"
    );
    assert_eq!(
        cap_eff(
            &bake,
            &base,
            &["--cap-drop", "ALL", "--cap-add", "CAP_KILL"]
        ),
        "0000000000000020"
    );
    let out = bake.run(&[
        "run",
        "--rm",
        "--cap-drop",
        "CHOWN",
        &base,
        "sh",
        "-c",
        "touch /f; chown 1 /f",
    ]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("Operation not permitted"), "{out}");
    let bad = bake.run(&["run", "--rm", "--cap-add", "NOPE", &base, "true"]);
    assert_eq!(bad.code, 125, "{bad}");
    assert!(bad.stderr.contains("unknown capability"), "{bad}");
}

#[test]
fn init_reaps_forwards_and_maps_signals() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    bake.ok(&["pull", "-q", &base]);
    // The command is no longer pid 1 ...
    let out = bake.ok(&[
        "run",
        "--rm",
        "--init",
        &base,
        "sh",
        "-c",
        "echo $$; cat /proc/1/comm",
    ]);
    assert_eq!(out.stdout, "2\nbake-init\n", "{out}");
    // ... so it can be killed by a signal, which the reaper reports as 128+n.
    let out = bake.run(&["run", "--rm", "--init", &base, "sh", "-c", "kill -KILL $$"]);
    assert_eq!(out.code, 137, "{out}");
    // An orphan re-parented to pid 1 is reaped: no zombie is left once it exited.
    let out = bake.ok(&[
        "run",
        "--rm",
        "--init",
        &base,
        "sh",
        "-c",
        "sh -c 'true & echo $! > /tmp/pid'; p=$(cat /tmp/pid); \
         while [ -e /proc/$p ]; do sleep 0.05; done; echo reaped",
    ]);
    assert_eq!(out.stdout, "reaped\n", "{out}");
}

#[test]
fn stop_signal_and_timeout_are_used_by_stop() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    bake.ok(&["pull", "-q", &base]);
    bake.ok(&[
        "run",
        "-d",
        "--name",
        "usr1",
        "--stop-signal",
        "USR1",
        "--stop-timeout",
        "60",
        &base,
        "sh",
        "-c",
        "trap 'echo got-usr1; exit 5' USR1; echo ready; while :; do sleep 0.1; done",
    ]);
    // Only once the trap is set: pid 1 drops a signal it has no handler for.
    crate::lifecycle::logs_contain(&bake, "usr1", "ready");
    bake.ok(&["stop", "usr1"]);
    assert_eq!(bake.ok(&["wait", "usr1"]).stdout, "5\n");
    assert_eq!(bake.ok(&["logs", "usr1"]).stdout, "ready\ngot-usr1\n");
    let bad = bake.run(&["run", "--rm", "--stop-signal", "NOPE", &base, "true"]);
    assert_eq!(bad.code, 125, "{bad}");
}

#[test]
fn image_volumes_are_fresh_directories_seeded_from_the_image() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let df = "ARG BASE\nFROM $BASE\nRUN mkdir /data && echo seed > /data/seed && chown 1000 /data\nVOLUME /data\nSTOPSIGNAL SIGUSR2\n";
    let out = build_inline(&bake, df, "vol:1", &base, &[]);
    assert_eq!(out.code, 0, "{out}");
    let out = bake.ok(&[
        "run",
        "--name",
        "vol",
        "vol:1",
        "sh",
        "-c",
        "cat /data/seed; stat -c %u /data; echo new > /data/new; echo layer > /l",
    ]);
    assert_eq!(out.stdout, "seed\n1000\n");
    let dir = container_dir(&bake, "vol");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["stop_signal"], "SIGUSR2");
    assert!(dir.join("upper/l").is_file());
    assert!(
        !dir.join("upper/data/new").exists(),
        "a volume write went to the layer"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("volumes/0/new")).unwrap(),
        "new\n"
    );
    // -v over the VOLUME path replaces the anonymous volume.
    let host = tempfile::tempdir_in(scratch_dir()).unwrap();
    let v = format!("{}:/data", host.path().display());
    bake.ok(&[
        "run",
        "--rm",
        "-v",
        &v,
        "vol:1",
        "sh",
        "-c",
        "echo h > /data/h",
    ]);
    assert!(host.path().join("h").is_file());
}

/// The directory of the only container named `name`.
fn container_dir(bake: &Bake, name: &str) -> std::path::PathBuf {
    for entry in std::fs::read_dir(bake.root().join("containers")).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(bytes) = std::fs::read(dir.join("config.json")) else {
            continue;
        };
        let config: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        if config["name"] == name {
            return dir;
        }
    }
    panic!("no container named {name}");
}

/// The host cgroup directory of `pid` for a v1 controller.
fn cgroup_v1_dir(pid: u64, controller: &str) -> Option<std::path::PathBuf> {
    let listing = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    listing.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        ctrls.split(',').any(|c| c == controller).then(|| {
            Path::new("/sys/fs/cgroup")
                .join(controller)
                .join(path.trim_start_matches('/'))
        })
    })
}

#[test]
fn pids_and_memory_limits_use_a_cgroup() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        // cgroup v2 host: the v1 file checks below do not apply; the fork test does.
    }
    bake.ok(&["pull", "-q", &base]);
    // A fork bomb stops at the limit (sh itself counts).
    let out = bake.run(&[
        "run",
        "--rm",
        "--pids-limit",
        "3",
        &base,
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6; do sleep 30 & done; echo started",
    ]);
    assert!(out.stderr.contains("can't fork"), "{out}");
    bake.ok(&[
        "run",
        "-d",
        "--name",
        "lim",
        "--pids-limit",
        "7",
        "--memory",
        "64m",
        &base,
        "sleep",
        "300",
    ]);
    let dir = container_dir(&bake, "lim");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    let pid = state["pid"].as_u64().unwrap();
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let pids = cgroup_v1_dir(pid, "pids").unwrap();
        assert!(pids.ends_with(format!(
            "bake-{}",
            &dir.file_name().unwrap().to_str().unwrap()[..12]
        )));
        assert_eq!(
            std::fs::read_to_string(pids.join("pids.max")).unwrap(),
            "7\n"
        );
        let memory = cgroup_v1_dir(pid, "memory").unwrap();
        assert_eq!(
            std::fs::read_to_string(memory.join("memory.limit_in_bytes")).unwrap(),
            "67108864\n"
        );
        bake.ok(&["rm", "-f", "lim"]);
        assert!(!pids.exists(), "the cgroup is left behind");
    } else {
        bake.ok(&["rm", "-f", "lim"]);
    }
    let bad = bake.run(&["run", "--rm", "--memory", "1k", &base, "true"]);
    assert_eq!(bad.code, 125, "{bad}");
}
