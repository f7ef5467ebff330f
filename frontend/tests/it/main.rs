//! Integration tests of the public API: parse + lower never panic on any
//! input (proptest), and errors render as miette diagnostics.

use bake_frontend::ir::{ContainerConfig, Digest, ImageConfig, Platform};
use bake_frontend::{lower, parse, BuildOptions, ImageResolver, ResolvedImage};
use proptest::prelude::*;

mod golden;

struct Busybox;

impl ImageResolver for Busybox {
    fn resolve(&self, reference: &str, _platform: &Platform) -> Result<ResolvedImage, String> {
        if reference.contains("missing") {
            return Err("not found".into());
        }
        Ok(ResolvedImage {
            reference: reference.to_string(),
            image_id: Digest::of(reference.as_bytes()),
            config: ImageConfig {
                architecture: "amd64".into(),
                os: "linux".into(),
                config: Some(ContainerConfig {
                    env: vec!["PATH=/bin".into()],
                    cmd: Some(vec!["sh".into()]),
                    on_build: vec!["RUN echo hi".into()],
                    ..ContainerConfig::default()
                }),
                ..ImageConfig::default()
            },
        })
    }
}

fn check(text: &str, target: Option<String>) {
    let Ok(df) = parse(text, "Dockerfile") else {
        return;
    };
    let opts = BuildOptions {
        target,
        build_args: [("A".to_string(), "x y".to_string())].into_iter().collect(),
        ..BuildOptions::default()
    };
    if let Ok((def, _)) = lower(&df, &opts, &Busybox) {
        // inputs always precede their vertex and the target exists
        for (i, v) in def.graph.vertices.iter().enumerate() {
            assert!(v.inputs.iter().all(|x| x.0 < i));
        }
        assert!(def.target.0 < def.graph.vertices.len());
        serde_json::to_string(&def).expect("serialisable");
    }
}

/// Fragments that exercise the interesting paths.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("FROM busybox AS b\n".to_string()),
        Just("FROM scratch\n".to_string()),
        Just("FROM $A\n".to_string()),
        Just("ARG A=1\n".to_string()),
        Just("RUN <<EOF\n".to_string()),
        Just("EOF\n".to_string()),
        Just("COPY --from=b a /b/\n".to_string()),
        Just("COPY --from=0 <<X /x\n".to_string()),
        Just("ENV A=${A:-${B}} C \"d\n".to_string()),
        Just("RUN --mount=type=cache,target=x echo \\\n".to_string()),
        Just("# escape=`\n".to_string()),
        Just("WORKDIR ..\n".to_string()),
        Just("ONBUILD RUN x\n".to_string()),
        Just("HEALTHCHECK --interval=1s CMD [\"a\"]\n".to_string()),
        Just("EXPOSE 1-3/udp\n".to_string()),
        Just("CMD [\"a\"\n".to_string()),
        "[ -~\t\n]{0,40}",
        "[A-Za-z$\\{\\}:\\-+?#%/\"'\\\\` =\\[\\],<>\n]{0,30}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn never_panics_on_fragments(parts in prop::collection::vec(fragment(), 0..12), t in prop::option::of("[a-z]{1,2}")) {
        check(&parts.concat(), t);
    }

    #[test]
    fn never_panics_on_any_text(text in "\\PC{0,200}") {
        check(&text, None);
        check(&format!("FROM busybox\n{text}"), None);
    }
}

#[test]
fn errors_are_diagnostics() {
    use miette::Diagnostic;
    let e = parse("FROM a\nCOPPY x y\n", "Dockerfile").unwrap_err();
    assert_eq!(
        e.to_string(),
        "Dockerfile:2:1: unknown instruction: COPPY (did you mean COPY?)"
    );
    let labels: Vec<_> = e.labels().expect("labels").collect();
    assert_eq!(labels[0].offset(), 7);
    assert_eq!(labels[0].len(), 5);
    assert!(e.source_code().is_some());
}

#[test]
fn lower_error_from_resolver() {
    let df = parse("FROM missing\n", "Dockerfile").unwrap();
    let e = lower(&df, &BuildOptions::default(), &Busybox).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Dockerfile:1:6: failed to resolve image \"missing\": not found"
    );
}
