//! bake's solver: the build graph (IR), cache keys and the parallel
//! scheduler, and the [`Solver`] that runs a build against the store and
//! the runner. See `docs/interfaces.md`.
#![deny(missing_docs)]

pub mod beneath;
pub mod build_claim;
pub mod cache_key;
pub mod context_hash;
pub mod digest;
pub mod dockerignore;
pub mod error;
pub mod event;
pub mod glob;
pub mod ir;
pub mod ops;
pub mod remote_cache;
pub mod scheduler;
pub mod solve;

pub use error::Error;
pub use event::{Event, Stream};
pub use solve::{SolveOptions, Solved, Solver};
