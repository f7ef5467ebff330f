//! RUN: the input's layers as overlay lowers, a fresh upper dir, the
//! runner's sandbox, and the upper committed as one new layer.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bake_runner::{Limits, MountSpec, Options, OverlayMount, Plan, Rootfs, Stdio, Stream};
use bake_store::{Layer, Store};

use super::secrets::{FileAttrs, Secrets};
use super::ssh_proxy::SshProxy;
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

/// Everything a RUN holds while it runs: mounts, locks and SSH agent
/// proxies, released on drop (before the temp dir they live in).
#[derive(Default)]
struct Held {
    mounts: Vec<OverlayMount>,
    locks: Vec<File>,
    proxies: Vec<SshProxy>,
}

/// Runs `exec` on `inputs` (`inputs[0]` the root) and returns the new
/// chain. `secrets` holds what `--secret` and `--ssh` gave the build.
///
/// # Errors
/// Mount, sandbox and commit failures; a non-zero exit.
pub fn run(
    store: &Store,
    exec: &Exec,
    inputs: &[&Value],
    epoch: Option<i64>,
    secrets: &Secrets,
    limits: &Limits,
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
    let mut env = exec.env.clone();
    for (n, m) in exec.mounts.iter().enumerate() {
        let scratch = tmp.path().join(format!("mount-{n}"));
        let spec = match &m.kind {
            MountKind::Bind {
                input,
                source,
                readwrite,
            } => {
                let value = input_value(inputs, *input)?;
                // `rw`: writes land in a throwaway upper dir and are gone
                // with the temp dir (BuildKit discards them too).
                let root = view(store, value, &scratch, *readwrite, &mut held)?;
                MountSpec::Bind {
                    source: beneath::host_path(&root, source, true)?,
                    target: m.target.clone(),
                    readonly: !*readwrite,
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
                let seed = match seed {
                    Some((input, path)) => {
                        let value = input_value(inputs, *input)?;
                        let root = view(store, value, &scratch, false, &mut held)?;
                        Some(beneath::host_path(&root, path, true)?)
                    }
                    None => None,
                };
                let new = NewCache {
                    uid: *uid,
                    gid: *gid,
                    mode: *mode,
                    seed: seed.as_deref(),
                };
                let mut dir = cache_dir(store, id, &new)?;
                match sharing {
                    Sharing::Shared => {}
                    Sharing::Locked => held.locks.push(lock(&dir, true)?.expect("blocking")),
                    Sharing::Private => match lock(&dir, false)? {
                        Some(l) => held.locks.push(l),
                        // Another RUN has it: this one gets a fresh
                        // directory of its own, dropped afterwards.
                        None => {
                            fs::create_dir_all(&scratch).map_err(io_err("mkdir", &scratch))?;
                            dir = scratch.join("private");
                            populate(&dir, &new)?;
                        }
                    },
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
            MountKind::Secret {
                id,
                required,
                mode,
                uid,
                gid,
                env: var,
            } => {
                let attrs = FileAttrs {
                    mode: *mode,
                    uid: *uid,
                    gid: *gid,
                };
                if m.target.is_empty() {
                    // `env=` only: no file, no mount.
                    match (secrets.read(id)?, var) {
                        (Some(bytes), Some(var)) => {
                            env.push(format!("{var}={}", String::from_utf8_lossy(&bytes)));
                        }
                        (None, _) if *required => {
                            return Err(Error::MissingSecret(id.to_string()));
                        }
                        _ => {}
                    }
                    continue;
                }
                match secrets.mount(id, *required, &m.target, &attrs, &scratch)? {
                    Some((spec, bytes)) => {
                        if let Some(var) = var {
                            env.push(format!("{var}={}", String::from_utf8_lossy(&bytes)));
                        }
                        spec
                    }
                    None => continue,
                }
            }
            MountKind::Ssh {
                id,
                required,
                mode,
                uid,
                gid,
            } => match secrets.ssh_mount(id, *required, &m.target)? {
                Some(MountSpec::Bind {
                    source: agent,
                    target,
                    readonly,
                }) => {
                    // A socket of the RUN's own with the asked owner and
                    // mode, forwarding to the agent (see `ssh_proxy`).
                    let proxy = SshProxy::start(&scratch, &agent, *uid, *gid, *mode)
                        .map_err(io_err("serve the ssh agent at", &scratch))?;
                    env.push(format!("SSH_AUTH_SOCK={}", m.target));
                    let spec = MountSpec::Bind {
                        source: proxy.path().to_path_buf(),
                        target,
                        readonly,
                    };
                    held.proxies.push(proxy);
                    spec
                }
                Some(other) => other,
                None => continue,
            },
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
        env,
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
    // With limits, a cgroup of the RUN's own, as `bake run --memory` gets.
    let options = Options {
        limits: limits.clone(),
        ..Options::default()
    };
    let exit = bake_runner::run_with(&plan, &options, Stdio::Piped, log)?;
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

fn input_value<'a>(inputs: &[&'a Value], input: usize) -> Result<&'a Value, Error> {
    inputs
        .get(input)
        .copied()
        .ok_or_else(|| Error::Unsupported(format!("mount from missing input {input}")))
}

/// A directory showing `value`: a local directory as is, layers mounted
/// read-only under `scratch`. With `writable`, an overlay with a throwaway
/// upper dir under `scratch`, whatever the value.
fn view(
    store: &Store,
    value: &Value,
    scratch: &Path,
    writable: bool,
    held: &mut Held,
) -> Result<PathBuf, Error> {
    let layers = match value {
        Value::Dir(d) if !writable => return Ok(d.clone()),
        Value::Remote(r) if !writable => return Ok(r.dir()?.to_path_buf()),
        Value::Git(g) if !writable => return Ok(g.dir()?.to_path_buf()),
        Value::Dir(d) => vec![d.clone()],
        Value::Remote(r) => vec![r.dir()?.to_path_buf()],
        Value::Git(g) => vec![g.dir()?.to_path_buf()],
        Value::Layers(l) => lowers(store, l),
    };
    let target = scratch.join("view");
    fs::create_dir_all(&target).map_err(io_err("mkdir", &target))?;
    let mount = if writable {
        let (upper, work) = (scratch.join("upper"), scratch.join("work"));
        for d in [&upper, &work] {
            fs::create_dir(d).map_err(io_err("mkdir", d))?;
        }
        bake_runner::mount_overlay(&layers, Some((&upper, &work)), &target)?
    } else {
        bake_runner::mount_overlay(&layers, None, &target)?
    };
    held.mounts.push(mount);
    Ok(target)
}

/// How a new cache directory starts: owner, mode and, with `from=`, a copy
/// of a directory of another stage.
struct NewCache<'a> {
    uid: u32,
    gid: u32,
    mode: u32,
    seed: Option<&'a Path>,
}

/// `cache/mounts/<blake3(id)>`, created on first use as `new` says.
fn cache_dir(store: &Store, id: &str, new: &NewCache<'_>) -> Result<PathBuf, Error> {
    let dir = store.cache_mount_dir(id);
    if !dir.is_dir() {
        let parent = dir.parent().expect("has a parent");
        fs::create_dir_all(parent).map_err(io_err("mkdir", parent))?;
        let staging = tempfile::Builder::new()
            .prefix(".new-")
            .tempdir_in(parent)
            .map_err(io_err("mkdir", parent))?;
        let staged = staging.path().join("dir");
        populate(&staged, new)?;
        // Another build may have won the race: keep its directory.
        let _ = fs::rename(&staged, &dir);
    }
    Ok(dir)
}

/// Creates `dir` with the owner and mode of `new`, seeded from its `from=`.
fn populate(dir: &Path, new: &NewCache<'_>) -> Result<(), Error> {
    fs::create_dir(dir).map_err(io_err("mkdir", dir))?;
    if let Some(seed) = new.seed {
        let all = crate::ir::Copy::whole("/");
        super::file::copy_into(dir, seed, &[], false, &all)?;
    }
    std::os::unix::fs::chown(dir, Some(new.uid), Some(new.gid)).map_err(io_err("chown", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(new.mode)).map_err(io_err("chmod", dir))?;
    Ok(())
}

/// An exclusive flock on the cache dir's lock file, held for the whole
/// RUN: `sharing=locked` waits for it, `sharing=private` only tries
/// (`None` when another RUN holds it).
fn lock(dir: &Path, wait: bool) -> Result<Option<File>, Error> {
    use rustix::fs::FlockOperation;
    let path = dir.with_extension("lock");
    let f = File::create(&path).map_err(io_err("create", &path))?;
    let op = if wait {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    match rustix::fs::flock(&f, op) {
        Ok(()) => Ok(Some(f)),
        Err(rustix::io::Errno::WOULDBLOCK) if !wait => Ok(None),
        Err(e) => Err(io_err("lock", &path)(e.into())),
    }
}
