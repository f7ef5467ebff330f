//! `bake commit CTR [IMAGE]`: a new image from a container's changes: the container's
//! image plus one layer made of its upper dir, with a history entry and the
//! `--change` instructions applied to the config.
//!
//! The config is Docker's: the image's, with what the container was created with
//! (ENTRYPOINT and CMD as given to `bake run`, its environment with the `-e`
//! flags, working directory and user), then the `--change` instructions.
//!
//! Decisions where Docker's behaviour did not fit or was left open:
//! - A running container is frozen (cgroup freezer, see `pause`) while its upper dir
//!   is copied, unless `--pause=false`, and thawed on every way out. As with Docker,
//!   a container that cannot be frozen (no freezer on the host, rootless mode without
//!   a delegated cgroup tree) fails the commit, naming the cause and `--pause=false`:
//!   an unfrozen copy may hold a half-written file. A container that is paused
//!   already stays paused.
//! - `--change` lines are Dockerfile instructions and are handled by the frontend
//!   itself (a two-line Dockerfile `FROM <the image>` + the changes, lowered with the
//!   image's config as the base), so ENV expansion, shell-form wrapping, EXPOSE
//!   and HEALTHCHECK parsing are exactly the build's.
//! - The layer is the upper dir minus the mount points the runner made for a
//!   running container (see `diff`), and the parents copied up only for them.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use bake_frontend::ast::Kind;
use bake_frontend::ir::Platform;
use bake_frontend::{BuildOptions, ImageResolver, ResolvedImage};
use bake_store::oci::{ContainerConfig, Digest, History, ImageConfig};
use chrono::{SecondsFormat, Utc};
use clap::Args;

use super::container;
use crate::app::Global;

/// `bake commit`.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Author (e.g. "Jane Doe <jane@example.com>").
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Commit message (the history entry's comment).
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// A Dockerfile instruction applied to the image's config: CMD, ENTRYPOINT,
    /// ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR.
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
    /// Freeze a running container while its changes are copied (`--pause=false`:
    /// copy while it runs; a value needs the `=`, as with Docker's boolean flags).
    #[arg(
        short = 'p',
        long,
        default_value_t = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub pause: bool,
    /// The container (name or id).
    pub container: String,
    /// Name (and tag) for the new image.
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub image: Option<String>,
}

/// The instructions `--change` accepts (Docker's list).
const ALLOWED: [&str; 11] = [
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Makes the image and prints its id.
pub fn run(global: &Global, args: &CommitArgs) -> Result<()> {
    let store = super::open_store(global)?;
    let _lock = store.lock_shared().context("locking the store")?;
    let c = container::find(store.root(), &args.container)?;
    let image_id: Digest = c
        .config
        .image_id
        .parse()
        .map_err(|e| anyhow!("container {}: bad image id: {e}", c.config.name))?;
    let base = store
        .image_config(&image_id)
        .with_context(|| format!("reading the config of image {image_id}"))?;
    let layers = store
        .image_layers(&image_id)
        .with_context(|| format!("finding the layers of image {image_id}"))?;
    let merged = ImageConfig {
        config: Some(container_config(
            base.config.clone().unwrap_or_default(),
            &c.config,
        )),
        ..base.clone()
    };
    let changed = apply_changes(&merged, &image_id, &args.changes)?;

    let staging = store.temp_dir("commit").context("making a staging dir")?;
    // Frozen only while the upper dir is read: the copy is what gets stored.
    let state = c.state();
    let frozen = if args.pause && state.status == bake_runner::Status::Running {
        super::pause::Frozen::new(state.pid).with_context(|| {
            format!(
                "cannot pause container {} to commit it (--pause=false commits it running)",
                c.config.name
            )
        })?
    } else {
        None
    };
    super::diff::sync_copied(&c)?;
    // A copy of the upper dir (it may be in use), tidied, becomes the snapshot.
    let copy = staging.path().join("upper");
    let upper = &c.config.plan.rootfs.upper;
    let status = std::process::Command::new("cp")
        .args(["-a", "--reflink=auto", "--"])
        .arg(upper)
        .arg(&copy)
        .status()
        .context("running cp")?;
    if !status.success() {
        bail!("copying the changes of container {} failed", c.config.name);
    }
    drop(frozen);
    let points = super::diff::mount_points(&c.config.plan.mounts);
    remove_mount_stubs(&copy, &c.config.plan.rootfs.lowers, &points);
    let parent = layers.last().map(|l| &l.chain_id);
    let layer = store
        .commit_snapshot(&copy, parent, None)
        .context("storing the layer")?;

    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut config = ImageConfig {
        created: Some(now.clone()),
        author: args.author.clone(),
        config: Some(changed),
        ..base
    };
    config.rootfs.diff_ids.push(layer.diff_id.clone());
    config.history.push(History {
        created: Some(now),
        created_by: Some(c.config.plan.args.join(" ")),
        author: args.author.clone(),
        comment: args.message.clone(),
        empty_layer: false,
    });
    let id = store.put_image(&config).context("storing the image")?;
    if let Some(name) = &args.image {
        let reference = super::parse_reference(name)?;
        store
            .tag(&reference, &id)
            .with_context(|| format!("tagging {name}"))?;
    }
    println!("{id}");
    Ok(())
}

/// The image's runtime config with what the container was created with (pure).
pub fn container_config(mut image: ContainerConfig, c: &container::Config) -> ContainerConfig {
    if let Some(command) = &c.command {
        image.entrypoint = command.entrypoint.clone();
        image.cmd = command.cmd.clone();
    }
    image.env = c.plan.env.clone();
    if image.working_dir.is_some() || c.plan.cwd != "/" {
        image.working_dir = Some(c.plan.cwd.clone());
    }
    if !c.plan.user.is_empty() {
        image.user = Some(c.plan.user.clone());
    }
    image
}

/// Removes from `upper` the mount points the runner created (empty, absent from the
/// image) and then the directories copied up only for them (empty, present in the
/// image). Best effort: what cannot be removed stays in the layer.
fn remove_mount_stubs(upper: &Path, lowers: &[std::path::PathBuf], points: &[String]) {
    let in_image = |rel: &str| {
        lowers
            .iter()
            .any(|l| std::fs::symlink_metadata(l.join(rel)).is_ok())
    };
    for point in points {
        let rel = point.trim_start_matches('/');
        if rel.is_empty() || in_image(rel) {
            continue;
        }
        let path = upper.join(rel);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir(&path);
            }
            Ok(m) if m.is_file() && m.len() == 0 => {
                let _ = std::fs::remove_file(&path);
            }
            _ => continue,
        }
        let mut parent = Path::new(rel).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            let rel = p.to_string_lossy();
            if !in_image(&rel) || std::fs::remove_dir(upper.join(p)).is_err() {
                break;
            }
            parent = p.parent();
        }
    }
}

/// Resolves the one image of the `--change` Dockerfile to the container's image.
struct Base<'a> {
    id: &'a Digest,
    config: &'a ImageConfig,
}

impl ImageResolver for Base<'_> {
    fn resolve(&self, reference: &str, _platform: &Platform) -> Result<ResolvedImage, String> {
        Ok(ResolvedImage {
            reference: reference.to_string(),
            image_id: self.id.clone(),
            config: self.config.clone(),
        })
    }
}

/// The image's runtime config with the `--change` instructions applied, through the
/// frontend (see the module doc).
///
/// # Errors
/// A parse or lowering error of a change, or an instruction `--change` does not take.
pub fn apply_changes(
    base: &ImageConfig,
    id: &Digest,
    changes: &[String],
) -> Result<ContainerConfig> {
    let current = base.config.clone().unwrap_or_default();
    if changes.is_empty() {
        return Ok(current);
    }
    let mut text = String::from("FROM base\n");
    for change in changes {
        if change.contains('\n') {
            bail!("--change {change:?}: one instruction per --change");
        }
        text.push_str(change);
        text.push('\n');
    }
    let df = bake_frontend::parse(&text, "--change").map_err(|e| anyhow!("--change: {e}"))?;
    for ins in df.instructions.iter().skip(1) {
        let keyword = ins.keyword.to_ascii_uppercase();
        if !ALLOWED.contains(&keyword.as_str()) || matches!(ins.kind, Kind::From(_)) {
            bail!(
                "--change {:?}: {keyword} is not supported (only {})",
                ins.text,
                ALLOWED.join(", ")
            );
        }
    }
    let opts = BuildOptions {
        file: "--change".into(),
        build_args: BTreeMap::new(),
        ..BuildOptions::default()
    };
    let resolver = Base { id, config: base };
    let (def, _warnings) =
        bake_frontend::lower(&df, &opts, &resolver).map_err(|e| anyhow!("--change: {e}"))?;
    Ok(def.config.config.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ImageConfig {
        ImageConfig {
            architecture: "amd64".into(),
            os: "linux".into(),
            config: Some(ContainerConfig {
                env: vec!["PATH=/bin".into(), "A=1".into()],
                cmd: Some(vec!["sh".into()]),
                ..ContainerConfig::default()
            }),
            ..ImageConfig::default()
        }
    }

    #[test]
    fn changes_go_through_the_frontend() {
        let id = Digest::of(b"x");
        let c = apply_changes(
            &base(),
            &id,
            &[
                "ENV B=$A-2".into(),
                "CMD echo hi".into(),
                "EXPOSE 80".into(),
                "LABEL k=v".into(),
                "USER 1000".into(),
                "WORKDIR /srv".into(),
                "VOLUME /data".into(),
                "STOPSIGNAL SIGINT".into(),
                "ENTRYPOINT [\"/bin/env\"]".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.env, ["PATH=/bin", "A=1", "B=1-2"]);
        assert_eq!(c.entrypoint, Some(vec!["/bin/env".to_string()]));
        assert!(c.exposed_ports.contains_key("80/tcp"));
        assert_eq!(c.labels.get("k").map(String::as_str), Some("v"));
        assert_eq!(c.user.as_deref(), Some("1000"));
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert!(c.volumes.contains_key("/data"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
        // CMD before ENTRYPOINT in the same commit is kept, as in a Dockerfile.
        assert_eq!(
            c.cmd,
            Some(vec!["/bin/sh".to_string(), "-c".into(), "echo hi".into()])
        );
    }

    #[test]
    fn other_instructions_are_refused() {
        let id = Digest::of(b"x");
        let err = apply_changes(&base(), &id, &["RUN true".into()]).unwrap_err();
        assert!(err.to_string().contains("RUN is not supported"), "{err}");
        assert!(apply_changes(&base(), &id, &["COPY a b".into()]).is_err());
        assert!(apply_changes(&base(), &id, &["FROM x".into()]).is_err());
        assert_eq!(
            apply_changes(&base(), &id, &[]).unwrap(),
            base().config.unwrap()
        );
    }
}
