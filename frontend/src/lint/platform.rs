//! `InvalidBaseImagePlatform`: the base image a FROM resolved to was built
//! for another platform than the stage's target.
//!
//! BuildKit checks it when it pulls the image; bake's frontend resolves
//! every base image (local store or registry) while lowering and gets its
//! config, so the check runs there, at the FROM line. It matters most for
//! an image tagged locally, which the resolver uses as is whatever the
//! target platform.

use bake_solver::ir::{ImageConfig, Platform};

/// The rule's name.
pub(crate) const RULE: &str = "InvalidBaseImagePlatform";

/// BuildKit's message when `image` (the base named `reference`) does not
/// match `want`; `None` when it does or says nothing about its platform.
pub(crate) fn mismatch(reference: &str, image: &ImageConfig, want: &Platform) -> Option<String> {
    if image.os.is_empty() || image.architecture.is_empty() {
        return None;
    }
    let have = normalise(&image.os, &image.architecture, image.variant.as_deref());
    let want = normalise(&want.os, &want.architecture, want.variant.as_deref());
    let variants_differ = matches!((&have.2, &want.2), (Some(a), Some(b)) if a != b);
    if have.0 == want.0 && have.1 == want.1 && !variants_differ {
        return None;
    }
    Some(format!(
        "Base image {reference} was pulled with platform {:?}, expected {:?} for current build",
        show(&have),
        show(&want)
    ))
}

type Triple = (String, String, Option<String>);

/// containerd's normalisation: architecture aliases, and the default
/// variant of an architecture (`arm64/v8`, `amd64/v1`) dropped.
fn normalise(os: &str, arch: &str, variant: Option<&str>) -> Triple {
    let os = os.to_ascii_lowercase();
    let arch = match arch.to_ascii_lowercase().as_str() {
        "x86_64" | "x86-64" => "amd64".to_string(),
        "aarch64" => "arm64".to_string(),
        "armhf" => "arm".to_string(),
        "i386" => "386".to_string(),
        other => other.to_string(),
    };
    let variant = variant
        .map(str::to_ascii_lowercase)
        .filter(|v| !v.is_empty())
        .filter(|v| {
            !matches!(
                (arch.as_str(), v.as_str()),
                ("arm64", "v8") | ("amd64", "v1")
            )
        });
    (os, arch, variant)
}

fn show((os, arch, variant): &Triple) -> String {
    match variant {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    }
}
