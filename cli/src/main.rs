//! `bake`: build container images from Dockerfiles without a daemon, and run
//! them. This binary parses flags, wires the library crates together,
//! renders progress and picks exit codes; the work happens in the libraries.

mod app;
mod commands;
mod config;
mod exit;
mod host;
mod output;
mod progress;
mod resolver;
mod rootless;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // The runner re-executes this binary to build a sandbox in a fresh,
    // single-threaded process; nothing else may run first.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == bake_runner::SANDBOX_ARG)
    {
        return bake_runner::sandbox_main();
    }
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == bake_runner::PORT_PROXY_ARG)
    {
        return bake_runner::port_proxy_main();
    }
    let cli = app::Cli::parse();
    // Rootless: become root of a user namespace before any thread starts.
    if !rustix::process::geteuid().is_root() {
        if let Err(err) = rootless::enter() {
            let err = anyhow::Error::from(err);
            let code = match cli.command {
                app::Command::Run(_) => exit::run_code(&err),
                _ => exit::FAILURE,
            };
            return exit::fail(&err, code, cli.global.debug);
        }
    }
    match commands::dispatch(&cli) {
        Ok(code) => code,
        Err(err) => {
            // Docker's convention: `run` keeps 1..=124 for the container.
            let code = match cli.command {
                app::Command::Run(_) => exit::run_code(&err),
                _ => exit::FAILURE,
            };
            exit::fail(&err, code, cli.global.debug)
        }
    }
}
