//! bake's solver: the build graph (IR), cache keys and the parallel scheduler.
#![deny(missing_docs)]

pub mod ir;
