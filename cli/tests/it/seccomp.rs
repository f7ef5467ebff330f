//! The seccomp filter (Docker's default profile) in RUN, `bake run` and `bake exec`;
//! `--security-opt seccomp=unconfined|PROFILE.json`, `--privileged` and
//! `RUN --security=insecure` without it. A static probe (`testdata/seccomp/probe.c`)
//! makes the raw syscalls and prints `NAME=OK` or `NAME=<errno>`.

use crate::harness::{scratch_dir, setup, testdata, Bake};
use crate::ports::{build_in, cc_static, RemoveOnDrop};

const EPERM: &str = "1";
const ENOSYS: &str = "38";

/// Denied by the default profile for a container without CAP_SYS_ADMIN, and how.
const DENIED: [(&str, &str); 8] = [
    ("keyctl", EPERM),
    ("add_key", EPERM),
    ("request_key", EPERM),
    ("clone-newuser", EPERM),
    ("clone3", ENOSYS),
    ("personality", EPERM),
    ("userfaultfd", EPERM),
    ("unshare-user", EPERM),
];

/// Allowed by the kernel for root in the container once no filter is in the way (the
/// rest need capabilities or sysctls the container does not have).
const ALLOWED_UNCONFINED: [&str; 5] = [
    "keyctl",
    "clone-newuser",
    "clone3",
    "personality",
    "unshare-user",
];

/// The value the probe printed for `name` in `output`.
fn result<'a>(output: &'a str, name: &str) -> &'a str {
    let key = format!("{name}=");
    output
        .lines()
        .find_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix(&key)))
        .unwrap_or_else(|| panic!("the probe printed no {name}:\n{output}"))
}

fn assert_denied(output: &str, context: &str) {
    for (name, errno) in DENIED {
        assert_eq!(result(output, name), errno, "{context}: {name}\n{output}");
    }
}

/// Builds `probe:1`: the probe at /probe, run once by a RUN step (the build's output
/// is returned), plus a RUN with `--security=insecure`.
fn build_probe(bake: &Bake, base: &str) -> String {
    let ctx = tempfile::tempdir_in(scratch_dir()).unwrap();
    cc_static(
        &testdata("seccomp").join("probe.c"),
        &ctx.path().join("probe"),
    );
    let df = "ARG BASE\nFROM $BASE\nCOPY probe /probe\n\
              RUN /probe && grep Seccomp: /proc/self/status | tr '\\t' ' ' | sed 's/^/run-/'\n\
              RUN --security=insecure grep Seccomp: /proc/self/status | tr '\\t' ' ' | sed 's/^/insecure-/'\n";
    build_in(bake, ctx.path(), df, "probe:1", base)
}

#[test]
fn run_steps_and_containers_are_filtered_like_docker() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let build = build_probe(&bake, &base);
    assert_denied(&build, "RUN");
    assert!(build.contains("run-Seccomp: 2"), "{build}");
    assert!(build.contains("insecure-Seccomp: 0"), "{build}");

    let run = bake.ok(&["run", "--rm", "probe:1", "/probe"]);
    assert_denied(&run.stdout, "bake run");
    let status = bake.ok(&[
        "run",
        "--rm",
        "probe:1",
        "grep",
        "Seccomp:",
        "/proc/self/status",
    ]);
    assert_eq!(status.stdout, "Seccomp:\t2\n");

    // Busybox, a shell pipeline and the usual file tools are unaffected.
    let tools = bake.ok(&[
        "run",
        "--rm",
        "probe:1",
        "sh",
        "-c",
        "mkdir -p /t/a && echo x > /t/a/f && cp -a /t /u && tar -cf - /u 2>/dev/null | tar -tf - | sort | head -n 3 && sleep 0 && date +%Y >/dev/null && echo tools-ok",
    ]);
    assert!(tools.stdout.ends_with("tools-ok\n"), "{tools}");

    // bake exec inherits the container's filter.
    let _cleanup = RemoveOnDrop(&bake, "sc");
    bake.ok(&["run", "-d", "--name", "sc", "probe:1", "sleep", "300"]);
    let exec = bake.ok(&["exec", "sc", "/probe"]);
    assert_denied(&exec.stdout, "bake exec");
}

#[test]
fn unconfined_privileged_and_custom_profiles() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    build_probe(&bake, &base);

    let free = bake.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "probe:1",
        "/probe",
    ]);
    for name in ALLOWED_UNCONFINED {
        assert_eq!(
            result(&free.stdout, name),
            "OK",
            "unconfined {name}\n{free}"
        );
    }
    for flags in [
        &["--security-opt", "seccomp=unconfined"][..],
        &["--privileged"],
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend(["probe:1", "grep", "Seccomp:", "/proc/self/status"]);
        assert_eq!(bake.ok(&args).stdout, "Seccomp:\t0\n", "{flags:?}");
    }
    // --security-opt no-new-privileges is accepted (it is always in effect).
    let nnp = bake.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "no-new-privileges",
        "probe:1",
        "grep",
        "NoNewPrivs:",
        "/proc/self/status",
    ]);
    assert_eq!(nnp.stdout, "NoNewPrivs:\t1\n");

    // A Docker-format profile: everything allowed but mkdir, which fails with EACCES.
    let dir = tempfile::tempdir_in(scratch_dir()).unwrap();
    let profile = dir.path().join("profile.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = bake.run(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "probe:1",
        "mkdir",
        "/made",
    ]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("Permission denied"), "{out}");
    // The rest is allowed: no keyctl denial under this profile.
    let probe = bake.ok(&["run", "--rm", "--security-opt", &opt, "probe:1", "/probe"]);
    assert_eq!(result(&probe.stdout, "keyctl"), "OK", "{probe}");

    std::fs::write(&profile, r#"{"defaultAction": "SCMP_ACT_SOMETIMES"}"#).unwrap();
    let bad = bake.run(&["run", "--rm", "--security-opt", &opt, "probe:1", "true"]);
    assert_eq!(bad.code, 125, "{bad}");
    assert!(bad.stderr.contains("unknown action"), "{bad}");
    let unknown = bake.run(&[
        "run",
        "--rm",
        "--security-opt",
        "apparmor=x",
        "probe:1",
        "true",
    ]);
    assert_eq!(unknown.code, 125, "{unknown}");
    assert!(
        unknown.stderr.contains("unsupported --security-opt"),
        "{unknown}"
    );
}
