//! End-to-end tests: they drive the `bake` binary the way a user does, against
//! a real registry (Debian's `docker-registry` on a free 127.0.0.1 port), real
//! namespaces and real OCI tools (`skopeo`, `umoci`). One test binary for the
//! crate keeps link time down; one module per feature.

mod harness;

mod build_run;
mod cache;
mod cache_flags;
mod errors;
mod escape;
mod heredoc;
mod images;
mod instructions;
mod lifecycle;
mod lint;
mod oci_layout;
mod outputs;
mod push_pull;
mod registry_auth;
mod run_flags;
mod run_mounts;
mod run_options;
mod save_load;
mod secrets;
mod store_maintenance;
