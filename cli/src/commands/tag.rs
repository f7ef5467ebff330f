//! `bake tag SOURCE TARGET`: another name for a local image.

use anyhow::{Context, Result};

use crate::app::{Global, TagArgs};

/// Points TARGET at the image SOURCE names (a tag, an id or an id prefix).
pub fn run(global: &Global, args: &TagArgs) -> Result<()> {
    let store = super::open_store(global)?;
    let id = super::resolve_local(&store, &args.source)?;
    let target = super::parse_reference(&args.target)?;
    store
        .tag(&target, &id)
        .with_context(|| format!("tagging {id} as {target}"))?;
    Ok(())
}
