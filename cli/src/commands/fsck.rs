//! `bake fsck [--repair]`: verify the store; exit 1 on damage left in place.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::app::Global;

/// `bake fsck`.
#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Remove what is broken (and the tags of broken images).
    #[arg(long)]
    pub repair: bool,
}

/// Prints every problem and a summary; exits 1 when damage was found and
/// not repaired.
pub fn run(global: &Global, args: &FsckArgs) -> Result<ExitCode> {
    let store = super::open_store(global)?;
    let report = store.fsck(args.repair)?;
    let mut out = std::io::stdout().lock();
    for damage in &report.damage {
        let verb = if args.repair { "removed" } else { "damaged" };
        writeln!(out, "{verb}: {damage}")?;
    }
    writeln!(
        out,
        "checked {} blobs, {} snapshots, {} tags, {} cache records: {} problems{}",
        report.blobs,
        report.snapshots,
        report.tags,
        report.cache_records,
        report.damage.len(),
        if args.repair && !report.damage.is_empty() {
            " (repaired)"
        } else {
            ""
        }
    )?;
    Ok(if report.damage.is_empty() || args.repair {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
