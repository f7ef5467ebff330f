//! The command line, as clap derive definitions.
//!
//! Flag names and short forms follow `docker`/`docker buildx` so that a
//! user's muscle memory works; only what bake implements is declared, so an
//! unsupported Docker flag fails at parse time instead of being ignored.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// bake: build container images from Dockerfiles without a daemon, and run them.
#[derive(Debug, Parser)]
#[command(name = "bake", version, about, propagate_version = true)]
pub struct Cli {
    /// Options every command accepts.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by all commands.
#[derive(Debug, Args)]
pub struct Global {
    /// Store root (default: /var/lib/bake for root, else $XDG_DATA_HOME/bake).
    #[arg(long, global = true, env = "BAKE_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Registry host to talk to over plain HTTP (localhost always is).
    #[arg(long = "insecure-registry", global = true, value_name = "HOST")]
    pub insecure_registries: Vec<String>,
    /// Mirror of Docker Hub that pulls of `docker.io/...` try first
    /// (repeatable; also `mirrors` in the config file).
    #[arg(long = "registry-mirror", global = true, value_name = "HOST")]
    pub registry_mirrors: Vec<String>,
    /// Print errors with their debug representation.
    #[arg(long, global = true)]
    pub debug: bool,
}

/// The commands.
// Parsed once per process: the size of `RunArgs` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image from a Dockerfile.
    Build(BuildArgs),
    /// List images.
    Images(ImagesArgs),
    /// Run a command in a new container.
    Run(RunArgs),
    /// Upload an image to a registry.
    Push(PushArgs),
    /// Download an image from a registry.
    Pull(PullArgs),
    /// Show what uses space in the store.
    Du(crate::commands::du::DuArgs),
    /// Remove what no tag, cache record or container needs.
    Prune(crate::commands::prune::PruneArgs),
    /// Verify the store (every blob's digest, every snapshot and tag).
    Fsck(crate::commands::fsck::FsckArgs),
    /// Save credentials for a registry (in the docker config.json).
    Login(crate::commands::login::LoginArgs),
    /// Remove the saved credentials of a registry.
    Logout(crate::commands::login::LogoutArgs),
    /// Create a tag TARGET that refers to SOURCE.
    Tag(TagArgs),
    /// Remove image tags.
    Rmi(RmiArgs),
    /// Save images to a docker-archive tar (stdout by default).
    Save(SaveArgs),
    /// Load images from a docker-archive tar (stdin by default).
    Load(LoadArgs),
    /// Show low-level information about containers or images, as JSON.
    Inspect(InspectArgs),
    /// List containers.
    Ps(crate::commands::ps::PsArgs),
    /// List a container's published ports.
    Port(crate::commands::port::PortArgs),
    /// Show a container's output.
    Logs(crate::commands::logs::LogsArgs),
    /// Stop running containers (the stop signal, then SIGKILL after a timeout).
    Stop(crate::commands::stop::StopArgs),
    /// Send a signal to running containers.
    Kill(crate::commands::kill::KillArgs),
    /// Freeze every process of running containers.
    Pause(crate::commands::pause::PauseArgs),
    /// Thaw paused containers.
    Unpause(crate::commands::pause::PauseArgs),
    /// Remove containers.
    Rm(crate::commands::rm::RmArgs),
    /// Wait for containers to exit and print their exit codes.
    Wait(crate::commands::wait::WaitArgs),
    /// Run a command in a running container.
    Exec(crate::commands::exec::ExecArgs),
    /// Start stopped containers (in the background).
    Start(crate::commands::start::StartArgs),
    /// List the files a container changed (A added, C changed, D deleted).
    Diff(crate::commands::diff::DiffArgs),
    /// Copy files between a container and the host (`-`: a tar on stdin/stdout).
    Cp(crate::commands::cp::CpArgs),
    /// Write a container's file system as a tar.
    Export(crate::commands::export::ExportArgs),
    /// Make an image from a container's changes.
    Commit(crate::commands::commit::CommitArgs),
    /// Stop and start containers again.
    Restart(crate::commands::restart::RestartArgs),
    /// Show the processes of a running container.
    Top(crate::commands::top::TopArgs),
    /// Manage named volumes.
    Volume(crate::commands::volume::VolumeArgs),
    /// Runs a container's health checks (started by `run -d` and `start`).
    #[command(name = "__health-monitor", hide = true)]
    HealthMonitor(crate::commands::healthcheck::MonitorArgs),
}

/// How build progress is shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// `tty` on a terminal, `plain` otherwise.
    #[default]
    Auto,
    /// BuildKit-style numbered lines on stderr.
    Plain,
    /// Interactive spinners (needs a terminal).
    Tty,
    /// Nothing but the image id on stdout.
    Quiet,
    /// One JSON object per solver event on stderr.
    Rawjson,
}

/// `bake build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The build context directory.
    #[arg(value_name = "PATH")]
    pub context: PathBuf,
    /// Dockerfile (default: PATH/Dockerfile; `-` reads stdin).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Name and optionally tag the image (`name:tag`); repeatable.
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,
    /// Set a build-time variable (`K=V`, or `K` to take it from the environment).
    #[arg(long = "build-arg", value_name = "K[=V]")]
    pub build_args: Vec<String>,
    /// Build this stage.
    #[arg(long)]
    pub target: Option<String>,
    /// Target platform (only the host's is supported).
    #[arg(long)]
    pub platform: Option<String>,
    /// Do not use the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Progress output.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Print only the image id (same as `--progress=quiet`).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Print the build graph as JSON and exit without building.
    #[arg(long)]
    pub print_ir: bool,
    /// Run the Dockerfile's lint checks only, without building; exit 1 if
    /// any rule is violated.
    #[arg(long)]
    pub check: bool,
    /// How many vertices to run in parallel (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Memory limit for each RUN (`512m`, `2g`; cgroup v1 or v2), so that
    /// parallel steps cannot exhaust a CI runner. Not part of cache keys.
    #[arg(short = 'm', long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Write the image id to this file.
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Where the image goes: `type=image|oci|docker|local|tar,dest=…`; repeatable.
    #[arg(short = 'o', long = "output", value_name = "type=TYPE,dest=PATH")]
    pub outputs: Vec<crate::output::OutputSpec>,
    /// Push the `-t` names after the build.
    #[arg(long)]
    pub push: bool,
    /// Write the build's digests and names to this file as JSON (like buildx).
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Export the build cache: `type=local,dest=DIR`, `type=registry,ref=REF` or `type=inline`, with `mode=min|max` and `cache-mounts=true`; repeatable.
    #[arg(long = "cache-to", value_name = "type=TYPE,…")]
    pub cache_to: Vec<String>,
    /// Import a build cache: `type=local,src=DIR` or `type=registry,ref=REF` (or just REF); repeatable.
    #[arg(long = "cache-from", value_name = "type=TYPE,…")]
    pub cache_from: Vec<String>,
    /// Layer compression for `--push` and archive outputs.
    #[command(flatten)]
    pub compression: crate::output::CompressionArgs,
    /// A secret for `RUN --mount=type=secret`: `id=ID,src=PATH` or `id=ID,env=VAR`; repeatable.
    #[arg(long = "secret", value_name = "id=ID,src=PATH|env=VAR")]
    pub secrets: Vec<String>,
    /// An SSH agent socket for `RUN --mount=type=ssh`: `default` ($SSH_AUTH_SOCK) or `ID=SOCKET`; repeatable.
    #[arg(long = "ssh", value_name = "ID[=SOCKET]")]
    pub ssh: Vec<String>,
    /// Do not use the cache for these stages (names or indexes, comma-separated).
    #[arg(long = "no-cache-filter", value_name = "STAGE[,STAGE]")]
    pub no_cache_filter: Vec<String>,
    /// Re-resolve base images from the registry even when tagged locally.
    #[arg(long)]
    pub pull: bool,
}

/// `bake images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only show image ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show full image ids.
    #[arg(long)]
    pub no_trunc: bool,
    /// Only images of this repository (`name` or `name:tag`).
    pub repository: Option<String>,
}

/// `bake run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Run in the background and print the container id.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Name the container (default: a generated `adjective_name`).
    #[arg(long)]
    pub name: Option<String>,
    /// Read environment variables from a file (`K=V` or `K` lines, `#` comments).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Mount a tmpfs (`/path[:size=N,mode=M]`).
    #[arg(long = "tmpfs", value_name = "PATH[:OPTS]")]
    pub tmpfs: Vec<String>,
    /// Attach a mount (`type=bind,source=…,target=…[,readonly]`, `type=tmpfs,target=…`
    /// or `type=volume,source=NAME,target=…[,readonly]`).
    #[arg(long = "mount", value_name = "SPEC")]
    pub mounts: Vec<String>,
    /// Add a Linux capability (`NET_ADMIN`, `ALL`).
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a Linux capability (`CHOWN`, `ALL`).
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Run a minimal init as pid 1 that reaps zombies and forwards signals.
    #[arg(long)]
    pub init: bool,
    /// Signal `bake stop` sends first (default: the image's STOPSIGNAL, else SIGTERM).
    #[arg(long = "stop-signal", value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds `bake stop` waits before SIGKILL (default 10).
    #[arg(long = "stop-timeout", value_name = "SECONDS")]
    pub stop_timeout: Option<u64>,
    /// Limit the number of processes in the container (cgroup pids).
    #[arg(long = "pids-limit", value_name = "N")]
    pub pids_limit: Option<i64>,
    /// CPU limit, in CPUs (`0.5`, `2`): a CFS quota.
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// Memory limit (`512m`, `1g`, bytes).
    #[arg(short = 'm', long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Keep stdin open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set an environment variable (`K=V`, or `K` to take it from the host).
    #[arg(short = 'e', long = "env", value_name = "K[=V]")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// User (`name|uid[:group|gid]`).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Bind mount a host path (`/host:/ctr[:ro]`), mount a named volume
    /// (`name:/ctr[:ro]`, created on first use) or an anonymous one (`/ctr`).
    #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:ro]")]
    pub volumes: Vec<String>,
    /// Network: `host`, `none` or `bridge` (slirp4netns); default: `bridge` when
    /// ports are published, else `host`.
    #[arg(long, default_value = "default")]
    pub network: String,
    /// Publish a container port on the host (`[hostip:][hostport:]ctrport[/udp]`).
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    pub publish: Vec<String>,
    /// Publish every EXPOSEd port of the image on a free host port.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Security options: `seccomp=unconfined`, `seccomp=PROFILE.json`, `no-new-privileges`.
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opts: Vec<String>,
    /// Overwrite the image's ENTRYPOINT.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Container host name (default: the short container id).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Add a custom host-to-IP mapping (`host:ip`).
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_hosts: Vec<String>,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Give the container all capabilities.
    #[arg(long)]
    pub privileged: bool,
    /// HEALTHCHECK settings.
    #[command(flatten)]
    pub health: crate::commands::healthcheck::HealthFlags,
    /// The image, then the command and its arguments (default: the
    /// image's CMD). One list, so that everything after the image belongs to
    /// the command even when it looks like a flag (`bake run img -x`), as
    /// with docker.
    #[arg(
        value_name = "IMAGE [COMMAND [ARG...]]",
        required = true,
        trailing_var_arg = true
    )]
    pub image_and_command: Vec<String>,
}

impl RunArgs {
    /// The image to run.
    pub fn image(&self) -> &str {
        &self.image_and_command[0]
    }

    /// The command given after the image, if any.
    pub fn command(&self) -> &[String] {
        &self.image_and_command[1..]
    }
}

/// `bake push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Local image name, which also names the registry and repository.
    pub name: String,
    /// Layer compression.
    #[command(flatten)]
    pub compression: crate::output::CompressionArgs,
    /// Per-layer progress bars (`tty`, the default on a terminal) or lines.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

/// `bake pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Image reference.
    pub name: String,
    /// Platform to pull (only the host's is supported).
    #[arg(long)]
    pub platform: Option<String>,
    /// Print only the image reference.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Per-layer progress bars (`tty`, the default on a terminal) or lines.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

/// `bake tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// Existing image (name, id or id prefix).
    pub source: String,
    /// New name.
    pub target: String,
}

/// `bake rmi`.
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Tags (or image ids, which drop every tag of the image).
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `bake save`.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to this file (a directory for `oci-dir`) instead of stdout.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Archive format.
    #[arg(long, value_enum, default_value_t = crate::commands::save::Format::DockerArchive)]
    pub format: crate::commands::save::Format,
    /// Layer compression for the OCI formats (default gzip).
    #[command(flatten)]
    pub compression: crate::output::CompressionArgs,
    /// Images to save.
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `bake load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from this file (a docker-archive or OCI layout tar) or OCI
    /// layout directory instead of stdin.
    #[arg(short = 'i', long)]
    pub input: Option<PathBuf>,
    /// Suppress the load output.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `bake inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Only look for this kind of object (default: containers first, then images).
    #[arg(long = "type", value_enum)]
    pub kind: Option<crate::commands::inspect::Kind>,
    /// Containers or images to inspect.
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("bake").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn build_flags_parse_like_docker() {
        let cli = parse(&[
            "build",
            "-t",
            "app:1",
            "-t",
            "app:2",
            "-f",
            "d/Dockerfile",
            "--build-arg",
            "V=2",
            "--target",
            "final",
            "--progress=plain",
            "--no-cache",
            "ctx/",
        ]);
        let Command::Build(b) = cli.command else {
            panic!("not build")
        };
        assert_eq!(b.tags, ["app:1", "app:2"]);
        assert_eq!(b.file, Some(PathBuf::from("d/Dockerfile")));
        assert_eq!(b.build_args, ["V=2"]);
        assert_eq!(b.target.as_deref(), Some("final"));
        assert_eq!(b.progress, ProgressMode::Plain);
        assert!(b.no_cache);
        assert_eq!(b.context, PathBuf::from("ctx/"));
    }

    #[test]
    fn run_keeps_the_command_and_its_flags_verbatim() {
        let cli = parse(&[
            "run",
            "--rm",
            "-e",
            "K=V",
            "-w",
            "/tmp",
            "-u",
            "1000",
            "-v",
            "/h:/mnt",
            "app:1",
            "sh",
            "-c",
            "echo -n hi",
        ]);
        let Command::Run(r) = cli.command else {
            panic!("not run")
        };
        assert!(r.rm);
        assert_eq!(r.image(), "app:1");
        assert_eq!(r.command(), ["sh", "-c", "echo -n hi"]);
        assert_eq!(r.env, ["K=V"]);
        assert_eq!(r.user.as_deref(), Some("1000"));
    }

    #[test]
    fn combined_short_flags_work() {
        let Command::Run(r) = parse(&["run", "-it", "app:1", "sh"]).command else {
            panic!("not run")
        };
        assert!(r.interactive && r.tty);
        assert!(r.command() == ["sh"]);
    }

    #[test]
    fn everything_after_the_image_belongs_to_the_command() {
        let Command::Run(r) = parse(&["run", "--rm", "img", "-x", "--rm", "-e"]).command else {
            panic!("not run")
        };
        assert_eq!(r.image(), "img");
        assert_eq!(r.command(), ["-x", "--rm", "-e"]);
        let Command::Run(r) = parse(&["run", "img"]).command else {
            panic!("not run")
        };
        assert!(r.command().is_empty());
    }

    #[test]
    fn global_options_may_follow_the_command() {
        let cli = parse(&[
            "images",
            "--root",
            "/tmp/s",
            "--insecure-registry",
            "reg:5000",
        ]);
        assert_eq!(cli.global.root, Some(PathBuf::from("/tmp/s")));
        assert_eq!(cli.global.insecure_registries, ["reg:5000"]);
    }
}
