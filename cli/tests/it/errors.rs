//! Bad input gets a clear error naming file, line and column, with the line.

use crate::harness::{context, skip, Bake};

#[test]
fn an_unknown_instruction_names_the_file_line_and_column_and_suggests_a_fix() {
    let bake = Bake::new();
    let ctx = context("bad-syntax");
    let out = bake.run(&["build", "-t", "bad", ctx.path().to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("Dockerfile:2:1"),
        "no file:line:col in:\n{out}"
    );
    assert!(
        out.stderr.contains("COPPY a /b"),
        "the source line is not shown:\n{out}"
    );
    assert!(
        out.stderr.contains("did you mean COPY"),
        "no suggestion in:\n{out}"
    );
}

#[test]
fn a_missing_dockerfile_is_named() {
    let bake = Bake::new();
    let dir = tempfile::tempdir().unwrap();
    let out = bake.run(&["build", dir.path().to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("Dockerfile"), "{out}");
}

#[test]
fn running_an_unknown_image_fails_with_docker_exit_code_125() {
    if skip(crate::harness::missing_prerequisites()) {
        return;
    }
    let bake = Bake::new();
    // a loopback port with nothing listening: the pull fails at once
    let out = bake.run(&["run", "--rm", "127.0.0.1:9/nothing/here:1"]);
    assert_eq!(out.code, 125, "{out}");
}
