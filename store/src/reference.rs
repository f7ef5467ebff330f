//! Image references, parsed and normalised exactly as docker does
//! (`github.com/distribution/reference`): `busybox` is
//! `docker.io/library/busybox:latest`.

use std::fmt;
use std::str::FromStr;

use crate::oci::Digest;

/// Docker Hub's canonical registry name.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// What docker calls Docker Hub in older configs; normalised to [`DEFAULT_REGISTRY`].
const LEGACY_REGISTRY: &str = "index.docker.io";
/// The tag used when a reference names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";
/// docker's limit on the full name (registry + repository).
const MAX_NAME_LEN: usize = 255;

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The string is empty.
    #[error("invalid reference: empty")]
    Empty,
    /// The repository part has upper-case letters.
    #[error("invalid reference `{0}`: repository name must be lowercase")]
    Uppercase(String),
    /// A path component of the repository is malformed.
    #[error("invalid reference `{reference}`: bad repository component `{component}` (expected lowercase letters, digits and single separators . _ __ -)")]
    Component {
        /// The whole input.
        reference: String,
        /// The offending component.
        component: String,
    },
    /// The registry host is malformed.
    #[error("invalid reference `{reference}`: bad registry `{registry}`")]
    Registry {
        /// The whole input.
        reference: String,
        /// The offending registry.
        registry: String,
    },
    /// The tag is malformed.
    #[error("invalid reference `{reference}`: bad tag `{tag}` (1-128 of [A-Za-z0-9_.-], not starting with . or -)")]
    Tag {
        /// The whole input.
        reference: String,
        /// The offending tag.
        tag: String,
    },
    /// The digest is malformed.
    #[error("invalid reference `{reference}`: bad digest `{digest}`")]
    Digest {
        /// The whole input.
        reference: String,
        /// The offending digest.
        digest: String,
    },
    /// The name is longer than docker allows.
    #[error("invalid reference `{0}`: repository name longer than 255 characters")]
    TooLong(String),
}

/// A normalised image reference. At least one of `tag` and `digest` is set
/// after parsing (`latest` is filled in when neither is given).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// `docker.io`, `ghcr.io`, `localhost:5000`, …
    pub registry: String,
    /// `library/busybox`, `team/app`, …
    pub repository: String,
    /// `latest`, `1.2`, …
    pub tag: Option<String>,
    /// Pins the manifest.
    pub digest: Option<Digest>,
}

impl Reference {
    /// What to ask a registry's `manifests/` endpoint for when pulling:
    /// the digest when there is one, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// The short form docker shows: `app:1`, `team/app:1`,
    /// `localhost:5000/team/app:1`, `app@sha256:…`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }

    /// The short repository name without tag or digest (`app`,
    /// `localhost:5000/team/app`), as docker-archive `repositories` files use.
    pub fn familiar_name(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            match self.repository.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// `registry/repository`, without tag or digest: the name a registry
    /// knows the repository by, and the key of `repositories` maps.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.is_empty() {
            return Err(Error::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                let digest = d.parse::<Digest>().map_err(|_| Error::Digest {
                    reference: s.to_string(),
                    digest: d.to_string(),
                })?;
                (rest, Some(digest))
            }
            None => (s, None),
        };
        // A tag is a `:` after the last `/` (a `:` before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].find(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(rest[at + 1..].to_string()))
            }
            None => (rest, None),
        };
        if let Some(tag) = &tag {
            if !valid_tag(tag) {
                return Err(Error::Tag {
                    reference: s.to_string(),
                    tag: tag.clone(),
                });
            }
        }
        if name.is_empty() {
            return Err(Error::Empty);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(Error::TooLong(s.to_string()));
        }
        let (registry, repository) = split_registry(name);
        if registry != DEFAULT_REGISTRY && !valid_registry(&registry) {
            return Err(Error::Registry {
                reference: s.to_string(),
                registry,
            });
        }
        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(Error::Uppercase(s.to_string()));
        }
        for component in repository.split('/') {
            if !valid_component(component) {
                return Err(Error::Component {
                    reference: s.to_string(),
                    component: component.to_string(),
                });
            }
        }
        let tag = match (tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (tag, _) => tag,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

/// docker's `splitDockerDomain`: the first component is a registry only if
/// it looks like a host (has `.` or `:`, is `localhost`, or has capitals).
fn split_registry(name: &str) -> (String, String) {
    let (registry, remainder) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
    };
    let registry = if registry == LEGACY_REGISTRY {
        DEFAULT_REGISTRY.to_string()
    } else {
        registry
    };
    let remainder = if registry == DEFAULT_REGISTRY && !remainder.contains('/') {
        format!("library/{remainder}")
    } else {
        remainder
    };
    (registry, remainder)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// A host name (labels of `[A-Za-z0-9-]`, not starting or ending with `-`)
/// or a bracketed IPv6 address, with an optional numeric port.
fn valid_registry(r: &str) -> bool {
    let (host, port) = if let Some(rest) = r.strip_prefix('[') {
        match rest.split_once(']') {
            Some((addr, tail)) => {
                if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
                    return false;
                }
                match tail {
                    "" => return true,
                    t => match t.strip_prefix(':') {
                        Some(port) => ("ipv6", Some(port)),
                        None => return false,
                    },
                }
            }
            None => return false,
        }
    } else {
        match r.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (r, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> String {
        s.parse::<Reference>().unwrap().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(full("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(full("app:1"), "docker.io/library/app:1");
        assert_eq!(full("team/app"), "docker.io/team/app:latest");
        assert_eq!(
            full("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            full("index.docker.io/busybox:1"),
            "docker.io/library/busybox:1"
        );
        assert_eq!(full("localhost/app"), "localhost/app:latest");
        assert_eq!(
            full("localhost:5000/team/app:1"),
            "localhost:5000/team/app:1"
        );
        assert_eq!(full("ghcr.io/o/r/x:v1.2-rc_3"), "ghcr.io/o/r/x:v1.2-rc_3");
        assert_eq!(full("[::1]:5000/app:1"), "[::1]:5000/app:1");
        // A component without `.`/`:` and not `localhost` is a namespace.
        assert_eq!(full("myhost/app"), "docker.io/myhost/app:latest");
    }

    #[test]
    fn digest_references_get_no_default_tag() {
        let hex = "a".repeat(64);
        let r: Reference = format!("host.io/repo@sha256:{hex}").parse().unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.registry, "host.io");
        assert_eq!(r.to_string(), format!("host.io/repo@sha256:{hex}"));
        let r: Reference = format!("busybox:1@sha256:{hex}").parse().unwrap();
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/busybox:1@sha256:{hex}")
        );
        assert_eq!(r.familiar(), format!("busybox:1@sha256:{hex}"));
    }

    #[test]
    fn familiar_is_the_short_form() {
        let f = |s: &str| s.parse::<Reference>().unwrap().familiar();
        assert_eq!(f("docker.io/library/app:1"), "app:1");
        assert_eq!(f("busybox"), "busybox:latest");
        assert_eq!(f("docker.io/team/app:1"), "team/app:1");
        assert_eq!(f("localhost:5000/team/app:1"), "localhost:5000/team/app:1");
        assert_eq!(f("docker.io/library/a/b:1"), "library/a/b:1");
    }

    #[test]
    fn rejects_bad_references_with_clear_errors() {
        let e = |s: &str| s.parse::<Reference>().unwrap_err();
        assert_eq!(e(""), Error::Empty);
        assert!(matches!(e("Busybox"), Error::Uppercase(_)));
        assert!(e("Busybox").to_string().contains("must be lowercase"));
        assert!(matches!(e("localhost:5000/Team/app"), Error::Uppercase(_)));
        assert!(matches!(e("app:"), Error::Tag { .. }));
        assert!(matches!(e("app:-x"), Error::Tag { .. }));
        assert!(matches!(
            e(&format!("app:{}", "x".repeat(129))),
            Error::Tag { .. }
        ));
        assert!(matches!(e("app@sha256:abc"), Error::Digest { .. }));
        assert!(matches!(e("a//b"), Error::Component { .. }));
        assert!(matches!(e("a/-b"), Error::Component { .. }));
        assert!(matches!(e("a..b"), Error::Component { .. }));
        assert!(matches!(e("a___b"), Error::Component { .. }));
        assert!(matches!(e("host:port/app"), Error::Registry { .. }));
        assert!(matches!(e("-bad.io/app"), Error::Registry { .. }));
        assert!(matches!(e(&"a".repeat(256)), Error::TooLong(_)));
    }

    #[test]
    fn separators_follow_the_grammar() {
        assert!(valid_component("a.b_c__d---e"));
        assert!(!valid_component("a.-b"));
        assert!(!valid_component("_a"));
        assert!(!valid_component("a_"));
    }

    #[test]
    fn display_parses_back_to_itself() {
        for s in ["busybox", "localhost:5000/a/b:c", "ghcr.io/x/y:1"] {
            let r: Reference = s.parse().unwrap();
            assert_eq!(r.to_string().parse::<Reference>().unwrap(), r);
            assert_eq!(r.familiar().parse::<Reference>().unwrap(), r);
        }
    }
}
