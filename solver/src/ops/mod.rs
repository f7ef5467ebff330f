//! The concrete ops: sources, RUN (exec) and file actions, and the
//! filesystem logic they share.

use std::path::PathBuf;

use bake_store::Layer;

pub mod archive;
pub mod chmod;
pub mod copy;
pub mod direct;
pub mod exec;
pub mod file;
pub mod git;
pub mod http;
pub mod owner;
pub mod parents;
pub mod secrets;
pub mod select;
pub mod source;
pub mod ssh_proxy;

/// What a vertex yields.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A filesystem: a chain of layers, bottom first.
    Layers(Vec<Layer>),
    /// A local directory (build context, named context).
    Dir(PathBuf),
    /// A downloaded file (`ADD <url>`), fetched on first use.
    Remote(std::sync::Arc<http::Remote>),
    /// A git checkout (`ADD <git remote>`), cloned on first use.
    Git(std::sync::Arc<git::Checkout>),
}

impl Value {
    /// The layers, or an error for a directory.
    ///
    /// # Errors
    /// [`Error::NotAFilesystem`].
    pub fn layers(&self) -> Result<&[Layer], Error> {
        match self {
            Value::Layers(l) => Ok(l),
            Value::Dir(d) => Err(Error::NotAFilesystem(d.clone())),
            Value::Remote(r) => Err(Error::NotAFilesystem(PathBuf::from(format!("{r:?}")))),
            Value::Git(g) => Err(Error::NotAFilesystem(PathBuf::from(format!("{g:?}")))),
        }
    }
}

/// Why an op failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A RUN exited non-zero (BuildKit's wording).
    #[error("process \"{command}\" did not complete successfully: exit code: {code}")]
    ExitCode {
        /// argv joined by spaces.
        command: String,
        /// Docker's exit code (128+n for a signal).
        code: i32,
    },
    /// A feature the solver does not implement yet.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A `required` secret mount whose id the build was not given.
    #[error("secret {0} not found: give it with --secret id={0},src=PATH or env=VAR")]
    MissingSecret(String),
    /// A `required` ssh mount whose id the build was not given.
    #[error("no SSH agent socket for id {0}: give it with --ssh {0}[=SOCKET]")]
    MissingSsh(String),
    /// A named local directory was not given to the solve.
    #[error("no local directory named `{0}` was given to the build")]
    MissingLocal(String),
    /// A local directory where a filesystem was expected (a frontend bug).
    #[error("{0:?} is a local directory, not a filesystem")]
    NotAFilesystem(PathBuf),
    /// Selecting COPY sources failed.
    #[error(transparent)]
    Select(#[from] select::Error),
    /// Copying failed.
    #[error(transparent)]
    Copy(#[from] copy::Error),
    /// `--chown` failed.
    #[error(transparent)]
    Owner(#[from] owner::Error),
    /// `--chmod` is malformed.
    #[error(transparent)]
    Chmod(#[from] chmod::Error),
    /// A bad `.dockerignore` pattern.
    #[error(transparent)]
    Ignore(#[from] crate::dockerignore::Error),
    /// `ADD <url>` failed.
    #[error(transparent)]
    Http(#[from] http::Error),
    /// `ADD <git remote>` failed.
    #[error(transparent)]
    Git(#[from] git::Error),
    /// Hashing a context failed.
    #[error(transparent)]
    Hash(#[from] crate::context_hash::Error),
    /// Claiming a step against other bake processes failed.
    #[error(transparent)]
    Claim(#[from] crate::build_claim::Error),
    /// A path could not be resolved beneath a root.
    #[error(transparent)]
    Resolve(#[from] crate::beneath::Error),
    /// The runner failed (mounts, sandbox setup, …).
    #[error(transparent)]
    Runner(#[from] bake_runner::Error),
    /// Reading an image's layers failed.
    #[error(transparent)]
    Image(#[from] bake_store::images::Error),
    /// Making a snapshot failed.
    #[error(transparent)]
    Snapshot(#[from] bake_store::snapshots::Error),
    /// Writing a cache record failed.
    #[error(transparent)]
    Cache(#[from] bake_store::cache::Error),
    /// Fetching a layer from an imported cache (`--cache-from`) failed.
    #[error(transparent)]
    RemoteCache(#[from] bake_store::cache_export::Error),
    /// Creating a temporary directory in the store failed.
    #[error(transparent)]
    Layout(#[from] bake_store::layout::Error),
    /// A filesystem call failed.
    #[error("{op} {path:?}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}
