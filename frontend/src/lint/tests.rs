//! One table per rule: a Dockerfile and the warnings (rule, line, message)
//! it must give; a Dockerfile that must give none of that rule.

use bake_solver::ir::{ContainerConfig, Digest, ImageConfig, Platform};

use super::*;
use crate::lower::{lower, ImageResolver, ResolvedImage};

/// A base image with PATH and, for `shell-base`, a SHELL of its own.
struct Base;

impl ImageResolver for Base {
    fn resolve(&self, reference: &str, _: &Platform) -> Result<ResolvedImage, String> {
        Ok(ResolvedImage {
            reference: reference.to_string(),
            image_id: Digest::of(reference.as_bytes()),
            config: ImageConfig {
                architecture: "amd64".into(),
                os: "linux".into(),
                config: Some(ContainerConfig {
                    env: vec!["PATH=/bin".into()],
                    shell: if reference == "shell-base" {
                        vec!["/bin/bash".into(), "-c".into()]
                    } else {
                        Vec::new()
                    },
                    ..ContainerConfig::default()
                }),
                ..ImageConfig::default()
            },
        })
    }
}

fn opts() -> BuildOptions {
    BuildOptions {
        platform: Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        },
        ..BuildOptions::default()
    }
}

/// All warnings of a build of `text` (every stage lowered: the last one
/// depends on nothing, so lint the AST rules over all and the lowering
/// rules over the target).
fn warnings(text: &str) -> Vec<Warning> {
    let df = crate::parse(text, "Dockerfile").unwrap_or_else(|e| panic!("{e}"));
    match lower(&df, &opts(), &Base) {
        Ok((_, w)) => w,
        // A Dockerfile that cannot be built still gets the AST checks
        // (what `bake build --check` shows before the error).
        Err(_) => select(&config(&df, &opts()).unwrap(), check(&df, &opts())),
    }
}

/// `(line, message)` of the warnings of `rule`.
fn of(rule: &str, text: &str) -> Vec<(usize, String)> {
    warnings(text)
        .into_iter()
        .filter(|w| w.code == rule)
        .map(|w| (w.line, w.message))
        .collect()
}

/// Runs a table: each Dockerfile with the `(line, message)`s it must give.
fn table(rule: &str, cases: &[(&str, &[(usize, &str)])]) {
    assert!(rule_named(rule).is_some(), "{rule} is not in RULES");
    for (text, want) in cases {
        let got = of(rule, text);
        let want: Vec<(usize, String)> = want.iter().map(|(l, m)| (*l, m.to_string())).collect();
        assert_eq!(got, want, "{rule} on {text:?}");
    }
}

#[test]
fn stage_name_casing() {
    table(
        "StageNameCasing",
        &[
            (
                "FROM a AS Build\n",
                &[(1, "Stage name 'Build' should be lowercase")],
            ),
            ("FROM a AS build\n", &[]),
        ],
    );
}

#[test]
fn from_as_casing() {
    table(
        "FromAsCasing",
        &[
            (
                "FROM a as b\n",
                &[(1, "'as' and 'FROM' keywords' casing do not match")],
            ),
            (
                "from a AS b\n",
                &[(1, "'AS' and 'from' keywords' casing do not match")],
            ),
            ("FROM a AS b\n", &[]),
            ("from a as b\n", &[]),
        ],
    );
}

#[test]
fn no_empty_continuation() {
    table(
        "NoEmptyContinuation",
        &[
            (
                "FROM a\nRUN a \\\n\n  b\n",
                &[(2, "Empty continuation line")],
            ),
            ("FROM a\nRUN a \\\n# comment\n  b\n", &[]),
        ],
    );
}

#[test]
fn consistent_instruction_casing() {
    table(
        "ConsistentInstructionCasing",
        &[
            (
                "FROM a\nrun x\nRUN y\n",
                &[(
                    2,
                    "Command 'run' should match the case of the command majority (uppercase)",
                )],
            ),
            (
                "from a\nrun x\nRun y\n",
                &[(
                    3,
                    "Command 'Run' should match the case of the command majority (lowercase)",
                )],
            ),
            ("from a\nrun x\n", &[]),
        ],
    );
}

#[test]
fn duplicate_and_reserved_stage_names() {
    // A duplicate name is also a build error; --check reports it first.
    let df = crate::parse("FROM a AS x\nFROM b AS X\n", "Dockerfile").unwrap();
    let w: Vec<_> = check(&df, &opts())
        .into_iter()
        .filter(|w| w.code == "DuplicateStageName")
        .map(|w| (w.line, w.message))
        .collect();
    assert_eq!(
        w,
        [(
            2,
            "Duplicate stage name \"x\", stage names should be unique".to_string()
        )]
    );
    table(
        "ReservedStageName",
        &[
            (
                "FROM a AS context\n",
                &[(
                    1,
                    "Stage name should not use the same name as reserved stage \"context\"",
                )],
            ),
            ("FROM a AS ctx\n", &[]),
        ],
    );
}

#[test]
fn json_args_recommended() {
    table(
        "JSONArgsRecommended",
        &[
            (
                "FROM a\nCMD echo hi\nENTRYPOINT run\n",
                &[
                    (2, "JSON arguments recommended for CMD to prevent unintended behavior related to OS signals"),
                    (3, "JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals"),
                ],
            ),
            ("FROM a\nCMD [\"echo\", \"hi\"]\n", &[]),
            // an explicit SHELL, in the stage or the base image, silences it
            ("FROM a\nSHELL [\"/bin/sh\", \"-c\"]\nCMD echo hi\n", &[]),
            ("FROM shell-base\nCMD echo hi\n", &[]),
        ],
    );
}

#[test]
fn maintainer_deprecated() {
    table(
        "MaintainerDeprecated",
        &[
            (
                "FROM a\nMAINTAINER me\n",
                &[(
                    2,
                    "Maintainer instruction is deprecated in favor of using label",
                )],
            ),
            ("FROM a\nLABEL maintainer=me\n", &[]),
        ],
    );
}

#[test]
fn undefined_arg_in_from() {
    table(
        "UndefinedArgInFrom",
        &[
            (
                "ARG VERSION=1\nFROM a:${VERSIN}\n",
                &[(
                    2,
                    "FROM argument 'VERSIN' is not declared (did you mean VERSION?)",
                )],
            ),
            (
                "FROM a:$TAG\n",
                &[(1, "FROM argument 'TAG' is not declared")],
            ),
            ("ARG TAG=1\nFROM a:$TAG\n", &[]),
            ("FROM --platform=$BUILDPLATFORM a\n", &[]),
        ],
    );
}

#[test]
fn invalid_default_arg_in_from() {
    table(
        "InvalidDefaultArgInFrom",
        &[
            (
                "ARG BASE\nFROM ${BASE}\n",
                &[(
                    2,
                    "Default value for ARG ${BASE} results in empty or invalid base image name",
                )],
            ),
            (
                "ARG TAG=\"Bad Tag\"\nFROM busybox:${TAG}\n",
                &[(
                    2,
                    "Default value for ARG busybox:${TAG} results in empty or invalid base image name",
                )],
            ),
            ("ARG BASE=busybox:1.36\nFROM ${BASE}\n", &[]),
            ("ARG BASE=localhost:5000/library/busybox:latest\nFROM $BASE\n", &[]),
        ],
    );
}

#[test]
fn workdir_relative_path() {
    table(
        "WorkdirRelativePath",
        &[
            (
                "FROM a\nWORKDIR app\n",
                &[(
                    2,
                    "Relative workdir \"app\" can have unexpected results if the base image changes",
                )],
            ),
            ("FROM a\nWORKDIR /app\nWORKDIR sub\n", &[]),
            // inherited from the parent stage
            ("FROM a AS base\nWORKDIR /app\nFROM base\nWORKDIR sub\n", &[]),
        ],
    );
}

#[test]
fn undefined_var() {
    table(
        "UndefinedVar",
        &[
            (
                "FROM a\nENV FOO=1\nCOPY $FOOO /x\n",
                &[(
                    3,
                    "Usage of undefined variable '$FOOO' (did you mean $FOO?)",
                )],
            ),
            (
                "FROM a\nLABEL a=$NOPE b=$NOPE\n",
                &[(2, "Usage of undefined variable '$NOPE'")],
            ),
            // declared without a value, from the base image, or in RUN
            ("FROM a\nARG X\nLABEL a=$X b=$PATH\nRUN echo $NOPE\n", &[]),
        ],
    );
}

#[test]
fn multiple_instructions_disallowed() {
    table(
        "MultipleInstructionsDisallowed",
        &[
            (
                "FROM a\nCMD [\"a\"]\nCMD [\"b\"]\nHEALTHCHECK NONE\nHEALTHCHECK NONE\n",
                &[
                    (2, "Multiple CMD instructions should not be used in the same stage because only the last one will be used"),
                    (4, "Multiple HEALTHCHECK instructions should not be used in the same stage because only the last one will be used"),
                ],
            ),
            ("FROM a\nCMD [\"a\"]\nFROM b\nCMD [\"b\"]\n", &[]),
        ],
    );
}

#[test]
fn legacy_key_value_format() {
    table(
        "LegacyKeyValueFormat",
        &[
            (
                "FROM a\nENV A b c\nLABEL k v\n",
                &[
                    (2, "\"ENV key=value\" should be used instead of legacy \"ENV key value\" format"),
                    (3, "\"LABEL key=value\" should be used instead of legacy \"LABEL key value\" format"),
                ],
            ),
            ("FROM a\nENV A=b\nLABEL k=v\n", &[]),
        ],
    );
}

#[test]
fn secrets_used_in_arg_or_env() {
    table(
        "SecretsUsedInArgOrEnv",
        &[
            (
                "FROM a\nARG API_KEY\nENV GITHUB_TOKEN=x\n",
                &[
                    (2, "Do not use ARG or ENV instructions for sensitive data (ARG \"API_KEY\")"),
                    (3, "Do not use ARG or ENV instructions for sensitive data (ENV \"GITHUB_TOKEN\")"),
                ],
            ),
            ("FROM a\nARG PUBLIC_KEY\nARG MONKEY\nENV TOKENIZER=1\n", &[]),
        ],
    );
}

#[test]
fn expose_rules() {
    table(
        "ExposeProtoCasing",
        &[
            (
                "FROM a\nEXPOSE 80/TcP 81/udp\n",
                &[(
                    2,
                    "Defined protocol '80/TcP' in EXPOSE instruction should be lowercase",
                )],
            ),
            ("FROM a\nEXPOSE 80/tcp\n", &[]),
        ],
    );
    table(
        "ExposeInvalidFormat",
        &[(
            "FROM a\nEXPOSE 127.0.0.1:80:80\n",
            &[(2, "EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:80:80'")],
        )],
    );
}

#[test]
fn platform_flag_rules() {
    table(
        "FromPlatformFlagConstDisallowed",
        &[
            (
                "FROM --platform=linux/amd64 a\n",
                &[(
                    1,
                    "FROM --platform flag should not use constant value \"linux/amd64\"",
                )],
            ),
            ("FROM --platform=linux/amd64 a AS build-amd64\n", &[]),
        ],
    );
    table(
        "RedundantTargetPlatform",
        &[(
            "FROM --platform=$TARGETPLATFORM a\n",
            &[(1, "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior")],
        )],
    );
}

#[test]
fn copy_ignored_file_is_experimental() {
    let text = "FROM a\nCOPY secret.txt keep.txt /x/\n";
    let df = crate::parse(text, "Dockerfile").unwrap();
    let mut o = opts();
    o.dockerignore = vec!["secret.txt".into()];
    let (_, w) = lower(&df, &o, &Base).unwrap();
    assert!(w.iter().all(|w| w.code != "CopyIgnoredFile"), "{w:?}");
    let df = crate::parse(
        &format!("# check=experimental=CopyIgnoredFile\n{text}"),
        "Dockerfile",
    )
    .unwrap();
    let (_, w) = lower(&df, &o, &Base).unwrap();
    let got: Vec<_> = w
        .iter()
        .filter(|w| w.code == "CopyIgnoredFile")
        .map(|w| (w.line, w.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [(
            3,
            "Attempting to COPY file \"secret.txt\" that is excluded by .dockerignore"
        )]
    );
}

#[test]
fn check_directive_selects_rules() {
    let text = "FROM a AS Build\nMAINTAINER me\n";
    let codes = |t: &str| -> Vec<&'static str> { warnings(t).iter().map(|w| w.code).collect() };
    assert_eq!(codes(text), ["StageNameCasing", "MaintainerDeprecated"]);
    assert_eq!(
        codes(&format!("# check=skip=StageNameCasing\n{text}")),
        ["MaintainerDeprecated"]
    );
    assert!(codes(&format!("# check=skip=all\n{text}")).is_empty());
    // the build arg wins over the directive
    let df = crate::parse(&format!("# check=skip=all\n{text}"), "Dockerfile").unwrap();
    let mut o = opts();
    o.build_args
        .insert(CHECK_BUILD_ARG.into(), "skip=MaintainerDeprecated".into());
    let (_, w) = lower(&df, &o, &Base).unwrap();
    let got: Vec<_> = w.iter().map(|w| w.code).collect();
    assert_eq!(got, ["StageNameCasing"], "{w:?}");
}

#[test]
fn check_config_parses_like_buildkit() {
    let c = CheckConfig::parse("skip=A, B;error=true").unwrap();
    assert!(c.error && !c.skip_all);
    assert_eq!(c.skip, ["A".to_string(), "B".to_string()].into());
    assert!(CheckConfig::parse("skip=all").unwrap().skip_all);
    assert!(!CheckConfig::parse("error=false").unwrap().error);
    assert!(CheckConfig::parse("error=maybe").is_err());
    assert!(CheckConfig::parse("bogus=1").is_err());
    assert!(CheckConfig::parse("skip").is_err());
    let experimental = rule_named("CopyIgnoredFile").unwrap();
    assert!(!CheckConfig::default().enabled(experimental));
    assert!(CheckConfig::parse("experimental=all")
        .unwrap()
        .enabled(experimental));
}

#[test]
fn error_true_names_the_violated_rules() {
    let c = CheckConfig::parse("error=true").unwrap();
    let w = warnings("FROM a AS Build\nMAINTAINER me\n");
    assert_eq!(
        violations(&c, &w).as_deref(),
        Some("lint violation found for rules: MaintainerDeprecated, StageNameCasing")
    );
    assert_eq!(violations(&CheckConfig::default(), &w), None);
}

#[test]
fn rules_have_docker_urls() {
    let cases = [
        (
            "JSONArgsRecommended",
            "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/",
        ),
        (
            "StageNameCasing",
            "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/",
        ),
        (
            "UndefinedArgInFrom",
            "https://docs.docker.com/go/dockerfile/rule/undefined-arg-in-from/",
        ),
        (
            "SecretsUsedInArgOrEnv",
            "https://docs.docker.com/go/dockerfile/rule/secrets-used-in-arg-or-env/",
        ),
    ];
    for (name, url) in cases {
        assert_eq!(rule_named(name).unwrap().url(), url);
    }
}

#[test]
fn reference_validity() {
    for ok in [
        "busybox",
        "busybox:1.36",
        "localhost:5000/library/busybox:latest",
        "ghcr.io/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ] {
        assert!(rules::valid_reference(ok), "{ok}");
    }
    for bad in ["", "Busybox", "busybox:Bad Tag", "a//b", "busybox:"] {
        assert!(!rules::valid_reference(bad), "{bad}");
    }
}

#[test]
fn invalid_definition_description() {
    const ON: &str = "# check=experimental=InvalidDefinitionDescription\n";
    let with = |body: &str| format!("{ON}{body}");
    let cases: Vec<(String, Vec<(usize, &str)>)> = vec![
        // The comment right above starts with the name: a description.
        (with("# base is the base\nFROM a AS base\n"), vec![]),
        (with("# VERSION sets it\nARG VERSION=1\nFROM a\n"), vec![]),
        // Any of several ARG keys will do.
        (with("# B second\nARG A B\nFROM a\n"), vec![]),
        // A comment that does not start with the name.
        (
            with("# a non-descriptive comment\nFROM scratch AS base\n"),
            vec![(
                3,
                "Comment for FROM should follow the format: `# base <description>`",
            )],
        ),
        (
            with("FROM a\n# another comment\nARG VERSION=1\n"),
            vec![(
                4,
                "Comment for ARG should follow the format: `# VERSION <description>`",
            )],
        ),
        (
            with("FROM a\n# nope\nARG A B\n"),
            vec![(
                4,
                "Comment for ARG should follow the format: `# <arg_key> <description>`",
            )],
        ),
        // Only the last line of the block counts.
        (
            with("FROM a\n# text first\n# V then the name\nARG V\n"),
            vec![],
        ),
        (
            with("FROM a\n# V first\n# then text\nARG V\n"),
            vec![(
                5,
                "Comment for ARG should follow the format: `# V <description>`",
            )],
        ),
        // A blank line or an empty `#` sets a comment apart.
        (with("# a comment\n\nFROM a AS base\n"), vec![]),
        (with("FROM a\n# a comment\n#\nARG V\n"), vec![]),
        // FROM without a name has nothing to describe; other instructions
        // are never checked; no comment, no warning.
        (with("# any comment\nFROM a\n# x\nRUN true\n"), vec![]),
        (with("FROM a AS base\nARG V\n"), vec![]),
        // The parser directives are not a description.
        (
            "# syntax=docker/dockerfile:1\n# check=experimental=all\nARG V\nFROM a\n".to_string(),
            vec![],
        ),
        (
            "# check=experimental=all\n# oops\nARG V\nFROM a\n".to_string(),
            vec![(
                3,
                "Comment for ARG should follow the format: `# V <description>`",
            )],
        ),
    ];
    for (text, want) in &cases {
        let got = of("InvalidDefinitionDescription", text);
        let want: Vec<(usize, String)> = want.iter().map(|(l, m)| (*l, m.to_string())).collect();
        assert_eq!(&got, &want, "{text:?}");
    }
    // Experimental: off unless asked for, as in BuildKit.
    assert!(of(
        "InvalidDefinitionDescription",
        "# a non-descriptive comment\nFROM scratch AS base\n"
    )
    .is_empty());
    assert!(
        rule_named("InvalidDefinitionDescription")
            .unwrap()
            .experimental
    );
}

#[test]
fn invalid_base_image_platform() {
    // The fake base images are linux/amd64.
    table(
        "InvalidBaseImagePlatform",
        &[
            ("FROM a\n", &[]),
            ("FROM --platform=linux/amd64 a\n", &[]),
            (
                "FROM --platform=linux/arm64 a AS x\nRUN true\n",
                &[(
                    1,
                    "Base image a was pulled with platform \"linux/amd64\", expected \"linux/arm64\" for current build",
                )],
            ),
            (
                "ARG P=linux/arm/v7\nFROM --platform=$P busybox\n",
                &[(
                    2,
                    "Base image busybox was pulled with platform \"linux/amd64\", expected \"linux/arm/v7\" for current build",
                )],
            ),
            // scratch and earlier stages are not pulled images.
            ("FROM --platform=linux/arm64 scratch\n", &[]),
        ],
    );
}

#[test]
fn base_image_platforms_compare_like_containerd() {
    use crate::lint::platform::mismatch;
    let img = |arch: &str, variant: Option<&str>| ImageConfig {
        os: "linux".into(),
        architecture: arch.into(),
        variant: variant.map(Into::into),
        ..ImageConfig::default()
    };
    let want = |arch: &str, variant: Option<&str>| Platform {
        os: "linux".into(),
        architecture: arch.into(),
        variant: variant.map(Into::into),
    };
    let cases: &[(ImageConfig, Platform, bool)] = &[
        (img("amd64", None), want("amd64", None), true),
        (img("arm64", Some("v8")), want("arm64", None), true),
        (img("aarch64", None), want("arm64", Some("v8")), true),
        (img("arm", Some("v7")), want("arm", None), true),
        (img("arm", Some("v6")), want("arm", Some("v7")), false),
        (img("arm64", None), want("amd64", None), false),
        // An image that does not say: nothing to judge.
        (img("", None), want("amd64", None), true),
    ];
    for (image, platform, ok) in cases {
        assert_eq!(
            mismatch("x", image, platform).is_none(),
            *ok,
            "{image:?} vs {platform:?}"
        );
    }
}
