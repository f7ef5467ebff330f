//! Two bake processes building the same Dockerfile on one store at the
//! same time: each missing step runs once; the other process waits for it
//! and reports it CACHED.

use std::time::Duration;

use crate::cache_flags::context_with;
use crate::harness::{base_arg, layer_steps, setup};

#[test]
fn a_step_another_process_is_building_is_waited_for_not_built_twice() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    // The RUN leaves a line in a cache mount each time it really runs.
    let df = "ARG BASE\nFROM $BASE\n\
        RUN --mount=type=cache,id=runs,target=/c sh -c 'echo ran >> /c/log; sleep 3' && echo built > /out\n";
    let ctx = context_with(&[("Dockerfile", df)]);
    let [a, b] = base_arg(&base);
    // Pull the base first, so both builds reach the RUN at once.
    bake.ok(&["pull", &base]);
    let build = || {
        bake.cmd()
            .args(["build", "--progress=plain", "-t", "twice:1", &a, &b])
            .arg(ctx.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = build();
    std::thread::sleep(Duration::from_millis(300));
    let second = build();
    let outs: Vec<_> = [first, second]
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let mut ran = 0;
    for out in &outs {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let steps = layer_steps(&stderr);
        assert_eq!(steps.len(), 1, "{stderr}");
        if !steps[0].2 {
            ran += 1;
        }
    }
    assert_eq!(ran, 1, "the RUN was not reported run exactly once");

    // And it really ran once: one line in the cache mount.
    let count = context_with(&[(
        "Dockerfile",
        "ARG BASE\nFROM $BASE\nRUN --mount=type=cache,id=runs,target=/c wc -l < /c/log > /count\n",
    )]);
    bake.ok(&[
        "build",
        "-q",
        "-t",
        "count:1",
        &a,
        &b,
        count.path().to_str().unwrap(),
    ]);
    let run = bake.ok(&["run", "--rm", "count:1", "cat", "/count"]);
    assert_eq!(run.stdout.trim(), "1");
    // Nothing is left claimed.
    let building = bake.root().join("cache").join("building");
    let left: Vec<_> = std::fs::read_dir(&building)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "claims left behind: {left:?}");
}
