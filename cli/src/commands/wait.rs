//! `bake wait`: block until containers exit, print their exit codes.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::container;
use crate::app::Global;

/// `bake wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Containers (names or ids).
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Prints one exit code per container, in order.
pub fn run(global: &Global, args: &WaitArgs) -> Result<ExitCode> {
    let root = super::store_root(global);
    for key in &args.containers {
        let c = container::find(&root, key)?;
        let state = container::wait_exit(&c, None).unwrap_or_default();
        println!("{}", state.exit.map_or(0, |e| e.docker_code()));
    }
    Ok(ExitCode::SUCCESS)
}
