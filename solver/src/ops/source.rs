//! Sources: scratch, images from the store, local directories.

use bake_store::Store;

use super::{Error, Value};
use crate::ir::{LocalDirs, Source};

/// Produces a source's value. An image's layers are references: nothing
/// is read beyond the store's records.
///
/// # Errors
/// Missing images or locals. (HTTP and Git sources are lazy downloads
/// the solver makes itself: [`super::http`], [`super::git`].)
pub fn run(store: &Store, source: &Source, locals: &LocalDirs) -> Result<Value, Error> {
    match source {
        Source::Scratch => Ok(Value::Layers(Vec::new())),
        Source::Image { image_id, .. } => Ok(Value::Layers(store.image_layers(image_id)?)),
        Source::Local { name, .. } => locals
            .get(name)
            .map(|p| Value::Dir(p.clone()))
            .ok_or_else(|| Error::MissingLocal(name.clone())),
        Source::Http { url, .. } => Err(Error::Unsupported(format!(
            "ADD from a URL ({url}) is not implemented yet"
        ))),
        Source::Git { remote, .. } => Err(Error::Unsupported(format!(
            "ADD from a git repository ({remote}) is resolved by the solver, not here"
        ))),
    }
}
