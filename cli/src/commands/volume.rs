//! Named volumes: `bake volume ls|create|rm|inspect|prune`, and what `bake run`
//! does with `-v NAME:/path` and `--mount type=volume,…`.
//!
//! The directories belong to the store (`bake_store::volumes`:
//! `STORE/volumes/<name>/_data`); whether one is in use is read from the
//! containers' configs, so a volume a container mounts cannot be removed.
//!
//! Docker's rules: a volume is created on first use; when it is empty and the
//! image has content at the mount path, that content (with its owner and mode) is
//! copied in first (`volume-nocopy` turns that off); named volumes outlive their
//! containers (`rm -v` and `--rm` remove only anonymous ones, which live in the
//! container's directory). `prune` removes every volume no container uses: bake
//! has no anonymous volumes in the store, so Docker's `--all` distinction is moot.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bake_runner::MountSpec;
use bake_store::layout::Store;
use bake_store::volumes::Volume;
use chrono::{SecondsFormat, Utc};
use clap::{Args, Subcommand};

use super::container;
use crate::app::Global;

/// `bake volume`.
#[derive(Debug, Args)]
pub struct VolumeArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: VolumeCommand,
}

/// The `bake volume` subcommands.
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// List volumes.
    Ls {
        /// Only print names.
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Create a volume (a generated name if none is given).
    Create {
        /// The name (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`).
        name: Option<String>,
    },
    /// Remove volumes no container uses.
    Rm {
        /// Accepted for Docker compatibility; a volume in use is never removed.
        #[arg(short = 'f', long)]
        force: bool,
        /// Names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Show volumes as JSON.
    Inspect {
        /// Names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove every volume no container uses.
    Prune {
        /// Do not ask (bake never asks).
        #[arg(short = 'f', long)]
        force: bool,
    },
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Runs the subcommand.
pub fn run(global: &Global, args: &VolumeArgs) -> Result<()> {
    let store = super::open_store(global)?;
    match &args.command {
        VolumeCommand::Ls { quiet } => {
            let mut out = if *quiet {
                String::new()
            } else {
                "DRIVER    VOLUME NAME\n".to_string()
            };
            for v in store.list_volumes()? {
                if *quiet {
                    out.push_str(&format!("{}\n", v.name));
                } else {
                    out.push_str(&format!("local     {}\n", v.name));
                }
            }
            print!("{out}");
        }
        VolumeCommand::Create { name } => {
            let name = match name {
                Some(n) => n.clone(),
                None => container::random_id()?,
            };
            let (v, _) = store.create_volume(&name, &now())?;
            println!("{}", v.name);
        }
        VolumeCommand::Rm { names, .. } => {
            let containers = container::list(store.root())?;
            for name in names {
                let Some(v) = store.volume(name)? else {
                    bail!("no such volume: {name}");
                };
                let users = users_of(&containers, &v);
                if !users.is_empty() {
                    bail!("remove {name}: volume is in use - [{}]", users.join(", "));
                }
                store.remove_volume(name)?;
                println!("{name}");
            }
        }
        VolumeCommand::Inspect { names } => {
            let mut docs = Vec::new();
            let mut missing = Vec::new();
            for name in names {
                match store.volume(name)? {
                    Some(v) => docs.push(describe(&v)),
                    None => missing.push(name.as_str()),
                }
            }
            println!("{}", serde_json::to_string_pretty(&docs)?);
            if !missing.is_empty() {
                bail!("no such volume: {}", missing.join(", "));
            }
        }
        VolumeCommand::Prune { .. } => {
            let mut removed = Vec::new();
            let containers = container::list(store.root())?;
            for v in store.list_volumes()? {
                if users_of(&containers, &v).is_empty() {
                    store.remove_volume(&v.name)?;
                    removed.push(v.name);
                }
            }
            if !removed.is_empty() {
                println!("Deleted Volumes:");
                for name in &removed {
                    println!("{name}");
                }
                println!();
            }
            println!("Total reclaimed volumes: {}", removed.len());
        }
    }
    Ok(())
}

/// `docker volume inspect`'s document.
fn describe(v: &Volume) -> serde_json::Value {
    serde_json::json!({
        "CreatedAt": v.created,
        "Driver": "local",
        "Labels": null,
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": null,
        "Scope": "local",
    })
}

/// The ids (short) of the `containers` that mount volume `v`. The caller lists
/// the containers once, so `rm`/`prune` of N volumes read each config once.
fn users_of(containers: &[container::Container], v: &Volume) -> Vec<String> {
    containers
        .iter()
        .filter(|c| {
            c.config.plan.mounts.iter().any(|m| {
                matches!(m, MountSpec::Bind { source, .. } if source.starts_with(&v.mountpoint))
            })
        })
        .map(|c| c.short_id().to_string())
        .collect()
}

/// A volume asked for by `-v` or `--mount type=volume`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The name; `None` for an anonymous volume (`-v /path`).
    pub name: Option<String>,
    /// Where it is mounted.
    pub target: String,
    /// Mounted read-only.
    pub readonly: bool,
    /// Do not seed it from the image (`volume-nocopy`).
    pub nocopy: bool,
}

/// `-v NAME:/path[:ro|rw|nocopy]` or `-v /path` (anonymous); `None` for a bind
/// mount (`/host:/ctr`), which `run::volume` handles (pure).
///
/// # Errors
/// An invalid name (Docker's rule), a relative target, an unknown option.
pub fn from_volume_flag(spec: &str) -> Result<Option<Wanted>> {
    let parts: Vec<&str> = spec.split(':').collect();
    if parts.len() == 1 && spec.starts_with('/') {
        return Ok(Some(Wanted {
            name: None,
            target: spec.to_string(),
            readonly: false,
            nocopy: false,
        }));
    }
    if parts.len() < 2 || parts[0].starts_with('/') || parts.len() > 3 {
        return Ok(None);
    }
    let name = parts[0];
    if !bake_store::volumes::valid_name(name) {
        bail!(
            "invalid volume {spec:?}: {name:?} is neither an absolute host path nor a valid \
             volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)"
        );
    }
    let target = parts[1];
    if !target.starts_with('/') {
        bail!("invalid volume {spec:?}: the container path {target:?} is not absolute");
    }
    let mut wanted = Wanted {
        name: Some(name.to_string()),
        target: target.to_string(),
        readonly: false,
        nocopy: false,
    };
    if let Some(options) = parts.get(2) {
        for option in options.split(',') {
            match option {
                "ro" | "readonly" => wanted.readonly = true,
                "rw" => wanted.readonly = false,
                "nocopy" => wanted.nocopy = true,
                other => bail!("invalid volume {spec:?}: unsupported option {other:?}"),
            }
        }
    }
    Ok(Some(wanted))
}

/// Creates (or reuses) the named volumes in `wanted`, seeding new empty ones from
/// the image (`lowers`, top first), and returns their bind mounts plus the targets
/// of the anonymous ones (for `container::create_volumes`). The caller has entered
/// bake's private mount namespace (the image is looked at through a mount).
///
/// # Errors
/// When a volume cannot be created or seeded.
pub fn attach(
    store: &Store,
    lowers: &[PathBuf],
    wanted: &[Wanted],
) -> Result<(Vec<MountSpec>, Vec<String>)> {
    let mut mounts = Vec::new();
    let mut anonymous = Vec::new();
    let mut view: Option<(tempfile::TempDir, Option<bake_runner::OverlayMount>)> = None;
    for w in wanted {
        let Some(name) = &w.name else {
            anonymous.push(super::run::normalize(&w.target));
            continue;
        };
        let (volume, _) = store.create_volume(name, &now())?;
        let empty = std::fs::read_dir(&volume.mountpoint)
            .with_context(|| format!("reading {}", volume.mountpoint.display()))?
            .next()
            .is_none();
        if empty && !w.nocopy && !lowers.is_empty() {
            if view.is_none() {
                let dir = store.temp_dir("volume-seed")?;
                let mount = bake_runner::mount_overlay(lowers, None, dir.path())
                    .context("mounting the image to seed a volume")?;
                view = Some((dir, Some(mount)));
            }
            if let Some((dir, _)) = &view {
                seed(dir.path(), &w.target, &volume.mountpoint)
                    .with_context(|| format!("copying {} into volume {name}", w.target))?;
            }
        }
        mounts.push(MountSpec::Bind {
            source: volume.mountpoint,
            target: w.target.clone(),
            readonly: w.readonly,
        });
    }
    // The mount goes before its directory.
    if let Some((dir, mount)) = view {
        drop(mount);
        drop(dir);
    }
    Ok((mounts, anonymous))
}

/// Copies what the image view has at `path` (a directory resolved inside `view`,
/// else nothing) into `data`, with the directory's owner and mode.
pub(super) fn seed(view: &Path, path: &str, data: &Path) -> Result<()> {
    let Some(real) = view
        .join(path.trim_start_matches('/'))
        .canonicalize()
        .ok()
        .filter(|real| real.starts_with(view) && real.is_dir())
    else {
        return Ok(());
    };
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg("--")
        .arg(format!("{}/.", real.display()))
        .arg(data)
        .status()
        .context("running cp")?;
    if !status.success() {
        bail!("cp failed");
    }
    let meta = std::fs::metadata(&real)?;
    std::os::unix::fs::chown(data, Some(meta.uid()), Some(meta.gid()))?;
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(meta.mode()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, target: &str, readonly: bool) -> Option<Wanted> {
        Some(Wanted {
            name: Some(name.into()),
            target: target.into(),
            readonly,
            nocopy: false,
        })
    }

    #[test]
    fn volume_flags_tell_names_from_host_paths() {
        assert_eq!(
            from_volume_flag("data:/d").unwrap(),
            named("data", "/d", false)
        );
        assert_eq!(
            from_volume_flag("data:/d:ro").unwrap(),
            named("data", "/d", true)
        );
        assert_eq!(from_volume_flag("/host:/d").unwrap(), None);
        assert_eq!(
            from_volume_flag("/anon").unwrap(),
            Some(Wanted {
                name: None,
                target: "/anon".into(),
                readonly: false,
                nocopy: false
            })
        );
        assert!(from_volume_flag("..:/d").is_err());
        assert!(from_volume_flag("a:/d").is_err());
        assert!(from_volume_flag("data:rel").is_err());
        assert!(from_volume_flag("data:/d:z").is_err());
    }
}
