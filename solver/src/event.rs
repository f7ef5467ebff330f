//! Progress events a solve reports (the cli renders them).

use crate::ir::VertexId;

pub use bake_runner::Stream;

/// What happened to a vertex.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Its result was not cached: it runs now.
    Started {
        /// The vertex.
        vertex: VertexId,
        /// Its progress label.
        name: String,
    },
    /// Its result came from the cache.
    Cached {
        /// The vertex.
        vertex: VertexId,
        /// Its progress label.
        name: String,
    },
    /// Output of a RUN.
    Log {
        /// The vertex.
        vertex: VertexId,
        /// stdout or stderr.
        stream: Stream,
        /// The bytes, as they came.
        data: Vec<u8>,
    },
    /// It finished.
    Done {
        /// The vertex.
        vertex: VertexId,
        /// Wall-clock seconds.
        seconds: f64,
    },
    /// It failed.
    Failed {
        /// The vertex.
        vertex: VertexId,
        /// The error, rendered with its causes.
        message: String,
    },
}
