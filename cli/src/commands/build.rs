//! `bake build`: Dockerfile → frontend (parse, lower) → solver → image in
//! the store, tagged, the way `docker buildx build --load` behaves.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use bake_frontend::BuildOptions;
use bake_solver::ir::Platform;
use bake_solver::{SolveOptions, Solver};
use bake_store::oci::ImageConfig;
use bake_store::registry::PlatformSpec;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::app::{BuildArgs, Global, ProgressMode};
use crate::exit::Diagnosed;
use crate::progress::Progress;
use crate::resolver::StoreResolver;

/// Builds, stores and tags the image.
pub fn run(global: &Global, args: &BuildArgs) -> Result<()> {
    let caches = super::cache_flags::Caches::parse(&args.cache_to, &args.cache_from)?;
    let context = args
        .context
        .canonicalize()
        .with_context(|| format!("build context {}", args.context.display()))?;
    if !context.is_dir() {
        bail!(
            "build context {} is not a directory",
            args.context.display()
        );
    }
    let dockerfile = Dockerfile::read(args.file.as_deref(), &context)?;
    let dockerignore = read_dockerignore(&dockerfile.ignore_files(&context))?;
    let platform = platform(args.platform.as_deref())?;
    let build_args = build_args(&args.build_args, |k| std::env::var(k).ok());
    let source_date_epoch = source_date_epoch(&build_args)?;

    // Syntax errors are reported before anything needs root or a network.
    let ast = bake_frontend::parse(&dockerfile.text, &dockerfile.name)
        .map_err(|e| Diagnosed(miette::Report::new(e)))?;

    if !args.print_ir && !args.check {
        crate::host::prepare_mounts()?;
    }
    let store = Arc::new(super::open_store(global)?);
    // Held until the image is tagged: `bake prune` waits, so it never
    // deletes this build's inputs or fresh layers.
    let _lock = store.lock_shared()?;
    let mode = if args.quiet {
        ProgressMode::Quiet
    } else {
        args.progress
    };
    let progress = Progress::new(mode);
    let resolver =
        StoreResolver::new(&store, super::registry_options(global), &progress).pull(args.pull);
    let options = BuildOptions {
        file: dockerfile.name.clone(),
        build_args,
        target: args.target.clone(),
        platform,
        dockerignore,
        no_cache: args.no_cache,
    };
    let lowered = bake_frontend::lower(&ast, &options, &resolver);
    if args.check {
        return super::check::report(&ast, &options, lowered);
    }
    let (mut definition, warnings) = lowered.map_err(|e| Diagnosed(miette::Report::new(e)))?;
    super::build_flags::no_cache_filter(&ast, &mut definition, &args.no_cache_filter)?;
    let secrets = super::build_flags::secrets(&args.secrets, &args.ssh, |k| std::env::var(k).ok())?;
    if !progress.is_quiet() {
        for warning in &warnings {
            eprintln!("{warning}");
        }
    }
    super::check::enforce(&ast, &options, &warnings)?;
    if args.print_ir {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &definition)?;
        writeln!(out)?;
        return Ok(());
    }

    let remote_caches = caches.import(&store, &definition, global, &progress);
    let solver = Solver::new(
        Arc::clone(&store),
        SolveOptions {
            jobs: args.jobs.unwrap_or_else(default_jobs).max(1),
            no_cache: args.no_cache,
            source_date_epoch,
            secrets,
            remote_caches: remote_caches.clone(),
            run_limits: bake_runner::Limits {
                memory: args
                    .memory
                    .as_deref()
                    .map(super::run::memory_bytes)
                    .transpose()?,
                ..Default::default()
            },
        },
    );
    let locals = BTreeMap::from([("context".to_string(), context.clone())]);
    let solved = solver.solve(&definition, &locals, &|event| progress.event(&event));
    progress.finish();
    let solved = solved.context("failed to solve")?;

    let step = progress.begin("exporting to image");
    let mut config = definition.config.clone();
    finish_config(&mut config, &solved.layers, source_date_epoch);
    let id = caches.put_image(&store, &config, &solved, args)?;
    progress.status(&step, &format!("writing image {id} done"));
    for tag in &args.tags {
        let reference = super::parse_reference(tag)?;
        store
            .tag(&reference, &id)
            .with_context(|| format!("tagging {id} as {reference}"))?;
        progress.status(&step, &format!("naming to {reference} done"));
    }
    progress.end(step);
    progress.finish();
    crate::output::deliver(
        &store,
        global,
        args,
        &id,
        source_date_epoch,
        progress.is_quiet(),
    )?;
    caches.export(
        &store,
        &solved,
        &definition,
        &remote_caches,
        global,
        &progress,
    )?;

    if let Some(path) = &args.iidfile {
        std::fs::write(path, id.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if progress.is_quiet() {
        writeln!(std::io::stdout().lock(), "{id}")?;
    }
    Ok(())
}

/// The Dockerfile's text and the name errors call it by.
struct Dockerfile {
    /// As the user named it (`-f` as given, else `CONTEXT/Dockerfile`).
    name: String,
    /// Where it lives, `None` for stdin.
    path: Option<PathBuf>,
    text: String,
}

impl Dockerfile {
    /// `-f FILE` (relative to the working directory, as buildx does),
    /// `-f -` for stdin, or `CONTEXT/Dockerfile`.
    fn read(file: Option<&Path>, context: &Path) -> Result<Dockerfile> {
        if file == Some(Path::new("-")) {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the Dockerfile from stdin")?;
            return Ok(Dockerfile {
                name: "Dockerfile".into(),
                path: None,
                text,
            });
        }
        let path = file.map_or_else(|| context.join("Dockerfile"), Path::to_path_buf);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading Dockerfile {}", path.display()))?;
        Ok(Dockerfile {
            name: path.display().to_string(),
            path: Some(path),
            text,
        })
    }

    /// Ignore files in order of precedence: `<Dockerfile>.dockerignore`
    /// beside the Dockerfile, then the context's `.dockerignore`.
    fn ignore_files(&self, context: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if let Some(path) = &self.path {
            let mut beside = path.clone().into_os_string();
            beside.push(".dockerignore");
            files.push(PathBuf::from(beside));
        }
        files.push(context.join(".dockerignore"));
        files
    }
}

/// The patterns of the first ignore file that exists (none is fine).
fn read_dockerignore(candidates: &[PathBuf]) -> Result<Vec<String>> {
    for path in candidates {
        match std::fs::read_to_string(path) {
            Ok(text) => return Ok(bake_solver::dockerignore::parse_file(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    Ok(Vec::new())
}

/// `--build-arg K=V`, or `--build-arg K` taking K from the environment
/// (skipped when unset, as docker does).
fn build_args(flags: &[String], env: impl Fn(&str) -> Option<String>) -> BTreeMap<String, String> {
    flags
        .iter()
        .filter_map(|f| match f.split_once('=') {
            Some((k, v)) => Some((k.to_string(), v.to_string())),
            None => env(f).map(|v| (f.clone(), v)),
        })
        .collect()
}

/// `SOURCE_DATE_EPOCH` from `--build-arg` (BuildKit's way) or the environment.
fn source_date_epoch(build_args: &BTreeMap<String, String>) -> Result<Option<i64>> {
    let value = build_args
        .get("SOURCE_DATE_EPOCH")
        .cloned()
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        .filter(|v| !v.is_empty());
    value
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| anyhow!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"))
        })
        .transpose()
}

/// `--platform`: only the host's platform can be built (RUN executes
/// natively; there is no emulation).
fn platform(flag: Option<&str>) -> Result<Platform> {
    let host = Platform::host();
    let Some(flag) = flag else { return Ok(host) };
    let asked: PlatformSpec = flag
        .parse()
        .map_err(|e| anyhow!("invalid --platform {flag:?}: {e}"))?;
    if asked.os != host.os || asked.architecture != host.architecture {
        bail!(
            "--platform {flag}: bake builds only for the host platform {}/{} (no emulation)",
            host.os,
            host.architecture
        );
    }
    Ok(Platform {
        variant: asked.variant,
        ..host
    })
}

/// The build's number of parallel vertices when `--jobs` is not given.
fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Fills what only the end of a build knows: the layers and the time.
fn finish_config(
    config: &mut ImageConfig,
    layers: &[bake_store::snapshots::Layer],
    epoch: Option<i64>,
) {
    config.rootfs.diff_ids = layers.iter().map(|l| l.diff_id.clone()).collect();
    let created = created(epoch);
    config.created = Some(created.clone());
    for entry in &mut config.history {
        entry.created.get_or_insert_with(|| created.clone());
    }
}

/// RFC 3339 creation time: `SOURCE_DATE_EPOCH` for reproducible builds,
/// else now.
fn created(epoch: Option<i64>) -> String {
    match epoch.and_then(|e| DateTime::<Utc>::from_timestamp(e, 0)) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Secs, true),
        None => Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_args_take_values_or_the_environment() {
        let flags: Vec<String> = ["A=1", "B", "C", "D=x=y", "E="]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let env = |k: &str| (k == "B").then(|| "from-env".to_string());
        let got = build_args(&flags, env);
        let want: BTreeMap<String, String> =
            [("A", "1"), ("B", "from-env"), ("D", "x=y"), ("E", "")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn source_date_epoch_sets_a_fixed_creation_time() {
        assert_eq!(created(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(created(Some(1_700_000_000)), "2023-11-14T22:13:20Z");
        let args = BTreeMap::from([("SOURCE_DATE_EPOCH".to_string(), "12".to_string())]);
        assert_eq!(source_date_epoch(&args).unwrap(), Some(12));
        let bad = BTreeMap::from([("SOURCE_DATE_EPOCH".to_string(), "soon".to_string())]);
        assert!(source_date_epoch(&bad).is_err());
    }

    #[test]
    fn only_the_host_platform_is_accepted() {
        let host = Platform::host();
        let spec = format!("{}/{}", host.os, host.architecture);
        assert_eq!(
            platform(Some(&spec)).unwrap().architecture,
            host.architecture
        );
        assert!(platform(None).is_ok());
        let other = if host.architecture == "s390x" {
            "linux/amd64"
        } else {
            "linux/s390x"
        };
        let err = platform(Some(other)).unwrap_err().to_string();
        assert!(err.contains("host platform"), "{err}");
    }

    #[test]
    fn a_dockerfile_specific_ignore_file_comes_first() {
        let df = Dockerfile {
            name: "x/Build.dockerfile".into(),
            path: Some(PathBuf::from("/x/Build.dockerfile")),
            text: String::new(),
        };
        assert_eq!(
            df.ignore_files(Path::new("/ctx")),
            [
                PathBuf::from("/x/Build.dockerfile.dockerignore"),
                PathBuf::from("/ctx/.dockerignore")
            ]
        );
    }
}
