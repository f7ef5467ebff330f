//! `bake run`: a container from a local (or pulled) image, with Docker's
//! rules for the command line, environment, working directory, user and
//! exit codes.
//!
//! The plan given to the runner is assembled here by pure functions (unit
//! tested below); the runner does every namespace and mount operation.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use bake_runner::{Limits, MountSpec, Network, Options, Plan, PortMapping, Rootfs, Seccomp, Stdio};
use bake_store::oci::ContainerConfig;

use super::container::{self, Config, Container};
use crate::app::{Global, RunArgs};

/// Removes a container's directory unless disarmed: a container whose start failed
/// is not kept (Docker keeps it as "Created"; there is nothing useful in it).
struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs the container and returns its exit status (with `-d`: starts it, prints its
/// id and returns success).
pub fn run(global: &Global, args: &RunArgs) -> Result<ExitCode> {
    crate::host::prepare_mounts()?;
    let store = super::open_store(global)?;
    // Until the container's record names its image and layers (the GC's
    // roots), a `bake prune` must not collect them: hold the store lock
    // shared meanwhile, and only meanwhile (prune waits for it).
    let store_lock = store.lock_shared().context("locking the store")?;
    let id = super::pull::local_or_pull(&store, global, args.image())?;
    let image = store
        .image_config(&id)
        .with_context(|| format!("reading the config of image {id}"))?;
    let config = image.config.unwrap_or_default();
    let layers = store
        .image_layers(&id)
        .with_context(|| format!("finding the layers of image {id}"))?;
    // The runner wants the top layer first; the store lists bottom first.
    let lowers: Vec<PathBuf> = layers
        .iter()
        .rev()
        .map(|l| store.snapshot_diff_dir(&l.chain_id))
        .collect();

    let ports = published_ports(&args.publish, args.publish_all, &config)?;
    let network = network(&args.network, !ports.is_empty())?;
    let seccomp = security_options(&args.security_opts)?;
    let name = container::pick_name(store.root(), args.name.as_deref())?;
    let container_id = container::random_id()?;
    let dir = container::root_dir(store.root()).join(&container_id);
    let mut cleanup = Cleanup(Some(dir.clone()));
    for sub in ["upper", "work"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}", dir.join(sub).display()))?;
    }

    // Named and anonymous volumes (`-v name:/p`, `-v /p`, `--mount type=volume`) are
    // the volume module's; the rest are binds and tmpfs.
    let mut mounts: Vec<MountSpec> = Vec::new();
    let mut wanted = Vec::new();
    for v in &args.volumes {
        match super::volume::from_volume_flag(v)? {
            Some(w) => wanted.push(w),
            None => mounts.push(volume(v)?),
        }
    }
    for spec in &args.mounts {
        match super::mount_flag::parse(spec)? {
            super::mount_flag::Mount::Volume(w) => wanted.push(w),
            super::mount_flag::Mount::Sandbox(m) => mounts.push(m),
        }
    }
    let (named, mut anonymous) = super::volume::attach(&store, &lowers, &wanted)?;
    mounts.extend(named);
    for spec in &args.tmpfs {
        mounts.push(tmpfs_flag(spec)?);
    }
    let from_image: Vec<String> = anonymous_volumes(&config, &mounts)
        .into_iter()
        .filter(|v| !anonymous.contains(v))
        .collect();
    anonymous.extend(from_image);
    if !anonymous.is_empty() {
        mounts.extend(container::create_volumes(&dir, &lowers, &anonymous)?);
    }
    let mut env_flags = Vec::new();
    for file in &args.env_files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading env file {}", file.display()))?;
        env_flags.extend(env_file(&text));
    }
    env_flags.extend(args.env.iter().cloned());

    let plan = Plan {
        rootfs: Rootfs {
            lowers,
            upper: dir.join("upper"),
            work: dir.join("work"),
        },
        args: command_line(&config, args.entrypoint.as_deref(), args.command())?,
        env: environment(&config.env, &env_flags, |k| std::env::var(k).ok()),
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
        network,
        mounts,
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
    let healthcheck = super::healthcheck::resolve(config.healthcheck.as_ref(), &args.health)?;
    let stop_signal = args.stop_signal.clone().or(config.stop_signal.clone());
    if let Some(sig) = &stop_signal {
        container::parse_signal(sig)?;
    }
    let options = Options {
        state_file: Some(dir.join("state.json")),
        init: args.init,
        cap_add: args.cap_add.clone(),
        cap_drop: args.cap_drop.clone(),
        limits: Limits {
            memory: args.memory.as_deref().map(memory_bytes).transpose()?,
            pids: args
                .pids_limit
                .and_then(|n| u64::try_from(n).ok())
                .filter(|n| *n > 0),
            nano_cpus: args.cpus.map(nano_cpus).transpose()?,
            name: Some(container_id[..12].to_string()),
        },
        remove_after: args.rm.then(|| dir.clone()),
        // No sync of the writable layer at exit: it is no build result (see the runner).
        volatile: true,
        ports,
        seccomp,
    };
    let ctr = Container {
        dir: dir.clone(),
        config: Config {
            id: container_id.clone(),
            name,
            image: args.image().to_string(),
            image_id: id.to_string(),
            created_ms: bake_runner::now_ms(),
            plan,
            options,
            stop_signal,
            stop_timeout: args.stop_timeout,
            healthcheck,
            command: Some(command_parts(
                &config,
                args.entrypoint.as_deref(),
                args.command(),
            )),
        },
    };
    ctr.save_new()?;
    drop(store_lock);
    let (plan, options) = (&ctr.config.plan, &ctr.config.options);

    if args.detach {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(ctr.log_path())
            .with_context(|| format!("creating {}", ctr.log_path().display()))?;
        bake_runner::start(plan, options, log)
            .with_context(|| format!("starting {:?} in image {}", plan.args, args.image()))?;
        cleanup.0 = None;
        super::healthcheck::spawn_monitor(&ctr)?;
        println!("{container_id}");
        return Ok(ExitCode::SUCCESS);
    }

    // A terminal is only useful (and only possible) when the user is at one.
    let stdio = if args.interactive && args.tty && std::io::stdin().is_terminal() {
        Stdio::Tty
    } else {
        Stdio::Inherit
    };
    let exit = bake_runner::run_with(plan, options, stdio, &mut |_, _| {})
        .with_context(|| format!("running {:?} in image {}", plan.args, args.image()))?;
    if !args.rm {
        // Kept, exited, like Docker: `bake ps -a` shows it, `bake rm` removes it.
        cleanup.0 = None;
    }
    drop(cleanup);
    Ok(crate::exit::container_code(&exit))
}

/// The image's VOLUMEs that no `-v`/`--mount`/`--tmpfs` covers (normalised paths).
pub fn anonymous_volumes(config: &ContainerConfig, mounts: &[MountSpec]) -> Vec<String> {
    let target = |m: &MountSpec| match m {
        MountSpec::Bind { target, .. } | MountSpec::Tmpfs { target, .. } => normalize(target),
    };
    let taken: Vec<String> = mounts.iter().map(target).collect();
    config
        .volumes
        .keys()
        .map(|v| normalize(v))
        .filter(|v| v != "/" && !taken.contains(v))
        .collect()
}

/// Lexical normalisation of a container path (`..` clamped at `/`).
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `--env-file` lines: `K=V` or `K` (taken from the host), blank lines and `#`
/// comments skipped; values are taken verbatim (no quotes removed), like Docker.
pub fn env_file(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_start())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once('=') {
            Some((k, v)) => format!("{}={v}", k.trim_end()),
            None => l.trim_end().to_string(),
        })
        .collect()
}

/// `--memory`: bytes with an optional `b`, `k`, `m`, `g` suffix (powers of 1024, as
/// Docker's `RAMInBytes`).
pub fn memory_bytes(text: &str) -> Result<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, unit) = match lower.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&lower[..i], &lower[i..]),
        None => (lower, ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| anyhow!("invalid memory size {text:?}"))?;
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => bail!("invalid memory size {text:?}: unknown unit {unit:?}"),
    };
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| anyhow!("memory size {text:?} is too large"))?;
    // Docker's minimum: below it the container cannot even start.
    if bytes < 6 << 20 {
        bail!("minimum memory limit allowed is 6MB (got {text:?})");
    }
    Ok(bytes)
}

/// `--cpus N` as billionths of a CPU; Docker's range is 0.01 up to the host's CPUs.
pub fn nano_cpus(cpus: f64) -> Result<u64> {
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    if !(cpus >= 0.01 && cpus <= available as f64) {
        bail!("range of CPUs is from 0.01 to {available}.00, as there are only {available} CPUs available (got --cpus {cpus})");
    }
    Ok((cpus * 1e9).round() as u64)
}

/// `--tmpfs /path[:size=N[,rw]]`.
pub fn tmpfs_flag(spec: &str) -> Result<MountSpec> {
    let (target, opts) = spec.split_once(':').unwrap_or((spec, ""));
    if !target.starts_with('/') {
        bail!("invalid --tmpfs {spec:?}: {target:?} is not an absolute path");
    }
    let mut size = None;
    for opt in opts.split(',').filter(|o| !o.is_empty()) {
        match opt.split_once('=') {
            Some(("size", v)) => size = Some(size_bytes(v)?),
            None if opt == "rw" => {}
            _ => bail!("invalid --tmpfs {spec:?}: unsupported option {opt:?} (size=N and rw are)"),
        }
    }
    Ok(MountSpec::Tmpfs {
        target: target.to_string(),
        size,
    })
}

/// A size with an optional k/m/g suffix (tmpfs `size=`).
pub(super) fn size_bytes(text: &str) -> Result<u64> {
    let lower = text.to_ascii_lowercase();
    let (digits, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1u64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        _ => (lower.as_str(), 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| anyhow!("invalid size {text:?}"))
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

/// The argv of [`command_line`] as Docker records it, (Entrypoint, Cmd): `bake
/// inspect` shows them apart and `bake commit` gives them to the new image.
pub fn command_parts(
    config: &ContainerConfig,
    entrypoint: Option<&str>,
    user_args: &[String],
) -> container::Command {
    let user = (!user_args.is_empty()).then(|| user_args.to_vec());
    match entrypoint {
        Some("") => container::Command {
            entrypoint: Some(Vec::new()),
            cmd: user,
        },
        Some(e) => container::Command {
            entrypoint: Some(vec![e.to_string()]),
            cmd: user,
        },
        None => container::Command {
            entrypoint: config.entrypoint.clone(),
            cmd: user.or_else(|| config.cmd.clone()),
        },
    }
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

/// `--network`: the host's, none (loopback only) or bridge (slirp4netns). Without
/// the flag: bridge when ports are published, else the host's (bridge costs a
/// slirp4netns start per container; see docs/runner.md).
fn network(name: &str, publishing: bool) -> Result<Network> {
    let network = match name {
        "default" if publishing => Network::Bridge,
        "host" | "default" => Network::Host,
        "bridge" => Network::Bridge,
        "none" => Network::None,
        other => bail!("unsupported network {other:?}: use \"host\", \"bridge\" or \"none\""),
    };
    if publishing && network != Network::Bridge {
        bail!("conflicting options: port publishing and --network {name} (use --network bridge)");
    }
    Ok(network)
}

/// `-p` specs, plus with `-P` every EXPOSEd port of the image not published by a `-p`;
/// host ports left open get a free one now, so that `bake ps` and `bake port` can
/// show them.
fn published_ports(
    specs: &[String],
    all: bool,
    config: &ContainerConfig,
) -> Result<Vec<PortMapping>> {
    let mut ports = Vec::new();
    for spec in specs {
        ports.extend(
            PortMapping::parse_bindings(spec).with_context(|| format!("-p/--publish {spec}"))?,
        );
    }
    if all {
        for exposed in config.exposed_ports.keys() {
            let mapping = PortMapping::parse(exposed)
                .with_context(|| format!("the image's EXPOSE {exposed:?}"))?;
            let taken = ports
                .iter()
                .any(|p| p.container_side() == mapping.container_side());
            if !taken {
                ports.extend(PortMapping::any_host_port(
                    mapping.container_port,
                    mapping.protocol,
                ));
            }
        }
    }
    PortMapping::assign_free_ports(&mut ports)?;
    Ok(ports)
}

/// `--security-opt`: `seccomp=unconfined|PROFILE.json` and `no-new-privileges`
/// (always in effect for an unprivileged container, so accepted as is).
fn security_options(opts: &[String]) -> Result<Seccomp> {
    let mut seccomp = Seccomp::Default;
    for opt in opts {
        let (key, value) = opt
            .split_once(['=', ':'])
            .map_or((opt.as_str(), None), |(k, v)| (k, Some(v)));
        match (key, value) {
            ("seccomp", Some("unconfined")) => seccomp = Seccomp::Unconfined,
            ("seccomp", Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the seccomp profile {path}"))?;
                let profile = Seccomp::Profile(text);
                profile
                    .validate()
                    .with_context(|| format!("the seccomp profile {path}"))?;
                seccomp = profile;
            }
            ("no-new-privileges", None | Some("true")) => {}
            ("no-new-privileges", Some("false")) => bail!(
                "--security-opt no-new-privileges=false is not supported: bake always sets \
                 no_new_privs for unprivileged containers"
            ),
            _ => bail!(
                "unsupported --security-opt {opt:?} (seccomp=unconfined, seccomp=PROFILE.json \
                 and no-new-privileges are)"
            ),
        }
    }
    Ok(seccomp)
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
    fn argv_parts_are_kept_as_docker_keeps_them() {
        let c = config(Some(&["/entry"]), Some(&["default"]));
        let parts = command_parts(&c, None, &[]);
        assert_eq!(parts.entrypoint, Some(strings(&["/entry"])));
        assert_eq!(parts.cmd, Some(strings(&["default"])));
        let parts = command_parts(&c, Some("sh"), &[]);
        assert_eq!(
            (parts.entrypoint, parts.cmd),
            (Some(strings(&["sh"])), None)
        );
        let parts = command_parts(&c, Some(""), &strings(&["ls"]));
        assert_eq!(parts.entrypoint, Some(Vec::new()));
        assert_eq!(parts.cmd, Some(strings(&["ls"])));
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
        assert_eq!(network("none", false).unwrap(), Network::None);
        assert_eq!(network("host", false).unwrap(), Network::Host);
        assert_eq!(network("default", false).unwrap(), Network::Host);
        assert_eq!(network("default", true).unwrap(), Network::Bridge);
        assert_eq!(network("bridge", false).unwrap(), Network::Bridge);
        assert!(network("overlay", false).is_err());
        let e = network("host", true).unwrap_err().to_string();
        assert!(e.contains("conflicting options"), "{e}");
        assert!(network("none", true).is_err());
        assert_eq!(
            add_host("db:10.0.0.2").unwrap(),
            ("db".to_string(), "10.0.0.2".to_string())
        );
        assert!(add_host("db").is_err());
    }

    #[test]
    fn publish_all_adds_exposed_ports_with_free_host_ports() {
        let mut c = ContainerConfig::default();
        for p in ["80/tcp", "53/udp"] {
            c.exposed_ports.insert(p.to_string(), Default::default());
        }
        let ports = published_ports(&strings(&["127.0.0.1:0:80"]), true, &c);
        assert!(ports.is_err(), "host port 0 is not a port");
        let ports = published_ports(&strings(&["127.0.0.1::80"]), true, &c).unwrap();
        // 53/udp also gets its `[::]` twin when this host has IPv6.
        let sides: Vec<String> = ports
            .iter()
            .filter(|p| p.host_ip.is_ipv4())
            .map(|p| p.container_side())
            .collect();
        assert_eq!(sides, ["80/tcp", "53/udp"]);
        assert!(ports.iter().all(|p| p.host_port != 0));
        assert_eq!(ports[0].host_ip.to_string(), "127.0.0.1");
        assert!(published_ports(&[], false, &c).unwrap().is_empty());
    }

    #[test]
    fn security_options_pick_the_seccomp_filter() {
        assert_eq!(security_options(&[]).unwrap(), Seccomp::Default);
        let s = security_options(&strings(&["seccomp=unconfined", "no-new-privileges"])).unwrap();
        assert_eq!(s, Seccomp::Unconfined);
        assert!(security_options(&strings(&["apparmor=x"])).is_err());
        assert!(security_options(&strings(&["no-new-privileges=false"])).is_err());
        assert!(security_options(&strings(&["seccomp=/no/such/profile.json"])).is_err());
    }

    #[test]
    fn env_files_keep_values_verbatim_and_skip_comments() {
        assert_eq!(
            env_file("# c\n\nA=1\n  B = x y \nHOSTONLY\nC=\"q\"\n"),
            ["A=1", "B= x y ", "HOSTONLY", "C=\"q\""]
        );
    }

    #[test]
    fn memory_sizes_use_powers_of_1024() {
        assert_eq!(memory_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(memory_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(memory_bytes("10485760").unwrap(), 10 << 20);
        assert_eq!(memory_bytes("512mb").unwrap(), 512 << 20);
        assert!(memory_bytes("1k").is_err());
        assert!(memory_bytes("lots").is_err());
    }

    #[test]
    fn tmpfs_flags() {
        assert_eq!(
            tmpfs_flag("/run:size=1m,rw").unwrap(),
            MountSpec::Tmpfs {
                target: "/run".into(),
                size: Some(1 << 20)
            }
        );
        assert!(tmpfs_flag("run").is_err());
        assert!(tmpfs_flag("/run:exec").is_err());
    }

    #[test]
    fn image_volumes_not_covered_by_mounts_become_anonymous() {
        let mut c = ContainerConfig::default();
        for v in ["/data", "/logs/", "/cache"] {
            c.volumes.insert(v.to_string(), Default::default());
        }
        let mounts = vec![MountSpec::Tmpfs {
            target: "/cache/".into(),
            size: None,
        }];
        assert_eq!(anonymous_volumes(&c, &mounts), ["/data", "/logs"]);
    }
}
