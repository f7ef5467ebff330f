//! `bake stop`: the stop signal, then SIGKILL after the timeout.

use std::time::Duration;

use anyhow::{bail, Result};
use bake_runner::Status;
use clap::Args;
use nix::sys::signal::Signal;

use super::container::{self, Container};
use crate::app::Global;

/// `bake stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before SIGKILL (default: the container's --stop-timeout, else 10).
    #[arg(short = 't', long = "time", value_name = "SECONDS")]
    pub time: Option<u64>,
    /// Signal to send first (default: the container's stop signal, else SIGTERM).
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    /// Containers (names or ids).
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Stops `c` (nothing to do when it is not running).
pub fn stop(c: &Container, signal: Option<&str>, time: Option<u64>) -> Result<()> {
    if c.state().status != Status::Running {
        return Ok(());
    }
    let first = match signal.or(c.config.stop_signal.as_deref()) {
        Some(s) => container::parse_signal(s)?,
        None => Signal::SIGTERM,
    };
    let timeout = Duration::from_secs(time.or(c.config.stop_timeout).unwrap_or(10));
    // It may exit between the check and the signal: then there is nothing to stop.
    if container::signal(c, first).is_err() && c.state().status != Status::Running {
        return Ok(());
    }
    if container::wait_exit(c, Some(timeout)).is_some() {
        return Ok(());
    }
    let _ = container::signal(c, Signal::SIGKILL);
    if container::wait_exit(c, Some(Duration::from_secs(30))).is_none() {
        bail!("container {} did not exit after SIGKILL", c.config.name);
    }
    Ok(())
}

/// Stops each container, printing each name as given (like Docker).
pub fn run(global: &Global, args: &StopArgs) -> Result<()> {
    let root = super::store_root(global);
    for key in &args.containers {
        let c = container::find(&root, key)?;
        stop(&c, args.signal.as_deref(), args.time)?;
        println!("{key}");
    }
    Ok(())
}
