//! Resource limits (`--memory`, `--pids-limit`) through a cgroup of the container's own.
//!
//! cgroup v2 when `/sys/fs/cgroup` is the unified hierarchy, else v1 with one directory
//! per controller (the hybrid layout of older hosts). The container's directory is made
//! beneath the supervisor's own cgroup of that controller (which is where a v1 host that
//! delegates a subtree, like this one, lets us write), under `bake-<name>`.
//!
//! The supervisor creates it and sets the limits; the container's pid 1 moves itself in
//! before it unshares anything, so every process of the container is counted; the
//! supervisor removes it after the container is gone.

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
    out
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
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
        let v2 = Path::new(ROOT).join("cgroup.controllers").exists();
        let mut cgroup = Cgroup::default();
        let leaf = format!("bake-{name}");
        for (controller, file, value) in settings(limits, v2) {
            let base = if v2 {
                let enabled = std::fs::read_to_string(Path::new(ROOT).join("cgroup.controllers"))
                    .unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;

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
