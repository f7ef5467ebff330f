//! What `bake run` asks of the sandbox beyond a RUN's [`crate::Plan`]: a reaper as
//! pid 1, capability changes, resource limits, and a state file for the container's
//! lifecycle; plus what `bake exec` needs to join a running container.
//!
//! Kept out of [`crate::Plan`] so that the plan of a RUN (built by the solver) does not
//! change shape for container-only features; everything defaults to "off".

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::Exit;

/// Container-only settings for [`crate::run_with`] and [`crate::start`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// Where the supervisor records the container's [`State`] (as JSON, replaced
    /// atomically): once when the container's first process exists, once when it
    /// has exited. `bake ps`, `bake wait` and `bake exec` read it.
    pub state_file: Option<PathBuf>,
    /// Run a minimal reaper as pid 1 that forks the command, reaps zombies, forwards
    /// signals and exits with the command's status (`docker run --init`).
    pub init: bool,
    /// Capabilities added to Docker's default set (`NET_ADMIN`, `CAP_NET_ADMIN`, `ALL`).
    pub cap_add: Vec<String>,
    /// Capabilities removed from it (`ALL` empties it first).
    pub cap_drop: Vec<String>,
    /// Resource limits, enforced through a cgroup of the container's own.
    pub limits: Limits,
    /// Mount the rootfs overlay `volatile`: its upper dir is never synced to disk, not
    /// even at unmount (a journal commit that dominated a short container's runtime).
    /// For containers, whose layer is not a build result; a host crash can lose their
    /// last writes.
    pub volatile: bool,
    /// A directory the supervisor removes after the container has exited, instead of
    /// tidying the layer and recording the exit (`bake run --rm`; with `-d` nobody else
    /// is there to do it). It should hold the upper, work and state.
    pub remove_after: Option<PathBuf>,
    /// Host ports forwarded to the container (`-p`, `-P`); needs [`crate::Network::Bridge`].
    /// Host port 0 is not allowed here: the caller assigns one first.
    #[serde(default)]
    pub ports: Vec<crate::PortMapping>,
    /// The syscall filter (Docker's default unless unconfined or given); ignored when
    /// the plan is privileged.
    #[serde(default)]
    pub seccomp: crate::Seccomp,
}

/// cgroup limits (`--memory`, `--pids-limit`, `--cpus`); `None` means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory limit in bytes.
    pub memory: Option<u64>,
    /// Maximum number of processes (tasks) in the container.
    pub pids: Option<u64>,
    /// CPU time, in billionths of a CPU (`--cpus 1.5` is 1.5e9, Docker's NanoCPUs):
    /// a CFS quota per 100 ms period.
    #[serde(default)]
    pub nano_cpus: Option<u64>,
    /// Name of the container's cgroup (a directory under bake's); default: the
    /// supervisor's pid.
    pub name: Option<String>,
}

impl Limits {
    /// Whether any limit is set (a cgroup is only made then).
    pub fn any(&self) -> bool {
        self.memory.is_some() || self.pids.is_some() || self.nano_cpus.is_some()
    }
}

/// The lifecycle of one container as recorded by its supervisor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Where the container is in its life.
    pub status: Status,
    /// Host pid of the supervisor (the process [`crate::start`] returns).
    pub supervisor: u32,
    /// Host pid of the container's pid 1 (signals for `bake kill`, namespaces for `exec`).
    pub pid: u32,
    /// When pid 1 was started, in milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// How the container ended, once it has.
    pub exit: Option<Exit>,
    /// When it ended, in milliseconds since the Unix epoch.
    pub finished_ms: Option<u64>,
}

/// The lifecycle stages Docker shows (`created`, `running`, `exited`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made, never started (or being started).
    #[default]
    Created,
    /// Its pid 1 is alive.
    Running,
    /// Its pid 1 has exited; [`State::exit`] says how.
    Exited,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Writes `state` to `path` through a temporary file and a rename, so a reader never
/// sees half a document.
///
/// # Errors
/// The I/O error of the write or the rename.
pub fn write_state(path: &Path, state: &State) -> std::io::Result<()> {
    let json = serde_json::to_vec(state).map_err(std::io::Error::other)?;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)
}

/// What `bake exec` runs in an existing container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exec {
    /// Host pid of the container's pid 1, whose namespaces are joined.
    pub pid: u32,
    /// argv, looked up in the container's `PATH` like a [`crate::Plan`]'s.
    pub args: Vec<String>,
    /// `K=V` pairs (`PATH` and `HOME` completed as for `run`).
    pub env: Vec<String>,
    /// Absolute working directory in the container (must exist).
    pub cwd: String,
    /// User spec, resolved from the container's `/etc/passwd` and `/etc/group`.
    pub user: String,
    /// All capabilities, no `no_new_privs` (`exec --privileged`, or a privileged container).
    pub privileged: bool,
    /// As [`Options::cap_add`] (the container's own).
    pub cap_add: Vec<String>,
    /// As [`Options::cap_drop`].
    pub cap_drop: Vec<String>,
    /// As [`Options::seccomp`] (the container's own).
    #[serde(default)]
    pub seccomp: crate::Seccomp,
}
