//! `bake pull NAME`: an image from a registry into the store, with
//! docker's output; also the implicit pull of `bake run`.

use std::io::Write;
use std::sync::Mutex;

use anyhow::{anyhow, Context, Result};
use bake_store::layout::Store;
use bake_store::oci::Digest;
use bake_store::reference::Reference;
use bake_store::registry::{PlatformSpec, RegistryOptions};
use bake_store::transfer::TransferEvent;

use crate::app::{Global, ProgressMode, PullArgs};
use crate::progress::transfer::{self, Direction, Stream, TransferView};

/// Pulls and tags the image, printing docker's progress on stdout.
pub fn run(global: &Global, args: &PullArgs) -> Result<()> {
    let platform = match &args.platform {
        Some(p) => p
            .parse::<PlatformSpec>()
            .map_err(|e| anyhow!("invalid --platform {p:?}: {e}"))?,
        None => PlatformSpec::host(),
    };
    let store = super::open_store(global)?;
    let reference = super::parse_reference(&args.name)?;
    let report = if args.quiet {
        Report::Quiet
    } else {
        Report::Full
    };
    let mode = if args.quiet {
        ProgressMode::Quiet
    } else {
        args.progress
    };
    let view = TransferView::new(mode, Direction::Pull, Stream::Stdout);
    let options = super::try_registry_options(global)?;
    pull_reporting(&store, &reference, &platform, &options, &view, report)?;
    Ok(())
}

/// The image `name` names in the store, pulled first if it is not there
/// (`bake run`'s rule, like docker's), with progress on stderr.
pub fn local_or_pull(store: &Store, global: &Global, name: &str) -> Result<Digest> {
    if let Some(id) = store
        .resolve(name)
        .with_context(|| format!("looking up image {name}"))?
    {
        return Ok(id);
    }
    let reference = super::parse_reference(name)?;
    eprintln!("Unable to find image '{}' locally", reference.familiar());
    let view = TransferView::new(ProgressMode::Auto, Direction::Pull, Stream::Stderr);
    pull_reporting(
        store,
        &reference,
        &PlatformSpec::host(),
        &super::try_registry_options(global)?,
        &view,
        Report::Implicit,
    )
}

/// What a pull prints.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Report {
    /// `bake pull`: progress, `Digest:`, `Status:` and the full reference.
    Full,
    /// `bake pull -q`: the full reference only.
    Quiet,
    /// The pull inside `bake run`: as `Full`, without the reference line.
    Implicit,
}

/// Pulls with docker's lines (`Pulling from`, per-layer status, `Digest:`,
/// `Status:`) through `view`, as much as `report` asks for.
fn pull_reporting(
    store: &Store,
    reference: &Reference,
    platform: &PlatformSpec,
    options: &RegistryOptions,
    view: &TransferView,
    report: Report,
) -> Result<Digest> {
    let quiet = report == Report::Quiet;
    let before = store.resolve(&reference.to_string()).ok().flatten();
    if !quiet {
        let tag = reference.tag.as_deref().unwrap_or("latest");
        view.say(&format!("{tag}: Pulling from {}", reference.repository));
    }
    let manifest = Mutex::new(None);
    let pulled = pull(store, reference, platform, options, &|event| {
        if let Some(d) = transfer::manifest_digest(&event) {
            *manifest.lock().unwrap_or_else(|p| p.into_inner()) = Some(d);
        }
        view.event(&event);
    });
    view.finish(pulled.is_ok());
    let id = pulled?;
    if quiet {
        // A closed stdout is not a failed pull.
        let _ = writeln!(std::io::stdout(), "{reference}");
    } else {
        if let Some(d) = manifest.into_inner().unwrap_or_else(|p| p.into_inner()) {
            view.say(&format!("Digest: {d}"));
        }
        let status = if before.as_ref() == Some(&id) {
            "Image is up to date for"
        } else {
            "Downloaded newer image for"
        };
        view.say(&format!("Status: {status} {}", reference.familiar()));
        if report == Report::Full {
            view.say(&reference.to_string());
        }
    }
    Ok(id)
}

/// Pulls `reference` for `platform`; the store tags it.
pub fn pull(
    store: &Store,
    reference: &Reference,
    platform: &PlatformSpec,
    options: &RegistryOptions,
    progress: &dyn Fn(TransferEvent),
) -> Result<Digest> {
    store
        .pull(reference, platform, options, progress)
        .with_context(|| format!("pulling {reference}"))
}
