//! The config-setting instructions (ENV, LABEL, EXPOSE, VOLUME, USER,
//! STOPSIGNAL, HEALTHCHECK, SHELL, ONBUILD, MAINTAINER, ARG): build an
//! image, then check what `bake inspect` shows and what `bake run` does.

use std::path::Path;

use serde_json::{json, Value};

use crate::harness::{setup, Bake, Output};

/// A context with a Dockerfile (and more files, `(name, content)`).
fn context(dockerfile: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("bake-it-instr-")
        .tempdir_in(crate::harness::scratch_dir())
        .unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    dir
}

/// `bake build -t TAG --build-arg BASE=<base> [extra] CTX`, which must work.
fn build(bake: &Bake, base: &str, ctx: &Path, tag: &str, extra: &[&str]) -> Output {
    let base_arg = format!("BASE={base}");
    let mut args = vec![
        "build",
        "--progress=plain",
        "-t",
        tag,
        "--build-arg",
        &base_arg,
    ];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    bake.ok(&args)
}

/// `bake inspect IMAGE` → the image object.
fn inspect(bake: &Bake, image: &str) -> Value {
    let out = bake.ok(&["inspect", image]);
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("inspect is not JSON ({e}):\n{out}"));
    v[0].clone()
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

const CONFIG_DOCKERFILE: &str = r#"ARG BASE
FROM ${BASE}
RUN echo 'svc:x:1001:1002::/home/svc:/bin/sh' >> /etc/passwd \
 && echo 'svcgrp:x:1002:' >> /etc/group
ENV A=1 B="two words"
ENV LEGACY value with spaces
ENV PORT=9090
LABEL org.example.title="a title" org.example.port=$PORT
EXPOSE 80 53/udp 8000-8002/tcp ${PORT}
VOLUME /data
VOLUME ["/logs", "/cache"]
USER svc:svcgrp
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --start-interval=1s --retries=4 CMD ["true"]
MAINTAINER Jane Doe <jane@example.com>
CMD ["sh", "-c", "echo \"$A|$B|$LEGACY\"; id -u; id -g"]
"#;

#[test]
fn config_instructions_land_in_the_image_config_and_apply_at_run() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let ctx = context(CONFIG_DOCKERFILE, &[]);
    build(&bake, &base, ctx.path(), "instr:config", &[]);
    let img = inspect(&bake, "instr:config");
    let c = &img["Config"];
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for e in [
        "A=1",
        "B=two words",
        "LEGACY=value with spaces",
        "PORT=9090",
    ] {
        assert!(env.contains(&e), "{e} missing from {env:?}");
    }
    assert_eq!(c["Labels"]["org.example.title"], "a title");
    assert_eq!(c["Labels"]["org.example.port"], "9090");
    assert_eq!(
        keys(&c["ExposedPorts"]),
        ["53/udp", "80/tcp", "8000/tcp", "8001/tcp", "8002/tcp", "9090/tcp"]
    );
    assert_eq!(keys(&c["Volumes"]), ["/cache", "/data", "/logs"]);
    assert_eq!(c["User"], "svc:svcgrp");
    assert_eq!(c["StopSignal"], "SIGUSR1");
    assert_eq!(
        c["Healthcheck"],
        json!({
            "Test": ["CMD", "true"],
            "Interval": 30_000_000_000i64,
            "Timeout": 3_000_000_000i64,
            "StartPeriod": 5_000_000_000i64,
            "StartInterval": 1_000_000_000i64,
            "Retries": 4
        })
    );
    assert_eq!(img["Author"], "Jane Doe <jane@example.com>");

    let run = bake.ok(&["run", "--rm", "instr:config"]);
    assert_eq!(run.stdout, "1|two words|value with spaces\n1001\n1002\n");
}

#[test]
fn shell_changes_how_later_run_and_cmd_are_run() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    // The custom shell exports a variable before running the command, so
    // its use is visible in RUN's result and in CMD's output.
    let dockerfile = r#"ARG BASE
FROM ${BASE}
RUN echo "default:${VIA_SHELL:-none}" > /before.txt
SHELL ["/bin/sh", "-c", "export VIA_SHELL=custom; eval \"$1\"", "shell"]
RUN echo "shell:$VIA_SHELL" > /after.txt
CMD cat /before.txt /after.txt; echo "cmd:$VIA_SHELL"
"#;
    let ctx = context(dockerfile, &[]);
    build(&bake, &base, ctx.path(), "instr:shell", &[]);
    let img = inspect(&bake, "instr:shell");
    assert_eq!(
        img["Config"]["Shell"],
        json!([
            "/bin/sh",
            "-c",
            "export VIA_SHELL=custom; eval \"$1\"",
            "shell"
        ])
    );
    let run = bake.ok(&["run", "--rm", "instr:shell"]);
    assert_eq!(run.stdout, "default:none\nshell:custom\ncmd:custom\n");
}

#[test]
fn onbuild_triggers_run_in_a_child_build_from_the_registry() {
    let Some((reg, base, bake)) = setup() else {
        return;
    };
    let parent = format!("{}/lib/onbuild-parent:1", reg.addr);
    let parent_df = r#"ARG BASE
FROM ${BASE}
ONBUILD RUN echo "triggered" > /onbuild.txt
ONBUILD COPY child.txt /from-child/
RUN echo parent > /parent.txt
"#;
    let ctx = context(parent_df, &[]);
    build(&bake, &base, ctx.path(), &parent, &[]);
    let img = inspect(&bake, &parent);
    assert_eq!(
        img["Config"]["OnBuild"],
        json!([
            "RUN echo \"triggered\" > /onbuild.txt",
            "COPY child.txt /from-child/"
        ])
    );
    bake.ok(&["push", &parent]);

    // A fresh store: the child pulls its parent from the registry.
    let child_bake = Bake::new();
    let child_df =
        format!("FROM {parent}\nRUN cat /parent.txt /onbuild.txt /from-child/child.txt\n");
    let ctx = context(&child_df, &[("child.txt", "from the child context\n")]);
    let out = child_bake.ok(&[
        "build",
        "--progress=plain",
        "-t",
        "instr:child",
        ctx.path().to_str().unwrap(),
    ]);
    let run = child_bake.ok(&[
        "run",
        "--rm",
        "instr:child",
        "cat",
        "/parent.txt",
        "/onbuild.txt",
        "/from-child/child.txt",
    ]);
    assert_eq!(
        run.stdout, "parent\ntriggered\nfrom the child context\n",
        "{out}"
    );
    // Triggers run once and are not passed on to grandchildren.
    let img = inspect(&child_bake, "instr:child");
    assert!(img["Config"].get("OnBuild").is_none(), "{img}");
}

#[test]
fn arg_scoping_global_args_stage_args_and_build_args() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let dockerfile = r#"ARG BASE
ARG GLOBAL=global-default
ARG NOT_REDECLARED=invisible
FROM ${BASE}
ARG GLOBAL
ARG STAGE=stage-default
ARG OVERRIDE=dockerfile
ENV SHADOW=env
ARG SHADOW=arg
RUN echo "g=$GLOBAL s=$STAGE o=$OVERRIDE n=${NOT_REDECLARED:-unset} sh=$SHADOW" > /args.txt
LABEL global="${GLOBAL}" override="${OVERRIDE}"
"#;
    let ctx = context(dockerfile, &[]);
    let out = build(
        &bake,
        &base,
        ctx.path(),
        "instr:args",
        &[
            "--build-arg",
            "OVERRIDE=cli",
            "--build-arg",
            "NOBODY_ASKED=1",
        ],
    );
    assert!(
        out.stderr.contains("NOBODY_ASKED"),
        "an unused --build-arg is not reported:\n{out}"
    );
    let run = bake.ok(&["run", "--rm", "instr:args", "cat", "/args.txt"]);
    assert_eq!(
        run.stdout,
        "g=global-default s=stage-default o=cli n=unset sh=env\n"
    );
    let img = inspect(&bake, "instr:args");
    assert_eq!(img["Config"]["Labels"]["global"], "global-default");
    assert_eq!(img["Config"]["Labels"]["override"], "cli");
    // ARGs are not environment variables of the image.
    let env = img["Config"]["Env"].to_string();
    assert!(
        !env.contains("GLOBAL") && !env.contains("OVERRIDE"),
        "{env}"
    );
}
