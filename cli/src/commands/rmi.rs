//! `bake rmi NAME…`: removes tags. Image data stays until garbage collection
//! (a tag is all that `rmi` takes away; layers may be shared).

use std::io::Write;

use anyhow::{bail, Context, Result};
use bake_store::layout::Store;

use crate::app::{Global, RmiArgs};

/// Untags each name; an image id (or unique prefix) drops all of its tags.
/// Goes on past a missing name, like docker, and fails at the end.
pub fn run(global: &Global, args: &RmiArgs) -> Result<()> {
    let store = super::open_store(global)?;
    let mut out = std::io::stdout().lock();
    let mut missing = Vec::new();
    for name in &args.images {
        let untagged = remove(&store, name)?;
        if untagged.is_empty() {
            missing.push(name.as_str());
        }
        for tag in untagged {
            writeln!(out, "Untagged: {tag}")?;
        }
    }
    if !missing.is_empty() {
        bail!("No such image: {}", missing.join(", "));
    }
    Ok(())
}

/// The tags removed for `name`, in familiar form; empty if it names nothing.
fn remove(store: &Store, name: &str) -> Result<Vec<String>> {
    let Some(id) = store
        .resolve(name)
        .with_context(|| format!("looking up image {name}"))?
    else {
        return Ok(Vec::new());
    };
    // A tag takes precedence over an id prefix that happens to look like a name.
    if let Ok(reference) = super::parse_reference(name) {
        if store
            .resolve(&reference.to_string())
            .ok()
            .flatten()
            .as_ref()
            == Some(&id)
        {
            store
                .untag(&reference)
                .with_context(|| format!("untagging {reference}"))?;
            return Ok(vec![reference.familiar()]);
        }
    }
    let mut removed = Vec::new();
    for image in store.list_images().context("listing images")? {
        if let (true, Some(reference)) = (image.id == id, image.reference) {
            store
                .untag(&reference)
                .with_context(|| format!("untagging {reference}"))?;
            removed.push(reference.familiar());
        }
    }
    if removed.is_empty() {
        // An untagged image named by id: nothing to untag, but it exists.
        removed.push(id.to_string());
    }
    Ok(removed)
}
