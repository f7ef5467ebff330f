//! `bake restart`: `bake stop` then `bake start`, per container.

use anyhow::Result;
use clap::Args;

use super::container;
use crate::app::Global;

/// `bake restart`.
#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Seconds to wait for the stop before SIGKILL (default: the container's
    /// --stop-timeout, else 10).
    #[arg(short = 't', long = "time", value_name = "SECONDS")]
    pub time: Option<u64>,
    /// Containers (names or ids).
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Restarts each container (a stopped one is just started), printing each name as
/// given (like Docker).
pub fn run(global: &Global, args: &RestartArgs) -> Result<()> {
    crate::host::prepare_mounts()?;
    let root = super::store_root(global);
    for key in &args.containers {
        let c = container::find(&root, key)?;
        super::stop::stop(&c, None, args.time)?;
        super::start::start(&c, key)?;
        println!("{key}");
    }
    Ok(())
}
