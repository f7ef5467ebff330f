//! Heredocs: `RUN <<EOF` scripts, `<<-EOF` tab stripping, quoted
//! delimiters (no expansion), scripts run by their shebang or a named
//! interpreter, and `COPY <<EOF /path` inline files with `--chmod`.

use crate::harness::{setup, Bake};

fn context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("bake-it-heredoc-")
        .tempdir_in(crate::harness::scratch_dir())
        .unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    dir
}

fn build(bake: &Bake, base: &str, dockerfile: &str, tag: &str) {
    let ctx = context(dockerfile);
    let base_arg = format!("BASE={base}");
    bake.ok(&[
        "build",
        "--progress=plain",
        "-t",
        tag,
        "--build-arg",
        &base_arg,
        ctx.path().to_str().unwrap(),
    ]);
}

fn cat(bake: &Bake, image: &str, script: &str) -> String {
    bake.ok(&["run", "--rm", image, "sh", "-c", script]).stdout
}

#[test]
fn run_heredocs_are_scripts_with_shell_rules() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    // Tabs below are real tabs: `<<-` strips them from the body and the
    // delimiter line.
    let dockerfile = "ARG BASE\nFROM ${BASE}\nENV WHO=world\n\
RUN <<EOF\n\
set -e\n\
echo \"hello $WHO\" > /script.txt\n\
echo second line >> /script.txt\n\
EOF\n\
RUN <<-EOF\n\
\tprintf '%s\\n' \"tabs stripped\" > /chomp.txt\n\
\tEOF\n\
RUN cat <<'EOF' > /quoted.txt\n\
$WHO stays\n\
EOF\n\
RUN cat <<EOF > /unquoted.txt\n\
$WHO expands\n\
EOF\n\
RUN cat <<A > /a.txt && cat <<B > /b.txt\n\
first\n\
A\n\
second\n\
B\n";
    build(&bake, &base, dockerfile, "heredoc:run");
    assert_eq!(
        cat(&bake, "heredoc:run", "cat /script.txt"),
        "hello world\nsecond line\n"
    );
    assert_eq!(
        cat(&bake, "heredoc:run", "cat /chomp.txt"),
        "tabs stripped\n"
    );
    assert_eq!(cat(&bake, "heredoc:run", "cat /quoted.txt"), "$WHO stays\n");
    assert_eq!(
        cat(&bake, "heredoc:run", "cat /unquoted.txt"),
        "world expands\n"
    );
    assert_eq!(
        cat(&bake, "heredoc:run", "cat /a.txt /b.txt"),
        "first\nsecond\n"
    );
}

#[test]
fn run_heredocs_honour_a_shebang_or_a_named_interpreter() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    // A non-shell interpreter in the shebang (busybox awk), as a Python
    // script would name python3; and a heredoc fed to a named program (the
    // quoted delimiter keeps the outer shell from expanding `$1`).
    let dockerfile = r#"ARG BASE
FROM ${BASE}
RUN <<EOF
#!/bin/awk -f
BEGIN { print "run by awk" > "/shebang.txt" }
EOF
RUN <<'EOF' sh -s -- arg1
echo "stdin script got $1" > /named.txt
EOF
"#;
    build(&bake, &base, dockerfile, "heredoc:interp");
    assert_eq!(
        cat(&bake, "heredoc:interp", "cat /shebang.txt /named.txt"),
        "run by awk\nstdin script got arg1\n"
    );
}

#[test]
fn copy_heredocs_make_files_with_modes_and_expansion() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let dockerfile = r#"ARG BASE
FROM ${BASE}
ARG GREETING=hello
COPY --chmod=0755 <<EOF /usr/local/bin/greet
#!/bin/sh
echo "$GREETING from an inline file"
EOF
COPY --chmod=u+x,go-r <<EOF /opt/symbolic.sh
echo symbolic
EOF
COPY <<"EOF" /opt/literal.txt
$GREETING is not expanded
EOF
COPY <<one <<two /opt/many/
first file
one
second file
two
"#;
    build(&bake, &base, dockerfile, "heredoc:copy");
    let run = bake.ok(&["run", "--rm", "heredoc:copy", "greet"]);
    assert_eq!(run.stdout, "hello from an inline file\n");
    assert_eq!(
        cat(
            &bake,
            "heredoc:copy",
            "stat -c '%a %n' /usr/local/bin/greet /opt/symbolic.sh /opt/literal.txt"
        ),
        "755 /usr/local/bin/greet\n700 /opt/symbolic.sh\n644 /opt/literal.txt\n"
    );
    assert_eq!(
        cat(&bake, "heredoc:copy", "cat /opt/literal.txt"),
        "$GREETING is not expanded\n"
    );
    assert_eq!(
        cat(&bake, "heredoc:copy", "cat /opt/many/one /opt/many/two"),
        "first file\nsecond file\n"
    );
}
