//! Resource limits (`--memory`, `--pids-limit`, `--cpus`) through a cgroup of the
//! container's own.
//!
//! cgroup v2 when `/sys/fs/cgroup` is the unified hierarchy, else v1 with one directory
//! per controller (the hybrid layout of older hosts). The container's directory is made
//! beneath the supervisor's own cgroup of that controller (which is where a v1 host that
//! delegates a subtree, like this one, lets us write), under `bake-<name>`.
//!
//! The supervisor creates it and sets the limits; the container's pid 1 moves itself in
//! before it unshares anything, so every process of the container is counted; the
//! supervisor removes it after the container is gone.
//!
//! [`pause`] / [`unpause`] freeze and thaw a running container (`bake pause`, `bake
//! commit`): the v1 `freezer` controller's `freezer.state`, or v2's `cgroup.freeze`.

use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::{Error, Limits};

const ROOT: &str = "/sys/fs/cgroup";

/// The cgroup directories of one container (one per v1 controller, or one for v2).
#[derive(Debug, Default)]
pub(crate) struct Cgroup {
    dirs: Vec<PathBuf>,
}

/// The path of the caller's cgroup for `controller` (v1) or of the unified hierarchy
/// (`controller == ""`), from a `/proc/self/cgroup` listing (pure).
pub(crate) fn own_path(listing: &str, controller: &str) -> Option<String> {
    listing.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if controller.is_empty() {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == controller)
        };
        matches.then(|| path.to_string())
    })
}

/// (controller file, value) pairs to write for `limits`, per hierarchy version (pure).
pub(crate) fn settings(limits: &Limits, v2: bool) -> Vec<(&'static str, &'static str, String)> {
    let mut out = Vec::new();
    if let Some(memory) = limits.memory {
        let file = if v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        out.push(("memory", file, memory.to_string()));
        if !v2 {
            // Without this, v1 lets the container swap beyond the limit.
            out.push(("memory", "memory.memsw.limit_in_bytes", memory.to_string()));
        }
    }
    if let Some(pids) = limits.pids {
        out.push(("pids", "pids.max", pids.to_string()));
    }
    if let Some(nano) = limits.nano_cpus {
        // The CFS bandwidth: `quota` µs of CPU time per `CPU_PERIOD_US` (Docker's
        // 100 ms), at least the kernel's 1 ms minimum.
        let quota = (u128::from(nano) * u128::from(CPU_PERIOD_US) / 1_000_000_000).max(1000);
        if v2 {
            out.push(("cpu", "cpu.max", format!("{quota} {CPU_PERIOD_US}")));
        } else {
            out.push(("cpu", "cpu.cfs_period_us", CPU_PERIOD_US.to_string()));
            out.push(("cpu", "cpu.cfs_quota_us", quota.to_string()));
        }
    }
    out
}

/// The CFS period for `--cpus`, in microseconds (Docker's).
const CPU_PERIOD_US: u64 = 100_000;

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

/// Whether the host has a unified (v2-only) cgroup hierarchy at [`ROOT`].
fn unified() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

impl Cgroup {
    /// Creates the container's cgroup and writes its limits.
    ///
    /// # Errors
    /// [`Error::CgroupController`] when a controller the limits need is not mounted
    /// (v1) or not enabled (v2); [`Error::Cgroup`] when a directory or file cannot be
    /// written.
    pub(crate) fn create(limits: &Limits, name: &str) -> Result<Cgroup, Error> {
        let listing = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let v2 = unified();
        let enabled = match v2 {
            true => std::fs::read_to_string(Path::new(ROOT).join("cgroup.controllers"))
                .unwrap_or_default(),
            false => String::new(),
        };
        let mut cgroup = Cgroup::default();
        let leaf = format!("bake-{name}");
        for (controller, file, value) in settings(limits, v2) {
            let base = if v2 {
                if !enabled.split_whitespace().any(|c| c == controller) {
                    return Err(Error::CgroupController {
                        controller: controller.into(),
                    });
                }
                PathBuf::from(ROOT)
            } else {
                let base = Path::new(ROOT).join(controller);
                if !base.join("cgroup.procs").exists() {
                    return Err(Error::CgroupController {
                        controller: controller.into(),
                    });
                }
                let own = own_path(&listing, controller).unwrap_or_else(|| "/".into());
                base.join(own.trim_start_matches('/'))
            };
            let dir = base.join(&leaf);
            if !cgroup.dirs.contains(&dir) {
                match std::fs::create_dir(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(Error::Cgroup {
                            path: dir,
                            source: io_errno(&e),
                        })
                    }
                }
                cgroup.dirs.push(dir.clone());
            }
            let path = dir.join(file);
            if let Err(e) = std::fs::write(&path, &value) {
                // memsw exists only with swap accounting; the memory limit still holds.
                if file == "memory.memsw.limit_in_bytes" && e.kind() == std::io::ErrorKind::NotFound
                {
                    continue;
                }
                return Err(Error::Cgroup {
                    path,
                    source: io_errno(&e),
                });
            }
        }
        Ok(cgroup)
    }

    /// Moves the calling process into every directory of the cgroup.
    ///
    /// # Errors
    /// [`Error::Cgroup`] naming the `cgroup.procs` file that refused.
    pub(crate) fn join(&self) -> Result<(), Error> {
        for dir in &self.dirs {
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, "0").map_err(|e| Error::Cgroup {
                path: procs.clone(),
                source: io_errno(&e),
            })?;
        }
        Ok(())
    }

    /// Removes the directories (they must be empty of processes: after the container).
    pub(crate) fn remove(&self) {
        for dir in &self.dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The directories of the cgroups listed in `theirs` (a `/proc/<pid>/cgroup`) that
/// differ from the ones in `ours` (the caller's), per hierarchy, each with the
/// hierarchy's mount point (pure). `v2_root`
/// is where the unified hierarchy is mounted (`/sys/fs/cgroup`, or
/// `/sys/fs/cgroup/unified` on a hybrid host).
pub(crate) fn differing_dirs(theirs: &str, ours: &str, v2_root: &Path) -> Vec<(PathBuf, PathBuf)> {
    let split = |line: &str| -> Option<(String, String, String)> {
        let mut parts = line.splitn(3, ':');
        Some((
            parts.next()?.to_string(),
            parts.next()?.to_string(),
            parts.next()?.to_string(),
        ))
    };
    let ours: Vec<(String, String, String)> = ours.lines().filter_map(split).collect();
    let mut out = Vec::new();
    for (id, controllers, path) in theirs.lines().filter_map(split) {
        let same = ours
            .iter()
            .any(|(i, c, p)| *i == id && *c == controllers && *p == path);
        if same {
            continue;
        }
        let base = if controllers.is_empty() {
            v2_root.to_path_buf()
        } else {
            // v1: mounted at its controller list (`cpu,cpuacct`), named hierarchies
            // without the `name=` (`systemd`).
            Path::new(ROOT).join(controllers.trim_start_matches("name="))
        };
        let dir = base.join(path.trim_start_matches('/'));
        out.push((base, dir));
    }
    out
}

/// The `cgroup.procs` files of the cgroups host pid `pid` is in and the caller is
/// not, opened for writing now (while the host's `/sys/fs/cgroup` is in view), for
/// [`enter`] to use later from inside the container's namespaces (`bake exec`:
/// the command then counts against the container's `--memory`, `--pids-limit`…).
///
/// # Errors
/// [`Error::Cgroup`] naming a file that cannot be opened.
pub(crate) fn open_procs_of(pid: u32) -> Result<Vec<(PathBuf, std::fs::File)>, Error> {
    let read = |path: String| {
        std::fs::read_to_string(&path).map_err(|e| Error::Cgroup {
            path: PathBuf::from(path),
            source: io_errno(&e),
        })
    };
    let theirs = read(format!("/proc/{pid}/cgroup"))?;
    let ours = read("/proc/self/cgroup".to_string())?;
    let v2_root = if unified() {
        PathBuf::from(ROOT)
    } else {
        Path::new(ROOT).join("unified")
    };
    let mut out = Vec::new();
    for (base, dir) in differing_dirs(&theirs, &ours, &v2_root) {
        let procs = dir.join("cgroup.procs");
        // A hierarchy not mounted where hosts usually mount it cannot be joined and
        // holds none of bake's limits (those are made by `Cgroup::create` at the
        // same paths): skip it rather than fail every exec.
        if !base.is_dir() {
            continue;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&procs)
            .map_err(|e| Error::Cgroup {
                path: procs.clone(),
                source: io_errno(&e),
            })?;
        out.push((procs, file));
    }
    Ok(out)
}

/// Moves the calling process into the cgroups of [`open_procs_of`].
///
/// # Errors
/// [`Error::Cgroup`] naming the `cgroup.procs` file that refused.
pub(crate) fn enter(files: &[(PathBuf, std::fs::File)]) -> Result<(), Error> {
    use std::io::Write;
    for (path, file) in files {
        let mut file: &std::fs::File = file;
        file.write_all(b"0").map_err(|e| Error::Cgroup {
            path: path.clone(),
            source: io_errno(&e),
        })?;
    }
    Ok(())
}

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
/// `bake-pause-<id>` cgroup under it, which [`unpause`] empties and removes. A
/// process that forks while the others are moved is caught by a second round; once
/// the group is frozen nothing in it can fork.
///
/// # Errors
/// [`Error::FreezerMissing`] on a host without a freezer, [`Error::Cgroup`] naming a
/// cgroup file that could not be written (for instance in rootless mode, where the
/// cgroup tree is not delegated), [`Error::FreezeTimeout`]. On error nothing stays
/// frozen.
pub fn pause(pid: u32, id: &str) -> Result<(), Error> {
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
    let dir = current.join(format!("{PAUSE_PREFIX}{id}"));
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(Error::Cgroup {
                path: dir,
                source: io_errno(&e),
            })
        }
    }
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

    #[test]
    fn cpus_become_a_cfs_quota() {
        let limits = Limits {
            nano_cpus: Some(1_500_000_000),
            ..Limits::default()
        };
        assert_eq!(
            settings(&limits, false),
            [
                ("cpu", "cpu.cfs_period_us", "100000".to_string()),
                ("cpu", "cpu.cfs_quota_us", "150000".to_string()),
            ]
        );
        assert_eq!(
            settings(&limits, true),
            [("cpu", "cpu.max", "150000 100000".to_string())]
        );
        let tiny = Limits {
            nano_cpus: Some(1),
            ..Limits::default()
        };
        assert_eq!(settings(&tiny, true)[0].2, "1000 100000");
    }

    #[test]
    fn only_the_container_own_cgroups_are_joined() {
        let ours = "12:pids:/user.slice\n4:memory:/user.slice\n1:name=systemd:/user.slice/s\n0::/user.slice/s\n";
        let theirs =
            "12:pids:/user.slice/bake-abc\n4:memory:/\n1:name=systemd:/user.slice/s\n0::/other\n";
        let dirs: Vec<PathBuf> = differing_dirs(theirs, ours, Path::new("/sys/fs/cgroup/unified"))
            .into_iter()
            .map(|(_, dir)| dir)
            .collect();
        assert_eq!(
            dirs,
            [
                PathBuf::from("/sys/fs/cgroup/pids/user.slice/bake-abc"),
                PathBuf::from("/sys/fs/cgroup/memory"),
                PathBuf::from("/sys/fs/cgroup/unified/other"),
            ]
        );
    }

    #[test]
    fn own_path_picks_the_controller_line() {
        let listing = "9:name=systemd:/\n8:pids:/\n4:memory:/api/x\n1:cpu,cpuacct:/c\n0::/u\n";
        assert_eq!(own_path(listing, "memory").as_deref(), Some("/api/x"));
        assert_eq!(own_path(listing, "cpuacct").as_deref(), Some("/c"));
        assert_eq!(own_path(listing, "").as_deref(), Some("/u"));
        assert_eq!(own_path(listing, "blkio"), None);
    }

    #[test]
    fn settings_per_version() {
        let limits = Limits {
            memory: Some(64 << 20),
            pids: Some(10),
            nano_cpus: None,
            name: None,
        };
        let v1 = settings(&limits, false);
        assert_eq!(
            v1[0],
            ("memory", "memory.limit_in_bytes", "67108864".into())
        );
        assert_eq!(v1[2], ("pids", "pids.max", "10".into()));
        let v2 = settings(&limits, true);
        assert_eq!(v2.len(), 2);
        assert_eq!(v2[0].1, "memory.max");
    }
}
