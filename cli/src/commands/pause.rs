//! `bake pause` / `bake unpause`: freeze and thaw every process of running containers
//! (the runner's cgroup freezer), as `docker pause` does; and [`Frozen`], the guard
//! `bake commit` holds while it reads a running container's writable layer.
//!
//! A paused container shows `Up … (Paused)` in `bake ps`; `bake exec` into it is
//! refused (Docker's message); `bake stop`, `kill` and `rm -f` thaw it after
//! signalling it, so that it can act on the signal.

use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{bail, Context, Result};
use bake_runner::Status;
use clap::Args;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

use super::container::{self, Container};
use crate::app::Global;

/// `bake pause`.
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// Containers (names or ids).
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Freezes each container, printing each name as given (like Docker).
pub fn pause(global: &Global, args: &PauseArgs) -> Result<()> {
    let root = super::store_root(global);
    for key in &args.containers {
        let c = container::find(&root, key)?;
        let pid = running_pid(&c, key)?;
        if bake_runner::is_paused(pid) {
            bail!("container {key} is already paused");
        }
        bake_runner::pause(pid).with_context(|| format!("cannot pause container {key}"))?;
        println!("{key}");
    }
    Ok(())
}

/// Thaws each container, printing each name as given.
pub fn unpause(global: &Global, args: &PauseArgs) -> Result<()> {
    let root = super::store_root(global);
    for key in &args.containers {
        let c = container::find(&root, key)?;
        let pid = running_pid(&c, key)?;
        if !bake_runner::is_paused(pid) {
            bail!("container {key} is not paused");
        }
        bake_runner::unpause(pid).with_context(|| format!("cannot unpause container {key}"))?;
        println!("{key}");
    }
    Ok(())
}

fn running_pid(c: &Container, key: &str) -> Result<u32> {
    let state = c.state();
    if state.status != Status::Running {
        bail!("container {key} is not running");
    }
    Ok(state.pid)
}

/// Whether the container whose `state` this is runs and is paused (the
/// caller has read the state already; `ps` and `inspect` show both).
pub fn is_paused(state: &bake_runner::State) -> bool {
    state.status == Status::Running && bake_runner::is_paused(state.pid)
}

/// The first terminating signal received while a [`Frozen`] guard lives (0: none).
static DEFERRED: AtomicI32 = AtomicI32::new(0);

extern "C" fn defer(signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    let _ = DEFERRED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
}

/// The signals that would end bake while the container is frozen (Ctrl-C, `kill`,
/// a closed terminal).
const TERMINATING: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// A running container frozen for as long as this lives: dropping it thaws the
/// container on every way out (success, error, panic). Ctrl-C and other terminating
/// signals are held back meanwhile (any thread may take them: a handler records the
/// first) and re-raised once the container is thawed, so bake never dies leaving it
/// frozen; only SIGKILL can, and `bake unpause` then thaws it.
pub struct Frozen {
    pid: u32,
    previous: Vec<(Signal, SigAction)>,
}

impl Frozen {
    /// Freezes the container whose pid 1 is host pid `pid`; `None` when it is paused
    /// already (it stays paused afterwards, as with Docker).
    ///
    /// # Errors
    /// The runner's freezer error (no freezer, no permission to write the cgroup, a
    /// process that would not freeze).
    pub fn new(pid: u32) -> Result<Option<Frozen>> {
        if bake_runner::is_paused(pid) {
            return Ok(None);
        }
        let action = SigAction::new(
            SigHandler::Handler(defer),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        let mut previous = Vec::new();
        for s in TERMINATING {
            // SAFETY: the handler only stores to an atomic.
            if let Ok(old) = unsafe { signal::sigaction(s, &action) } {
                previous.push((s, old));
            }
        }
        let guard = Frozen { pid, previous };
        // After the handlers: a Ctrl-C from here on waits for the thaw in `drop`.
        bake_runner::pause(pid)?;
        Ok(Some(guard))
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Err(e) = bake_runner::unpause(self.pid) {
            // Not silently: the container would stay frozen.
            eprintln!(
                "bake: warning: the container is still paused ({e:#}); `bake unpause` thaws it"
            );
        }
        for (s, old) in &self.previous {
            // SAFETY: restores the disposition that was in place before.
            let _ = unsafe { signal::sigaction(*s, old) };
        }
        let deferred = DEFERRED.swap(0, Ordering::SeqCst);
        if let Ok(s) = Signal::try_from(deferred) {
            // The container is thawed: die of the signal as the user asked.
            let _ = signal::raise(s);
        }
    }
}
