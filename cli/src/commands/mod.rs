//! One module per command; each parses nothing itself (clap did) and turns
//! its arguments into library calls and output.

pub mod build;
pub mod build_flags;
pub mod cache_flags;
pub mod check;
pub mod commit;
pub mod container;
pub mod cp;
pub mod diff;
pub mod du;
pub mod exec;
pub mod export;
pub mod fsck;
pub mod healthcheck;
pub mod images;
pub mod inspect;
pub mod inspect_container;
pub mod kill;
pub mod load;
pub mod login;
pub mod logs;
pub mod mount_flag;
pub mod pause;
pub mod port;
pub mod prune;
pub mod ps;
pub mod pull;
pub mod push;
pub mod restart;
pub mod rm;
pub mod rmi;
pub mod run;
pub mod save;
pub mod start;
pub mod stop;
pub mod tag;
pub mod top;
pub mod volume;
pub mod wait;

use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use bake_store::layout::Store;
use bake_store::oci::Digest;
use bake_store::reference::Reference;
use bake_store::registry::RegistryOptions;

use crate::app::{Cli, Command, Global};

/// Runs the command; `Ok` carries the status to exit with (the container's,
/// for `bake run`).
pub fn dispatch(cli: &Cli) -> Result<ExitCode> {
    let g = &cli.global;
    match &cli.command {
        Command::Build(a) => build::run(g, a)?,
        Command::Images(a) => images::run(g, a)?,
        Command::Run(a) => return run::run(g, a),
        Command::Push(a) => push::run(g, a)?,
        Command::Pull(a) => pull::run(g, a)?,
        Command::Du(a) => du::run(g, a)?,
        Command::Prune(a) => prune::run(g, a)?,
        Command::Fsck(a) => return fsck::run(g, a),
        Command::Login(a) => login::login(g, a)?,
        Command::Logout(a) => login::logout(a)?,
        Command::Tag(a) => tag::run(g, a)?,
        Command::Rmi(a) => rmi::run(g, a)?,
        Command::Save(a) => save::run(g, a)?,
        Command::Load(a) => load::run(g, a)?,
        Command::Inspect(a) => inspect::run(g, a)?,
        Command::Ps(a) => ps::run(g, a)?,
        Command::Port(a) => port::run(g, a)?,
        Command::Logs(a) => logs::run(g, a)?,
        Command::Stop(a) => stop::run(g, a)?,
        Command::Kill(a) => kill::run(g, a)?,
        Command::Pause(a) => pause::pause(g, a)?,
        Command::Unpause(a) => pause::unpause(g, a)?,
        Command::Rm(a) => rm::run(g, a)?,
        Command::Wait(a) => return wait::run(g, a),
        Command::Exec(a) => return exec::run(g, a),
        Command::Start(a) => start::run(g, a)?,
        Command::Diff(a) => diff::run(g, a)?,
        Command::Cp(a) => cp::run(g, a)?,
        Command::Export(a) => export::run(g, a)?,
        Command::Commit(a) => commit::run(g, a)?,
        Command::Restart(a) => restart::run(g, a)?,
        Command::Top(a) => top::run(g, a)?,
        Command::Volume(a) => volume::run(g, a)?,
        Command::HealthMonitor(a) => healthcheck::monitor(g, a)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the store lives: `--root` / `BAKE_ROOT`, or the default location.
/// Container commands need only the path (their state is plain files).
pub fn store_root(global: &Global) -> std::path::PathBuf {
    global.root.clone().unwrap_or_else(Store::default_root)
}

/// The store at `--root` / `BAKE_ROOT`, or the default location.
pub fn open_store(global: &Global) -> Result<Store> {
    let root = store_root(global);
    Store::open(&root).with_context(|| format!("opening the store at {}", root.display()))
}

/// How to reach registries, from the global flags and the config file
/// (`crate::config`). A broken config file is reported and left out here;
/// pull, push and login fail on it ([`try_registry_options`]).
pub fn registry_options(global: &Global) -> RegistryOptions {
    try_registry_options(global).unwrap_or_else(|e| {
        eprintln!("warning: {e:#}: its registry settings are not used");
        RegistryOptions {
            insecure: global.insecure_registries.clone(),
            ..RegistryOptions::default()
        }
    })
}

/// [`registry_options`], failing on a broken config file.
pub fn try_registry_options(global: &Global) -> Result<RegistryOptions> {
    let mut options = RegistryOptions {
        insecure: global.insecure_registries.clone(),
        ..RegistryOptions::default()
    };
    crate::config::load()?.apply(&global.registry_mirrors, &mut options);
    Ok(options)
}

/// Parses an image reference, naming it in the error.
pub fn parse_reference(name: &str) -> Result<Reference> {
    name.parse::<Reference>()
        .map_err(|e| anyhow!("invalid reference {name:?}: {e}"))
}

/// A local image by name, id or id prefix (Docker's "No such image" otherwise).
pub fn resolve_local(store: &Store, name: &str) -> Result<Digest> {
    store
        .resolve(name)
        .with_context(|| format!("looking up image {name}"))?
        .ok_or_else(|| anyhow!("No such image: {name}"))
}
