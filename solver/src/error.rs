//! The error a solve returns.

use crate::ir::VertexId;
use crate::ops;

/// Why a solve failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A vertex failed; the first failure of the solve.
    #[error("{name}")]
    Vertex {
        /// The vertex.
        vertex: VertexId,
        /// Its progress label (`[build 2/4] RUN make`).
        name: String,
        /// Why.
        #[source]
        source: Box<ops::Error>,
    },
    /// The definition's target or an input edge points nowhere.
    #[error("invalid build definition: {0}")]
    InvalidDefinition(String),
    /// The stat cache could not be saved (the build itself succeeded).
    #[error(transparent)]
    StatCache(#[from] crate::context_hash::Error),
}
