//! End-to-end tests: they drive the `bake` binary the way a user does, against
//! a real registry (Debian's `docker-registry` on a free 127.0.0.1 port), real
//! namespaces and real OCI tools (`skopeo`, `umoci`). One test binary for the
//! crate keeps link time down; one module per feature.

mod harness;
mod token_issuer;

mod add_git;
mod build_limits;
mod build_run;
mod cache;
mod cache_export;
mod cache_flags;
mod concurrent_builds;
mod containers;
mod copy_fallback;
mod errors;
mod escape;
mod heredoc;
mod images;
mod instruction_flags;
mod instructions;
mod interop;
mod lifecycle;
mod lint;
mod oci_layout;
mod outputs;
mod pause;
mod ports;
mod push_pull;
mod registry_auth;
mod registry_mirror;
mod registry_mount;
mod registry_resume;
mod registry_token;
mod rootless;
mod run_flags;
mod run_mounts;
mod run_options;
mod save_load;
mod seccomp;
mod secrets;
mod semantics_debian;
mod semantics_extra;
mod store_maintenance;
mod transfer_progress;
