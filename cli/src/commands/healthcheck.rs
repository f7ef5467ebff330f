//! HEALTHCHECK for containers started in the background (`bake run -d`, `bake
//! start`, `bake restart`): the image's probe, or `--health-cmd` and friends, run at
//! the interval; the status (`starting`, `healthy`, `unhealthy`), the failing streak
//! and the last five results are kept in `STORE/containers/<id>/health.json`, which
//! `bake ps` (`Up 5 seconds (healthy)`) and `bake inspect` (`State.Health`) read.
//!
//! Who runs the probe without a daemon: a *health monitor*, one small detached
//! process per running container (`bake __health-monitor ID`, its own session,
//! started right after the container by whoever started it). It runs each probe as
//! `bake exec`, so a probe gets exactly exec's treatment (the container's
//! namespaces, cgroup, user, capabilities and seccomp), and kills it at the timeout.
//! It exits when the container is no longer running or was restarted (the new start
//! brings its own monitor).
//!
//! Why not the container's supervisor, the other candidate: it is the parent of the
//! container's pid namespace and sits in a signal-driven wait (relaying signals,
//! recording the exit); a timer loop that forks probes there would widen the one
//! process every container depends on. A monitor that dies takes only the health
//! reports with it (the status stops changing), never the container.
//!
//! Foreground containers (`bake run` without `-d`) get no probes: their status is
//! what the user watches.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bake_runner::Status;
use bake_store::oci::Healthcheck;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use serde::{Deserialize, Serialize};

use super::container::{self, Container};
use crate::app::Global;

/// Docker's defaults.
const DEFAULT_INTERVAL_MS: u64 = 30_000;
const DEFAULT_TIMEOUT_MS: u64 = 30_000;
const DEFAULT_START_INTERVAL_MS: u64 = 5_000;
const DEFAULT_RETRIES: u32 = 3;
/// Results kept in the log, and bytes of output kept per result (Docker's).
const LOG_ENTRIES: usize = 5;
const OUTPUT_LIMIT: usize = 4096;

/// `bake run`'s health flags (Docker's).
#[derive(Debug, Args, Default, Clone)]
pub struct HealthFlags {
    /// Command to run to check health (run with `/bin/sh -c`).
    #[arg(long = "health-cmd", value_name = "COMMAND")]
    pub cmd: Option<String>,
    /// Time between checks (`30s`, `1m30s`).
    #[arg(long = "health-interval", value_name = "DURATION")]
    pub interval: Option<String>,
    /// Longest a check may run before it counts as failed.
    #[arg(long = "health-timeout", value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Consecutive failures that make the container unhealthy.
    #[arg(long = "health-retries", value_name = "N")]
    pub retries: Option<u32>,
    /// Time to start up during which failures do not count.
    #[arg(long = "health-start-period", value_name = "DURATION")]
    pub start_period: Option<String>,
    /// Time between checks during the start period.
    #[arg(long = "health-start-interval", value_name = "DURATION")]
    pub start_interval: Option<String>,
    /// Disable the image's HEALTHCHECK.
    #[arg(long = "no-healthcheck")]
    pub disabled: bool,
}

/// A container's probe, fixed when it is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// argv for `bake exec` (`CMD-SHELL x` becomes `/bin/sh -c x`).
    pub args: Vec<String>,
    /// Milliseconds between checks.
    pub interval_ms: u64,
    /// Milliseconds a check may take.
    pub timeout_ms: u64,
    /// Milliseconds after the start during which failures do not count.
    pub start_period_ms: u64,
    /// Milliseconds between checks during the start period.
    pub start_interval_ms: u64,
    /// Failures in a row that make it unhealthy.
    pub retries: u32,
}

/// `State.Health`, as Docker shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// Failed checks in a row.
    pub failing_streak: u32,
    /// The last results, oldest first.
    pub log: Vec<Check>,
}

/// One check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Check {
    /// RFC 3339.
    pub start: String,
    /// RFC 3339.
    pub end: String,
    /// The probe's exit code; -1 when it timed out or could not run.
    pub exit_code: i64,
    /// Its output (stdout and stderr), cut to 4 KiB.
    pub output: String,
}

/// `health.json`: the health of the run whose pid 1 is `pid`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Record {
    pid: u32,
    health: Health,
}

/// A Go duration (`1m30s`, `500ms`, `2h`) in milliseconds (pure).
///
/// # Errors
/// Text that is no such duration.
pub fn duration_ms(text: &str) -> Result<u64> {
    let bad = || anyhow!("invalid duration {text:?} (use e.g. 30s, 1m30s, 500ms)");
    if text == "0" {
        return Ok(0);
    }
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            _ => return Err(bad()),
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    Ok(total as u64)
}

fn ns_to_ms(ns: i64) -> u64 {
    (ns.max(0) / 1_000_000) as u64
}

/// The probe of a new container: the image's HEALTHCHECK with the flags applied;
/// `None` when there is none, it is `NONE`, or `--no-healthcheck` (pure).
///
/// # Errors
/// `--no-healthcheck` with `--health-*`, bad durations, an unknown test form.
pub fn resolve(image: Option<&Healthcheck>, flags: &HealthFlags) -> Result<Option<Probe>> {
    let any_flag = flags.cmd.is_some()
        || flags.interval.is_some()
        || flags.timeout.is_some()
        || flags.retries.is_some()
        || flags.start_period.is_some()
        || flags.start_interval.is_some();
    if flags.disabled {
        if any_flag {
            bail!("--no-healthcheck conflicts with --health-* options");
        }
        return Ok(None);
    }
    let base = image.cloned().unwrap_or_default();
    let test = match &flags.cmd {
        Some(cmd) => vec!["CMD-SHELL".to_string(), cmd.clone()],
        None => base.test.clone(),
    };
    let args = match test.split_first() {
        None => return Ok(None),
        Some((kind, _)) if kind == "NONE" => return Ok(None),
        Some((kind, rest)) if kind == "CMD" => rest.to_vec(),
        Some((kind, rest)) if kind == "CMD-SHELL" => {
            let mut argv = vec!["/bin/sh".to_string(), "-c".to_string()];
            argv.push(rest.join(" "));
            argv
        }
        Some((kind, _)) => bail!("unsupported healthcheck test type {kind:?}"),
    };
    if args.is_empty() {
        return Ok(None);
    }
    let pick = |flag: &Option<String>, image_ns: i64, default: u64| -> Result<u64> {
        match flag {
            Some(text) => duration_ms(text),
            None if image_ns > 0 => Ok(ns_to_ms(image_ns)),
            None => Ok(default),
        }
    };
    let interval_ms = pick(&flags.interval, base.interval, DEFAULT_INTERVAL_MS)?;
    if interval_ms == 0 {
        bail!("--health-interval must be positive");
    }
    Ok(Some(Probe {
        args,
        interval_ms,
        timeout_ms: pick(&flags.timeout, base.timeout, DEFAULT_TIMEOUT_MS)?.max(1),
        start_period_ms: pick(&flags.start_period, base.start_period, 0)?,
        start_interval_ms: pick(
            &flags.start_interval,
            base.start_interval,
            DEFAULT_START_INTERVAL_MS,
        )?
        .max(1),
        retries: flags
            .retries
            .or(u32::try_from(base.retries).ok().filter(|r| *r > 0))
            .unwrap_or(DEFAULT_RETRIES)
            .max(1),
    }))
}

/// Docker's rules for one result (pure): success makes it healthy; a failure counts
/// unless it happened in the start period while still `starting`; `retries`
/// failures in a row make it unhealthy.
pub fn record(health: &mut Health, result: Check, in_start_period: bool, retries: u32) {
    let ok = result.exit_code == 0;
    health.log.push(result);
    if health.log.len() > LOG_ENTRIES {
        let extra = health.log.len() - LOG_ENTRIES;
        health.log.drain(..extra);
    }
    if ok {
        health.status = "healthy".into();
        health.failing_streak = 0;
    } else if in_start_period && health.status == "starting" {
        // Not counted: the container is still starting.
    } else {
        health.failing_streak += 1;
        if health.failing_streak >= retries {
            health.status = "unhealthy".into();
        }
    }
}

fn health_path(c: &Container) -> PathBuf {
    c.dir.join("health.json")
}

/// The health of `c`'s current run, if it has a probe and a monitor reported.
pub fn current(c: &Container) -> Option<Health> {
    c.config.healthcheck.as_ref()?;
    let state = c.state();
    let record: Record = std::fs::read(health_path(c))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())?;
    (record.pid == state.pid).then_some(record.health)
}

/// `ps`'s suffix: ` (healthy)`, ` (unhealthy)`, ` (health: starting)`, or nothing.
pub fn ps_suffix(c: &Container) -> String {
    if c.state().status != Status::Running {
        return String::new();
    }
    match current(c) {
        Some(h) if h.status == "starting" => " (health: starting)".into(),
        Some(h) => format!(" ({})", h.status),
        None => String::new(),
    }
}

fn write_record(c: &Container, record: &Record) -> Result<()> {
    let path = health_path(c);
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec(record)?)?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

/// Starts the monitor of `c` (which must be running) if it has a probe.
///
/// # Errors
/// When the monitor process cannot be spawned.
pub fn spawn_monitor(c: &Container) -> Result<()> {
    if c.config.healthcheck.is_none() {
        return Ok(());
    }
    // `STORE/containers/<id>`.
    let store_root = c
        .dir
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("{} is not in a store", c.dir.display()))?;
    let mut command = Command::new("/proc/self/exe");
    command
        .arg("--root")
        .arg(store_root)
        .arg(MONITOR_COMMAND)
        .arg(&c.config.id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid(2) is async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Not waited for: it outlives this command and is re-parented to init.
    command.spawn().context("starting the health monitor")?;
    Ok(())
}

/// The hidden subcommand the monitor runs as.
pub const MONITOR_COMMAND: &str = "__health-monitor";

/// `bake __health-monitor ID` (hidden).
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The container's id.
    pub container: String,
}

/// The monitor's loop (see the module doc). Returns when the container stops.
pub fn monitor(global: &Global, args: &MonitorArgs) -> Result<()> {
    let root = super::store_root(global);
    let c = container::find(&root, &args.container)?;
    let Some(probe) = c.config.healthcheck.clone() else {
        return Ok(());
    };
    // Until the supervisor has recorded the start (it does before `start` returns).
    let state = c.state();
    if state.status != Status::Running {
        return Ok(());
    }
    let pid = state.pid;
    let started = Instant::now()
        - Duration::from_millis(bake_runner::now_ms().saturating_sub(state.started_ms));
    let mut rec = Record {
        pid,
        health: Health {
            status: "starting".into(),
            ..Health::default()
        },
    };
    write_record(&c, &rec)?;
    let running = || {
        let s = c.state();
        s.status == Status::Running && s.pid == pid
    };
    loop {
        let in_start = started.elapsed() < Duration::from_millis(probe.start_period_ms);
        let wait = if in_start {
            probe.start_interval_ms.min(probe.interval_ms)
        } else {
            probe.interval_ms
        };
        let until = Instant::now() + Duration::from_millis(wait);
        while Instant::now() < until {
            if !running() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100).min(until - Instant::now()));
        }
        if !running() {
            return Ok(());
        }
        let result = check(&root, &c, &probe);
        let in_start = started.elapsed() < Duration::from_millis(probe.start_period_ms);
        record(&mut rec.health, result, in_start, probe.retries);
        // Not after the container is gone: `rm` may have removed its directory.
        if !running() {
            return Ok(());
        }
        write_record(&c, &rec)?;
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Runs the probe once, as `bake exec`, killed at the timeout.
fn check(root: &Path, c: &Container, probe: &Probe) -> Check {
    let start = Utc::now();
    let outcome = (|| -> Result<(i64, String)> {
        let (mut reader, writer) = std::io::pipe()?;
        let mut child = Command::new("/proc/self/exe")
            .arg("--root")
            .arg(root)
            .arg("exec")
            .arg(&c.config.id)
            .args(&probe.args)
            .stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .spawn()?;
        let collector = std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = reader.read_to_end(&mut out);
            out
        });
        let deadline = Instant::now() + Duration::from_millis(probe.timeout_ms);
        let code = loop {
            if let Some(status) = child.try_wait()? {
                break i64::from(status.code().unwrap_or(-1));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let _ = collector.join();
                return Ok((
                    -1,
                    format!("Health check exceeded timeout ({}ms)", probe.timeout_ms),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = collector.join().unwrap_or_default();
        out.truncate(OUTPUT_LIMIT);
        Ok((code, String::from_utf8_lossy(&out).into_owned()))
    })();
    let (exit_code, output) = outcome.unwrap_or_else(|e| (-1, format!("{e:#}")));
    Check {
        start: rfc3339(start),
        end: rfc3339(Utc::now()),
        exit_code,
        output,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(duration_ms("30s").unwrap(), 30_000);
        assert_eq!(duration_ms("1m30s").unwrap(), 90_000);
        assert_eq!(duration_ms("500ms").unwrap(), 500);
        assert_eq!(duration_ms("1.5h").unwrap(), 5_400_000);
        assert_eq!(duration_ms("0").unwrap(), 0);
        for bad in ["", "10", "s", "1x", "-1s"] {
            assert!(duration_ms(bad).is_err(), "{bad}");
        }
    }

    fn image(test: &[&str]) -> Healthcheck {
        Healthcheck {
            test: test.iter().map(|s| s.to_string()).collect(),
            interval: 2_000_000_000,
            retries: 2,
            ..Healthcheck::default()
        }
    }

    #[test]
    fn the_image_probe_with_flags_applied() {
        let p = resolve(
            Some(&image(&["CMD-SHELL", "test -f /ok"])),
            &HealthFlags::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.args, ["/bin/sh", "-c", "test -f /ok"]);
        assert_eq!((p.interval_ms, p.timeout_ms, p.retries), (2_000, 30_000, 2));
        let flags = HealthFlags {
            cmd: Some("true".into()),
            interval: Some("1s".into()),
            retries: Some(5),
            ..HealthFlags::default()
        };
        let p = resolve(Some(&image(&["CMD", "/check", "-x"])), &flags)
            .unwrap()
            .unwrap();
        assert_eq!(p.args, ["/bin/sh", "-c", "true"]);
        assert_eq!((p.interval_ms, p.retries), (1_000, 5));
        let p = resolve(
            Some(&image(&["CMD", "/check", "-x"])),
            &HealthFlags::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.args, ["/check", "-x"]);
        assert_eq!(
            resolve(Some(&image(&["NONE"])), &HealthFlags::default()).unwrap(),
            None
        );
        assert_eq!(resolve(None, &HealthFlags::default()).unwrap(), None);
        let off = HealthFlags {
            disabled: true,
            ..HealthFlags::default()
        };
        assert_eq!(resolve(Some(&image(&["CMD", "x"])), &off).unwrap(), None);
        let both = HealthFlags {
            cmd: Some("x".into()),
            ..off
        };
        assert!(resolve(None, &both).is_err());
    }

    fn result(code: i64) -> Check {
        Check {
            exit_code: code,
            ..Check::default()
        }
    }

    #[test]
    fn status_follows_dockers_rules() {
        let mut h = Health {
            status: "starting".into(),
            ..Health::default()
        };
        record(&mut h, result(1), true, 2);
        assert_eq!((h.status.as_str(), h.failing_streak), ("starting", 0));
        record(&mut h, result(1), false, 2);
        assert_eq!((h.status.as_str(), h.failing_streak), ("starting", 1));
        record(&mut h, result(1), false, 2);
        assert_eq!((h.status.as_str(), h.failing_streak), ("unhealthy", 2));
        record(&mut h, result(0), false, 2);
        assert_eq!((h.status.as_str(), h.failing_streak), ("healthy", 0));
        for _ in 0..10 {
            record(&mut h, result(0), false, 2);
        }
        assert_eq!(h.log.len(), LOG_ENTRIES);
    }
}
