//! Integration tests of the runner, as root, on a busybox rootfs.
//!
//! `run()` re-executes the current binary as the sandbox, so this test binary has its
//! own `main` (`harness = false`) that hands over to `sandbox_main()` first thing.

mod fixture;
mod sandbox;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;

use bake_runner::{check_support, enter_private_mount_namespace, sandbox_main, SANDBOX_ARG};

/// A test: name and body (panics on failure).
type Test = (&'static str, fn());

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some(SANDBOX_ARG) {
        return sandbox_main();
    }
    if !rustix::process::geteuid().is_root() {
        println!("skipped: needs root");
        return ExitCode::SUCCESS;
    }
    if let Err(e) = check_support() {
        println!("skipped: {e}");
        return ExitCode::SUCCESS;
    }
    if !std::path::Path::new(fixture::BUSYBOX).exists() {
        println!(
            "skipped: needs {} (apt-get install busybox-static)",
            fixture::BUSYBOX
        );
        return ExitCode::SUCCESS;
    }
    // Before any thread: the host-side mounts of these tests stay private.
    if let Err(e) = enter_private_mount_namespace() {
        println!("error: {e}");
        return ExitCode::FAILURE;
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in sandbox::TESTS {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        match catch_unwind(AssertUnwindSafe(test)) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
