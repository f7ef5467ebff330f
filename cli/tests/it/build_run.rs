//! A multi-stage build that runs, as a user first tries bake.

use crate::harness::{base_arg, build_case, context, setup};

const TWO_STAGE_OUTPUT: &str = "built by RUN\nhello from the context\n";

#[test]
fn two_stage_build_runs_with_the_right_output() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let (_ctx, build) = build_case(&bake, "two-stage", "app:1", &base, &[]);
    assert!(
        !build.stderr.contains("this stage is not needed"),
        "a stage the target does not need was built:\n{build}"
    );
    let run = bake.ok(&["run", "--rm", "app:1"]);
    assert_eq!(run.stdout, TWO_STAGE_OUTPUT);
}

#[test]
fn run_propagates_the_exit_code_and_runs_commands_in_the_image() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    build_case(&bake, "two-stage", "app:1", &base, &[]);
    let out = bake.run(&["run", "--rm", "app:1", "sh", "-c", "exit 7"]);
    assert_eq!(out.code, 7, "{out}");
    let out = bake.ok(&[
        "run",
        "--rm",
        "app:1",
        "sh",
        "-c",
        "echo $GREETING; pwd; ls /app",
    ]);
    assert_eq!(out.stdout, "hello\n/app\nresult.txt\n");
}

#[test]
fn file_flag_target_and_build_args_select_what_is_built() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let ctx = context("two-stage");
    let dockerfile = ctx.path().join("Dockerfile");
    let elsewhere = tempfile::tempdir().unwrap();
    let moved = elsewhere.path().join("Build.dockerfile");
    std::fs::rename(&dockerfile, &moved).unwrap();
    let [a, b] = base_arg(&base);
    bake.ok(&[
        "build",
        "-t",
        "app:build",
        "-f",
        moved.to_str().unwrap(),
        &a,
        &b,
        "--target",
        "build",
        ctx.path().to_str().unwrap(),
    ]);
    let out = bake.ok(&["run", "--rm", "app:build", "cat", "/src/built.txt"]);
    assert_eq!(out.stdout, TWO_STAGE_OUTPUT);
    // the build stage's WORKDIR and the absence of the final stage's files
    let out = bake.run(&[
        "run",
        "--rm",
        "app:build",
        "sh",
        "-c",
        "pwd; test -e /app/result.txt",
    ]);
    assert_eq!(out.stdout, "/src\n");
    assert_eq!(
        out.code, 1,
        "the final stage leaked into --target build:\n{out}"
    );
}

#[test]
fn a_failing_run_step_fails_the_build_with_its_exit_code() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let ctx = context("two-stage");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {base}\nRUN echo about to fail && exit 3\n"),
    )
    .unwrap();
    let out = bake.run(&[
        "build",
        "--progress=plain",
        "-t",
        "broken",
        ctx.path().to_str().unwrap(),
    ]);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stderr.contains("about to fail"),
        "RUN output not shown:\n{out}"
    );
    assert!(out.stderr.contains("exit code: 3"), "{out}");
    let images = bake.ok(&["images"]);
    assert!(
        !images.stdout.contains("broken"),
        "a failed build was tagged:\n{images}"
    );
}
