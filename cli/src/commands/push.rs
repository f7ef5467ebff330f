//! `bake push NAME`: the local image NAME to the registry and repository
//! that NAME names, with docker's output.

use std::io::Write;
use std::sync::Mutex;

use anyhow::{Context, Result};

use crate::app::{Global, PushArgs};
use crate::progress::transfer;

/// Pushes and prints `TAG: digest: sha256:… size: N`.
pub fn run(global: &Global, args: &PushArgs) -> Result<()> {
    let store = super::open_store(global)?;
    let id = super::resolve_local(&store, &args.name)?;
    let reference = super::parse_reference(&args.name)?;
    let out = Mutex::new(std::io::stdout());
    let say = |line: &str| {
        let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "{line}");
    };
    say(&format!(
        "The push refers to repository [{}]",
        reference.name()
    ));
    let _lock = store.lock_shared()?;
    let export = args.compression.export(bake_store::Compression::Gzip);
    let manifest = store
        .push_with(
            &id,
            &reference,
            &super::registry_options(global),
            &export,
            &|event| {
                if let Some(line) = transfer::describe(&event, transfer::Direction::Push) {
                    say(&line);
                }
            },
        )
        .with_context(|| format!("pushing {reference}"))?;
    let size = store.read_blob(&manifest).map_or(0, |b| b.len());
    let tag = reference.tag.as_deref().unwrap_or("latest");
    writeln!(
        out.lock().unwrap_or_else(|p| p.into_inner()),
        "{tag}: digest: {manifest} size: {size}"
    )?;
    Ok(())
}
