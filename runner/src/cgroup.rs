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
//! commit`): see `freezer`.

mod freezer;

use std::path::{Path, PathBuf};

use nix::errno::Errno;

pub(crate) use freezer::remove_pause_group;
pub use freezer::{is_paused, pause, unpause};

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

/// Creates the cgroup directory `dir`; one that exists already is fine.
fn make_dir(dir: &Path) -> Result<(), Error> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::Cgroup {
            path: dir.to_path_buf(),
            source: io_errno(&e),
        }),
    }
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
                make_dir(&dir)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
