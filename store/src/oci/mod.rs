//! OCI image-spec documents as bake hashes them.
//!
//! bake keeps its own structs instead of `oci-spec`'s because every hashed
//! document must serialise the same way every time: fields in a fixed order,
//! maps as `BTreeMap`, empty optional fields left out (oci-spec's `HashMap`
//! fields make digests unstable, oci-spec-rs#249). [`canonical_json`] is the
//! one encoder every hashed document goes through.

mod config;
mod digest;
mod manifest;

pub use config::{ContainerConfig, Healthcheck, History, ImageConfig, RootFs};
pub use digest::{Digest, DigestError};
pub use manifest::{media_types, Descriptor, Index, Manifest, Platform};

/// Serialises a document the one way bake hashes it: compact JSON, struct
/// fields in declaration order, maps sorted (they are all `BTreeMap`).
///
/// # Errors
/// Only if a value cannot be represented in JSON (never for bake's types).
pub fn canonical_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(value)
}
