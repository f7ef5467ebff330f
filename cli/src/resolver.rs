//! The frontend's [`ImageResolver`] backed by the store: a base image that
//! is tagged locally is used as is (so offline builds work and `FROM` does
//! not hit the registry on every build); otherwise it is pulled, with the
//! transfer shown as a build step.

use bake_frontend::{ImageResolver, ResolvedImage};
use bake_solver::ir::Platform;
use bake_store::layout::Store;
use bake_store::registry::{PlatformSpec, RegistryOptions};

use crate::progress::{transfer, Progress};

/// Resolves `FROM` references for one build.
pub struct StoreResolver<'a> {
    store: &'a Store,
    options: RegistryOptions,
    progress: &'a Progress,
    /// `--pull`: ask the registry even for a reference tagged locally.
    pull: bool,
}

impl<'a> StoreResolver<'a> {
    /// A resolver pulling through `options`, reporting on `progress`.
    pub fn new(store: &'a Store, options: RegistryOptions, progress: &'a Progress) -> Self {
        StoreResolver {
            store,
            options,
            progress,
            pull: false,
        }
    }

    /// `--pull`: re-resolve every base image from its registry.
    pub fn pull(self, pull: bool) -> Self {
        StoreResolver { pull, ..self }
    }

    fn resolve_inner(&self, name: &str, platform: &Platform) -> anyhow::Result<ResolvedImage> {
        let reference = crate::commands::parse_reference(name)?;
        let local = match self.pull {
            true => None,
            false => self.store.resolve(&reference.to_string())?,
        };
        let id = match local {
            Some(id) => id,
            None => {
                let step = self
                    .progress
                    .begin(&format!("[internal] load metadata for {reference}"));
                let spec = PlatformSpec {
                    os: platform.os.clone(),
                    architecture: platform.architecture.clone(),
                    variant: platform.variant.clone(),
                };
                let pulled = crate::commands::pull::pull(
                    self.store,
                    &reference,
                    &spec,
                    &self.options,
                    &|event| {
                        if let Some(line) = transfer::describe(&event, transfer::Direction::Pull) {
                            self.progress.status(&step, &line);
                        }
                    },
                );
                match pulled {
                    Ok(id) => {
                        self.progress.end(step);
                        id
                    }
                    Err(e) => {
                        self.progress.fail(step, &format!("{e:#}"));
                        return Err(e);
                    }
                }
            }
        };
        let config = self.store.image_config(&id)?;
        Ok(ResolvedImage {
            reference: reference.to_string(),
            image_id: id,
            config,
        })
    }
}

impl ImageResolver for StoreResolver<'_> {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, String> {
        // The frontend wraps this text into a positioned diagnostic; keep the
        // whole cause chain in it.
        self.resolve_inner(reference, platform)
            .map_err(|e| format!("{e:#}"))
    }
}
