//! Table-driven tests of instruction parsing.

use crate::ast::*;
use crate::error::ErrorKind;

fn parse_one(line: &str) -> Instruction {
    let text = format!("FROM a\n{line}\n");
    let df = crate::parse(&text, "Dockerfile").unwrap_or_else(|e| panic!("{line}: {e}"));
    df.instructions[1].clone()
}

fn parse_err(text: &str) -> crate::Error {
    crate::parse(text, "Dockerfile").expect_err(text)
}

#[test]
fn commands_exec_and_shell() {
    let cases: &[(&str, Command)] = &[
        ("RUN make", Command::Shell("make".into())),
        (
            r#"RUN ["a", "b"]"#,
            Command::Exec(vec!["a".into(), "b".into()]),
        ),
        (
            "RUN [echo, fallback] || x",
            Command::Shell("[echo, fallback] || x".into()),
        ),
        (
            r#"CMD ["echo", 'single']"#,
            Command::Shell(r#"["echo", 'single']"#.into()),
        ),
        ("ENTRYPOINT [not json", Command::Shell("[not json".into())),
        ("CMD []", Command::Exec(vec![])),
    ];
    for (line, want) in cases {
        let got = match parse_one(line).kind {
            Kind::Run(r) => r.command,
            Kind::Cmd(c) | Kind::Entrypoint(c) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(&got, want, "{line}");
    }
}

#[test]
fn key_values() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("ENV A=1 B=2", &[("A", "1"), ("B", "2")]),
        (r#"ENV A="x y" B='z'"#, &[("A", "\"x y\""), ("B", "'z'")]),
        ("ENV A hello world", &[("A", "hello world")]),
        ("ENV A=", &[("A", "")]),
        (r#"LABEL "${L}_key"=v"#, &[("\"${L}_key\"", "v")]),
        (r"ENV A=x\ y", &[("A", r"x\ y")]),
        ("LABEL k v", &[("k", "v")]),
    ];
    for (line, want) in cases {
        let kvs = match parse_one(line).kind {
            Kind::Env(kvs) | Kind::Label(kvs) => kvs,
            other => panic!("{other:?}"),
        };
        let got: Vec<(&str, &str)> = kvs
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.as_str()))
            .collect();
        assert_eq!(got, *want, "{line}");
    }
}

#[test]
fn from_copy_and_friends() {
    match parse_one("from --platform=linux/arm64 img:1 as Build").kind {
        Kind::From(f) => {
            assert_eq!(f.image.text, "img:1");
            assert_eq!(f.alias.unwrap().text, "Build");
            assert_eq!(f.platform.unwrap().value.as_deref(), Some("linux/arm64"));
        }
        other => panic!("{other:?}"),
    }
    match parse_one("COPY --from=b --chown=1:2 --link a b /d/").kind {
        Kind::Copy(c) => {
            assert_eq!(c.paths.sources.len(), 2);
            assert_eq!(c.paths.dest.text, "/d/");
            assert_eq!(c.from.unwrap().value.as_deref(), Some("b"));
            assert!(c.link);
        }
        other => panic!("{other:?}"),
    }
    match parse_one(r#"COPY ["a b", "/c"]"#).kind {
        Kind::Copy(c) => assert_eq!(c.paths.sources[0].text, "a b"),
        other => panic!("{other:?}"),
    }
    match parse_one("ARG A B=2 C=\"x y\"").kind {
        Kind::Arg(d) => {
            let got: Vec<_> = d
                .iter()
                .map(|d| (d.name.as_str(), d.default.as_deref()))
                .collect();
            assert_eq!(got, [("A", None), ("B", Some("2")), ("C", Some("\"x y\""))]);
        }
        other => panic!("{other:?}"),
    }
    match parse_one("VOLUME [\"/a\", \"/b\"]").kind {
        Kind::Volume(v) => assert_eq!(v.len(), 2),
        other => panic!("{other:?}"),
    }
    match parse_one("HEALTHCHECK --interval=5s CMD [\"/bin/true\"]").kind {
        Kind::Healthcheck(Healthcheck::Check { command, flags }) => {
            assert_eq!(command, Command::Exec(vec!["/bin/true".into()]));
            assert_eq!(flags[0].name, "interval");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse_one("healthcheck none").kind,
        Kind::Healthcheck(Healthcheck::None)
    );
    match parse_one("onbuild env TRIGGERED=yes").kind {
        Kind::Onbuild(o) => {
            assert_eq!(o.expression, "env TRIGGERED=yes");
            assert!(matches!(o.trigger.kind, Kind::Env(_)));
        }
        other => panic!("{other:?}"),
    }
    match parse_one("SHELL [\"/bin/bash\", \"-c\"]").kind {
        Kind::Shell(s) => assert_eq!(s, ["/bin/bash", "-c"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn heredocs_attach_to_instructions() {
    let df = crate::parse(
        "FROM a\nCOPY <<EOF /x\nhi $A\nEOF\nRUN <<-'E'\n\techo\n\tE\n",
        "D",
    )
    .unwrap();
    match &df.instructions[1].kind {
        Kind::Copy(c) => {
            assert_eq!(c.paths.heredocs[0].body, "hi $A\n");
            assert!(c.paths.heredocs[0].expand);
        }
        other => panic!("{other:?}"),
    }
    match &df.instructions[2].kind {
        Kind::Run(r) => {
            assert!(!r.heredocs[0].expand);
            assert_eq!(r.heredocs[0].content(), "echo\n");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn errors_with_positions() {
    let cases: &[(&str, ErrorKind, &str)] = &[
        (
            "FROM a\nCOPPY x y\n",
            ErrorKind::UnknownInstruction,
            "Dockerfile:2:1: unknown instruction: COPPY (did you mean COPY?)",
        ),
        (
            "FROM a\nCOPY --frobnicate=1 a.txt /\n",
            ErrorKind::UnknownFlag,
            "Dockerfile:2:6: unknown flag: frobnicate",
        ),
        (
            "FROM a\nENV ONLYKEY\n",
            ErrorKind::Syntax,
            "Dockerfile:2:1: ENV must have two arguments",
        ),
        (
            "FROM a\nRUN <<EOF\necho never terminated\n",
            ErrorKind::Syntax,
            "Dockerfile:2:5: unterminated heredoc",
        ),
        (
            "FROM a\nCOPY a\n",
            ErrorKind::Syntax,
            "Dockerfile:2:1: COPY requires at least two arguments, but only one was provided. Destination could not be determined.",
        ),
        (
            "FROM a b\n",
            ErrorKind::Syntax,
            "Dockerfile:1:1: FROM requires either one or three arguments",
        ),
        ("FROM a\nRUN\n", ErrorKind::Syntax, "Dockerfile:2:1: RUN requires at least one argument"),
        (
            "FROM a\nSHELL /bin/sh\n",
            ErrorKind::Syntax,
            "Dockerfile:2:1: SHELL requires the arguments to be in JSON form",
        ),
        (
            "FROM a\nENV A=1 B\n",
            ErrorKind::Syntax,
            "Dockerfile:2:9: Syntax error - can't find = in \"B\". Must be of the form: name=value",
        ),
        (
            "FROM a\nONBUILD FROM x\n",
            ErrorKind::Syntax,
            "Dockerfile:2:9: FROM isn't allowed as an ONBUILD trigger",
        ),
        (
            "FROM a\nHEALTHCHECK TEST x\n",
            ErrorKind::Syntax,
            "Dockerfile:2:13: Unknown type \"TEST\" in HEALTHCHECK (try CMD)",
        ),
        (
            "FROM a\nRUN --device=/dev/x true\n",
            ErrorKind::Unsupported,
            "Dockerfile:2:5: RUN --device is not supported yet",
        ),
        (
            "FROM a\nRUN x \\\n  && y \\\n  && z\nXYZZY\n",
            ErrorKind::UnknownInstruction,
            "Dockerfile:5:1: unknown instruction: XYZZY",
        ),
    ];
    for (text, kind, want) in cases {
        let e = parse_err(text);
        assert_eq!(e.kind(), *kind, "{text}");
        assert_eq!(e.to_string(), *want, "{text}");
    }
}

#[test]
fn flag_spans_after_continuation() {
    let text = "FROM a\nCOPY \\\n  --bogus=1 a /\n";
    let e = parse_err(text);
    assert_eq!(e.to_string(), "Dockerfile:3:3: unknown flag: bogus");
}

#[test]
fn escape_directive_and_bom() {
    let text = "\u{feff}# escape=`\nFROM a\nRUN echo one && `\n    echo two\n";
    let df = crate::parse(text, "D").unwrap();
    assert_eq!(df.directives.escape, '`');
    match &df.instructions[1].kind {
        Kind::Run(r) => assert_eq!(r.command, Command::Shell("echo one &&     echo two".into())),
        other => panic!("{other:?}"),
    }
    assert_eq!(df.instructions[1].line, 3);
}

#[test]
fn suggestions() {
    assert_eq!(crate::parser::suggest("COPPY"), Some("COPY"));
    assert_eq!(crate::parser::suggest("run"), Some("RUN"));
    assert_eq!(crate::parser::suggest("ENTRYPOINTT"), Some("ENTRYPOINT"));
    assert_eq!(crate::parser::suggest("XYZZY"), None);
}
