//! Layer tars: [`pack`] turns a directory (an overlayfs upper dir or any
//! tree) into a deterministic tar stream; [`unpack`] applies a tar stream to
//! an overlay-format diff dir without ever letting a hostile entry write
//! outside it; [`Compression`] wraps either in gzip or zstd.
//!
//! Both directions speak the same dialect, so `pack(unpack(tar))` is stable:
//! whiteouts are char devices 0/0 on disk and `.wh.<name>` in the tar, opaque
//! directories carry `trusted.overlay.opaque=y` on disk and a
//! `.wh..wh..opq` entry in the tar.

use std::io;
use std::path::PathBuf;

use crate::oci::Digest;

mod beneath;
mod compression;
mod hash_pipe;
mod pack;
mod unpack;

#[cfg(test)]
mod tests;

pub use compression::{decompress, Compression, Encoder};
pub use pack::pack;
pub use unpack::unpack;

/// The OCI whiteout prefix.
pub(crate) const WHITEOUT_PREFIX: &str = ".wh.";
/// The OCI opaque-directory marker.
pub(crate) const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The overlayfs xattr that marks a directory opaque.
pub(crate) const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The same in a user namespace, where overlayfs is mounted with `userxattr`.
pub(crate) const USER_OPAQUE_XATTR: &str = "user.overlay.opaque";

/// The opaque-directory xattr snapshots carry in this process: `trusted.` as real
/// root, `user.` inside a user namespace (rootless), where `trusted.` cannot be set
/// and the runner mounts overlayfs with `userxattr`. A store is written in one mode.
pub fn opaque_xattr() -> &'static str {
    if crate::userns::in_user_namespace() {
        USER_OPAQUE_XATTR
    } else {
        OVERLAY_OPAQUE_XATTR
    }
}
/// The only xattr bake carries through a layer: file capabilities (`setcap`)
/// matter for what a binary may do; everything else is host policy.
pub const CAPABILITY_XATTR: &str = "security.capability";
/// How PAX records carry xattrs (GNU tar, Go's archive/tar, docker).
pub const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";

/// What a finished tar stream was: its sha256 (the diff id for an
/// uncompressed layer) and length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tarball {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Length of the uncompressed tar in bytes.
    pub size: u64,
}

/// Why a layer could not be packed or unpacked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory of the tree being packed could not be read.
    #[error("cannot read {path} while packing a layer")]
    Read {
        /// The file on disk.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file shrank while it was being packed.
    #[error("{path} changed while packing a layer")]
    Changed {
        /// The file on disk.
        path: PathBuf,
    },
    /// The tar stream could not be written.
    #[error("cannot write the layer tar entry `{entry}`")]
    Write {
        /// The tar entry being written.
        entry: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The directory to unpack into could not be opened.
    #[error("cannot open the unpack target {path}")]
    Target {
        /// The target directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The tar stream is malformed or could not be read.
    #[error("cannot read the layer tar (after entry `{after}`)")]
    Tar {
        /// The last entry read successfully (empty at the start).
        after: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An entry's path is absolute, has `..` or is otherwise not a plain
    /// relative path; applying it could write outside the layer.
    #[error("unsafe path in layer: `{entry}` ({reason})")]
    UnsafePath {
        /// The entry's path as written in the tar.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An entry's parent directory cannot be reached beneath the layer root,
    /// e.g. because a symlink in the layer points outside it.
    #[error("cannot resolve the parent of `{entry}` beneath the layer root (a symlink escaping the root?)")]
    Resolve {
        /// The entry's path.
        entry: String,
        /// The cause (EXDEV/ELOOP/ENOTDIR for escapes).
        #[source]
        source: io::Error,
    },
    /// A hard link's target is not a file inside the layer.
    #[error("hard link `{entry}` → `{target}` cannot be created inside the layer")]
    Hardlink {
        /// The link's path.
        entry: String,
        /// The target as written in the tar.
        target: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file, directory, link or device node could not be created.
    #[error("cannot create `{entry}` while unpacking a layer")]
    Create {
        /// The entry's path.
        entry: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Owner, mode, times or xattrs could not be applied.
    #[error("cannot set {what} of `{entry}` while unpacking a layer")]
    Metadata {
        /// Which metadata (owner, mode, mtime, xattr).
        what: &'static str,
        /// The entry's path.
        entry: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A tar entry type a layer may not contain.
    #[error("unsupported tar entry type {kind:?} for `{entry}`")]
    Unsupported {
        /// The entry's path.
        entry: String,
        /// The raw type byte.
        kind: char,
    },
}
