//! Lowering tests with a fake image resolver. Most cases mirror the
//! conformance cases: the config fields the expected images show.

use std::cell::RefCell;

use bake_solver::ir::{
    ContainerConfig, Definition, Digest, Exec, FileAction, History, ImageConfig, MountKind, Op,
    Platform, Source as IrSource, Vertex,
};

use super::{lower, BuildOptions, ImageResolver, ResolvedImage};
use crate::error::{ErrorKind, Warning};

const BUSYBOX: &str = "localhost:5000/library/busybox:latest";
const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Resolves anything to a busybox-like image (one layer, `Cmd ["sh"]`),
/// remembering what it was asked.
#[derive(Default)]
pub(crate) struct Fake {
    pub calls: RefCell<Vec<String>>,
    pub on_build: Vec<String>,
}

impl ImageResolver for Fake {
    fn resolve(&self, reference: &str, _platform: &Platform) -> Result<ResolvedImage, String> {
        self.calls.borrow_mut().push(reference.to_string());
        if reference.contains("missing") {
            return Err("not found".to_string());
        }
        let mut normal = reference.to_string();
        if !normal.contains('/') {
            normal = format!("docker.io/library/{normal}");
        }
        if !normal.rsplit('/').next().unwrap_or("").contains(':') && !normal.contains('@') {
            normal.push_str(":latest");
        }
        Ok(ResolvedImage {
            image_id: Digest::of(normal.as_bytes()),
            reference: normal,
            config: ImageConfig {
                author: Some("anchors".into()),
                architecture: "amd64".into(),
                os: "linux".into(),
                config: Some(ContainerConfig {
                    env: vec![PATH.to_string()],
                    cmd: Some(vec!["sh".into()]),
                    on_build: self.on_build.clone(),
                    ..ContainerConfig::default()
                }),
                history: vec![History {
                    created_by: Some("ADD rootfs".into()),
                    ..History::default()
                }],
                ..ImageConfig::default()
            },
        })
    }
}

pub(crate) fn opts(args: &[(&str, &str)]) -> BuildOptions {
    BuildOptions {
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        platform: Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        },
        ..BuildOptions::default()
    }
}

fn build_with(text: &str, o: &BuildOptions, fake: &Fake) -> (Definition, Vec<Warning>) {
    let df = crate::parse(text, "Dockerfile").unwrap_or_else(|e| panic!("{e}"));
    lower(&df, o, fake).unwrap_or_else(|e| panic!("{e}"))
}

fn build(text: &str, args: &[(&str, &str)]) -> Definition {
    build_with(text, &opts(args), &Fake::default()).0
}

fn build_err(text: &str, args: &[(&str, &str)]) -> crate::Error {
    let df = crate::parse(text, "Dockerfile").unwrap_or_else(|e| panic!("{e}"));
    lower(&df, &opts(args), &Fake::default()).expect_err(text)
}

fn cc(def: &Definition) -> &ContainerConfig {
    def.config.config.as_ref().expect("config")
}

/// The target's filesystem chain, top first.
fn chain(def: &Definition) -> Vec<&Vertex> {
    let mut out = Vec::new();
    let mut v = Some(def.target);
    while let Some(id) = v {
        let vertex = def.graph.get(id);
        out.push(vertex);
        v = vertex.inputs.first().copied();
    }
    out
}

fn execs(def: &Definition) -> Vec<&Exec> {
    def.graph
        .vertices
        .iter()
        .filter_map(|v| match &v.op {
            Op::Exec(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn has_env(e: &Exec, kv: &str) -> bool {
    e.env.iter().any(|x| x == kv)
}

#[test]
fn arg_defaults_and_overrides() {
    let def = build(
        &format!(
            "FROM {BUSYBOX}\nARG DEF=default-value\nARG OVR=will-be-overridden\nARG NODEF\nARG EMPTYOVR=not-empty\n\
             RUN echo \"DEF=$DEF OVR=$OVR NODEF=[$NODEF] EMPTYOVR=[$EMPTYOVR]\" > /args.out\n\
             LABEL def=$DEF ovr=$OVR nodef=[$NODEF]\n"
        ),
        &[("OVR", "from cli with spaces"), ("EMPTYOVR", "")],
    );
    let labels = &cc(&def).labels;
    assert_eq!(labels["def"], "default-value");
    assert_eq!(labels["ovr"], "from cli with spaces");
    assert_eq!(labels["nodef"], "[]");
    assert_eq!(cc(&def).env, [PATH]);
    let e = execs(&def)[0];
    assert!(has_env(e, "DEF=default-value"));
    assert!(has_env(e, "OVR=from cli with spaces"));
    assert!(has_env(e, "EMPTYOVR="));
    assert!(!e.env.iter().any(|x| x.starts_with("NODEF")));
    assert_eq!(e.args[..2], ["/bin/sh", "-c"]);
}

#[test]
fn modifiers_in_env_and_label() {
    let def = build(
        &format!(
            "FROM {BUSYBOX}\nARG SET=value\nARG EMPTY=\nARG UNSET\n\
             ENV R1=${{SET:-def}} R2=${{EMPTY:-def}} R3=${{UNSET:-def}}\n\
             ENV R4=${{SET:+alt}} R5=${{EMPTY:+alt}} R6=${{UNSET:+alt}}\n\
             ENV R7=\"${{SET:-two words}}\" R8=${{UNSET:-${{SET}}}}\n\
             LABEL l1=${{SET:-x}} l2=${{UNSET:-x}} l3=${{SET:+y}} l4=${{UNSET:+y}}\n"
        ),
        &[],
    );
    let mut env = cc(&def).env.clone();
    env.sort();
    assert_eq!(
        env,
        [PATH, "R1=value", "R2=def", "R3=def", "R4=alt", "R5=", "R6=", "R7=value", "R8=value"]
    );
    let l = &cc(&def).labels;
    assert_eq!(
        (
            l["l1"].as_str(),
            l["l2"].as_str(),
            l["l3"].as_str(),
            l["l4"].as_str()
        ),
        ("value", "x", "y", "")
    );
}

#[test]
fn expansion_in_instructions() {
    let def = build(
        &format!(
            "FROM {BUSYBOX}\nARG SRC=data.txt\nARG DEST=/opt/dest\n\
             ENV DIR=/srv/app USERNAME=app PORT=8080 VOL=/var/lib/thing SIG=SIGUSR1 LBL=labelvalue\n\
             COPY ${{SRC}} ${{DEST}}/\nADD $SRC $DIR/added.txt\nWORKDIR $DIR\nUSER ${{USERNAME}}\n\
             EXPOSE ${{PORT}} ${{PORT}}/udp\nLABEL key=$LBL \"${{LBL}}_key\"=v\nVOLUME ${{VOL}}\nSTOPSIGNAL $SIG\n"
        ),
        &[],
    );
    let c = cc(&def);
    assert_eq!(c.user.as_deref(), Some("app"));
    assert_eq!(c.working_dir.as_deref(), Some("/srv/app"));
    assert_eq!(c.stop_signal.as_deref(), Some("SIGUSR1"));
    assert_eq!(
        c.exposed_ports.keys().collect::<Vec<_>>(),
        ["8080/tcp", "8080/udp"]
    );
    assert_eq!(c.volumes.keys().collect::<Vec<_>>(), ["/var/lib/thing"]);
    assert_eq!(c.labels["labelvalue_key"], "v");
    let copies: Vec<_> = def
        .graph
        .vertices
        .iter()
        .filter_map(|v| match &v.op {
            Op::File(f) => match &f.actions[0] {
                FileAction::Copy(c) => Some(c.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(copies[0].src, ["data.txt"]);
    assert_eq!(copies[0].dest, "/opt/dest/");
    assert!(!copies[0].unpack_archives);
    assert_eq!(copies[1].dest, "/srv/app/added.txt");
    assert!(copies[1].unpack_archives);
}

#[test]
fn workdir_creates_and_relative_copy() {
    let def = build(
        &format!("FROM {BUSYBOX}\nWORKDIR /created/by/workdir\nWORKDIR /second\nCOPY f.txt .\nWORKDIR /third/unused\nWORKDIR ../x\n"),
        &[],
    );
    assert_eq!(cc(&def).working_dir.as_deref(), Some("/third/x"));
    let mut mkdirs = Vec::new();
    let mut dests = Vec::new();
    for v in &def.graph.vertices {
        if let Op::File(f) = &v.op {
            for a in &f.actions {
                match a {
                    FileAction::Mkdir {
                        path,
                        parents,
                        mode,
                        ..
                    } => {
                        assert!(*parents);
                        assert_eq!(*mode, 0o755);
                        mkdirs.push(path.clone());
                    }
                    FileAction::Copy(c) => dests.push(c.dest.clone()),
                    _ => {}
                }
            }
        }
    }
    assert_eq!(
        mkdirs,
        [
            "/created/by/workdir",
            "/second",
            "/third/unused",
            "/third/x"
        ]
    );
    assert_eq!(dests, ["/second/"]);
}

#[test]
fn history_has_one_layer_entry_per_vertex() {
    let def = build(
        &format!(
            "FROM {BUSYBOX}\nENV A=1\nRUN make\nWORKDIR /w\nWORKDIR /\nCOPY a b\nCMD [\"x\"]\n"
        ),
        &[],
    );
    let layers = def.config.history.iter().filter(|h| !h.empty_layer).count();
    let ops = chain(&def)
        .iter()
        .filter(|v| !matches!(v.op, Op::Source(_)))
        .count();
    // + the base image's one layer
    assert_eq!(layers, ops + 1);
    let by: Vec<_> = def
        .config
        .history
        .iter()
        .filter_map(|h| h.created_by.clone())
        .collect();
    assert_eq!(
        by,
        [
            "ADD rootfs",
            "ENV A=1",
            "RUN /bin/sh -c make # buildkit",
            "WORKDIR /w",
            "WORKDIR /",
            "COPY a b # buildkit",
            "CMD [\"x\"]"
        ]
    );
    assert_eq!(def.config.history[1].author.as_deref(), Some("anchors"));
}

#[test]
fn copy_from_image_on_scratch() {
    let fake = Fake::default();
    let (def, _) = build_with(
        &format!("FROM {BUSYBOX} AS unrelated\nFROM scratch\nCOPY --from={BUSYBOX} /etc/passwd /from-image/passwd\nCOPY --from={BUSYBOX} /bin/busybox /bin/busybox\n"),
        &opts(&[]),
        &fake,
    );
    let c = cc(&def);
    assert_eq!(c.env, [PATH]);
    assert_eq!(c.working_dir.as_deref(), Some("/"));
    assert_eq!(c.cmd, None);
    assert_eq!(def.config.author, None);
    assert_eq!(def.config.architecture, "amd64");
    // resolved once, shared by both COPYs; the unused stage is not resolved
    assert_eq!(fake.calls.borrow().len(), 1);
    let images = def
        .graph
        .vertices
        .iter()
        .filter(|v| matches!(v.op, Op::Source(IrSource::Image { .. })))
        .count();
    assert_eq!(images, 1);
    assert!(matches!(
        chain(&def).last().unwrap().op,
        Op::Source(IrSource::Scratch)
    ));
}

#[test]
fn unused_stage_is_skipped() {
    let text = format!(
        "FROM {BUSYBOX} AS broken\nRUN exit 1\n\nFROM {BUSYBOX} AS good\nRUN echo good > /good.txt\n\nFROM {BUSYBOX}\nCOPY --from=good /good.txt /\n"
    );
    let def = build(&text, &[]);
    let runs: Vec<_> = execs(&def).iter().map(|e| e.args[2].clone()).collect();
    assert_eq!(runs, ["echo good > /good.txt"]);
    // --target selects a stage; the final stage is then not built
    let (def, _) = build_with(
        &text,
        &BuildOptions {
            target: Some("BROKEN".into()),
            ..opts(&[])
        },
        &Fake::default(),
    );
    let runs: Vec<_> = execs(&def).iter().map(|e| e.args[2].clone()).collect();
    assert_eq!(runs, ["exit 1"]);
}

#[test]
fn from_arg_names_a_stage() {
    let def = build(
        &format!("ARG PICK=one\nFROM {BUSYBOX} AS one\nRUN echo one > /picked.txt\n\nFROM {BUSYBOX} AS two\nRUN echo two > /picked.txt\n\nFROM ${{PICK}}\nRUN cat /picked.txt > /final.txt\n"),
        &[("PICK", "two")],
    );
    let runs: Vec<_> = chain(&def)
        .iter()
        .filter_map(|v| match &v.op {
            Op::Exec(e) => Some(e.args[2].clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        runs,
        ["cat /picked.txt > /final.txt", "echo two > /picked.txt"]
    );
    assert_eq!(
        def.graph.vertices.last().unwrap().name,
        "[stage-2 2/2] RUN cat /picked.txt > /final.txt"
    );
}

#[test]
fn entrypoint_cmd_and_json_fallback() {
    let def = build(&format!("FROM {BUSYBOX}\nENTRYPOINT exec top -b\n"), &[]);
    assert_eq!(
        cc(&def).entrypoint.as_deref(),
        Some(&["/bin/sh".to_string(), "-c".into(), "exec top -b".into()][..])
    );
    assert_eq!(cc(&def).cmd, None);
    let def = build(
        &format!("FROM {BUSYBOX}\nCMD [\"a\"]\nENTRYPOINT [\"e\"]\n"),
        &[],
    );
    assert_eq!(cc(&def).cmd, Some(vec!["a".to_string()]));
    let def = build(
        &format!("FROM {BUSYBOX}\nRUN [echo, fallback] || echo \"shell form ran\" > /fallback.txt\nCMD [\"echo\", 'single']\nENTRYPOINT [not json\n"),
        &[],
    );
    assert_eq!(cc(&def).cmd.as_ref().unwrap()[2], "[\"echo\", 'single']");
    assert_eq!(cc(&def).entrypoint.as_ref().unwrap()[2], "[not json");
    assert_eq!(
        execs(&def)[0].args[2],
        "[echo, fallback] || echo \"shell form ran\" > /fallback.txt"
    );
}

#[test]
fn volume_healthcheck_onbuild() {
    let def = build(
        &format!("FROM {BUSYBOX}\nVOLUME /data\nVOLUME [\"/a\", \"/b\"]\nVOLUME /x /y\n"),
        &[],
    );
    assert_eq!(
        cc(&def).volumes.keys().collect::<Vec<_>>(),
        ["/a", "/b", "/data", "/x", "/y"]
    );
    let def = build(
        &format!("FROM {BUSYBOX} AS exec\nHEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=4 CMD [\"/bin/true\", \"arg\"]\n\nFROM exec\nHEALTHCHECK --interval=1m30s --retries=2 CMD wget -q -O- http://localhost/ || exit 1\n"),
        &[],
    );
    let hc = cc(&def).healthcheck.as_ref().unwrap();
    assert_eq!(
        hc.test,
        ["CMD-SHELL", "wget -q -O- http://localhost/ || exit 1"]
    );
    assert_eq!(
        (hc.interval, hc.timeout, hc.retries),
        (90_000_000_000, 0, 2)
    );
    let def = build(
        &format!("FROM {BUSYBOX}\nONBUILD RUN echo triggered > /onbuild.txt\nONBUILD COPY a.txt /from-onbuild/\nonbuild env TRIGGERED=yes\n"),
        &[],
    );
    assert_eq!(
        cc(&def).on_build,
        [
            "RUN echo triggered > /onbuild.txt",
            "COPY a.txt /from-onbuild/",
            "env TRIGGERED=yes"
        ]
    );
    assert!(execs(&def).is_empty());
}

#[test]
fn onbuild_triggers_of_the_base_run() {
    let fake = Fake {
        on_build: vec!["ENV TRIGGERED=yes".into(), "RUN echo $TRIGGERED".into()],
        ..Fake::default()
    };
    let (def, _) = build_with(&format!("FROM {BUSYBOX}\nRUN true\n"), &opts(&[]), &fake);
    assert!(cc(&def).env.contains(&"TRIGGERED=yes".to_string()));
    assert!(cc(&def).on_build.is_empty());
    let runs: Vec<_> = execs(&def).iter().map(|e| e.args[2].clone()).collect();
    assert_eq!(runs, ["echo $TRIGGERED", "true"]);
}

#[test]
fn escape_directive_values() {
    let def = build(
        &format!("# escape=`\nFROM {BUSYBOX}\nENV WINPATH=C:\\dir\\sub LIT=`$notvar\nRUN echo one > /e1 && `\n    echo two > /e2\nLABEL path=\"c:\\temp\\\"\n"),
        &[],
    );
    let c = cc(&def);
    assert!(c.env.contains(&"WINPATH=C:\\dir\\sub".to_string()));
    assert!(c.env.contains(&"LIT=$notvar".to_string()));
    assert_eq!(c.labels["path"], "c:\\temp\\");
    assert_eq!(
        execs(&def)[0].args[2],
        "echo one > /e1 &&     echo two > /e2"
    );
}

#[test]
fn case_insensitive_and_names() {
    let def = build(
        &format!("from {BUSYBOX} as first\nRun echo first > /first.txt\n\nFROM {BUSYBOX}\ncopy --from=first /first.txt /\nCopy a.txt /\neNv Mixed=case\nWorkDir /wd\nlAbEl k=v\ncmd [\"x\"]\n"),
        &[],
    );
    let c = cc(&def);
    assert_eq!(c.cmd, Some(vec!["x".to_string()]));
    assert_eq!(c.working_dir.as_deref(), Some("/wd"));
    let names: Vec<_> = def.graph.vertices.iter().map(|v| v.name.as_str()).collect();
    assert!(
        names.contains(&"[first 2/2] RUN echo first > /first.txt"),
        "{names:?}"
    );
    assert!(
        names.contains(&"[stage-1 2/7] COPY --from=first /first.txt /"),
        "{names:?}"
    );
    assert!(
        names.contains(&"[internal] load build context"),
        "{names:?}"
    );
    // one image vertex, shared by both stages, named by the first to need it
    assert!(
        names.contains(&"[stage-1 1/7] FROM localhost:5000/library/busybox:latest"),
        "{names:?}"
    );
    let last = def.graph.vertices.last().unwrap();
    let origin = last.origin.as_ref().unwrap();
    assert_eq!((origin.line, origin.column), (8, 1));
}

#[test]
fn predefined_platform_args_need_arg() {
    let def = build(
        &format!("FROM {BUSYBOX}\nRUN echo \"[$TARGETARCH]\" > /before.txt\nARG TARGETOS\nARG TARGETARCH\nARG TARGETPLATFORM\nARG BUILDPLATFORM\nRUN echo x\n"),
        &[],
    );
    let e = execs(&def);
    assert!(!e[0].env.iter().any(|x| x.starts_with("TARGET")));
    assert!(has_env(e[1], "TARGETARCH=amd64"));
    assert!(has_env(e[1], "TARGETOS=linux"));
    assert!(has_env(e[1], "TARGETPLATFORM=linux/amd64"));
    assert!(e[1]
        .env
        .iter()
        .any(|x| x.starts_with("BUILDPLATFORM=linux/")));
    assert!(cc(&def).env == [PATH]);
}

#[test]
fn scratch_final_stage() {
    let def = build(
        &format!("FROM {BUSYBOX} AS build\nRUN mkdir -p /out\n\nFROM scratch\nCOPY --from=build /out/ /\nCOPY --from=build /bin/busybox /bin/\nENTRYPOINT [\"/bin/busybox\", \"cat\", \"/hello.txt\"]\n"),
        &[],
    );
    let c = cc(&def);
    assert_eq!(c.env, [PATH]);
    assert_eq!(c.working_dir.as_deref(), Some("/"));
    assert_eq!(c.entrypoint.as_ref().unwrap().len(), 3);
    assert_eq!(c.cmd, None);
    assert_eq!(
        def.config.history.iter().filter(|h| !h.empty_layer).count(),
        2
    );
}

#[test]
fn heredoc_runs() {
    let def = build(
        &format!("FROM {BUSYBOX}\nRUN <<EOF\necho one > /h1\necho two > /h2\nEOF\nRUN sh <<EOT\necho via-sh > /h3\nEOT\nRUN cat <<EOF > /h4\ninline body\nEOF\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n"),
        &[],
    );
    let e = execs(&def);
    assert_eq!(
        e[0].args,
        ["/bin/sh", "-c", "echo one > /h1\necho two > /h2\n"]
    );
    assert_eq!(
        e[1].args,
        ["/bin/sh", "-c", "sh <<EOT\necho via-sh > /h3\nEOT"]
    );
    assert_eq!(
        e[2].args,
        ["/bin/sh", "-c", "cat <<EOF > /h4\ninline body\nEOF"]
    );
    assert_eq!(e[3].args, ["/dev/pipes/EOF"]);
    assert!(matches!(
        e[3].mounts[0].kind,
        MountKind::Bind {
            input: 1,
            readwrite: false,
            ..
        }
    ));
}

#[test]
fn copy_heredoc_makes_files() {
    let def = build(
        &format!("FROM {BUSYBOX}\nENV N=x\nCOPY <<EOF <<'RAW' /etc/\nhello $N\nEOF\nraw $N\nRAW\n"),
        &[],
    );
    let Op::File(f) = &def.graph.get(def.target).op else {
        panic!()
    };
    let files: Vec<_> = f
        .actions
        .iter()
        .filter_map(|a| match a {
            FileAction::Mkfile {
                path, data, mode, ..
            } => Some((path.as_str(), data.as_str(), *mode)),
            _ => None,
        })
        .collect();
    assert_eq!(
        files,
        [
            ("/etc/EOF", "hello x\n", 0o644),
            ("/etc/RAW", "raw $N\n", 0o644)
        ]
    );
}

#[test]
fn run_mounts() {
    let def = build(
        &format!("FROM {BUSYBOX} AS dep\nFROM {BUSYBOX}\nWORKDIR /w\nRUN --mount=type=cache,target=/cache --mount=type=cache,id=shared,target=rel,sharing=locked \\\n    --mount=type=bind,from=dep,source=/etc,target=/mnt --mount=type=tmpfs,target=/t,size=1m \\\n    --mount=type=secret,id=tok --network=none true\n"),
        &[],
    );
    let e = execs(&def)[0];
    assert_eq!(e.network, bake_solver::ir::Network::None);
    assert_eq!(e.cwd, "/w");
    let m = &e.mounts;
    assert!(matches!(&m[0].kind, MountKind::Cache { id, .. } if id == "/cache"));
    assert_eq!(m[1].target, "/w/rel");
    assert!(matches!(&m[1].kind, MountKind::Cache { id, .. } if id == "shared"));
    assert!(
        matches!(&m[2].kind, MountKind::Bind { input: 1, source, readwrite: false } if source == "/etc")
    );
    assert!(matches!(
        &m[3].kind,
        MountKind::Tmpfs {
            size: Some(1048576)
        }
    ));
    assert_eq!(m[4].target, "/run/secrets/tok");
}

#[test]
fn errors() {
    let cases: &[(String, ErrorKind, &str)] = &[
        (
            format!("FROM {BUSYBOX}\nRUN echo zero > /zero\n\nFROM {BUSYBOX}\nCOPY --from=5 /zero /zero\n"),
            ErrorKind::Stage,
            "Dockerfile:5:6: invalid from flag value 5: index out of bounds",
        ),
        (format!("FROM {BUSYBOX}\nEXPOSE notaport\n"), ErrorKind::InvalidValue, "Dockerfile:2:8: invalid containerPort: notaport"),
        (
            format!("FROM {BUSYBOX} AS a\nCOPY --from=b x y\nFROM {BUSYBOX} AS b\nCOPY --from=a x y\n"),
            ErrorKind::Stage,
            "circular dependency detected on stage: ",
        ),
        (format!("FROM {BUSYBOX}\nENV A=\"${{B:?must be set}}\"\n"), ErrorKind::Expansion, "Dockerfile:2:5: B: must be set"),
        ("FROM missing:1\n".to_string(), ErrorKind::Resolve, "Dockerfile:1:6: failed to resolve image \"missing:1\": not found"),
        ("RUN x\nFROM a\n".to_string(), ErrorKind::Stage, "Dockerfile:1:1: RUN before the first FROM"),
        (format!("FROM {BUSYBOX}\nCOPY --chmod=9 a b\n"), ErrorKind::InvalidValue, "invalid chmod parameter: 9"),
        (format!("FROM {BUSYBOX}\nRUN --network=bogus x\n"), ErrorKind::InvalidValue, "unsupported network mode"),
        (format!("FROM {BUSYBOX}\nRUN --mount=type=nfs,target=/x x\n"), ErrorKind::InvalidValue, "unsupported mount type"),
        (format!("FROM {BUSYBOX} AS 1x\n"), ErrorKind::Stage, "invalid name for build stage"),
        (format!("FROM {BUSYBOX} AS a\nFROM {BUSYBOX} AS A\n"), ErrorKind::Stage, "duplicate stage name"),
        (format!("FROM {BUSYBOX}\nHEALTHCHECK --interval=1us CMD x\n"), ErrorKind::InvalidValue, "cannot be less than 1ms"),
        (format!("FROM {BUSYBOX}\nSTOPSIGNAL nope\n"), ErrorKind::InvalidValue, "Invalid signal: nope"),
        (format!("FROM {BUSYBOX}\nSTOPSIGNAL SIGNOTASIGNAL\n"), ErrorKind::InvalidValue, "Invalid signal: SIGNOTASIGNAL"),
        (
            format!("ARG S=a\nFROM {BUSYBOX} AS a\nFROM {BUSYBOX}\nARG S\nCOPY --from=$S /x /x\n"),
            ErrorKind::InvalidValue,
            "variable expansion is not supported for --from",
        ),
        (format!("FROM {BUSYBOX}\nADD --checksum=sha256:x a /\n"), ErrorKind::InvalidValue, "checksum can't be specified"),
    ];
    for (text, kind, want) in cases {
        let e = build_err(text, &[]);
        assert_eq!(e.kind(), *kind, "{text}: {e}");
        assert!(e.to_string().contains(want), "{text}: {e}");
    }
    let e = crate::parse(&format!("FROM {BUSYBOX}\n"), "Dockerfile")
        .map(|df| {
            lower(
                &df,
                &BuildOptions {
                    target: Some("nope".into()),
                    ..opts(&[])
                },
                &Fake::default(),
            )
            .unwrap_err()
        })
        .unwrap();
    assert_eq!(
        e.to_string(),
        "Dockerfile: target stage \"nope\" could not be found"
    );
}

#[test]
fn warnings() {
    let (_, w) = build_with(
        &format!("FROM {BUSYBOX} AS Build\nARG USED\nRUN a \\\n\n b\nCMD x\n"),
        &opts(&[("USED", "1"), ("UNUSED", "2"), ("HTTP_PROXY", "p")]),
        &Fake::default(),
    );
    let codes: Vec<_> = w.iter().map(|w| w.code).collect();
    assert_eq!(
        codes,
        [
            "UnusedBuildArg",
            "StageNameCasing",
            "NoEmptyContinuation",
            "JSONArgsRecommended",
        ]
    );
    assert!(w[0].message.contains("UNUSED"));
    assert_eq!((w[1].line, w[2].line), (1, 3));
}

#[test]
fn proxies_reach_run_without_arg() {
    let def = build(
        &format!("FROM {BUSYBOX}\nRUN x\n"),
        &[("HTTP_PROXY", "http://p")],
    );
    assert!(has_env(execs(&def)[0], "HTTP_PROXY=http://p"));
    assert!(!def.config.history.iter().any(|h| h
        .created_by
        .as_deref()
        .unwrap_or("")
        .contains("HTTP_PROXY")));
}

#[test]
fn env_beats_arg() {
    let def = build(
        &format!("FROM {BUSYBOX}\nENV A=env\nARG A=arg\nRUN echo $A\nLABEL a=$A\n"),
        &[],
    );
    assert_eq!(cc(&def).labels["a"], "env");
    let e = execs(&def)[0];
    assert!(has_env(e, "A=env"));
    assert!(!has_env(e, "A=arg"));
}

#[test]
fn add_urls_and_no_cache() {
    let (def, _) = build_with(
        &format!("FROM {BUSYBOX}\nADD http://127.0.0.1:5000/v2/ /remote/v2.json\nRUN x\n"),
        &BuildOptions {
            no_cache: true,
            ..opts(&[])
        },
        &Fake::default(),
    );
    let http = def
        .graph
        .vertices
        .iter()
        .find_map(|v| match &v.op {
            Op::Source(IrSource::Http { url, filename, .. }) => {
                Some((url.clone(), filename.clone()))
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(
        http,
        ("http://127.0.0.1:5000/v2/".to_string(), "v2".to_string())
    );
    assert!(def
        .graph
        .vertices
        .iter()
        .filter(|v| !matches!(v.op, Op::Source(_)))
        .all(|v| v.ignore_cache));
}

#[test]
fn snapshots() {
    let cases = [
        (
            "multistage",
            format!("ARG BASE={BUSYBOX}\nFROM $BASE AS build\nWORKDIR /src\nCOPY --chown=app:app --chmod=0755 . .\nRUN --mount=type=cache,target=/root/.cache make\n\nFROM scratch\nCOPY --from=build /src/out /app\nENTRYPOINT [\"/app\"]\n"),
        ),
        (
            "config",
            format!("FROM {BUSYBOX}\nUSER app\nWORKDIR /home/app\nENV A=1 B=\"two words\"\nEXPOSE 80 443/udp\nSHELL [\"/bin/ash\", \"-c\"]\nRUN echo $A\nHEALTHCHECK CMD true\nSTOPSIGNAL SIGTERM\n"),
        ),
    ];
    for (name, text) in cases {
        let def = build(&text, &[]);
        insta::assert_yaml_snapshot!(name, def);
    }
    let df = crate::parse(
        &format!("FROM {BUSYBOX}\nCOPY --link a /b\nRUN <<EOF\nx\nEOF\n"),
        "Dockerfile",
    )
    .unwrap();
    insta::assert_yaml_snapshot!("ast", df);
}
