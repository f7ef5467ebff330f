//! Golden cases: `testdata/<case>/Dockerfile` (+ `args`, one
//! `--build-arg K=V` / `--target X` per line), copied from the conformance
//! suite. Each is parsed and lowered against a busybox-like base; the
//! snapshot holds the image config and the vertex names, or the error.

use std::collections::BTreeMap;

use bake_frontend::ir::{ContainerConfig, Digest, ImageConfig, Platform};
use bake_frontend::{lower, parse, BuildOptions, ImageResolver, ResolvedImage};
use serde::Serialize;

struct ConformanceBase;

impl ImageResolver for ConformanceBase {
    fn resolve(&self, reference: &str, _platform: &Platform) -> Result<ResolvedImage, String> {
        Ok(ResolvedImage {
            reference: reference.to_string(),
            image_id: Digest::of(reference.as_bytes()),
            config: ImageConfig {
                author: Some("anchors".into()),
                architecture: "amd64".into(),
                os: "linux".into(),
                config: Some(ContainerConfig {
                    env: vec![
                        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                    ],
                    cmd: Some(vec!["sh".into()]),
                    ..ContainerConfig::default()
                }),
                ..ImageConfig::default()
            },
        })
    }
}

#[derive(Serialize)]
struct Outcome {
    config: Option<ContainerConfig>,
    author: Option<String>,
    vertices: Vec<String>,
    warnings: Vec<String>,
}

fn options(args: &str) -> BuildOptions {
    let mut build_args = BTreeMap::new();
    let mut target = None;
    for line in args.lines() {
        if let Some(kv) = line.strip_prefix("--build-arg ") {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            build_args.insert(k.to_string(), v.to_string());
        } else if let Some(t) = line.strip_prefix("--target ") {
            target = Some(t.to_string());
        }
    }
    BuildOptions {
        build_args,
        target,
        platform: Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        },
        ..BuildOptions::default()
    }
}

#[test]
fn golden() {
    insta::glob!("../../testdata", "*/Dockerfile", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let args = std::fs::read_to_string(path.with_file_name("args")).unwrap_or_default();
        let result =
            parse(&text, "Dockerfile").and_then(|df| lower(&df, &options(&args), &ConformanceBase));
        match result {
            Ok((def, warnings)) => insta::assert_yaml_snapshot!(Outcome {
                config: def.config.config.clone(),
                author: def.config.author.clone(),
                vertices: def.graph.vertices.iter().map(|v| v.name.clone()).collect(),
                warnings: warnings.iter().map(|w| w.to_string()).collect(),
            }),
            Err(e) => insta::assert_snapshot!(e.to_string()),
        }
    });
}
