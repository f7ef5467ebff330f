//! `bake top CTR`: the processes of a running container, read from the host's
//! `/proc`: every process whose pid namespace is the container's (what `bake exec`
//! starts is in it too). Pids are the host's, as `docker top` shows them.

use std::path::Path;

use anyhow::{bail, Context, Result};
use bake_runner::Status;
use clap::Args;

use super::container;
use crate::app::Global;

/// `bake top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The container (name or id).
    pub container: String,
}

/// One row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// Host pid.
    pub pid: u32,
    /// User name (the host's `/etc/passwd`), or the uid.
    pub user: String,
    /// CPU time (user + system), `HH:MM:SS`.
    pub time: String,
    /// Command line, or `[comm]` for a process without one.
    pub cmd: String,
}

/// Prints the table.
pub fn run(global: &Global, args: &TopArgs) -> Result<()> {
    let root = super::store_root(global);
    let c = container::find(&root, &args.container)?;
    let state = c.state();
    if state.status != Status::Running {
        bail!("container {} is not running", args.container);
    }
    let procs = processes(state.pid)?;
    let mut rows = vec![[
        "PID".to_string(),
        "USER".into(),
        "TIME".into(),
        "COMMAND".into(),
    ]];
    for p in procs {
        rows.push([p.pid.to_string(), p.user, p.time, p.cmd]);
    }
    print!("{}", super::images::table(&rows));
    Ok(())
}

/// The processes in the pid namespace of host pid `pid1`, by pid.
///
/// # Errors
/// When the container's pid namespace cannot be read (it has exited).
pub fn processes(pid1: u32) -> Result<Vec<Process>> {
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid"));
    let theirs =
        ns(&pid1.to_string()).with_context(|| format!("reading the namespace of pid {pid1}"))?;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100, |t| t.max(1) as u64);
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").context("listing /proc")? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(pid) = name.parse::<u32>() else {
            continue;
        };
        // Gone in between, or another namespace.
        if ns(&name).ok().as_ref() != Some(&theirs) {
            continue;
        }
        let dir = Path::new("/proc").join(&name);
        let Some(p) = describe(pid, &dir, &passwd, ticks) else {
            continue;
        };
        out.push(p);
    }
    out.sort_by_key(|p| p.pid);
    Ok(out)
}

fn describe(pid: u32, dir: &Path, passwd: &str, ticks: u64) -> Option<Process> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    let (comm, cpu) = parse_stat(&stat)?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|u| u.parse::<u32>().ok())?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(Process {
        pid,
        user: user_name(passwd, uid),
        time: clock(cpu / ticks),
        cmd: if args.is_empty() {
            format!("[{comm}]")
        } else {
            args.join(" ")
        },
    })
}

/// `(comm, utime + stime in ticks)` from `/proc/<pid>/stat` (the comm may hold
/// spaces and parentheses: fields are counted after the last `)`) (pure).
pub fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // After the comm: state(3) ppid(4) … utime(14) stime(15), 1-based in proc(5).
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// The name of `uid` in a passwd file, or the number (pure).
pub fn user_name(passwd: &str, uid: u32) -> String {
    passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let id = f.nth(1)?.parse::<u32>().ok()?;
            (id == uid).then(|| name.to_string())
        })
        .unwrap_or_else(|| uid.to_string())
}

/// `HH:MM:SS`, as ps prints TIME (pure).
pub fn clock(seconds: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_comm() {
        let stat = "42 (my (odd) cmd) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5";
        assert_eq!(parse_stat(stat), Some(("my (odd) cmd".into(), 300)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn users_and_times_read_like_ps() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/sbin/nologin\n";
        assert_eq!(user_name(passwd, 0), "root");
        assert_eq!(user_name(passwd, 1000), "1000");
        assert_eq!(clock(3725), "01:02:05");
    }
}
