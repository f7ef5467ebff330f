//! `bake port CTR [PORT[/PROTO]]`: a container's published ports, as `docker port`
//! prints them (`80/tcp -> 0.0.0.0:8080`), and the PORTS column of `bake ps`.

use anyhow::{bail, Result};
use bake_runner::PortMapping;
use clap::Args;

use super::container::{self, Container};
use crate::app::Global;

/// `bake port`.
#[derive(Debug, Args)]
pub struct PortArgs {
    /// The container (name or id).
    pub container: String,
    /// Only this container port (`80`, `80/tcp`, `53/udp`): print its host address.
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
}

/// Prints the mappings.
pub fn run(global: &Global, args: &PortArgs) -> Result<()> {
    let c = container::find(&super::store_root(global), &args.container)?;
    let ports = &c.config.options.ports;
    let Some(wanted) = &args.port else {
        for m in ports {
            println!("{} -> {}", m.container_side(), m.host_side());
        }
        return Ok(());
    };
    let wanted = if wanted.contains('/') {
        wanted.clone()
    } else {
        format!("{wanted}/tcp")
    };
    let matching: Vec<&PortMapping> = ports
        .iter()
        .filter(|m| m.container_side() == wanted)
        .collect();
    if matching.is_empty() {
        bail!("no public port '{wanted}' published for {}", args.container);
    }
    for m in matching {
        println!("{}", m.host_side());
    }
    Ok(())
}

/// `0.0.0.0:8080->80/tcp, 127.0.0.1:5353->53/udp`: `bake ps`'s PORTS column.
pub fn ports_column(c: &Container) -> String {
    c.config
        .options
        .ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
