//! bake's content-addressed store: blobs, snapshots (unpacked layers),
//! images and tags, the cache index, layer tar pack/unpack, docker-archive
//! import/export and the registry client. See `docs/interfaces.md`.
#![deny(missing_docs)]

pub mod archive;
pub mod blobs;
pub mod cache;
pub mod cache_export;
pub mod cache_transfer;
pub mod export;
pub mod gc;
pub mod images;
pub mod layer;
pub mod layout;
pub mod oci;
mod push_stream;
pub mod reference;
pub mod registry;
pub mod snapshots;
pub mod transfer;
pub mod userns;
pub mod volumes;

pub use cache::CacheRecord;
pub use images::ImageSummary;
pub use layer::Compression;
pub use layout::Store;
pub use reference::Reference;
pub use snapshots::{ChainId, Layer};
