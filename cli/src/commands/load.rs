//! `bake load [-i FILE]`: images from a docker-archive tarball.

use std::fs::File;
use std::io::{BufReader, Write};

use anyhow::{Context, Result};

use crate::app::{Global, LoadArgs};

/// Imports every image in the archive (the store tags it with its names).
pub fn run(global: &Global, args: &LoadArgs) -> Result<()> {
    let store = super::open_store(global)?;
    let loaded = match &args.input {
        Some(path) => {
            let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            store
                .load_docker_archive(BufReader::new(file))
                .with_context(|| format!("loading {}", path.display()))?
        }
        None => store
            .load_docker_archive(std::io::stdin().lock())
            .context("loading the archive from stdin")?,
    };
    let mut out = std::io::stdout().lock();
    for (id, references) in &loaded {
        // The store has tagged them already.
        for reference in references {
            if !args.quiet {
                writeln!(out, "Loaded image: {}", reference.familiar())?;
            }
        }
        if references.is_empty() && !args.quiet {
            writeln!(out, "Loaded image ID: {id}")?;
        }
    }
    Ok(())
}
