//! `bake build --memory`: every RUN gets a memory-limited cgroup of its
//! own, so parallel steps cannot exhaust a CI runner (moby/buildkit#1131),
//! and the limit is not part of any cache key.

use crate::cache_flags::context_with;
use crate::harness::{base_arg, layer_steps, setup};

/// A RUN that needs a 64 MiB buffer.
const GREEDY: &str = "ARG BASE\nFROM $BASE\n\
    RUN dd if=/dev/zero of=/dev/null bs=64M count=1 && echo fits > /ok\n";

#[test]
fn a_run_over_the_memory_limit_is_killed_and_the_limit_is_not_in_the_key() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let ctx = context_with(&[("Dockerfile", GREEDY)]);
    let ctx = ctx.path().to_str().unwrap();
    let [a, b] = base_arg(&base);

    let out = bake.run(&[
        "build",
        "--progress=plain",
        "-m",
        "16m",
        "-t",
        "greedy:1",
        &a,
        &b,
        ctx,
    ]);
    assert_eq!(out.code, 1, "the RUN fit in 16 MiB:\n{out}");
    assert!(
        out.stderr.contains("exit code: 137"),
        "not killed by the limit (SIGKILL, 137):\n{out}"
    );

    // Enough memory: it builds, and a rebuild without the flag (or with
    // another limit) reuses the step.
    let out = bake.ok(&[
        "build",
        "--progress=plain",
        "--memory",
        "256m",
        "-t",
        "greedy:1",
        &a,
        &b,
        ctx,
    ]);
    assert!(
        layer_steps(&out.stderr)
            .iter()
            .all(|(_, _, cached)| !cached),
        "{out}"
    );
    let out = bake.ok(&["build", "--progress=plain", "-t", "greedy:1", &a, &b, ctx]);
    let steps = layer_steps(&out.stderr);
    assert!(
        !steps.is_empty() && steps.iter().all(|(_, _, cached)| *cached),
        "{out}"
    );
    let run = bake.ok(&["run", "--rm", "greedy:1", "cat", "/ok"]);
    assert_eq!(run.stdout.trim(), "fits");
}

#[test]
fn a_bad_memory_size_is_a_clear_error() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let ctx = context_with(&[("Dockerfile", GREEDY)]);
    let [a, b] = base_arg(&base);
    let out = bake.run(&["build", "-m", "lots", &a, &b, ctx.path().to_str().unwrap()]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("invalid memory size \"lots\""), "{out}");
}
