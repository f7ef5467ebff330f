//! `bake save [-o FILE] [--format F] IMAGE…`: a docker-archive tarball
//! that `docker load`, `podman load` and `bake load` read, or an OCI layout
//! (tar or directory) that skopeo, umoci and containerd read.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};

use anyhow::{bail, Context, Result};
use bake_store::archive::oci::OciTarget;
use bake_store::layout::Store;
use bake_store::oci::Digest;
use bake_store::reference::Reference;

use crate::app::{Global, SaveArgs};

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `docker save`'s tar (uncompressed layers).
    DockerArchive,
    /// An OCI image layout as a tar.
    OciArchive,
    /// An OCI image layout directory (`-o DIR` required).
    OciDir,
}

/// Writes the archive to `-o` or stdout.
pub fn run(global: &Global, args: &SaveArgs) -> Result<()> {
    let store = super::open_store(global)?;
    let _lock = store.lock_shared()?;
    let images = selection(&store, &args.images)?;
    let export = args.compression.export(bake_store::Compression::Gzip);
    let write = |out: &mut dyn Write| -> Result<()> {
        match args.format {
            Format::DockerArchive => store.save_docker_archive(&images, out)?,
            _ => store.save_oci_layout(&images, &export, OciTarget::Tar(out))?,
        }
        Ok(())
    };
    if args.format == Format::OciDir {
        let Some(dir) = &args.output else {
            bail!("--format oci-dir needs -o DIR");
        };
        store
            .save_oci_layout(&images, &export, OciTarget::Dir(dir))
            .with_context(|| format!("writing {}", dir.display()))?;
        return Ok(());
    }
    match &args.output {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("creating {}", path.display()))?;
            let mut out = BufWriter::new(file);
            write(&mut out).with_context(|| format!("writing {}", path.display()))?;
            out.flush()
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                bail!("cowardly refusing to save to a terminal: use the -o flag or redirect");
            }
            let mut out = BufWriter::new(stdout.lock());
            write(&mut out).context("writing the archive to stdout")?;
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
