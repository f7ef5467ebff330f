//! RUN: the input's layers as overlay lowers, a fresh upper dir, the
//! runner's sandbox, and the upper committed as one new layer.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bake_runner::{MountSpec, OverlayMount, Plan, Rootfs, Stdio, Stream};
use bake_store::{Layer, Store};

use super::{io_err, Error, Value};
use crate::beneath;
use crate::ir::{Exec, MountKind, Network, Security, Sharing};

/// The snapshot dirs of a chain as overlay lowers, top first.
pub fn lowers(store: &Store, layers: &[Layer]) -> Vec<PathBuf> {
    layers
        .iter()
        .rev()
        .map(|l| store.snapshot_diff_dir(&l.chain_id))
        .collect()
}

/// Everything a RUN holds while it runs: mounts and locks, released on
/// drop (mounts before the temp dir they live in).
#[derive(Default)]
struct Held {
    mounts: Vec<OverlayMount>,
    locks: Vec<File>,
}

/// Runs `exec` on `inputs` (`inputs[0]` the root) and returns the new
/// chain.
///
/// # Errors
/// Mount, sandbox and commit failures; a non-zero exit.
pub fn run(
    store: &Store,
    exec: &Exec,
    inputs: &[&Value],
    epoch: Option<i64>,
    log: &mut dyn FnMut(Stream, &[u8]),
) -> Result<Vec<Layer>, Error> {
    let base = inputs
        .first()
        .ok_or_else(|| Error::Unsupported("RUN without a root input".into()))?
        .layers()?;
    let tmp = store.temp_dir("exec")?;
    let upper = tmp.path().join("upper");
    let work = tmp.path().join("work");
    for d in [&upper, &work] {
        fs::create_dir(d).map_err(io_err("mkdir", d))?;
    }
    let mut held = Held::default();
    let mut mounts = Vec::new();
    for (n, m) in exec.mounts.iter().enumerate() {
        let spec = match &m.kind {
            MountKind::Bind {
                input,
                source,
                readwrite: _,
            } => {
                // Writes to a bind mount are discarded (BuildKit); bake
                // mounts it read-only, which differs only for tools that
                // insist on writing into a `rw` bind.
                let value = inputs.get(*input).ok_or_else(|| {
                    Error::Unsupported(format!("bind mount from missing input {input}"))
                })?;
                let root = match value {
                    Value::Dir(d) => d.clone(),
                    Value::Layers(layers) => {
                        let target = tmp.path().join(format!("bind-{n}"));
                        fs::create_dir(&target).map_err(io_err("mkdir", &target))?;
                        let mount =
                            bake_runner::mount_overlay(&lowers(store, layers), None, &target)?;
                        held.mounts.push(mount);
                        target
                    }
                };
                MountSpec::Bind {
                    source: beneath::host_path(&root, source, true)?,
                    target: m.target.clone(),
                    readonly: true,
                }
            }
            MountKind::Cache {
                id,
                sharing,
                readonly,
                uid,
                gid,
                mode,
                seed,
            } => {
                if seed.is_some() {
                    return Err(Error::Unsupported(
                        "RUN --mount=type=cache,from=… is not implemented yet".into(),
                    ));
                }
                let dir = cache_dir(store, id, *uid, *gid, *mode)?;
                if *sharing == Sharing::Locked {
                    held.locks.push(lock(&dir)?);
                }
                MountSpec::Bind {
                    source: dir,
                    target: m.target.clone(),
                    readonly: *readonly,
                }
            }
            MountKind::Tmpfs { size } => MountSpec::Tmpfs {
                target: m.target.clone(),
                size: *size,
            },
            MountKind::Secret { id, .. } => {
                return Err(Error::Unsupported(format!(
                    "RUN --mount=type=secret (id={id}) is not implemented yet"
                )))
            }
            MountKind::Ssh { id, .. } => {
                return Err(Error::Unsupported(format!(
                    "RUN --mount=type=ssh (id={id}) is not implemented yet"
                )))
            }
        };
        mounts.push(spec);
    }
    let plan = Plan {
        rootfs: Rootfs {
            lowers: lowers(store, base),
            upper: upper.clone(),
            work,
        },
        args: exec.args.clone(),
        env: exec.env.clone(),
        cwd: exec.cwd.clone(),
        user: exec.user.clone(),
        hostname: "buildkitsandbox".to_string(),
        network: match exec.network {
            Network::None => bake_runner::Network::None,
            Network::Default | Network::Host => bake_runner::Network::Host,
        },
        mounts,
        hosts: Vec::new(),
        readonly_rootfs: false,
        privileged: exec.security == Security::Insecure,
    };
    let exit = bake_runner::run(&plan, Stdio::Piped, log)?;
    drop(held);
    if !exit.success() {
        return Err(Error::ExitCode {
            command: exec.args.join(" "),
            code: exit.docker_code(),
        });
    }
    let layer = store.commit_snapshot(&upper, base.last().map(|l| &l.chain_id), epoch)?;
    let mut chain = base.to_vec();
    chain.push(layer);
    Ok(chain)
}

/// `cache/mounts/<blake3(id)>`, created with the mount's owner and mode
/// on first use.
fn cache_dir(store: &Store, id: &str, uid: u32, gid: u32, mode: u32) -> Result<PathBuf, Error> {
    let dir = store
        .root()
        .join("cache/mounts")
        .join(blake3::hash(id.as_bytes()).to_hex().as_str());
    if !dir.is_dir() {
        let parent = dir.parent().expect("has a parent");
        fs::create_dir_all(parent).map_err(io_err("mkdir", parent))?;
        let staging = parent.join(format!(".new-{}", std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir(&staging).map_err(io_err("mkdir", &staging))?;
        std::os::unix::fs::chown(&staging, Some(uid), Some(gid))
            .map_err(io_err("chown", &staging))?;
        fs::set_permissions(&staging, fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod", &staging))?;
        // Another build may have won the race: keep its directory.
        if fs::rename(&staging, &dir).is_err() {
            let _ = fs::remove_dir(&staging);
        }
    }
    Ok(dir)
}

/// `sharing=locked`: an exclusive flock held for the whole RUN.
fn lock(dir: &Path) -> Result<File, Error> {
    let path = dir.with_extension("lock");
    let f = File::create(&path).map_err(io_err("create", &path))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| io_err("lock", &path)(e.into()))?;
    Ok(f)
}
