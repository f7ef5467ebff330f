//! `bake push NAME`: the local image NAME to the registry and repository
//! that NAME names, with docker's output (per-layer bars on a terminal).

use anyhow::{Context, Result};

use crate::app::{Global, PushArgs};
use crate::progress::transfer::{Direction, Stream, TransferView};

/// Pushes and prints `TAG: digest: sha256:… size: N`.
pub fn run(global: &Global, args: &PushArgs) -> Result<()> {
    let store = super::open_store(global)?;
    let id = super::resolve_local(&store, &args.name)?;
    let reference = super::parse_reference(&args.name)?;
    let options = super::try_registry_options(global)?;
    let view = TransferView::new(args.progress, Direction::Push, Stream::Stdout);
    view.say(&format!(
        "The push refers to repository [{}]",
        reference.name()
    ));
    let _lock = store.lock_shared()?;
    let export = args.compression.export(bake_store::Compression::Gzip);
    let pushed = store.push_with(&id, &reference, &options, &export, &|event| {
        view.event(&event)
    });
    view.finish(pushed.is_ok());
    let manifest = pushed.with_context(|| format!("pushing {reference}"))?;
    let size = store.read_blob(&manifest).map_or(0, |b| b.len());
    let tag = reference.tag.as_deref().unwrap_or("latest");
    view.say(&format!("{tag}: digest: {manifest} size: {size}"));
    Ok(())
}
