//! Any text: `parse` and `lower` return Ok or a positioned error, never
//! panic (and the lint checks run on everything that parses).
#![no_main]

use bake_frontend::ir::{ContainerConfig, Digest, ImageConfig, Platform};
use bake_frontend::{lint, lower, parse, BuildOptions, ImageResolver, ResolvedImage};
use libfuzzer_sys::fuzz_target;

/// Resolves every reference to a small image with an ONBUILD trigger, so
/// that trigger parsing is exercised too.
struct Base;

impl ImageResolver for Base {
    fn resolve(&self, reference: &str, _: &Platform) -> Result<ResolvedImage, String> {
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
                    on_build: if reference.contains("onbuild") {
                        vec!["RUN echo $PATH".into(), "COPY <<EOF /x\nhi\nEOF".into()]
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

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(df) = parse(text, "Dockerfile") else {
        return;
    };
    let mut opts = BuildOptions {
        platform: Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        },
        ..BuildOptions::default()
    };
    let _ = lint::check(&df, &opts);
    let _ = lower(&df, &opts, &Base);
    opts.build_args.insert("A".into(), "x y".into());
    opts.target = Some("build".into());
    if let Ok((def, _)) = lower(&df, &opts, &Base) {
        let _ = serde_json::to_string(&def);
    }
});
