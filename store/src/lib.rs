//! bake's content-addressed store.
#![deny(missing_docs)]

pub mod oci;
