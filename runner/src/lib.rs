//! bake's Linux sandbox: runs one process in fresh namespaces on an overlay of image
//! layers, for RUN during builds and for `bake run`.
//!
//! [`run`] re-executes the current binary with [`SANDBOX_ARG`]; that process
//! ([`sandbox_main`]) does every unshare, mount and pivot_root while single-threaded
//! (see the `sandbox` module for why). What to mount is plain data computed from the
//! [`Plan`] by pure functions (`mounts::plan`), applied by a small executor.
//!
//! Needs root: real root, or root of a user namespace (rootless mode, which the cli
//! enters at start; see the `rootless` module for what differs there).

#![deny(missing_docs)]

mod caps;
mod cgroup;
mod copy_view;
mod error;
mod exec;
mod join;
mod mounts;
pub mod network;
mod options;
mod overlay;
mod plan;
mod reaper;
mod rootless;
mod sandbox;
mod seccomp;
mod spawn;
mod teardown;
mod tty;
mod user;

pub use cgroup::{is_paused, pause, unpause};
pub use copy_view::sync_running;
pub use error::Error;
pub use network::{port_proxy_main, PortMapping, Protocol, PORT_PROXY_ARG};
pub use options::{now_ms, write_state, Exec, Limits, Options, State, Status};
pub use overlay::{check_support, enter_private_mount_namespace, mount_overlay, OverlayMount};
pub use plan::{Exit, MountSpec, Network, Plan, Rootfs, Stdio, Stream};
pub use sandbox::sandbox_main;
pub use seccomp::Seccomp;
pub use spawn::{exec, run, run_with, start};

/// The hidden first argument that makes the bake binary (or a test binary) act as the
/// sandbox process: its `main` must call [`sandbox_main`] when it sees it, before
/// anything else (in particular before starting threads).
pub const SANDBOX_ARG: &str = "__bake-sandbox";
