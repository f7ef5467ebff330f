//! `bake start`: run a stopped container again, in the background, on the same
//! writable layer with the same plan.

use anyhow::{bail, Context, Result};
use bake_runner::{State, Status};
use clap::Args;

use super::container;
use crate::app::Global;

/// `bake start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Containers (names or ids).
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Starts each container, printing each name as given (like Docker).
pub fn run(global: &Global, args: &StartArgs) -> Result<()> {
    crate::host::prepare_mounts()?;
    let root = super::store_root(global);
    for key in &args.containers {
        let c = container::find(&root, key)?;
        start(&c, key)?;
        println!("{key}");
    }
    Ok(())
}

/// Starts `c` in the background unless it runs (`key`: its name as given). The
/// caller must have called `host::prepare_mounts`.
pub fn start(c: &container::Container, key: &str) -> Result<()> {
    if c.state().status == Status::Running {
        return Ok(());
    }
    if c.config.options.remove_after.is_some() {
        bail!("container {key} was started with --rm and cannot be restarted");
    }
    c.set_state(&State::default())?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(c.log_path())
        .with_context(|| format!("opening {}", c.log_path().display()))?;
    bake_runner::start(&c.config.plan, &c.config.options, log)
        .with_context(|| format!("starting container {key}"))?;
    super::healthcheck::spawn_monitor(c)
}
