//! `bake run`: a container from a local (or pulled) image, with Docker's
//! rules for the command line, environment, working directory, user and
//! exit codes.
//!
//! The plan given to the runner is assembled here by pure functions (unit
//! tested below); the runner does every namespace and mount operation.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use bake_runner::{MountSpec, Network, Plan, Rootfs, Stdio};
use bake_store::oci::ContainerConfig;

use crate::app::{Global, RunArgs};

/// Runs the container and returns its exit status.
pub fn run(global: &Global, args: &RunArgs) -> Result<ExitCode> {
    crate::host::prepare_mounts()?;
    let store = super::open_store(global)?;
    let id = super::pull::local_or_pull(&store, global, args.image())?;
    let image = store
        .image_config(&id)
        .with_context(|| format!("reading the config of image {id}"))?;
    let config = image.config.unwrap_or_default();
    let layers = store
        .image_layers(&id)
        .with_context(|| format!("finding the layers of image {id}"))?;

    let container_id = random_id()?;
    let container = Container::create(&store.root().join("containers").join(&container_id))?;
    let plan = Plan {
        rootfs: Rootfs {
            // The runner wants the top layer first; the store lists bottom first.
            lowers: layers
                .iter()
                .rev()
                .map(|l| store.snapshot_diff_dir(&l.chain_id))
                .collect(),
            upper: container.upper(),
            work: container.work(),
        },
        args: command_line(&config, args.entrypoint.as_deref(), args.command())?,
        env: environment(&config.env, &args.env, |k| std::env::var(k).ok()),
        cwd: args
            .workdir
            .clone()
            .or_else(|| config.working_dir.clone().filter(|w| !w.is_empty()))
            .unwrap_or_else(|| "/".to_string()),
        user: args
            .user
            .clone()
            .or_else(|| config.user.clone())
            .unwrap_or_default(),
        hostname: args
            .hostname
            .clone()
            .unwrap_or_else(|| container_id[..12].to_string()),
        network: network(&args.network)?,
        mounts: args
            .volumes
            .iter()
            .map(|v| volume(v))
            .collect::<Result<_>>()?,
        hosts: args
            .add_hosts
            .iter()
            .map(|h| add_host(h))
            .collect::<Result<_>>()?,
        readonly_rootfs: args.read_only,
        privileged: args.privileged,
    };
    if !plan.cwd.starts_with('/') {
        bail!("the working directory {:?} is not absolute", plan.cwd);
    }
    // A terminal is only useful (and only possible) when the user is at one.
    let stdio = if args.interactive && args.tty && std::io::stdin().is_terminal() {
        Stdio::Tty
    } else {
        Stdio::Inherit
    };
    let exit = bake_runner::run(&plan, stdio, &mut |_, _| {})
        .with_context(|| format!("running {:?} in image {}", plan.args, args.image()))?;
    drop(container);
    Ok(crate::exit::container_code(&exit))
}

/// The writable layer of one container (`containers/<id>/{upper,work}`),
/// removed when dropped: without `-d` or `bake start` a container is never
/// used again, so `--rm` is the only behaviour for now.
struct Container {
    dir: PathBuf,
}

impl Container {
    fn create(dir: &Path) -> Result<Container> {
        for sub in ["upper", "work"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        Ok(Container {
            dir: dir.to_path_buf(),
        })
    }

    fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// 64 random hex digits, like a Docker container id.
fn random_id() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for a container id")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Docker's rule for argv: the ENTRYPOINT (or `--entrypoint`, which also
/// drops the image's CMD) followed by the user's arguments, or by the
/// image's CMD when there are none.
pub fn command_line(
    config: &ContainerConfig,
    entrypoint: Option<&str>,
    user_args: &[String],
) -> Result<Vec<String>> {
    let (entrypoint, default_cmd) = match entrypoint {
        Some("") => (Vec::new(), Vec::new()),
        Some(e) => (vec![e.to_string()], Vec::new()),
        None => (
            config.entrypoint.clone().unwrap_or_default(),
            config.cmd.clone().unwrap_or_default(),
        ),
    };
    let cmd = if user_args.is_empty() {
        default_cmd
    } else {
        user_args.to_vec()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        bail!("no command specified: the image has no CMD or ENTRYPOINT and none was given");
    }
    Ok(args)
}

/// The image's ENV with each `-e` applied: `K=V` sets, `K` copies the host's
/// value (and is skipped if the host has none, as Docker does). A later
/// setting of a key replaces the earlier one in place.
pub fn environment(
    image: &[String],
    flags: &[String],
    host: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    let settings = image.iter().cloned().chain(flags.iter().filter_map(|f| {
        if f.contains('=') {
            Some(f.clone())
        } else {
            host(f).map(|v| format!("{f}={v}"))
        }
    }));
    for setting in settings {
        let key = setting.split_once('=').map_or(setting.as_str(), |(k, _)| k);
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
        {
            Some(existing) => *existing = setting.clone(),
            None => env.push(setting.clone()),
        }
    }
    env
}

/// `-v /host:/ctr[:ro|rw]`: only bind mounts of existing absolute host paths
/// (bake has no named volumes).
pub fn volume(spec: &str) -> Result<MountSpec> {
    let mut parts = spec.split(':');
    let (Some(source), Some(target)) = (parts.next(), parts.next()) else {
        bail!("invalid volume {spec:?}: expected /host/path:/container/path[:ro]");
    };
    let mut readonly = false;
    if let Some(options) = parts.next() {
        for option in options.split(',') {
            match option {
                "ro" | "readonly" => readonly = true,
                "rw" => readonly = false,
                other => bail!("invalid volume {spec:?}: unsupported option {other:?}"),
            }
        }
    }
    if parts.next().is_some() {
        bail!("invalid volume {spec:?}: too many ':'");
    }
    if !source.starts_with('/') {
        bail!(
            "invalid volume {spec:?}: {source:?} is not an absolute host path \
             (named volumes are not supported)"
        );
    }
    if !target.starts_with('/') {
        bail!("invalid volume {spec:?}: the container path {target:?} is not absolute");
    }
    let source = PathBuf::from(source);
    if !source.exists() {
        bail!(
            "invalid volume {spec:?}: the host path {} does not exist",
            source.display()
        );
    }
    Ok(MountSpec::Bind {
        source,
        target: target.to_string(),
        readonly,
    })
}

/// `--network`: the host's (default) or none (loopback only).
fn network(name: &str) -> Result<Network> {
    match name {
        "host" | "default" | "bridge" => Ok(Network::Host),
        "none" => Ok(Network::None),
        other => Err(anyhow!(
            "unsupported network {other:?}: use \"host\" or \"none\""
        )),
    }
}

/// `--add-host name:ip` (the ip may itself contain ':' for IPv6).
fn add_host(spec: &str) -> Result<(String, String)> {
    match spec.split_once(':') {
        Some((host, ip)) if !host.is_empty() && !ip.is_empty() => {
            Ok((host.to_string(), ip.to_string()))
        }
        _ => bail!("invalid --add-host {spec:?}: expected host:ip"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> ContainerConfig {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        ContainerConfig {
            entrypoint: entrypoint.map(owned),
            cmd: cmd.map(owned),
            ..ContainerConfig::default()
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn argv_follows_docker_rules() {
        let c = config(Some(&["/entry", "-x"]), Some(&["default"]));
        assert_eq!(
            command_line(&c, None, &[]).unwrap(),
            ["/entry", "-x", "default"]
        );
        assert_eq!(
            command_line(&c, None, &strings(&["mine"])).unwrap(),
            ["/entry", "-x", "mine"]
        );
        // --entrypoint replaces the entrypoint and drops the image's CMD
        assert_eq!(command_line(&c, Some("sh"), &[]).unwrap(), ["sh"]);
        assert_eq!(
            command_line(&c, Some("sh"), &strings(&["-c", "x"])).unwrap(),
            ["sh", "-c", "x"]
        );
        let c = config(None, Some(&["cat", "/f"]));
        assert_eq!(command_line(&c, None, &[]).unwrap(), ["cat", "/f"]);
        assert!(command_line(&config(None, None), None, &[]).is_err());
        assert!(command_line(&c, Some(""), &[]).is_err());
    }

    #[test]
    fn env_flags_override_the_image_and_read_the_host() {
        let image = strings(&["PATH=/bin", "A=1"]);
        let flags = strings(&["A=2", "HOSTVAR", "MISSING", "NEW=x=y"]);
        let host = |k: &str| (k == "HOSTVAR").then(|| "h".to_string());
        assert_eq!(
            environment(&image, &flags, host),
            ["PATH=/bin", "A=2", "HOSTVAR=h", "NEW=x=y"]
        );
    }

    #[test]
    fn volumes_parse_and_are_checked() {
        let tmp = std::env::temp_dir();
        let dir = tmp.to_str().unwrap();
        let MountSpec::Bind {
            source,
            target,
            readonly,
        } = volume(&format!("{dir}:/mnt:ro")).unwrap()
        else {
            panic!("not a bind")
        };
        assert_eq!(
            (source, target.as_str(), readonly),
            (tmp.clone(), "/mnt", true)
        );
        assert!(matches!(
            volume(&format!("{dir}:/mnt")).unwrap(),
            MountSpec::Bind {
                readonly: false,
                ..
            }
        ));
        assert!(volume("named:/data").is_err());
        assert!(volume("/definitely/not/here/bake:/data").is_err());
        assert!(volume(&format!("{dir}:relative")).is_err());
        assert!(volume(&format!("{dir}:/mnt:z")).is_err());
        assert!(volume("/only-one-part").is_err());
    }

    #[test]
    fn network_and_hosts() {
        assert!(matches!(network("none").unwrap(), Network::None));
        assert!(matches!(network("host").unwrap(), Network::Host));
        assert!(network("overlay").is_err());
        assert_eq!(
            add_host("db:10.0.0.2").unwrap(),
            ("db".to_string(), "10.0.0.2".to_string())
        );
        assert!(add_host("db").is_err());
    }

    #[test]
    fn container_ids_are_64_hex() {
        let id = random_id().unwrap();
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
