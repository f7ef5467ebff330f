//! `bake inspect IMAGE…`: a JSON array shaped like `docker image inspect`
//! (containers: see `inspect_container`),
//! so tools that read Docker's fields read bake's, plus the image's OCI
//! config as stored (`OciConfig`) for anyone who wants the raw document.

use std::io::Write;

use anyhow::{bail, Context, Result};
use bake_store::images::ImageSummary;
use bake_store::oci::{ContainerConfig, Digest, ImageConfig};
use serde::Serialize;

use crate::app::{Global, InspectArgs};

/// `--type`: what kind of object a name refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A container (`bake run`).
    Container,
    /// An image.
    Image,
}

/// One image as `docker image inspect` shows it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    id: Digest,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    parent: String,
    comment: String,
    created: String,
    author: String,
    architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    os: String,
    config: ContainerConfig,
    size: u64,
    #[serde(rename = "RootFS")]
    root_fs: RootFs,
    oci_config: ImageConfig,
}

/// Docker's `RootFS` object.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RootFs {
    #[serde(rename = "Type")]
    kind: String,
    layers: Vec<Digest>,
}

/// Prints the array; names that match nothing are reported after it, and
/// make the command fail, as with docker.
pub fn run(global: &Global, args: &InspectArgs) -> Result<()> {
    let store = super::open_store(global)?;
    let all = store.list_images().context("listing images")?;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in &args.images {
        // Docker looks for a container first when the kind is not given.
        if args.kind != Some(Kind::Image) {
            if let Some(doc) = super::inspect_container::find(global, name)? {
                found.push(doc);
                continue;
            }
            if args.kind == Some(Kind::Container) {
                missing.push(name.as_str());
                continue;
            }
        }
        let Some(id) = store
            .resolve(name)
            .with_context(|| format!("looking up image {name}"))?
        else {
            missing.push(name.as_str());
            continue;
        };
        let config = store
            .image_config(&id)
            .with_context(|| format!("reading the config of image {id}"))?;
        let repo_digests = store.repo_digests(&id);
        let doc = describe(id, config, &all, repo_digests);
        found.push(serde_json::to_value(doc)?);
    }
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &found)?;
    writeln!(out)?;
    if !missing.is_empty() {
        let what = match args.kind {
            Some(Kind::Container) => "container",
            Some(Kind::Image) => "image",
            None => "object",
        };
        bail!("No such {what}: {}", missing.join(", "));
    }
    Ok(())
}

/// The docker-shaped view of an image config and the store's listing.
fn describe(
    id: Digest,
    config: ImageConfig,
    all: &[ImageSummary],
    repo_digests: Vec<String>,
) -> Inspect {
    let mine = || all.iter().filter(|i| i.id == id);
    let mut repo_tags: Vec<String> = mine()
        .filter_map(|i| i.reference.as_ref().map(|r| r.familiar()))
        .collect();
    repo_tags.sort();
    repo_tags.dedup();
    Inspect {
        repo_tags,
        repo_digests,
        parent: String::new(),
        comment: String::new(),
        created: config.created.clone().unwrap_or_default(),
        author: config.author.clone().unwrap_or_default(),
        architecture: config.architecture.clone(),
        variant: config.variant.clone(),
        os: config.os.clone(),
        config: config.config.clone().unwrap_or_default(),
        size: mine().map(|i| i.size).next().unwrap_or(0),
        root_fs: RootFs {
            kind: config.rootfs.kind.clone(),
            layers: config.rootfs.diff_ids.clone(),
        },
        id,
        oci_config: config,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_use_docker_names() {
        let mut config = ImageConfig {
            architecture: "amd64".into(),
            os: "linux".into(),
            ..ImageConfig::default()
        };
        config.rootfs.diff_ids.push(Digest::of(b"layer"));
        let id = Digest::of(b"config");
        let v = serde_json::to_value(describe(id.clone(), config, &[], Vec::new())).unwrap();
        assert_eq!(v["Id"], id.to_string());
        assert_eq!(v["RootFS"]["Type"], "layers");
        assert_eq!(v["RootFS"]["Layers"][0], Digest::of(b"layer").to_string());
        assert_eq!(v["Os"], "linux");
        assert_eq!(v["OciConfig"]["architecture"], "amd64");
        assert!(v["RepoTags"].as_array().unwrap().is_empty());
        assert!(v.get("Variant").is_none());
    }
}
