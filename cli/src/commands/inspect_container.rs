//! `bake inspect CTR`: a container as `docker container inspect` shows it, so tools
//! that read Docker's fields (`.State.Status`, `.Config.Env`, `.Mounts`) read bake's.
//!
//! Only the fields bake knows are filled; Docker's other fields are left out rather
//! than faked.

use std::path::Path;

use bake_runner::{Exit, MountSpec, State, Status};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use super::container::Container;

/// Docker's zero time, shown for a time that has not happened yet.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// One container as `docker container inspect` shows it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    id: String,
    created: String,
    path: String,
    args: Vec<String>,
    state: StateView,
    image: String,
    /// Docker prefixes the name with `/`.
    name: String,
    config: ConfigView,
    host_config: HostConfigView,
    mounts: Vec<MountView>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StateView {
    status: &'static str,
    running: bool,
    paused: bool,
    restarting: bool,
    #[serde(rename = "OOMKilled")]
    oom_killed: bool,
    dead: bool,
    pid: u32,
    exit_code: i32,
    error: String,
    started_at: String,
    finished_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigView {
    hostname: String,
    user: String,
    env: Vec<String>,
    cmd: Vec<String>,
    image: String,
    working_dir: String,
    entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_timeout: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct HostConfigView {
    network_mode: String,
    privileged: bool,
    readonly_rootfs: bool,
    auto_remove: bool,
    init: bool,
    cap_add: Vec<String>,
    cap_drop: Vec<String>,
    memory: u64,
    pids_limit: u64,
    binds: Vec<String>,
    tmpfs: serde_json::Map<String, Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MountView {
    #[serde(rename = "Type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    source: String,
    destination: String,
    mode: String,
    #[serde(rename = "RW")]
    rw: bool,
    propagation: String,
}

/// RFC 3339 with nanoseconds, as Docker prints times.
fn rfc3339(ms: u64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms as i64).map_or_else(
        || ZERO_TIME.into(),
        |t| t.to_rfc3339_opts(SecondsFormat::Nanos, true),
    )
}

fn status_word(state: &State) -> &'static str {
    match state.status {
        Status::Created => "created",
        Status::Running => "running",
        Status::Exited => "exited",
    }
}

/// The mount as Docker reports it: anonymous volumes (under the container's
/// `volumes/`) and named volumes (under the store's `volumes/`) as `volume`.
fn mount_view(container_dir: &Path, store_root: &Path, m: &MountSpec) -> MountView {
    match m {
        MountSpec::Bind {
            source,
            target,
            readonly,
        } => {
            let named = source
                .strip_prefix(store_root.join("volumes"))
                .ok()
                .and_then(|rest| rest.components().next())
                .map(|c| c.as_os_str().to_string_lossy().into_owned());
            let anonymous = source.starts_with(container_dir.join("volumes"));
            let kind = if named.is_some() || anonymous {
                "volume"
            } else {
                "bind"
            };
            MountView {
                kind,
                name: named,
                source: source.display().to_string(),
                destination: target.clone(),
                mode: if *readonly {
                    "ro".into()
                } else {
                    String::new()
                },
                rw: !readonly,
                propagation: if kind == "bind" {
                    "rprivate".into()
                } else {
                    String::new()
                },
            }
        }
        MountSpec::Tmpfs { target, .. } => MountView {
            kind: "tmpfs",
            name: None,
            source: String::new(),
            destination: target.clone(),
            mode: String::new(),
            rw: true,
            propagation: String::new(),
        },
    }
}

/// The docker-shaped document of `c` whose state is `state`; `health` is its
/// `State.Health` object when it has a healthcheck.
pub fn describe(c: &Container, store_root: &Path, state: &State, health: Option<Value>) -> Value {
    let cfg = &c.config;
    let plan = &cfg.plan;
    let opts = &cfg.options;
    let mounts: Vec<MountView> = plan
        .mounts
        .iter()
        .map(|m| mount_view(&c.dir, store_root, m))
        .collect();
    let binds = mounts
        .iter()
        .filter(|m| m.kind != "tmpfs")
        .map(|m| {
            let src = m.name.clone().unwrap_or_else(|| m.source.clone());
            let ro = if m.rw { "" } else { ":ro" };
            format!("{src}:{}{ro}", m.destination)
        })
        .collect();
    let tmpfs = plan
        .mounts
        .iter()
        .filter_map(|m| match m {
            MountSpec::Tmpfs { target, size } => Some((
                target.clone(),
                Value::String(size.map_or_else(String::new, |s| format!("size={s}"))),
            )),
            MountSpec::Bind { .. } => None,
        })
        .collect();
    let running = state.status == Status::Running;
    let paused = super::pause::is_paused(state);
    let inspect = Inspect {
        id: cfg.id.clone(),
        created: rfc3339(cfg.created_ms),
        path: plan.args.first().cloned().unwrap_or_default(),
        args: plan.args.iter().skip(1).cloned().collect(),
        state: StateView {
            status: if paused { "paused" } else { status_word(state) },
            running,
            paused,
            restarting: false,
            oom_killed: false,
            dead: false,
            pid: if running { state.pid } else { 0 },
            exit_code: state.exit.map_or(0, |e: Exit| e.docker_code()),
            error: String::new(),
            started_at: if state.started_ms == 0 {
                ZERO_TIME.into()
            } else {
                rfc3339(state.started_ms)
            },
            finished_at: state.finished_ms.map_or_else(|| ZERO_TIME.into(), rfc3339),
            health,
        },
        image: cfg.image_id.clone(),
        name: format!("/{}", cfg.name),
        config: ConfigView {
            hostname: plan.hostname.clone(),
            user: plan.user.clone(),
            env: plan.env.clone(),
            // Containers made before the split was recorded show argv as Cmd.
            cmd: match &cfg.command {
                Some(c) => c.cmd.clone().unwrap_or_default(),
                None => plan.args.clone(),
            },
            image: cfg.image.clone(),
            working_dir: plan.cwd.clone(),
            entrypoint: cfg.command.as_ref().and_then(|c| c.entrypoint.clone()),
            stop_signal: cfg.stop_signal.clone(),
            stop_timeout: cfg.stop_timeout,
        },
        host_config: HostConfigView {
            network_mode: match plan.network {
                bake_runner::Network::None => "none".into(),
                bake_runner::Network::Bridge => "bridge".into(),
                _ => "host".into(),
            },
            privileged: plan.privileged,
            readonly_rootfs: plan.readonly_rootfs,
            auto_remove: opts.remove_after.is_some(),
            init: opts.init,
            cap_add: opts.cap_add.clone(),
            cap_drop: opts.cap_drop.clone(),
            memory: opts.limits.memory.unwrap_or(0),
            pids_limit: opts.limits.pids.unwrap_or(0),
            binds,
            tmpfs,
        },
        mounts,
    };
    serde_json::to_value(inspect).unwrap_or(Value::Null)
}

/// The document of the container named or identified by `key`, or `None` when no
/// container matches (the caller then looks for an image).
///
/// # Errors
/// None yet: a container whose files cannot be read is reported as not found.
pub fn find(global: &crate::app::Global, key: &str) -> anyhow::Result<Option<Value>> {
    let root = super::store_root(global);
    let Ok(c) = super::container::find(&root, key) else {
        return Ok(None);
    };
    let state = c.state();
    let health = super::healthcheck::current(&c).and_then(|h| serde_json::to_value(h).ok());
    Ok(Some(describe(&c, &root, &state, health)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_and_zero_when_unset() {
        assert_eq!(rfc3339(1_000), "1970-01-01T00:00:01.000000000Z");
        let state = State::default();
        assert_eq!(status_word(&state), "created");
    }

    #[test]
    fn volumes_and_binds_are_told_apart() {
        let dir = Path::new("/s/containers/abc");
        let store = Path::new("/s");
        let bind = |src: &str| MountSpec::Bind {
            source: src.into(),
            target: "/d".into(),
            readonly: true,
        };
        let named = mount_view(dir, store, &bind("/s/volumes/data/_data"));
        assert_eq!(
            (named.kind, named.name.as_deref()),
            ("volume", Some("data"))
        );
        assert!(!named.rw);
        let anon = mount_view(dir, store, &bind("/s/containers/abc/volumes/0"));
        assert_eq!((anon.kind, anon.name), ("volume", None));
        let host = mount_view(dir, store, &bind("/etc"));
        assert_eq!(host.kind, "bind");
    }
}
