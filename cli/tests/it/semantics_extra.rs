//! Dockerfile semantics that the extra conformance cases
//! (`testdata/conformance-extra/`) found bake getting wrong, pinned end to
//! end: each test builds a small Dockerfile with the real binary and checks
//! what a user sees (files in the image, config, the build failing).

use std::path::Path;

use crate::harness::{base_arg, scratch_dir, setup, Bake, Output};

/// Writes `dockerfile` and `files` (path, content) into a fresh context and
/// builds it as `tag` with `--build-arg BASE=<base>`.
fn build(bake: &Bake, dockerfile: &str, files: &[(&str, &str)], tag: &str, base: &str) -> Output {
    let ctx = tempfile::Builder::new()
        .prefix("bake-it-ctx-")
        .tempdir_in(scratch_dir())
        .unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    for (path, content) in files {
        let p = ctx.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap_or(Path::new("."))).unwrap();
        std::fs::write(p, content).unwrap();
    }
    let [a, b] = base_arg(base);
    let path = ctx.path().to_str().unwrap().to_string();
    bake.run(&["build", "--progress=plain", "-t", tag, &a, &b, &path])
}

/// The error text with miette's wrapping undone (box drawing removed,
/// whitespace collapsed), so a message can be matched whatever the width.
fn flat(stderr: &str) -> String {
    stderr
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `COPY src/*/f.txt` copies `f.txt` from the directories that have one; a
/// directory the wildcard matches without it is no error (conformance case
/// 025: bake used to fail with "\"/src/q/f.txt\": not found").
#[test]
fn literal_segment_after_a_wildcard_matches_only_where_it_exists() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let df = "ARG BASE\nFROM $BASE\nCOPY src/*/f.txt /x/\nRUN ls /x > /listing.txt\n";
    let files = [("src/p/f.txt", "from-p\n"), ("src/q/g.txt", "not-copied\n")];
    let out = build(&bake, df, &files, "semx:wild", &base);
    assert_eq!(out.code, 0, "{out}");
    let run = bake.ok(&[
        "run",
        "--rm",
        "semx:wild",
        "cat",
        "/listing.txt",
        "/x/f.txt",
    ]);
    assert_eq!(run.stdout, "f.txt\nfrom-p\n");
}

/// A global `ARG TARGETARCH` without a value keeps the predefined value, so
/// a stage that redeclares it sees the target architecture (case 088; as
/// BuildKit's `buildMetaArgs`, and buildah).
#[test]
fn global_platform_arg_without_value_keeps_its_predefined_value() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let df = "ARG BASE\nARG TARGETARCH\nFROM $BASE\nARG TARGETARCH\nRUN echo \"[$TARGETARCH]\" > /arch.txt\n";
    let out = build(&bake, df, &[], "semx:arch", &base);
    assert_eq!(out.code, 0, "{out}");
    let run = bake.ok(&["run", "--rm", "semx:arch", "cat", "/arch.txt"]);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(run.stdout, format!("[{arch}]\n"));
}

/// STOPSIGNAL must name a signal moby's `ParseSignal` knows (case 126);
/// names are case-insensitive and numbers are accepted.
#[test]
fn stopsignal_rejects_unknown_signal_names() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let bad = build(
        &bake,
        "ARG BASE\nFROM $BASE\nSTOPSIGNAL SIGNOTASIGNAL\n",
        &[],
        "semx:sig-bad",
        &base,
    );
    assert_ne!(bad.code, 0, "{bad}");
    assert!(
        flat(&bad.stderr).contains("Invalid signal: SIGNOTASIGNAL"),
        "{bad}"
    );
    let good = build(
        &bake,
        "ARG BASE\nFROM $BASE\nSTOPSIGNAL sigusr1\n",
        &[],
        "semx:sig-ok",
        &base,
    );
    assert_eq!(good.code, 0, "{good}");
    let inspect = bake.ok(&["inspect", "semx:sig-ok"]);
    let v: serde_json::Value = serde_json::from_str(&inspect.stdout).expect("inspect is JSON");
    assert_eq!(v[0]["Config"]["StopSignal"], "sigusr1", "{inspect}");
}

/// `COPY --from=$VAR` is refused like BuildKit does, instead of expanding
/// the stage's variables (case 129).
#[test]
fn copy_from_with_a_variable_is_an_error() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let df = "ARG BASE\nARG STAGE=one\nFROM $BASE AS one\nRUN echo 1 > /one.txt\nFROM $BASE\nARG STAGE\nCOPY --from=$STAGE /one.txt /\n";
    let out = build(&bake, df, &[], "semx:from-var", &base);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        flat(&out.stderr).contains("variable expansion is not supported for --from"),
        "{out}"
    );
}

/// `COPY a.txt b.txt /notadir` (no trailing `/`) is no error in BuildKit
/// (moby/buildkit#1853): the sources are copied to that path in turn, so the
/// last one wins; onto an existing directory they land inside it (case 095).
#[test]
fn several_sources_to_a_path_without_slash_are_copied_in_turn() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let df = "ARG BASE\nFROM $BASE\nRUN mkdir /existing\nCOPY a.txt b.txt /notadir\nCOPY a.txt b.txt /existing\n";
    let files = [("a.txt", "a\n"), ("b.txt", "b\n")];
    let out = build(&bake, df, &files, "semx:multi", &base);
    assert_eq!(out.code, 0, "{out}");
    let run = bake.ok(&[
        "run",
        "--rm",
        "semx:multi",
        "cat",
        "/notadir",
        "/existing/a.txt",
        "/existing/b.txt",
    ]);
    assert_eq!(run.stdout, "b\na\nb\n");
}

/// A destination directory that a directory COPY creates is made 0755 and
/// owned by the `--chown` user (or root), like its parents: `--chmod` and
/// the source directory's own mode reach only what is inside it (fsutil's
/// `prepareTargetDir`; cases 022, 230, 254).
#[test]
fn created_destination_dir_of_a_directory_copy_is_0755() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let df = "ARG BASE\nFROM $BASE AS s\n\
              RUN mkdir -p /out/d && echo x > /out/d/f && chmod 0711 /out/d\n\
              FROM $BASE\n\
              COPY --chmod=0700 tree /newtree\n\
              COPY --from=s --chown=65534:65534 /out/d /chowned\n\
              RUN stat -c '%n %a %u' /newtree /newtree/a /chowned /chowned/f > /modes.txt\n";
    let out = build(&bake, df, &[("tree/a", "a\n")], "semx:topdir", &base);
    assert_eq!(out.code, 0, "{out}");
    let run = bake.ok(&["run", "--rm", "semx:topdir", "cat", "/modes.txt"]);
    assert_eq!(
        run.stdout,
        "/newtree 755 0\n/newtree/a 700 0\n/chowned 755 65534\n/chowned/f 644 65534\n"
    );
}
