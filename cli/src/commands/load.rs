//! `bake load [-i PATH]`: images from a docker-archive tarball, an OCI
//! layout tarball or an OCI layout directory, told apart by their contents.

use std::fs::File;
use std::io::{BufReader, Read, Write};

use anyhow::{Context, Result};
use bake_store::archive::oci::{archive_kind, stream_kind, ArchiveKind};
use bake_store::registry::PlatformSpec;

use crate::app::{Global, LoadArgs};

/// Imports every image in the archive (the store tags it with its names).
pub fn run(global: &Global, args: &LoadArgs) -> Result<()> {
    let store = super::open_store(global)?;
    let _lock = store.lock_shared()?;
    let platform = PlatformSpec::host();
    let loaded = match &args.input {
        Some(path) if path.is_dir() => store
            .load_oci_dir(path, &platform)
            .with_context(|| format!("loading the OCI layout {}", path.display()))?,
        Some(path) => {
            let mut file =
                File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let kind =
                archive_kind(&mut file).with_context(|| format!("reading {}", path.display()))?;
            let input = BufReader::new(file);
            match kind {
                ArchiveKind::Docker => store.load_docker_archive(input)?,
                ArchiveKind::Oci => store.load_oci_archive(input, &platform)?,
            }
        }
        None => {
            // A stream cannot be looked through first: its first entry
            // tells (OCI layout tars start with blobs/, oci-layout or
            // index.json), and is put back in front of the rest.
            let mut stdin = std::io::stdin().lock();
            let mut head = vec![0u8; 512];
            let mut got = 0;
            while got < head.len() {
                let n = stdin.read(&mut head[got..]).context("reading stdin")?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            head.truncate(got);
            let kind = stream_kind(&head);
            let input = std::io::Cursor::new(head).chain(stdin);
            match kind {
                ArchiveKind::Docker => store
                    .load_docker_archive(input)
                    .context("loading the archive from stdin")?,
                ArchiveKind::Oci => store
                    .load_oci_archive(input, &platform)
                    .context("loading the OCI archive from stdin")?,
            }
        }
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
