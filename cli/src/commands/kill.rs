//! `bake kill`: a signal to each container's pid 1.

use anyhow::Result;
use clap::Args;

use super::container;
use crate::app::Global;

/// `bake kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send (name or number).
    #[arg(short = 's', long, default_value = "KILL")]
    pub signal: String,
    /// Containers (names or ids).
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Signals every container, printing each name as given (like Docker).
pub fn run(global: &Global, args: &KillArgs) -> Result<()> {
    let root = super::store_root(global);
    let signal = container::parse_signal(&args.signal)?;
    for key in &args.containers {
        let c = container::find(&root, key)?;
        container::signal(&c, signal)?;
        println!("{key}");
    }
    Ok(())
}
