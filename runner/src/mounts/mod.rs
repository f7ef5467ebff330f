//! Mounts of the sandbox: what to mount ([`plan`], pure data built from a
//! [`crate::Plan`]), how to mount it ([`apply`], the small executor), and the
//! mount-point stubs that must not land in the layer ([`stubs`]).

pub(crate) mod apply;
pub(crate) mod plan;
pub(crate) mod stubs;

pub(crate) use plan::MountPlan;
