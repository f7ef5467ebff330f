//! Platforms and choosing a manifest out of an index / manifest list.

use std::fmt;
use std::str::FromStr;

use super::Error;
use crate::oci::{Descriptor, Index, Platform};

/// The platform an image is wanted for: `linux/amd64`, `linux/arm/v7`, …
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PlatformSpec {
    /// GOOS spelling: `linux`.
    pub os: String,
    /// GOARCH spelling: `amd64`, `arm64`, `arm`, …
    pub architecture: String,
    /// CPU variant (`v7`, `v8`), if one is asked for.
    pub variant: Option<String>,
}

impl PlatformSpec {
    /// The platform bake itself runs on (`linux/<GOARCH of this machine>`).
    pub fn host() -> PlatformSpec {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            "loongarch64" => "loong64",
            other => other,
        };
        PlatformSpec {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: None,
        }
    }

    /// Whether an index entry's platform is this one. Variants compare after
    /// normalisation (`arm64/v8` = `arm64`, `arm` = `arm/v7`); when no
    /// variant is asked for, any variant of the architecture matches.
    pub fn matches(&self, platform: &Platform) -> bool {
        self.os == platform.os
            && self.architecture == platform.architecture
            && (self.variant.is_none()
                || normal_variant(&self.architecture, self.variant.as_deref())
                    == normal_variant(&platform.architecture, platform.variant.as_deref()))
    }

    /// Whether it matches, variant included after normalisation.
    fn matches_exactly(&self, platform: &Platform) -> bool {
        self.os == platform.os
            && self.architecture == platform.architecture
            && normal_variant(&self.architecture, self.variant.as_deref())
                == normal_variant(&platform.architecture, platform.variant.as_deref())
    }
}

/// The variant with the architecture's default spelled out or dropped the
/// way containerd does: arm64 → no variant (v8), arm → v7.
fn normal_variant<'a>(architecture: &str, variant: Option<&'a str>) -> Option<&'a str> {
    match (architecture, variant) {
        ("arm64", Some("v8")) => None,
        ("arm", None) => Some("v7"),
        ("amd64", Some("v1")) => None,
        (_, v) => v.filter(|v| !v.is_empty()),
    }
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Why a string is not `os/arch[/variant]`.
#[derive(Debug, thiserror::Error)]
#[error("invalid platform `{0}`: expected os/architecture[/variant]")]
pub struct PlatformParseError(String);

impl FromStr for PlatformSpec {
    type Err = PlatformParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) || !(2..=3).contains(&parts.len()) {
            return Err(PlatformParseError(s.to_string()));
        }
        Ok(PlatformSpec {
            os: parts[0].to_ascii_lowercase(),
            architecture: parts[1].to_ascii_lowercase(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }
}

fn describe(platform: &Platform) -> String {
    match &platform.variant {
        Some(v) => format!("{}/{}/{v}", platform.os, platform.architecture),
        None => format!("{}/{}", platform.os, platform.architecture),
    }
}

/// Picks the manifest for `wanted` out of an index: an exact match
/// (variants normalised) first, else — when no variant was asked for — the
/// first entry of the same os and architecture. Entries without a platform
/// and attestation manifests (`unknown/unknown`) never match.
///
/// # Errors
/// [`Error::NoMatchingPlatform`] naming `reference` and listing the
/// platforms the index has.
pub fn select_manifest<'a>(
    index: &'a Index,
    wanted: &PlatformSpec,
    reference: &str,
) -> Result<&'a Descriptor, Error> {
    let with_platform = || {
        index
            .manifests
            .iter()
            .filter_map(|d| d.platform.as_ref().map(|p| (d, p)))
    };
    with_platform()
        .find(|(_, p)| wanted.matches_exactly(p))
        .or_else(|| with_platform().find(|(_, p)| wanted.matches(p)))
        .map(|(d, _)| d)
        .ok_or_else(|| {
            let mut available: Vec<String> = with_platform()
                .map(|(_, p)| describe(p))
                .filter(|p| p != "unknown/unknown")
                .collect();
            available.dedup();
            Error::NoMatchingPlatform {
                reference: reference.to_string(),
                wanted: wanted.to_string(),
                available,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{media_types, Digest};

    fn entry(os: &str, arch: &str, variant: Option<&str>) -> Descriptor {
        Descriptor {
            media_type: media_types::OCI_MANIFEST.into(),
            digest: Digest::of(format!("{os}/{arch}/{variant:?}").as_bytes()),
            size: 1,
            platform: Some(Platform {
                architecture: arch.into(),
                os: os.into(),
                variant: variant.map(Into::into),
            }),
            annotations: Default::default(),
        }
    }

    fn index() -> Index {
        Index {
            schema_version: 2,
            media_type: Some(media_types::OCI_INDEX.into()),
            manifests: vec![
                entry("linux", "amd64", None),
                entry("linux", "arm", Some("v6")),
                entry("linux", "arm", Some("v7")),
                entry("linux", "arm64", Some("v8")),
                entry("unknown", "unknown", None),
            ],
            annotations: Default::default(),
        }
    }

    fn pick(spec: &str) -> Result<Descriptor, Error> {
        let idx = index();
        select_manifest(&idx, &spec.parse().unwrap(), "x").cloned()
    }

    #[test]
    fn picks_exact_os_arch() {
        assert_eq!(pick("linux/amd64").unwrap(), entry("linux", "amd64", None));
    }

    #[test]
    fn arm64_matches_v8_with_or_without_variant() {
        let want = entry("linux", "arm64", Some("v8"));
        assert_eq!(pick("linux/arm64").unwrap(), want);
        assert_eq!(pick("linux/arm64/v8").unwrap(), want);
    }

    #[test]
    fn arm_defaults_to_v7_and_honours_an_explicit_variant() {
        assert_eq!(
            pick("linux/arm").unwrap(),
            entry("linux", "arm", Some("v7"))
        );
        assert_eq!(
            pick("linux/arm/v6").unwrap(),
            entry("linux", "arm", Some("v6"))
        );
        assert!(pick("linux/arm/v5").is_err());
    }

    #[test]
    fn no_match_lists_available_platforms() {
        let err = pick("windows/amd64").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("windows/amd64")
                && text.contains("linux/arm/v7")
                && text.contains("linux/arm64/v8")
                && !text.contains("unknown/unknown"),
            "{text}"
        );
    }

    #[test]
    fn parses_and_displays() {
        let p: PlatformSpec = "linux/arm/v7".parse().unwrap();
        assert_eq!(p.variant.as_deref(), Some("v7"));
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert!("linux".parse::<PlatformSpec>().is_err());
        assert!("linux//v7".parse::<PlatformSpec>().is_err());
        assert_eq!(PlatformSpec::host().os, std::env::consts::OS);
    }
}
