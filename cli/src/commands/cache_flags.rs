//! `bake build --cache-to` / `--cache-from`: the buildx spec syntax
//! (`type=local,dest=DIR`, `type=registry,ref=REF`, `type=inline`,
//! `mode=min|max`, and bake's `cache-mounts=true`), and the import and
//! export around a solve. The format work is in
//! `bake_store::cache_export`; this module only wires it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use bake_solver::ir::Definition;
use bake_solver::remote_cache::{cache_mount_ids, RemoteCaches};
use bake_solver::Solved;
use bake_store::cache_export::{self, CacheMountDir, ExportRecord, Imported};
use bake_store::registry::RegistryOptions;
use bake_store::transfer::TransferEvent;
use bake_store::{Reference, Store};

/// Which records an export holds (BuildKit's `mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Only the steps whose result is part of the final image.
    #[default]
    Min,
    /// Every step of every stage the build solved.
    Max,
}

/// Where a cache goes or comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// An OCI layout directory.
    Local(PathBuf),
    /// A registry reference.
    Registry(Reference),
    /// The built image's own config (export), or the image at a reference
    /// (import goes through `Registry`).
    Inline,
}

/// One `--cache-to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheTo {
    /// Where.
    pub location: Location,
    /// Which records.
    pub mode: Mode,
    /// bake: also export `RUN --mount=type=cache` contents.
    pub cache_mounts: bool,
    /// Warn instead of failing when the export fails (`ignore-error=true`).
    pub ignore_error: bool,
}

/// `key=value` fields of a spec, lower-cased keys, in order.
fn fields(spec: &str) -> Result<Vec<(String, String)>> {
    spec.split(',')
        .map(|f| {
            let (k, v) = f
                .split_once('=')
                .ok_or_else(|| anyhow!("`{f}` is not key=value"))?;
            Ok((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect()
}

fn boolean(key: &str, value: &str) -> Result<bool> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => bail!("{key}={value}: expected true or false"),
    }
}

fn kind<'a>(fields: &'a [(String, String)], spec: &str) -> Result<&'a str> {
    let kind = fields
        .iter()
        .find(|(k, _)| k == "type")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| anyhow!("no type= in `{spec}`"))?;
    match kind {
        "local" | "registry" | "inline" => Ok(kind),
        "gha" | "s3" | "azblob" => {
            bail!("cache type `{kind}` is not supported by bake (use local, registry or inline)")
        }
        other => bail!("unknown cache type `{other}` (expected local, registry or inline)"),
    }
}

/// Parses one `--cache-to` value.
///
/// # Errors
/// A missing or unknown `type`, a missing `dest`/`ref`, an unknown key or a
/// bad value, each named.
pub fn cache_to(spec: &str) -> Result<CacheTo> {
    parse_to(spec).with_context(|| format!("invalid --cache-to `{spec}`"))
}

fn parse_to(spec: &str) -> Result<CacheTo> {
    let fields = fields(spec)?;
    let kind = kind(&fields, spec)?;
    let (mut dest, mut reference) = (None, None);
    let mut out = CacheTo {
        location: Location::Inline,
        mode: Mode::Min,
        cache_mounts: false,
        ignore_error: false,
    };
    for (k, v) in &fields {
        match (k.as_str(), kind) {
            ("type", _) => {}
            ("dest", "local") => dest = Some(PathBuf::from(v)),
            ("ref", "registry") => reference = Some(super::parse_reference(v)?),
            ("mode", "local" | "registry") => {
                out.mode = match v.as_str() {
                    "min" => Mode::Min,
                    "max" => Mode::Max,
                    _ => bail!("mode={v}: expected min or max"),
                }
            }
            // BuildKit's inline cache holds the final image's layers only.
            ("mode", "inline") if v == "min" => {}
            ("mode", "inline") => bail!("mode={v} is not possible with type=inline (only min)"),
            ("cache-mounts", "local" | "registry") => out.cache_mounts = boolean(k, v)?,
            ("ignore-error", _) => out.ignore_error = boolean(k, v)?,
            // What bake writes anyway: an OCI image manifest, OCI media types.
            ("image-manifest" | "oci-mediatypes", "local" | "registry") if boolean(k, v)? => {}
            (k, kind) => bail!("`{k}` is not supported by bake for type={kind}"),
        }
    }
    out.location = match kind {
        "local" => Location::Local(dest.ok_or_else(|| anyhow!("type=local needs dest=DIR"))?),
        "registry" => {
            Location::Registry(reference.ok_or_else(|| anyhow!("type=registry needs ref=REF"))?)
        }
        _ => Location::Inline,
    };
    Ok(out)
}

/// Parses one `--cache-from` value; a bare reference means
/// `type=registry,ref=REF` (as buildx reads it).
///
/// # Errors
/// As [`cache_to`].
pub fn cache_from(spec: &str) -> Result<Location> {
    parse_from(spec).with_context(|| format!("invalid --cache-from `{spec}`"))
}

fn parse_from(spec: &str) -> Result<Location> {
    if !spec.contains('=') {
        return Ok(Location::Registry(super::parse_reference(spec)?));
    }
    let fields = fields(spec)?;
    let kind = kind(&fields, spec)?;
    if kind == "inline" {
        bail!("type=inline is an export; import an inline cache with type=registry,ref=IMAGE");
    }
    let mut location = None;
    for (k, v) in &fields {
        match (k.as_str(), kind) {
            ("type", _) => {}
            ("src", "local") => location = Some(Location::Local(PathBuf::from(v))),
            ("ref", "registry") => location = Some(Location::Registry(super::parse_reference(v)?)),
            // buildx passes these through; bake has one layout per dir.
            ("tag" | "digest", "local") => {
                bail!("`{k}` is not supported by bake for type=local (the `latest` entry is read)")
            }
            (k, kind) => bail!("`{k}` is not supported by bake for type={kind}"),
        }
    }
    location.ok_or_else(|| match kind {
        "local" => anyhow!("type=local needs src=DIR"),
        _ => anyhow!("type=registry needs ref=REF"),
    })
}

/// Opens every `--cache-from` (a missing or unreadable one is a warning,
/// as in BuildKit: the build proceeds without it) and restores the
/// cache-mount directories they hold that the store lacks.
pub fn import(
    store: &Store,
    from: &[Location],
    mount_ids: &[String],
    opts: &RegistryOptions,
    warn: &dyn Fn(String),
    status: &dyn Fn(String),
) -> RemoteCaches {
    let mut imports = Vec::new();
    for location in from {
        let opened = match location {
            Location::Local(dir) => cache_export::local::open(dir).map_err(anyhow::Error::from),
            Location::Registry(r) => store
                .open_registry_cache(r, opts)
                .map_err(anyhow::Error::from),
            Location::Inline => continue,
        };
        let name = match location {
            Location::Local(dir) => dir.display().to_string(),
            Location::Registry(r) => r.to_string(),
            Location::Inline => unreachable!(),
        };
        match opened {
            Ok(cache) => {
                status(format!(
                    "importing cache from {name}: {} records",
                    cache.len()
                ));
                let wanted = |id: &str| {
                    mount_ids
                        .iter()
                        .any(|m| m == id)
                        .then(|| store.cache_mount_dir(id))
                };
                match cache.restore_mounts(&wanted) {
                    Ok(ids) => {
                        for id in ids {
                            status(format!("restored cache mount `{id}` from {name}"));
                        }
                    }
                    Err(e) => warn(format!(
                        "cache mounts from {name} not restored: {:#}",
                        anyhow::Error::from(e)
                    )),
                }
                imports.push(Arc::new(cache));
            }
            Err(e) => warn(format!("cache import from {name} skipped: {e:#}")),
        }
    }
    RemoteCaches::new(imports)
}

/// The records an export holds: with `min`, only those whose result is a
/// bottom part of the final image's chain (the final stage's steps); with
/// `max`, every record the solve used.
pub fn records(solved: &Solved, mode: Mode) -> Vec<ExportRecord> {
    let finals: std::collections::HashSet<_> = solved.layers.iter().map(|l| &l.chain_id).collect();
    solved
        .records
        .iter()
        .filter(|r| {
            mode == Mode::Max
                || r.layers
                    .last()
                    .is_some_and(|top| finals.contains(&top.chain_id))
        })
        .cloned()
        .collect()
}

/// The cache-mount directories the build's RUNs use that exist.
pub fn mount_dirs(store: &Store, definition: &Definition) -> Vec<CacheMountDir> {
    cache_mount_ids(&definition.graph)
        .into_iter()
        .map(|id| CacheMountDir {
            dir: store.cache_mount_dir(&id),
            id,
        })
        .filter(|m| m.dir.is_dir())
        .collect()
}

/// Writes one `--cache-to` (not inline, which is part of the image).
///
/// # Errors
/// When the cache cannot be assembled or written.
pub fn export(
    store: &Store,
    to: &CacheTo,
    solved: &Solved,
    definition: &Definition,
    imports: &RemoteCaches,
    opts: &RegistryOptions,
) -> Result<String> {
    let records = records(solved, to.mode);
    let mounts = if to.cache_mounts {
        mount_dirs(store, definition)
    } else {
        Vec::new()
    };
    let imported: Vec<&Imported> = imports.imports().iter().map(|i| i.as_ref()).collect();
    let cache = store
        .cache_manifest(&records, &mounts, &imported)
        .context("assembling the cache manifest")?;
    let what = format!(
        "{} records, {} blobs{}",
        records.len(),
        cache.layers.len(),
        if mounts.is_empty() {
            String::new()
        } else {
            format!(", {} cache mounts", mounts.len())
        }
    );
    match &to.location {
        Location::Local(dest) => {
            cache_export::local::write(store, &cache, dest)
                .with_context(|| format!("writing the cache to {}", dest.display()))?;
            Ok(format!("exported cache to {} ({what})", dest.display()))
        }
        Location::Registry(r) => {
            // Counted per blob (events arrive on this thread).
            let [pushed, mounted, present] = [(); 3].map(|()| std::cell::Cell::new(0));
            let count = |c: &std::cell::Cell<usize>| c.set(c.get() + 1);
            let digest = store
                .push_cache(&cache, r, opts, &|e| match e {
                    TransferEvent::Done { .. } => count(&pushed),
                    TransferEvent::Mounted { .. } => count(&mounted),
                    TransferEvent::Skipped { .. } => count(&present),
                    _ => {}
                })
                .with_context(|| format!("pushing the cache to {r}"))?;
            Ok(format!(
                "exported cache to {r}@{digest} ({what}: {} pushed, {} mounted, {} already there)",
                pushed.get(),
                mounted.get(),
                present.get()
            ))
        }
        Location::Inline => bail!("inline cache is written with the image"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_like_buildx() {
        let to = cache_to("type=local,dest=/tmp/c,mode=max,cache-mounts=true").unwrap();
        assert_eq!(to.location, Location::Local("/tmp/c".into()));
        assert_eq!(to.mode, Mode::Max);
        assert!(to.cache_mounts);
        let to = cache_to("type=registry,ref=localhost:5000/app:cache").unwrap();
        assert_eq!(to.mode, Mode::Min);
        assert!(matches!(to.location, Location::Registry(_)));
        assert_eq!(cache_to("type=inline").unwrap().location, Location::Inline);
        assert_eq!(
            cache_from("type=local,src=/c").unwrap(),
            Location::Local("/c".into())
        );
        assert!(matches!(
            cache_from("localhost:5000/app:cache").unwrap(),
            Location::Registry(_)
        ));
    }

    #[test]
    fn bad_specs_name_what_is_wrong() {
        for (spec, want) in [
            ("type=local", "dest=DIR"),
            ("dest=/x", "no type="),
            ("type=local,dest=/x,mode=all", "mode=all"),
            ("type=gha", "not supported"),
            ("type=foo", "unknown cache type"),
            ("type=local,dest=/x,compression=zstd", "`compression`"),
            ("type=registry", "ref=REF"),
            ("type=local,dest", "not key=value"),
            ("type=inline,mode=max", "only min"),
        ] {
            let err = format!("{:#}", cache_to(spec).unwrap_err());
            assert!(err.contains(want), "{spec}: {err}");
        }
        let err = format!("{:#}", cache_from("type=inline").unwrap_err());
        assert!(err.contains("export"), "{err}");
    }
}

/// The build's `--cache-to` and `--cache-from`, parsed before anything
/// runs so a malformed spec fails fast.
#[derive(Debug, Default)]
pub struct Caches {
    to: Vec<CacheTo>,
    from: Vec<Location>,
}

impl Caches {
    /// Parses the flags.
    ///
    /// # Errors
    /// The first malformed spec.
    pub fn parse(to: &[String], from: &[String]) -> Result<Caches> {
        Ok(Caches {
            to: to.iter().map(|s| cache_to(s)).collect::<Result<_>>()?,
            from: from.iter().map(|s| cache_from(s)).collect::<Result<_>>()?,
        })
    }

    /// Opens the `--cache-from` caches (see [`import`]) and restores the
    /// cache mounts `definition`'s RUNs use, reporting on the progress
    /// display.
    pub fn import(
        &self,
        store: &Store,
        definition: &Definition,
        global: &crate::app::Global,
        progress: &crate::progress::Progress,
    ) -> RemoteCaches {
        if self.from.is_empty() {
            return RemoteCaches::default();
        }
        let step = progress.begin("importing cache manifest");
        let caches = import(
            store,
            &self.from,
            &cache_mount_ids(&definition.graph),
            &super::registry_options(global),
            &|w| eprintln!("WARNING: {w}"),
            &|s| progress.status(&step, &s),
        );
        progress.end(step);
        caches
    }

    /// Stores the image config, with the inline cache in it when
    /// `--cache-to type=inline` asks; returns the image id.
    ///
    /// # Errors
    /// When a layer cannot be exported or the config written.
    pub fn put_image(
        &self,
        store: &Store,
        config: &bake_store::oci::ImageConfig,
        solved: &Solved,
        args: &crate::app::BuildArgs,
    ) -> Result<bake_store::oci::Digest> {
        if !self.to.iter().any(|t| t.location == Location::Inline) {
            return store.put_image(config).context("writing the image config");
        }
        let opts = args.compression.export(bake_store::Compression::Gzip);
        let value = store
            .inline_cache(&records(solved, Mode::Min), &solved.layers, &opts)
            .context("making the inline cache")?;
        let bytes = bake_store::oci::canonical_json(config).context("encoding the image config")?;
        let bytes = cache_export::inline::with_inline_cache(&bytes, &value);
        store
            .put_blob_bytes(&bytes)
            .context("writing the image config")
    }

    /// Writes every `--cache-to` but inline (which is in the image).
    ///
    /// # Errors
    /// The first export that fails, unless it says `ignore-error=true`.
    pub fn export(
        &self,
        store: &Store,
        solved: &Solved,
        definition: &Definition,
        imports: &RemoteCaches,
        global: &crate::app::Global,
        progress: &crate::progress::Progress,
    ) -> Result<()> {
        let opts = super::registry_options(global);
        for to in self.to.iter().filter(|t| t.location != Location::Inline) {
            let step = progress.begin("exporting cache");
            match export(store, to, solved, definition, imports, &opts) {
                Ok(done) => progress.status(&step, &done),
                Err(e) if to.ignore_error => eprintln!("WARNING: cache export failed: {e:#}"),
                Err(e) => {
                    progress.end(step);
                    progress.finish();
                    return Err(e);
                }
            }
            progress.end(step);
        }
        progress.finish();
        Ok(())
    }
}
