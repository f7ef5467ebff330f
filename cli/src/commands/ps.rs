//! `bake ps`: the containers of the store, as Docker lists them.

use anyhow::Result;
use bake_runner::{State, Status};
use clap::Args;

use super::container::{self, Container};
use super::images::human_ago;
use crate::app::Global;

/// `bake ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default: only running ones).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only show container ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Do not truncate ids and commands.
    #[arg(long)]
    pub no_trunc: bool,
}

/// Prints the table (or the ids).
pub fn run(global: &Global, args: &PsArgs) -> Result<()> {
    let root = super::store_root(global);
    let now = bake_runner::now_ms();
    let mut rows = vec![[
        "CONTAINER ID".to_string(),
        "IMAGE".into(),
        "COMMAND".into(),
        "CREATED".into(),
        "STATUS".into(),
        "PORTS".into(),
        "NAMES".into(),
    ]];
    let mut out = String::new();
    for c in container::list(&root)? {
        let state = c.state();
        if !args.all && state.status != Status::Running {
            continue;
        }
        let id = if args.no_trunc {
            c.config.id.clone()
        } else {
            c.short_id().to_string()
        };
        if args.quiet {
            out.push_str(&id);
            out.push('\n');
            continue;
        }
        rows.push([
            id,
            c.config.image.clone(),
            command_column(&c, args.no_trunc),
            human_ago(seconds_between(c.config.created_ms, now)),
            status_column(&state, now)
                + &if super::pause::is_paused(&state) {
                    " (Paused)".to_string()
                } else {
                    super::healthcheck::ps_suffix(&c)
                },
            // Docker shows the mappings of running containers only.
            if state.status == Status::Running {
                super::port::ports_column(&c)
            } else {
                String::new()
            },
            c.config.name.clone(),
        ]);
    }
    if !args.quiet {
        out = super::images::table(&rows);
    }
    use std::io::Write;
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(())
}

fn seconds_between(from_ms: u64, to_ms: u64) -> i64 {
    (to_ms.saturating_sub(from_ms) / 1000) as i64
}

/// `"sh -c 'echo up…"`: argv joined, cut to 20 characters, quoted (Docker's column).
fn command_column(c: &Container, no_trunc: bool) -> String {
    let joined = c.config.plan.args.join(" ");
    let shown = if !no_trunc && joined.chars().count() > 20 {
        format!("{}…", joined.chars().take(19).collect::<String>())
    } else {
        joined
    };
    format!("\"{shown}\"")
}

/// `Up 3 seconds`, `Exited (0) 2 seconds ago`, `Created`.
pub fn status_column(state: &State, now_ms: u64) -> String {
    match state.status {
        Status::Created => "Created".into(),
        Status::Running => {
            let ago = human_ago(seconds_between(state.started_ms, now_ms));
            format!("Up {}", ago.trim_end_matches(" ago"))
        }
        Status::Exited => format!(
            "Exited ({}) {}",
            state.exit.map_or(0, |e| e.docker_code()),
            human_ago(seconds_between(
                state.finished_ms.unwrap_or(state.started_ms),
                now_ms
            ))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bake_runner::Exit;

    #[test]
    fn status_reads_like_docker() {
        let running = State {
            status: Status::Running,
            started_ms: 1_000,
            ..State::default()
        };
        assert_eq!(status_column(&running, 4_000), "Up 3 seconds");
        let exited = State {
            status: Status::Exited,
            exit: Some(Exit::Signal(15)),
            finished_ms: Some(2_000),
            ..running
        };
        assert_eq!(status_column(&exited, 4_500), "Exited (143) 2 seconds ago");
        assert_eq!(status_column(&State::default(), 0), "Created");
    }
}
