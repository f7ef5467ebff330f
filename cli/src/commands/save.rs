//! `bake save [-o FILE] IMAGE…`: a docker-archive tarball that `docker
//! load`, `podman load` and `bake load` read.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};

use anyhow::{bail, Context, Result};
use bake_store::layout::Store;
use bake_store::oci::Digest;
use bake_store::reference::Reference;

use crate::app::{Global, SaveArgs};

/// Writes the archive to `-o` or stdout.
pub fn run(global: &Global, args: &SaveArgs) -> Result<()> {
    let store = super::open_store(global)?;
    let images = selection(&store, &args.images)?;
    match &args.output {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("creating {}", path.display()))?;
            let mut out = BufWriter::new(file);
            store
                .save_docker_archive(&images, &mut out)
                .with_context(|| format!("writing {}", path.display()))?;
            out.flush()
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                bail!("cowardly refusing to save to a terminal: use the -o flag or redirect");
            }
            let mut out = BufWriter::new(stdout.lock());
            store
                .save_docker_archive(&images, &mut out)
                .context("writing the archive to stdout")?;
            out.flush().context("writing the archive to stdout")?;
        }
    }
    Ok(())
}

/// The images to save, each with the names it was asked for by (an id
/// alone gives an untagged entry), one entry per image.
fn selection(store: &Store, names: &[String]) -> Result<Vec<(Digest, Vec<Reference>)>> {
    let mut images: Vec<(Digest, Vec<Reference>)> = Vec::new();
    for name in names {
        let id = super::resolve_local(store, name)?;
        let tag = super::parse_reference(name)
            .ok()
            .filter(|r| store.resolve(&r.to_string()).ok().flatten().as_ref() == Some(&id));
        let index = match images.iter().position(|(i, _)| *i == id) {
            Some(index) => index,
            None => {
                images.push((id, Vec::new()));
                images.len() - 1
            }
        };
        if let Some(tag) = tag {
            if !images[index].1.contains(&tag) {
                images[index].1.push(tag);
            }
        }
    }
    Ok(images)
}
