//! `bake exec`: a command in a running container, with the container's environment,
//! user, working directory and capability rules unless overridden.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{bail, Result};
use bake_runner::{Exec, Status, Stdio};
use clap::Args;

use super::container;
use super::run::environment;
use crate::app::Global;

/// `bake exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Keep stdin open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// User (`name|uid[:group|gid]`; default: the container's).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory (default: the container's).
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// Set an environment variable (`K=V`, or `K` to take it from the host).
    #[arg(short = 'e', long = "env", value_name = "K[=V]")]
    pub env: Vec<String>,
    /// Give the command all capabilities.
    #[arg(long)]
    pub privileged: bool,
    /// The container, then the command and its arguments.
    #[arg(
        value_name = "CONTAINER COMMAND [ARG...]",
        required = true,
        num_args = 2..,
        trailing_var_arg = true
    )]
    pub container_and_command: Vec<String>,
}

/// Runs the command and returns its exit status (Docker's 126/127 when it cannot be
/// executed or found, 125 for bake's own errors).
pub fn run(global: &Global, args: &ExecArgs) -> Result<ExitCode> {
    match exec(global, args) {
        Ok(code) => Ok(code),
        Err(err) => Ok(crate::exit::fail(
            &err,
            crate::exit::run_code(&err),
            global.debug,
        )),
    }
}

fn exec(global: &Global, args: &ExecArgs) -> Result<ExitCode> {
    bake_runner::check_support()?;
    let root = super::store_root(global);
    let key = &args.container_and_command[0];
    let c = container::find(&root, key)?;
    let state = c.state();
    if state.status != Status::Running {
        bail!("container {key} is not running");
    }
    if bake_runner::is_paused(state.pid) {
        bail!("container {key} is paused, unpause the container before exec");
    }
    let plan = &c.config.plan;
    let spec = Exec {
        pid: state.pid,
        args: args.container_and_command[1..].to_vec(),
        env: environment(&plan.env, &args.env, |k| std::env::var(k).ok()),
        cwd: args.workdir.clone().unwrap_or_else(|| plan.cwd.clone()),
        user: args.user.clone().unwrap_or_else(|| plan.user.clone()),
        privileged: args.privileged || plan.privileged,
        cap_add: c.config.options.cap_add.clone(),
        cap_drop: c.config.options.cap_drop.clone(),
        seccomp: c.config.options.seccomp.clone(),
    };
    if !spec.cwd.starts_with('/') {
        bail!("the working directory {:?} is not absolute", spec.cwd);
    }
    let stdio = if args.interactive && args.tty && std::io::stdin().is_terminal() {
        Stdio::Tty
    } else {
        Stdio::Inherit
    };
    let exit = bake_runner::exec(&spec, stdio, &mut |_, _| {})?;
    Ok(crate::exit::container_code(&exit))
}
