//! Solver glue that needs no mounts: sources, failures, cache keys of
//! COPYs from a local context.

use std::sync::Mutex;

use super::*;
use crate::ir::{FileOp, Platform, Vertex};

fn vertex(op: Op, inputs: &[usize], name: &str) -> Vertex {
    Vertex {
        op,
        inputs: inputs.iter().map(|&i| VertexId(i)).collect(),
        name: name.to_string(),
        origin: None,
        ignore_cache: false,
    }
}

fn definition(graph: Graph, target: usize) -> Definition {
    Definition {
        graph,
        target: VertexId(target),
        config: Default::default(),
    }
}

fn solver() -> (tempfile::TempDir, Solver) {
    let t = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&t.path().join("store")).unwrap());
    (t, Solver::new(store, SolveOptions::default()))
}

#[test]
fn scratch_target_is_an_empty_chain() {
    let (_t, s) = solver();
    let mut g = Graph::default();
    g.push(vertex(Op::Source(Source::Scratch), &[], "scratch"));
    let out = s
        .solve(&definition(g, 0), &LocalDirs::new(), &|_| {})
        .unwrap();
    assert!(out.layers.is_empty());
}

#[test]
fn failures_name_the_vertex_and_emit_failed() {
    let (_t, s) = solver();
    let mut g = Graph::default();
    g.push(vertex(
        Op::Source(Source::Git {
            remote: "https://example.invalid/x.git".into(),
            reference: None,
            subdir: None,
            keep_git_dir: false,
            checksum: None,
        }),
        &[],
        "[1/1] ADD git",
    ));
    let events = Mutex::new(Vec::new());
    let err = s
        .solve(&definition(g, 0), &LocalDirs::new(), &|e| {
            events.lock().unwrap().push(e)
        })
        .unwrap_err();
    assert_eq!(err.to_string(), "[1/1] ADD git");
    assert!(events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::Failed { .. })));
    let missing = {
        let mut g = Graph::default();
        g.push(vertex(
            Op::Source(Source::Local {
                name: "context".into(),
                exclude: vec![],
            }),
            &[],
            "ctx",
        ));
        g.push(vertex(Op::Source(Source::Scratch), &[], "scratch"));
        g.push(vertex(
            Op::File(FileOp {
                actions: vec![FileAction::Copy(copy(&["a"], 1))],
            }),
            &[1, 0],
            "[2/2] COPY a /",
        ));
        s.solve(&definition(g, 2), &LocalDirs::new(), &|_| {})
            .unwrap_err()
    };
    let chain = format!("{}", std::error::Error::source(&missing).unwrap());
    assert!(
        chain.contains("no local directory named `context`"),
        "{chain}"
    );
    let _ = Platform::host();
}

fn copy(src: &[&str], source: usize) -> Copy {
    Copy {
        source,
        src: src.iter().map(|s| s.to_string()).collect(),
        dest: "/".into(),
        owner: None,
        mode: None,
        allow_wildcard: true,
        unpack_archives: false,
        exclude: vec![],
        parents: false,
        link: false,
    }
}

#[test]
fn copy_keys_follow_selected_context_files_only() {
    let (t, s) = solver();
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("a.txt"), "a").unwrap();
    std::fs::write(ctx.join("b.txt"), "b").unwrap();
    std::fs::write(ctx.join("ignored.txt"), "i").unwrap();
    let mut g = Graph::default();
    g.push(vertex(
        Op::Source(Source::Local {
            name: "context".into(),
            exclude: vec!["ignored.txt".into()],
        }),
        &[],
        "ctx",
    ));
    g.push(vertex(Op::Source(Source::Scratch), &[], "scratch"));
    g.push(vertex(
        Op::File(FileOp {
            actions: vec![FileAction::Copy(copy(&["*.txt"], 1))],
        }),
        &[1, 0],
        "COPY *.txt /",
    ));
    let stat_cache = StatCache::in_memory();
    let events = |_: Event| {};
    let locals = LocalDirs::new();
    let task = VertexTask {
        solver: &s,
        graph: &g,
        id: VertexId(2),
        locals: &locals,
        stat_cache: &stat_cache,
        events: &events,
        remote: std::sync::OnceLock::new(),
        git: std::sync::OnceLock::new(),
    };
    let key = || {
        let scratch = Value::Layers(vec![]);
        let dir = Value::Dir(ctx.clone());
        let sk = cache_key::scratch();
        let lk = cache_key::local("context");
        task.cache_key(&[
            Input {
                key: &sk,
                output: &scratch,
            },
            Input {
                key: &lk,
                output: &dir,
            },
        ])
        .unwrap()
    };
    let k0 = key();
    std::fs::write(ctx.join("ignored.txt"), "changed").unwrap();
    std::fs::write(ctx.join("other.md"), "new").unwrap();
    assert_eq!(key(), k0, "ignored and unselected files do not matter");
    std::fs::write(ctx.join("b.txt"), "B").unwrap();
    assert_ne!(key(), k0);
    std::fs::write(ctx.join("c.txt"), "c").unwrap();
    let k1 = key();
    assert_ne!(k1, k0);
    assert_eq!(key(), k1);
}

/// Mounts overlays, so it needs root. The test thread enters a private mount
/// namespace of its own first; the solver's worker threads, spawned from it,
/// inherit it, so no mount can leak to the host even if the test dies.
#[test]
fn file_op_copies_into_a_new_layer_and_hits_the_cache() {
    if !rustix::process::geteuid().is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this test as root"
        );
        eprintln!("skipped: needs root (overlay mounts)");
        return;
    }
    bake_runner::enter_private_mount_namespace().expect("private mount namespace");
    let (t, s) = solver();
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(ctx.join("dir")).unwrap();
    std::fs::write(ctx.join("dir/a.txt"), "a").unwrap();
    let mut g = Graph::default();
    g.push(vertex(
        Op::Source(Source::Local {
            name: "context".into(),
            exclude: vec![],
        }),
        &[],
        "ctx",
    ));
    g.push(vertex(Op::Source(Source::Scratch), &[], "scratch"));
    let mut c = copy(&["dir"], 1);
    c.dest = "/d/".into();
    g.push(vertex(
        Op::File(FileOp {
            actions: vec![
                FileAction::Copy(c),
                FileAction::Mkdir {
                    path: "/w/x".into(),
                    mode: 0o755,
                    parents: true,
                    owner: None,
                },
            ],
        }),
        &[1, 0],
        "COPY dir /d/",
    ));
    let locals: LocalDirs = [("context".to_string(), ctx.clone())].into();
    let def = definition(g, 2);
    let out = s.solve(&def, &locals, &|_| {}).unwrap();
    assert_eq!(out.layers.len(), 1);
    let diff = s.store.snapshot_diff_dir(&out.layers[0].chain_id);
    assert_eq!(std::fs::read_to_string(diff.join("d/a.txt")).unwrap(), "a");
    assert!(diff.join("w/x").is_dir());
    let events = Mutex::new(Vec::new());
    let again = s
        .solve(&def, &locals, &|e| events.lock().unwrap().push(e))
        .unwrap();
    assert_eq!(again, out);
    assert!(events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::Cached { .. })));
}
