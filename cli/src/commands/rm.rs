//! `bake rm`: remove containers (their layer, volumes, log and state).

use std::time::Duration;

use anyhow::{bail, Result};
use bake_runner::Status;
use clap::Args;
use nix::sys::signal::Signal;

use super::container;
use crate::app::Global;

/// `bake rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill a running container (SIGKILL) before removing it.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Also remove anonymous volumes (always done: they live in the container's directory).
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Containers (names or ids).
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Removes each container, printing each name as given (like Docker).
pub fn run(global: &Global, args: &RmArgs) -> Result<()> {
    let root = super::store_root(global);
    for key in &args.containers {
        let c = container::find(&root, key)?;
        if c.state().status == Status::Running {
            if !args.force {
                bail!(
                    "cannot remove container {key}: it is running: stop it first or use `bake rm -f`"
                );
            }
            let _ = container::signal(&c, Signal::SIGKILL);
            if container::wait_exit(&c, Some(Duration::from_secs(30))).is_none() {
                bail!("container {key} did not exit after SIGKILL");
            }
        }
        c.remove()?;
        println!("{key}");
    }
    Ok(())
}
