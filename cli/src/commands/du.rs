//! `bake du`: what uses space in the store, by kind.

use std::io::Write;

use anyhow::Result;
use bake_store::gc::Usage;
use clap::Args;

use crate::app::Global;

/// `bake du`.
#[derive(Debug, Args)]
pub struct DuArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `1.5GB`, `12.3kB`: docker's decimal units.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

/// Prints one row per kind: count, size, reclaimable.
pub fn run(global: &Global, args: &DuArgs) -> Result<()> {
    let store = super::open_store(global)?;
    let du = store.disk_usage()?;
    let rows: [(&str, &Usage); 5] = [
        ("Images", &du.images),
        ("Snapshots", &du.snapshots),
        ("Blobs", &du.blobs),
        ("Build cache", &du.cache),
        ("Containers", &du.containers),
    ];
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(name, u)| {
                (
                    name.to_ascii_lowercase().replace(' ', "_"),
                    serde_json::json!({"count": u.count, "size": u.size, "reclaimable": u.reclaimable}),
                )
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<13}{:>8}{:>12}{:>14}",
        "TYPE", "COUNT", "SIZE", "RECLAIMABLE"
    )?;
    for (name, u) in rows {
        writeln!(
            out,
            "{:<13}{:>8}{:>12}{:>14}",
            name,
            u.count,
            human(u.size),
            human(u.reclaimable)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(super::human(999), "999B");
        assert_eq!(super::human(1_500_000), "1.5MB");
    }
}
