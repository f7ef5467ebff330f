//! `bake prune [--all] [--keep-storage SIZE] [--filter until=24h]`.

use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use bake_store::gc::PruneOptions;
use clap::Args;

use crate::app::Global;

/// `bake prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Also drop every build cache record (and cache mounts).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Then drop the oldest cache until the store uses at most this (`10GB`, `512MB`, bytes).
    #[arg(long, value_name = "SIZE")]
    pub keep_storage: Option<String>,
    /// `until=DURATION` (`24h`, `30m`, `90s`): drop cache records older than that.
    #[arg(long, value_name = "until=DURATION")]
    pub filter: Vec<String>,
    /// Do not ask for confirmation (accepted for docker compatibility; bake never asks).
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// `10GB`, `512MiB`, `1k`, `123` → bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().map_err(|_| anyhow!("bad size {s:?}"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => bail!("bad size unit in {s:?}"),
    };
    Ok((num * mult) as u64)
}

/// `24h`, `30m`, `90s`, `1h30m`, `2d` → a duration.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| anyhow!("bad duration {s:?}"))?;
        num.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => bail!("bad duration unit {c:?} in {s:?}"),
        };
    }
    if !num.is_empty() {
        bail!("duration {s:?} needs a unit (s, m, h, d)");
    }
    Ok(Duration::from_secs(total))
}

/// Collects garbage and prints what was freed.
pub fn run(global: &Global, args: &PruneArgs) -> Result<()> {
    let store = super::open_store(global)?;
    let mut opts = PruneOptions {
        all: args.all,
        ..Default::default()
    };
    for f in &args.filter {
        match f.split_once('=') {
            Some(("until", v)) => opts.until = Some(parse_duration(v)?),
            _ => bail!("unsupported --filter {f:?} (only until=DURATION)"),
        }
    }
    if let Some(size) = &args.keep_storage {
        opts.keep_storage = Some(parse_size(size)?);
    }
    let report = store.prune(&opts)?;
    writeln!(
        std::io::stdout().lock(),
        "Deleted {} snapshots, {} blobs, {} cache records\nTotal reclaimed space: {}",
        report.snapshots,
        report.blobs,
        report.cache_records,
        super::du::human(report.reclaimed)
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("10GB").unwrap(), 10_000_000_000);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("123").unwrap(), 123);
        assert!(parse_size("1x").is_err());
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("10").is_err());
    }
}
