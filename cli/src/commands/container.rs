//! Containers on disk: `STORE/containers/<id>/` holds `config.json` (what to run:
//! image, plan, options, stop settings; written once by `bake run`), `state.json`
//! (created|running|exited, pids, exit, times; written by the runner's supervisor),
//! `upper/` and `work/` (the writable layer), `volumes/` (anonymous volumes) and
//! `container.log` (stdout and stderr of a detached container, as the process wrote
//! them: plain bytes, no stream prefix, since the process writes straight into it).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use bake_runner::{Options, Plan, State, Status};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

/// What a container is, fixed at creation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// 64 hex digits.
    pub id: String,
    /// Unique name (`--name`, or generated).
    pub name: String,
    /// The image as the user named it (the IMAGE column).
    pub image: String,
    /// The image's id (config digest).
    pub image_id: String,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The sandbox plan (argv, env, user, mounts, rootfs).
    pub plan: Plan,
    /// Container-only runner options (init, caps, limits, state file).
    pub options: Options,
    /// The signal `bake stop` sends first (`--stop-signal`, the image's STOPSIGNAL).
    pub stop_signal: Option<String>,
    /// Seconds `bake stop` waits before SIGKILL (`--stop-timeout`).
    pub stop_timeout: Option<u64>,
    /// The health probe (the image's HEALTHCHECK or `--health-cmd`), if any.
    #[serde(default)]
    pub healthcheck: Option<super::healthcheck::Probe>,
    /// The plan's argv split as Docker keeps it (absent for older containers).
    #[serde(default)]
    pub command: Option<Command>,
}

/// A container's ENTRYPOINT and CMD (`bake inspect`, `bake commit`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The ENTRYPOINT in effect (`Some([])`: `--entrypoint ""`).
    pub entrypoint: Option<Vec<String>>,
    /// The CMD in effect.
    pub cmd: Option<Vec<String>>,
}

/// One container directory.
#[derive(Debug, Clone)]
pub struct Container {
    /// `STORE/containers/<id>`.
    pub dir: PathBuf,
    /// Its config.
    pub config: Config,
}

/// `STORE/containers`.
pub fn root_dir(store_root: &Path) -> PathBuf {
    store_root.join("containers")
}

/// 64 random hex digits, like a Docker container id.
pub fn random_id() -> Result<String> {
    Ok(random_bytes::<32>()?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    use std::io::Read;
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes)
}

const ADJECTIVES: [&str; 24] = [
    "admiring",
    "brave",
    "clever",
    "dazzling",
    "eager",
    "festive",
    "gallant",
    "happy",
    "inspiring",
    "jolly",
    "keen",
    "loving",
    "modest",
    "nifty",
    "optimistic",
    "peaceful",
    "quirky",
    "relaxed",
    "serene",
    "tender",
    "upbeat",
    "vibrant",
    "wizardly",
    "zealous",
];

const NAMES: [&str; 24] = [
    "archimedes",
    "babbage",
    "curie",
    "darwin",
    "euler",
    "feynman",
    "galileo",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "lovelace",
    "mccarthy",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "thompson",
    "turing",
    "villani",
    "wozniak",
    "yalow",
    "zhukovsky",
    "lamarr",
];

/// A Docker-like `adjective_name` from two random bytes (pure given the bytes).
pub fn generated_name(a: u8, b: u8) -> String {
    format!(
        "{}_{}",
        ADJECTIVES[a as usize % ADJECTIVES.len()],
        NAMES[b as usize % NAMES.len()]
    )
}

/// Docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl Container {
    /// `config.json`.
    pub fn config_path(dir: &Path) -> PathBuf {
        dir.join("config.json")
    }

    /// `state.json`.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// `container.log`.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("container.log")
    }

    /// Short id (12 digits).
    pub fn short_id(&self) -> &str {
        &self.config.id[..12]
    }

    /// Reads `dir/config.json`.
    pub fn load(dir: &Path) -> Result<Container> {
        let path = Container::config_path(dir);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let config = serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing {}", path.display()))?;
        Ok(Container {
            dir: dir.to_path_buf(),
            config,
        })
    }

    /// Writes `config.json`. No `state.json` yet: its absence means `created` (one file
    /// less on the path of every `bake run`); the runner writes it when the container
    /// starts.
    pub fn save_new(&self) -> Result<()> {
        let path = Container::config_path(&self.dir);
        let json = serde_json::to_vec_pretty(&self.config)?;
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))
    }

    /// Replaces `state.json`.
    pub fn set_state(&self, state: &State) -> Result<()> {
        bake_runner::write_state(&self.state_path(), state)
            .with_context(|| format!("writing {}", self.state_path().display()))
    }

    /// The recorded state, corrected for a supervisor that died without recording the
    /// exit (SIGKILL of the sandbox, a reboot): then it is exited with code 255.
    pub fn state(&self) -> State {
        let mut state: State = std::fs::read(self.state_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if state.status == Status::Running && !supervisor_alive(state.supervisor) {
            // Read again: it may have exited and been recorded in between.
            if let Some(s) = std::fs::read(self.state_path())
                .ok()
                .and_then(|b| serde_json::from_slice::<State>(&b).ok())
            {
                state = s;
            }
            if state.status == Status::Running {
                state.status = Status::Exited;
                state.exit = Some(bake_runner::Exit::Code(255));
            }
        }
        state
    }

    /// Removes the container's directory (its layer, volumes, log, state).
    pub fn remove(&self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir)
            .with_context(|| format!("removing {}", self.dir.display()))
    }
}

/// Whether the sandbox supervisor `pid` still runs (and is one: pids are reused).
fn supervisor_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        cmdline
            .split(|b| *b == 0)
            .nth(1)
            .is_some_and(|arg| arg == bake_runner::SANDBOX_ARG.as_bytes())
    })
}

/// Every container of the store, newest first.
pub fn list(store_root: &Path) -> Result<Vec<Container>> {
    let root = root_dir(store_root);
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("listing {}", root.display())),
    };
    for entry in entries {
        let dir = entry?.path();
        // `.removing-<id>`: a removed container whose files are still being deleted.
        if dir
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        // A container being created or removed has no (complete) config: skip it.
        if Container::config_path(&dir).is_file() {
            if let Ok(c) = Container::load(&dir) {
                out.push(c);
            }
        }
    }
    out.sort_by_key(|c| std::cmp::Reverse(c.config.created_ms));
    Ok(out)
}

/// A container by name, full id or unique id prefix (Docker's "No such container").
pub fn find(store_root: &Path, key: &str) -> Result<Container> {
    let all = list(store_root)?;
    if let Some(c) = all
        .iter()
        .find(|c| c.config.name == key || c.config.id == key)
    {
        return Ok(c.clone());
    }
    let matches: Vec<&Container> = all
        .iter()
        .filter(|c| !key.is_empty() && c.config.id.starts_with(key))
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(anyhow!("No such container: {key}")),
        _ => Err(anyhow!("multiple containers match id prefix {key:?}")),
    }
}

/// A name for a new container: `wanted` if given (checked: valid and unused), else a
/// generated one that is free.
pub fn pick_name(store_root: &Path, wanted: Option<&str>) -> Result<String> {
    let taken: Vec<String> = list(store_root)?
        .into_iter()
        .map(|c| c.config.name)
        .collect();
    if let Some(name) = wanted {
        if !valid_name(name) {
            bail!("invalid container name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
        }
        if taken.iter().any(|t| t == name) {
            bail!("the container name {name:?} is already in use: remove it or pick another name");
        }
        return Ok(name.to_string());
    }
    for _ in 0..64 {
        let [a, b, c] = random_bytes::<3>()?;
        let mut name = generated_name(a, b);
        if taken.contains(&name) {
            name = format!("{name}{}", c % 10);
        }
        if !taken.contains(&name) {
            return Ok(name);
        }
    }
    random_id().map(|id| id[..12].to_string())
}

/// Makes one anonymous volume per image VOLUME path under `dir/volumes/<n>`, seeded
/// like Docker with what the image has at that path (contents, owner, mode), and
/// returns the bind mounts: writes there go to the volume, not the container's layer.
///
/// The image is looked at through a read-only view of its layers mounted in bake's
/// private mount namespace; a path that resolves outside that view (an absolute
/// symlink in the image) is not followed, and the volume starts empty.
pub fn create_volumes(
    dir: &Path,
    lowers: &[PathBuf],
    paths: &[String],
) -> Result<Vec<bake_runner::MountSpec>> {
    let volumes = dir.join("volumes");
    let view_dir = dir.join("image-view");
    for d in [&volumes, &view_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let view = if lowers.is_empty() {
        None
    } else {
        Some(
            bake_runner::mount_overlay(lowers, None, &view_dir)
                .context("mounting the image to seed its volumes")?,
        )
    };
    let mut out = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let volume = volumes.join(i.to_string());
        std::fs::create_dir(&volume).with_context(|| format!("creating {}", volume.display()))?;
        if view.is_some() {
            super::volume::seed(&view_dir, path, &volume)
                .with_context(|| format!("copying {path} from the image into its volume"))?;
        }
        out.push(bake_runner::MountSpec::Bind {
            source: volume,
            target: path.clone(),
            readonly: false,
        });
    }
    drop(view);
    let _ = std::fs::remove_dir(&view_dir);
    Ok(out)
}

/// Parses `TERM`, `SIGTERM`, `sigterm` or `15`.
pub fn parse_signal(text: &str) -> Result<Signal> {
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| anyhow!("invalid signal {text:?}"));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>()
        .map_err(|_| anyhow!("invalid signal {text:?}"))
}

/// Sends `signal` to the container's pid 1.
pub fn signal(container: &Container, signal: Signal) -> Result<()> {
    let state = container.state();
    if state.status != Status::Running {
        bail!("container {} is not running", container.config.name);
    }
    let pid = nix::unistd::Pid::from_raw(state.pid as i32);
    nix::sys::signal::kill(pid, signal)
        .with_context(|| format!("sending {signal} to container {}", container.config.name))?;
    // A paused container is thawed so that it can act on the signal (see `pause`).
    if bake_runner::is_paused(state.pid) {
        bake_runner::unpause(state.pid)
            .with_context(|| format!("unpausing container {}", container.config.name))?;
    }
    Ok(())
}

/// Waits until the container is no longer running, for at most `timeout` (forever if
/// `None`); returns its final state, or `None` on timeout.
pub fn wait_exit(container: &Container, timeout: Option<std::time::Duration>) -> Option<State> {
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    loop {
        let state = container.state();
        if state.status != Status::Running {
            return Some(state);
        }
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_look_like_dockers() {
        assert_eq!(generated_name(0, 0), "admiring_archimedes");
        assert_eq!(generated_name(25, 1), "brave_babbage");
        assert!(valid_name("web-1.a_b"));
        assert!(!valid_name("-web"));
        assert!(!valid_name("a"));
        assert!(!valid_name("we b"));
    }

    #[test]
    fn signals_parse_by_name_or_number() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("SIGUSR1").unwrap(), Signal::SIGUSR1);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
    }

    #[test]
    fn ids_are_64_hex() {
        let id = random_id().unwrap();
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
