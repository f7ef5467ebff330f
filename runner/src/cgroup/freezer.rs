//! Freezing and thawing a running container (`bake pause`, `bake unpause`, `bake
//! commit`): cgroup v2's `cgroup.freeze`, or on a hybrid host the v1 `freezer`
//! controller's `freezer.state` (where runc freezes too).
//!
//! A container has a cgroup of its own only when it has limits, and on v1 only in the
//! limits' hierarchies; otherwise its processes share the supervisor's cgroup with
//! other processes. So [`pause`] usually moves them into a cgroup made for the pause
//! (`bake-pause-<pid>`), which [`unpause`] (or the supervisor, once the container is
//! gone) empties and removes.

use std::path::{Path, PathBuf};

use super::{io_errno, make_dir, own_path, unified, ROOT};
use crate::Error;

/// Where a host can freeze a group of processes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Freezer {
    /// The cgroup v1 `freezer` controller, mounted here (`freezer.state`).
    V1(PathBuf),
    /// A cgroup v2 hierarchy, mounted here (`cgroup.freeze`, `cgroup.events`).
    V2(PathBuf),
}

/// How long the container's processes get to reach the frozen state.
const FREEZE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The prefix of the cgroup `pause` makes when the container has no cgroup of its own
/// in the freezer's hierarchy; `unpause` empties and removes it again.
const PAUSE_PREFIX: &str = "bake-pause-";

impl Freezer {
    /// The host's freezer: v2 on a unified host; on a hybrid one the v1 controller
    /// (where runc freezes too), else the v2 hierarchy beside it.
    fn find() -> Result<Freezer, Error> {
        let root = Path::new(ROOT);
        if unified() {
            return Ok(Freezer::V2(root.to_path_buf()));
        }
        if root.join("freezer/cgroup.procs").exists() {
            return Ok(Freezer::V1(root.join("freezer")));
        }
        if root.join("unified/cgroup.procs").exists() {
            return Ok(Freezer::V2(root.join("unified")));
        }
        Err(Error::FreezerMissing)
    }

    /// The directory of the cgroup that host pid `pid` is in, in this hierarchy.
    fn dir_of(&self, pid: u32) -> Result<PathBuf, Error> {
        let file = format!("/proc/{pid}/cgroup");
        let listing = std::fs::read_to_string(&file).map_err(|e| Error::Cgroup {
            path: file.into(),
            source: io_errno(&e),
        })?;
        let (mount, controller) = match self {
            Freezer::V1(m) => (m, "freezer"),
            Freezer::V2(m) => (m, ""),
        };
        let path = own_path(&listing, controller).unwrap_or_else(|| "/".into());
        Ok(mount.join(path.trim_start_matches('/')))
    }

    /// The file to write and the values that freeze and thaw.
    fn control(&self) -> (&'static str, &'static str, &'static str) {
        match self {
            Freezer::V1(_) => ("freezer.state", "FROZEN", "THAWED"),
            Freezer::V2(_) => ("cgroup.freeze", "1", "0"),
        }
    }

    /// Whether the cgroup at `dir` is (entirely) frozen.
    fn frozen(&self, dir: &Path) -> bool {
        let file = match self {
            Freezer::V1(_) => "freezer.state",
            Freezer::V2(_) => "cgroup.events",
        };
        std::fs::read_to_string(dir.join(file)).is_ok_and(|text| frozen_state(self, &text))
    }

    /// Writes the freeze (or thaw) value.
    fn set(&self, dir: &Path, freeze: bool) -> Result<(), Error> {
        let (file, on, off) = self.control();
        let path = dir.join(file);
        std::fs::write(&path, if freeze { on } else { off }).map_err(|e| Error::Cgroup {
            path,
            source: io_errno(&e),
        })
    }

    /// Freezes `dir` and waits until every process in it is frozen; thaws it again and
    /// fails after [`FREEZE_TIMEOUT`].
    fn freeze(&self, dir: &Path) -> Result<(), Error> {
        let deadline = std::time::Instant::now() + FREEZE_TIMEOUT;
        let mut nap = std::time::Duration::from_millis(1);
        loop {
            // Written again on every round, as runc does: a v1 cgroup can stay
            // FREEZING when a task was in an uninterruptible sleep.
            self.set(dir, true)?;
            if self.frozen(dir) {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                let _ = self.set(dir, false);
                return Err(Error::FreezeTimeout {
                    path: dir.to_path_buf(),
                });
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(std::time::Duration::from_millis(20));
        }
    }
}

/// Whether a `freezer.state` (v1) or `cgroup.events` (v2) text says frozen (pure).
fn frozen_state(freezer: &Freezer, text: &str) -> bool {
    match freezer {
        Freezer::V1(_) => text.trim() == "FROZEN",
        Freezer::V2(_) => text.lines().any(|l| l.trim() == "frozen 1"),
    }
}

/// Host pids of every process in the pid namespace of host pid `pid` (the container's
/// pid 1, its children, and `bake exec` commands, which fork into that namespace).
fn pid_namespace_members(pid: u32) -> Result<Vec<u32>, Error> {
    let link = format!("/proc/{pid}/ns/pid");
    let ns = std::fs::read_link(&link).map_err(|e| Error::Cgroup {
        path: link.into(),
        source: io_errno(&e),
    })?;
    // Never gather the caller's own namespace: that would freeze bake (and the host).
    if std::fs::read_link("/proc/self/ns/pid").is_ok_and(|own| own == ns) {
        return Err(Error::SharedPidNamespace { pid });
    }
    let entries = std::fs::read_dir("/proc").map_err(|e| Error::Cgroup {
        path: "/proc".into(),
        source: io_errno(&e),
    })?;
    Ok(entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| std::fs::read_link(format!("/proc/{p}/ns/pid")).is_ok_and(|n| n == ns))
        .collect())
}

/// The pids listed in `dir`'s `cgroup.procs`.
fn procs_in(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Writes each of `pids` into `dir`; a process that exited meanwhile is skipped.
fn move_into(dir: &Path, pids: &[u32]) -> Result<(), Error> {
    let procs = dir.join("cgroup.procs");
    for pid in pids {
        match std::fs::write(&procs, pid.to_string()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) => {
                return Err(Error::Cgroup {
                    path: procs,
                    source: io_errno(&e),
                })
            }
        }
    }
    Ok(())
}

/// Moves every process of the container's pid namespace into `dir`, again until a
/// round finds none outside (a process may fork while its parent is moved: the child
/// then stays behind, once).
fn gather(pid: u32, dir: &Path) -> Result<bool, Error> {
    let mut moved = false;
    for _ in 0..100 {
        let inside = procs_in(dir);
        let outside: Vec<u32> = pid_namespace_members(pid)?
            .into_iter()
            .filter(|p| !inside.contains(p))
            .collect();
        if outside.is_empty() {
            return Ok(moved);
        }
        move_into(dir, &outside)?;
        moved = true;
    }
    Ok(moved)
}

/// Freezes every process of the container whose pid 1 is host pid `pid` (`bake pause`,
/// `bake commit`), and returns once all are frozen.
///
/// A container made with limits on a cgroup v2 host has a cgroup of its own
/// (`bake-<name>`), which is frozen as it is. Otherwise (no limits, or a v1 host,
/// where the limits' cgroups are in other hierarchies) its processes live in the
/// supervisor's cgroup, beside bake's own: they are first moved into a new
/// `bake-pause-<pid>` cgroup under it, which [`unpause`] empties and removes (and the
/// supervisor, should the container die while paused: [`remove_pause_group`]). A
/// process that forks while the others are moved is caught by a second round; once
/// the group is frozen nothing in it can fork.
///
/// # Errors
/// [`Error::FreezerMissing`] on a host without a freezer, [`Error::Cgroup`] naming a
/// cgroup file that could not be written (for instance in rootless mode, where the
/// cgroup tree is not delegated), [`Error::FreezeTimeout`]. On error nothing stays
/// frozen.
pub fn pause(pid: u32) -> Result<(), Error> {
    let freezer = Freezer::find()?;
    let current = freezer.dir_of(pid)?;
    // The container's own cgroup holds nothing of bake's (checked all the same: bake
    // may itself run in a container bake made).
    let own = current
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("bake-"))
        && !procs_in(&current).contains(&std::process::id());
    if own {
        return freezer.freeze(&current);
    }
    let dir = current.join(pause_group_name(pid));
    make_dir(&dir)?;
    let frozen = (|| {
        gather(pid, &dir)?;
        freezer.freeze(&dir)?;
        // Whatever slipped out between the last round and the freeze (a process that
        // joined the namespace just then) is moved in and frozen as well.
        if gather(pid, &dir)? {
            freezer.freeze(&dir)?;
        }
        Ok(())
    })();
    if frozen.is_err() {
        release(&freezer, &dir);
    }
    frozen
}

/// Thaws the container whose pid 1 is host pid `pid`; the `bake-pause-*` cgroup that
/// [`pause`] made is emptied back into its parent and removed. Nothing to do for a
/// container that is not paused.
///
/// # Errors
/// [`Error::FreezerMissing`], or [`Error::Cgroup`] naming the file that refused.
pub fn unpause(pid: u32) -> Result<(), Error> {
    let freezer = Freezer::find()?;
    let dir = freezer.dir_of(pid)?;
    let transient = dir
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(PAUSE_PREFIX));
    if transient {
        freezer.set(&dir, false)?;
        release(&freezer, &dir);
        return Ok(());
    }
    if freezer.frozen(&dir) {
        freezer.set(&dir, false)?;
    }
    Ok(())
}

/// The name of the cgroup [`pause`] makes for the container whose pid 1 is host pid
/// `pid`: by pid, so that the supervisor, which knows it, can find it.
fn pause_group_name(pid: u32) -> String {
    format!("{PAUSE_PREFIX}{pid}")
}

/// Removes the `bake-pause-<pid>` cgroup of the container whose pid 1 was host pid `pid`
/// if it is still there, once the container is gone (its supervisor calls this). On
/// cgroup v2 a frozen process dies of SIGKILL, so `bake kill`/`rm -f` of a paused
/// container can end it before it is thawed, leaving the cgroup empty and frozen.
pub(crate) fn remove_pause_group(pid: u32) {
    let Ok(freezer) = Freezer::find() else { return };
    let Ok(own) = freezer.dir_of(std::process::id()) else {
        return;
    };
    let dir = own.join(pause_group_name(pid));
    if dir.is_dir() {
        release(&freezer, &dir);
    }
}

/// Thaws a `bake-pause-*` cgroup, moves its processes back to its parent and removes
/// it (best effort: rounds until it is empty, for children forked meanwhile).
fn release(freezer: &Freezer, dir: &Path) {
    let _ = freezer.set(dir, false);
    let Some(parent) = dir.parent() else { return };
    for _ in 0..100 {
        let left = procs_in(dir);
        if left.is_empty() {
            if std::fs::remove_dir(dir).is_ok() {
                return;
            }
            // EBUSY: an exited process not reaped yet still counts on v2.
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = move_into(parent, &left);
    }
}

/// Whether the container whose pid 1 is host pid `pid` is paused (its cgroup frozen):
/// `bake ps` shows `(Paused)`, `bake exec` refuses.
pub fn is_paused(pid: u32) -> bool {
    let Ok(freezer) = Freezer::find() else {
        return false;
    };
    freezer.dir_of(pid).is_ok_and(|dir| freezer.frozen(&dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_states_per_version() {
        let v1 = Freezer::V1("/f".into());
        let v2 = Freezer::V2("/u".into());
        assert!(frozen_state(&v1, "FROZEN\n"));
        assert!(!frozen_state(&v1, "FREEZING\n"));
        assert!(!frozen_state(&v1, "THAWED\n"));
        assert!(frozen_state(&v2, "populated 1\nfrozen 1\n"));
        assert!(!frozen_state(&v2, "populated 1\nfrozen 0\n"));
        assert_eq!(v1.control(), ("freezer.state", "FROZEN", "THAWED"));
        assert_eq!(v2.control().0, "cgroup.freeze");
    }

    #[test]
    fn bake_own_pid_namespace_is_never_gathered() {
        let e = pid_namespace_members(std::process::id()).unwrap_err();
        assert!(e.to_string().contains("cannot be paused"), "{e}");
    }
}
