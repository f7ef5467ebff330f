//! The OCI distribution client: a blocking facade over `ureq`.
//!
//! [`Client`] speaks the distribution API of one registry host: manifests,
//! blobs (HEAD, streaming GET with sha256 verification of every byte,
//! monolithic upload, cross-repository mount), with anonymous, basic and
//! bearer-token authentication and bounded retries. [`select_manifest`]
//! picks the manifest for a platform out of an index or manifest list.
//!
//! This module depends only on [`crate::oci`]; the high-level pull and push
//! flows that move images between a registry and the store live in
//! [`crate::transfer`].
//!
//! The architecture notes put tokio behind this facade; a blocking client
//! does the same job without a runtime to own, and the parallelism that
//! matters (several layers at once) comes from a few plain threads in
//! `transfer`.

mod auth;
mod blob;
mod client;
mod endpoint;
mod known_blobs;
pub mod login;
mod platform;
#[cfg(test)]
pub(crate) mod test_registry;

pub use blob::BlobReader;
pub use client::{BlobRange, Client};
pub use known_blobs::KnownBlobs;
pub use platform::{select_manifest, PlatformParseError, PlatformSpec};

use crate::oci::Digest;

/// How to reach registries: which hosts speak plain HTTP, which credentials
/// to use.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Hosts (`name` or `name:port`, as in a reference) reached over plain
    /// HTTP. `localhost`, `127.0.0.0/8` and `[::1]` always are.
    pub insecure: Vec<String>,
    /// Basic credentials (user, password) that override whatever
    /// `config.json` has for the host.
    pub auth: Option<(String, String)>,
    /// Mirrors by registry host (`docker.io` → `["mirror.local:5000"]`):
    /// a pull tries them in order, then the registry itself. Pushes never
    /// use them.
    pub mirrors: std::collections::BTreeMap<String, Vec<String>>,
}

/// What went wrong talking to a registry (and, for [`crate::transfer`],
/// moving what it sent into the store).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection failed (after the retries), or the response could not
    /// be read.
    #[error("{op} {url}: {source}")]
    Transport {
        /// The operation, e.g. `get manifest`.
        op: &'static str,
        /// The URL asked for.
        url: String,
        /// ureq's transport error.
        #[source]
        source: Box<ureq::Transport>,
    },
    /// Reading or writing a body failed.
    #[error("{op} {url}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The URL.
        url: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The registry refused the credentials (or there were none).
    #[error("{op} {url}: unauthorized: {reason}")]
    Unauthorized {
        /// The operation.
        op: &'static str,
        /// The URL.
        url: String,
        /// What the registry or bake said.
        reason: String,
    },
    /// The registry knows who is asking but does not let them do this:
    /// the bearer token it was given lacks the action (`push` for a
    /// pull-only user, or anything for an anonymous one).
    #[error(
        "{op} {url}: denied: requested access to the resource is denied (needs {scope}{hint})"
    )]
    Denied {
        /// The operation.
        op: &'static str,
        /// The URL.
        url: String,
        /// The scope the registry asked for, e.g. `repository:app:pull,push`.
        scope: String,
        /// What the user can do about it (empty when nothing useful).
        hint: String,
    },
    /// The registry does not have the manifest or blob.
    #[error("{what}: not found ({url})")]
    NotFound {
        /// The reference or digest asked for.
        what: String,
        /// The URL.
        url: String,
    },
    /// The registry answered with a status the operation does not expect.
    #[error("{op} {url}: HTTP {status}: {message}")]
    Status {
        /// The operation.
        op: &'static str,
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The distribution error codes and messages, or the start of the
        /// body.
        message: String,
    },
    /// The bytes received do not hash to the digest asked for.
    #[error("{url}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The URL.
        url: String,
        /// The digest asked for.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// A manifest, index, config or token response is not what it claims.
    #[error("{url}: invalid {what}: {reason}")]
    Invalid {
        /// `manifest`, `index`, `config`, `token response`, …
        what: &'static str,
        /// The URL it came from.
        url: String,
        /// Why.
        reason: String,
    },
    /// A manifest media type bake does not handle.
    #[error("{url}: unsupported manifest media type `{media_type}`")]
    UnsupportedMediaType {
        /// The URL.
        url: String,
        /// The media type.
        media_type: String,
    },
    /// An index has no manifest for the platform asked for.
    #[error("{reference}: no manifest for platform {wanted}; available: {}", .available.join(", "))]
    NoMatchingPlatform {
        /// The reference.
        reference: String,
        /// The platform asked for.
        wanted: String,
        /// The platforms the index lists.
        available: Vec<String>,
    },
    /// Fetching a bearer token failed.
    #[error("token from {realm}: {reason}")]
    Token {
        /// The token endpoint.
        realm: String,
        /// Why.
        reason: String,
    },
    /// The docker `config.json` cannot be read or parsed.
    #[error("credentials from {path}: {reason}")]
    Credentials {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// An upload location header is missing or unusable.
    #[error("{url}: bad upload location `{location}`")]
    Location {
        /// The URL that answered.
        url: String,
        /// The `Location` header (empty when missing).
        location: String,
    },
    /// The store failed while pulling or pushing (see [`crate::transfer`]).
    #[error("{op} {what}: {source}")]
    Store {
        /// The store operation, e.g. `unpack layer`.
        op: &'static str,
        /// The digest or reference it was working on.
        what: String,
        /// The store's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_cross_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<super::Error>();
        send_sync::<super::Client>();
    }
}
