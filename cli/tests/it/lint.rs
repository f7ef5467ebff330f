//! BuildKit's lint rules: `bake build --check` reports them without
//! building, a normal build prints them as `WARN:` lines, and
//! `# check=error=true` makes them fatal.

use std::path::Path;

use crate::harness::{setup, Bake};

/// A context directory holding only `Dockerfile` with `text`.
fn dockerfile(text: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("bake-it-lint-")
        .tempdir_in(crate::harness::scratch_dir())
        .unwrap();
    std::fs::write(dir.path().join("Dockerfile"), text).unwrap();
    dir
}

fn path(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().unwrap()
}

#[test]
fn check_reports_rules_with_urls_and_positions_and_builds_nothing() {
    // FROM scratch: nothing to resolve, so this needs neither root nor a
    // registry.
    let bake = Bake::new();
    let ctx = dockerfile("FROM scratch AS Build\nLABEL a=b\nCMD echo hi\n");
    let out = bake.run(&["build", "--check", "-t", "linted", path(&ctx)]);
    assert_eq!(out.code, 1, "{out}");
    for expected in [
        "WARNING: StageNameCasing - https://docs.docker.com/go/dockerfile/rule/stage-name-casing/",
        "Stage name 'Build' should be lowercase",
        "WARNING: JSONArgsRecommended - https://docs.docker.com/go/dockerfile/rule/json-args-recommended/",
        "JSON arguments recommended for CMD to prevent unintended behavior related to OS signals",
        "Dockerfile:3:1",
        ">>> CMD echo hi",
        "Check complete, 2 warnings have been found!",
    ] {
        assert!(out.stdout.contains(expected), "missing {expected:?}:\n{out}");
    }
    let images = bake.ok(&["images", "-q"]);
    assert_eq!(
        images.stdout.trim(),
        "",
        "--check built an image:\n{images}"
    );
}

#[test]
fn check_passes_a_clean_dockerfile_and_honours_skip() {
    let bake = Bake::new();
    let ctx = dockerfile("FROM scratch AS build\nCMD [\"/app\"]\n");
    let out = bake.ok(&["build", "--check", path(&ctx)]);
    assert!(
        out.stdout.contains("Check complete, no warnings found."),
        "{out}"
    );
    let ctx = dockerfile(
        "# check=skip=StageNameCasing,MaintainerDeprecated\nFROM scratch AS Build\nMAINTAINER me\n",
    );
    let out = bake.ok(&["build", "--check", path(&ctx)]);
    assert!(out.stdout.contains("no warnings found"), "{out}");
}

#[test]
fn check_shows_ast_warnings_before_a_dockerfile_error() {
    let bake = Bake::new();
    let ctx = dockerfile("FROM scratch AS x\nFROM scratch AS X\n");
    let out = bake.run(&["build", "--check", path(&ctx)]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("WARNING: DuplicateStageName"), "{out}");
    assert!(out.stderr.contains("duplicate stage"), "{out}");
}

fn build(bake: &Bake, base: &str, ctx: &Path, tag: &str) -> crate::harness::Output {
    bake.run(&[
        "build",
        "--progress=plain",
        "-t",
        tag,
        "--build-arg",
        &format!("BASE={base}"),
        ctx.to_str().unwrap(),
    ])
}

#[test]
fn a_build_prints_warnings_and_error_true_makes_them_fatal() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let body = "ARG BASE\nFROM ${BASE} AS Build\nRUN echo built > /built\n";
    let ctx = dockerfile(body);
    let out = build(&bake, &base, ctx.path(), "lint:warn");
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stderr
            .contains("WARN: StageNameCasing: Stage name 'Build' should be lowercase (line 2)"),
        "{out}"
    );
    let run = bake.ok(&["run", "--rm", "lint:warn", "cat", "/built"]);
    assert_eq!(run.stdout, "built\n");

    let ctx = dockerfile(&format!("# check=error=true\n{body}"));
    let out = build(&bake, &base, ctx.path(), "lint:error");
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr
            .contains("lint violation found for rules: InvalidDefaultArgInFrom, StageNameCasing"),
        "{out}"
    );
    let images = bake.ok(&["images", "-q", "lint:error"]);
    assert_eq!(images.stdout.trim(), "", "{images}");

    let ctx = dockerfile(&format!(
        "# check=skip=StageNameCasing,InvalidDefaultArgInFrom;error=true\n{body}"
    ));
    let out = build(&bake, &base, ctx.path(), "lint:skipped");
    assert_eq!(out.code, 0, "{out}");
    assert!(!out.stderr.contains("WARN: StageNameCasing"), "{out}");
}
