//! Where a built image goes (`bake build --output`, `--push`,
//! `--metadata-file`) and how its layers are compressed when it leaves the
//! store (`--compression`, shared by build, push and save).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use bake_store::archive::oci::OciTarget;
use bake_store::export::ExportOptions;
use bake_store::layout::Store;
use bake_store::oci::Digest;
use bake_store::reference::Reference;
use bake_store::Compression;
use clap::{Args, ValueEnum};

/// Layer compression for images leaving the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompressionKind {
    /// gzip (every runtime reads it), on every core.
    Gzip,
    /// zstd (OCI `+zstd`), multi-threaded.
    Zstd,
    /// Plain tar.
    Uncompressed,
}

/// `--compression`, `--compression-level`, `--force-compression`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Args)]
pub struct CompressionArgs {
    /// Layer compression when the image leaves the store (default gzip).
    #[arg(long, value_enum, value_name = "ALGO")]
    pub compression: Option<CompressionKind>,
    /// Compression level (gzip 0-9, zstd 1-22).
    #[arg(long, value_name = "N")]
    pub compression_level: Option<i32>,
    /// Re-compress layers that were pulled or loaded with another
    /// compression (they keep their blobs otherwise).
    #[arg(long)]
    pub force_compression: bool,
}

impl CompressionArgs {
    /// The store's options; `default` when `--compression` is not given.
    pub fn export(&self, default: Compression) -> ExportOptions {
        ExportOptions {
            compression: match self.compression {
                Some(CompressionKind::Gzip) => Compression::Gzip,
                Some(CompressionKind::Zstd) => Compression::Zstd,
                Some(CompressionKind::Uncompressed) => Compression::Uncompressed,
                None => default,
            },
            level: self.compression_level,
            force: self.force_compression,
        }
    }
}

/// One `--output type=…,dest=…` (buildx's syntax).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputSpec {
    /// `image`, `oci`, `docker`, `local` or `tar`.
    pub kind: OutputKind,
    /// `dest=` (a file, `-` for stdout, or a directory for `local`).
    pub dest: Option<PathBuf>,
    /// `push=true` on an image output.
    pub push: bool,
    /// `compression=`, `compression-level=`, `force-compression=`.
    pub compression: CompressionArgs,
}

/// The kinds of `--output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// The store (the default; `push=true` also pushes the tags).
    Image,
    /// An OCI layout tar.
    Oci,
    /// A docker-archive tar.
    Docker,
    /// The final root file system, written to a directory.
    Local,
    /// The final root file system as one tar.
    Tar,
}

impl std::str::FromStr for OutputSpec {
    type Err = anyhow::Error;

    /// `type=local,dest=out`, or a bare path (buildx: `-o out` = local).
    fn from_str(s: &str) -> Result<OutputSpec> {
        if !s.contains('=') {
            return Ok(OutputSpec {
                kind: if s == "-" {
                    OutputKind::Tar
                } else {
                    OutputKind::Local
                },
                dest: Some(PathBuf::from(s)),
                push: false,
                compression: CompressionArgs::default(),
            });
        }
        let mut kind = None;
        let mut spec = OutputSpec {
            kind: OutputKind::Image,
            dest: None,
            push: false,
            compression: CompressionArgs::default(),
        };
        for field in s.split(',') {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| anyhow!("--output {s:?}: `{field}` is not key=value"))?;
            let bool_value = || match v {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(anyhow!("--output {s:?}: {k}={v} is not true or false")),
            };
            match k {
                "type" => {
                    kind = Some(match v {
                        "image" | "registry" => OutputKind::Image,
                        "oci" => OutputKind::Oci,
                        "docker" => OutputKind::Docker,
                        "local" => OutputKind::Local,
                        "tar" => OutputKind::Tar,
                        _ => bail!(
                            "--output {s:?}: unknown type {v:?} (image, oci, docker, local, tar)"
                        ),
                    });
                    spec.push |= v == "registry";
                }
                "dest" => spec.dest = Some(PathBuf::from(v)),
                "push" => spec.push = bool_value()?,
                "compression" => {
                    spec.compression.compression = Some(
                        CompressionKind::from_str(v, true)
                            .map_err(|_| anyhow!("--output {s:?}: unknown compression {v:?}"))?,
                    )
                }
                "compression-level" => {
                    spec.compression.compression_level = Some(
                        v.parse()
                            .map_err(|_| anyhow!("--output {s:?}: bad compression-level"))?,
                    )
                }
                "force-compression" => spec.compression.force_compression = bool_value()?,
                // Accepted for buildx compatibility; the tags come from -t.
                "name" | "oci-mediatypes" => {}
                _ => bail!("--output {s:?}: unknown key {k:?}"),
            }
        }
        spec.kind = kind.ok_or_else(|| anyhow!("--output {s:?}: type= is missing"))?;
        if matches!(
            spec.kind,
            OutputKind::Oci | OutputKind::Docker | OutputKind::Local | OutputKind::Tar
        ) && spec.dest.is_none()
        {
            bail!("--output {s:?}: dest= is required for this type");
        }
        Ok(spec)
    }
}

/// A file to write to, or stdout for `-`.
fn create(dest: &Path) -> Result<Box<dyn Write>> {
    if dest == Path::new("-") {
        return Ok(Box::new(BufWriter::new(std::io::stdout().lock())));
    }
    let file = File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    Ok(Box::new(BufWriter::new(file)))
}

/// What `--metadata-file` records (buildx's keys).
#[derive(Default)]
pub struct Metadata {
    /// `containerimage.config.digest`: the image id.
    pub config: Option<Digest>,
    /// `containerimage.digest`: the manifest digest, when one was made.
    pub manifest: Option<Digest>,
    /// `image.name`: the tags, comma-separated.
    pub names: Vec<String>,
}

impl Metadata {
    /// Writes the JSON document.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut doc = BTreeMap::new();
        if let Some(c) = &self.config {
            doc.insert("containerimage.config.digest", c.to_string());
        }
        if let Some(m) = &self.manifest {
            doc.insert("containerimage.digest", m.to_string());
        }
        if !self.names.is_empty() {
            doc.insert("image.name", self.names.join(","));
        }
        let mut bytes = serde_json::to_vec_pretty(&doc)?;
        bytes.push(b'\n');
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
    }
}

/// Sends a built image to one non-`image` output; returns the manifest
/// digest when the output has one.
pub fn export(
    store: &Store,
    id: &Digest,
    tags: &[Reference],
    spec: &OutputSpec,
    epoch: Option<i64>,
) -> Result<Option<Digest>> {
    let dest = spec.dest.as_deref().expect("checked when parsed");
    let images = [(id.clone(), tags.to_vec())];
    match spec.kind {
        OutputKind::Image => Ok(None),
        OutputKind::Docker => {
            let mut out = create(dest)?;
            store
                .save_docker_archive(&images, &mut out)
                .with_context(|| format!("writing {}", dest.display()))?;
            out.flush()?;
            Ok(None)
        }
        OutputKind::Oci => {
            let opts = spec.compression.export(Compression::Gzip);
            let mut out = create(dest)?;
            store
                .save_oci_layout(&images, &opts, OciTarget::Tar(&mut out))
                .with_context(|| format!("writing {}", dest.display()))?;
            out.flush()?;
            let m = store.image_manifest(id, &opts, true)?;
            Ok(Some(m.digest))
        }
        OutputKind::Local | OutputKind::Tar => {
            rootfs(store, id, spec.kind, dest, epoch)?;
            Ok(None)
        }
    }
}

/// The image's merged root file system (its layers stacked by overlayfs,
/// so whiteouts are already applied) as a tar, or unpacked into a
/// directory through the store's safe unpacker.
fn rootfs(
    store: &Store,
    id: &Digest,
    kind: OutputKind,
    dest: &Path,
    epoch: Option<i64>,
) -> Result<()> {
    let layers = store.image_layers(id)?;
    let lowers: Vec<PathBuf> = layers
        .iter()
        .rev()
        .map(|l| store.snapshot_diff_dir(&l.chain_id))
        .collect();
    let work = store.temp_dir("output-rootfs")?;
    let merged = work.path().join("merged");
    std::fs::create_dir(&merged)?;
    let mount = bake_runner::mount_overlay(&lowers, None, &merged)
        .context("mounting the image's layers")?;
    if kind == OutputKind::Tar {
        let mut out = create(dest)?;
        bake_store::layer::pack(mount.target(), epoch, &mut out)
            .with_context(|| format!("writing {}", dest.display()))?;
        out.flush()?;
        return Ok(());
    }
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let (reader, writer) = std::io::pipe()?;
    let source = mount.target().to_path_buf();
    let packer = std::thread::spawn(move || bake_store::layer::pack(&source, epoch, writer));
    let unpacked = bake_store::layer::unpack(reader, dest);
    let packed = packer
        .join()
        .map_err(|_| anyhow!("the packer thread panicked"))?;
    packed.context("reading the image's file system")?;
    unpacked.with_context(|| format!("writing {}", dest.display()))?;
    drop(mount);
    Ok(())
}

/// After a build: the `--output`s, `--push` (of the `-t` names) and
/// `--metadata-file`. Progress lines go to stderr unless `quiet`.
pub fn deliver(
    store: &Store,
    global: &crate::app::Global,
    args: &crate::app::BuildArgs,
    id: &Digest,
    epoch: Option<i64>,
    quiet: bool,
) -> Result<()> {
    let tags = args
        .tags
        .iter()
        .map(|t| crate::commands::parse_reference(t))
        .collect::<Result<Vec<_>>>()?;
    let mut metadata = Metadata {
        config: Some(id.clone()),
        manifest: None,
        names: tags.iter().map(ToString::to_string).collect(),
    };
    let mut push = args.push;
    for spec in &args.outputs {
        push |= spec.kind == OutputKind::Image && spec.push;
        if let Some(m) = export(store, id, &tags, spec, epoch)? {
            metadata.manifest = Some(m);
        }
    }
    if push {
        if tags.is_empty() {
            bail!("--push needs at least one -t name");
        }
        let export = args.compression.export(Compression::Gzip);
        let options = crate::commands::registry_options(global);
        for reference in &tags {
            if !quiet {
                eprintln!("pushing {reference}");
            }
            let digest = store
                .push_with(id, reference, &options, &export, &|_| {})
                .with_context(|| format!("pushing {reference}"))?;
            if !quiet {
                eprintln!("pushed {reference}@{digest}");
            }
            metadata.manifest = Some(digest);
        }
    }
    if let Some(path) = &args.metadata_file {
        metadata.write(path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_specs_parse_like_buildx() {
        let s: OutputSpec = "type=local,dest=out".parse().unwrap();
        assert_eq!(s.kind, OutputKind::Local);
        assert_eq!(s.dest, Some(PathBuf::from("out")));
        let s: OutputSpec = "type=image,push=true".parse().unwrap();
        assert!(s.push && s.kind == OutputKind::Image);
        let s: OutputSpec = "type=oci,dest=a.tar,compression=zstd,compression-level=9"
            .parse()
            .unwrap();
        assert_eq!(
            s.compression.export(Compression::Gzip).compression,
            Compression::Zstd
        );
        assert_eq!(s.compression.compression_level, Some(9));
        let s: OutputSpec = "dir".parse().unwrap();
        assert_eq!(s.kind, OutputKind::Local);
        assert!("type=oci".parse::<OutputSpec>().is_err());
        assert!("type=nope,dest=x".parse::<OutputSpec>().is_err());
        assert!("type=tar,dest=x,bogus=1".parse::<OutputSpec>().is_err());
    }
}
