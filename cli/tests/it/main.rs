//! End-to-end tests: they drive the `bake` binary the way a user does, against
//! a real registry (Debian's `docker-registry` on a free 127.0.0.1 port), real
//! namespaces and real OCI tools (`skopeo`, `umoci`). One test binary for the
//! crate keeps link time down; one module per feature.

mod harness;

mod build_run;
mod cache;
mod errors;
mod images;
mod push_pull;
mod run_options;
mod save_load;
