//! The build graph every frontend lowers to and the solver executes.
//!
//! A [`Graph`] is a DAG of [`Vertex`]es in topological order (a vertex's
//! inputs always come before it). Each vertex is an [`Op`] plus input edges;
//! what an input *means* is fixed per op and documented on the op. The IR is
//! plain serde data: `bake build --print-ir` prints it and tests snapshot it,
//! and the solver derives definition digests from its canonical JSON, so
//! nothing machine-specific (host paths, proxy settings) may live in it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use bake_store::oci::{ContainerConfig, Digest, History, ImageConfig};

/// Index of a vertex in [`Graph::vertices`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VertexId(pub usize);

/// A build: vertices in topological order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    /// Inputs of `vertices[i]` all have ids `< i`.
    pub vertices: Vec<Vertex>,
}

impl Graph {
    /// Appends a vertex and returns its id.
    ///
    /// # Panics
    /// If an input id does not refer to an earlier vertex (a frontend bug:
    /// the graph must stay topologically ordered).
    pub fn push(&mut self, vertex: Vertex) -> VertexId {
        let id = VertexId(self.vertices.len());
        assert!(
            vertex.inputs.iter().all(|i| i.0 < id.0),
            "vertex inputs must precede the vertex"
        );
        self.vertices.push(vertex);
        id
    }

    /// The vertex with this id.
    pub fn get(&self, id: VertexId) -> &Vertex {
        &self.vertices[id.0]
    }
}

/// One unit of work.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Vertex {
    /// What to do.
    pub op: Op,
    /// Input edges; their meaning depends on `op`.
    pub inputs: Vec<VertexId>,
    /// Progress label, BuildKit style: `[build 2/4] RUN make`. Not part of
    /// the definition digest.
    pub name: String,
    /// Where in the Dockerfile this came from (for errors), if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// `--no-cache` / `--no-cache-filter`: always execute, never look up.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_cache: bool,
}

/// A source position: file, 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The Dockerfile path as the user named it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// The operations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// No inputs. Produces a filesystem (or, for `Local`, a directory the
    /// consuming op reads from).
    Source(Source),
    /// A RUN. `inputs[0]` is the root filesystem; further inputs are the
    /// sources of bind mounts (see [`MountKind::Bind::input`]).
    Exec(Exec),
    /// COPY/ADD/WORKDIR-mkdir and friends. `inputs[0]` is the filesystem the
    /// actions write into; further inputs are copy sources
    /// (see [`Copy::source`]).
    File(FileOp),
}

/// Where bytes come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The empty filesystem.
    Scratch,
    /// An image from a registry or the local store, already resolved by the
    /// frontend to its image id (config digest), which is its cache key.
    Image {
        /// As written (after ARG expansion), normalised: `localhost:5000/library/busybox:latest`.
        reference: String,
        /// Config digest of the resolved image.
        image_id: Digest,
        /// Platform asked for.
        platform: Platform,
    },
    /// A local directory given at solve time by name (`context` is the build
    /// context). The consuming op decides which files it reads; `exclude`
    /// holds the `.dockerignore` patterns in file order (`!` kept).
    Local {
        /// `context`, or a named context.
        name: String,
        /// `.dockerignore` patterns, in order.
        exclude: Vec<String>,
    },
    /// `ADD https://…`: a file downloaded at solve time.
    Http {
        /// The URL.
        url: String,
        /// `--checksum`, when given; verified and used as the cache key.
        checksum: Option<String>,
        /// File name inside the produced directory (from the URL's path).
        filename: String,
    },
    /// `ADD git@…` / `ADD https://….git#ref:subdir`.
    Git {
        /// Remote URL.
        remote: String,
        /// Branch, tag or commit.
        reference: Option<String>,
        /// Sub-directory to take.
        subdir: Option<String>,
        /// `--keep-git-dir`.
        keep_git_dir: bool,
        /// `--checksum`: the commit id the ref must resolve to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checksum: Option<String>,
    },
}

/// A platform, GOOS/GOARCH spelling.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, …
    pub architecture: String,
    /// `v7`, `v8`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform bake runs on.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform {
            os: "linux".to_string(),
            architecture: architecture.to_string(),
            variant: None,
        }
    }
}

/// A RUN.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exec {
    /// argv; shell form is already wrapped (`["/bin/sh", "-c", "…"]`).
    pub args: Vec<String>,
    /// `K=V`, the stage's ENV plus the ARGs in scope (BuildKit passes both).
    pub env: Vec<String>,
    /// Absolute working directory.
    pub cwd: String,
    /// USER as written (`name`, `uid`, `name:group`); empty means root.
    pub user: String,
    /// `--network`.
    pub network: Network,
    /// `--security`.
    pub security: Security,
    /// `--mount`s, besides the root.
    pub mounts: Vec<Mount>,
}

/// `RUN --network`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// The default: the host's network, so package managers work.
    #[default]
    Default,
    /// No network: a fresh namespace with only loopback.
    None,
    /// Explicitly the host network.
    Host,
}

/// `RUN --security`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// Default capabilities, seccomp.
    #[default]
    Sandbox,
    /// All capabilities (needs `--allow security.insecure`).
    Insecure,
}

/// A `RUN --mount`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute path inside the container; empty for a secret given only
    /// as an environment variable (`env=` without `target=`).
    pub target: String,
    /// What is mounted.
    pub kind: MountKind,
}

/// The kinds of `RUN --mount`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountKind {
    /// `type=bind`: a path of another vertex's result (a stage, an image or
    /// the context). Writes are discarded even with `readwrite`.
    Bind {
        /// Index into the exec vertex's `inputs`.
        input: usize,
        /// Path inside that input.
        source: String,
        /// `rw` / `readwrite`.
        readwrite: bool,
    },
    /// `type=cache`: a directory kept across builds, keyed by `id`.
    Cache {
        /// `id` (default: the target).
        id: String,
        /// `sharing`.
        sharing: Sharing,
        /// `ro`.
        readonly: bool,
        /// Owner and mode of a new cache directory.
        uid: u32,
        /// Group of a new cache directory.
        gid: u32,
        /// Mode of a new cache directory (default 0755).
        mode: u32,
        /// `from`/`source`: seed a new cache from this input, if given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<(usize, String)>,
    },
    /// `type=tmpfs`.
    Tmpfs {
        /// `size` in bytes, if limited.
        size: Option<u64>,
    },
    /// `type=secret`: bytes from `--secret`, never in a layer or a key.
    Secret {
        /// `id`.
        id: String,
        /// `required`.
        required: bool,
        /// File mode (default 0400).
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// `env=NAME`: expose as an environment variable instead of / besides a file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        env: Option<String>,
    },
    /// `type=ssh`: the agent socket named by `id`.
    Ssh {
        /// `id` (default `default`).
        id: String,
        /// `required`.
        required: bool,
        /// Socket mode (default 0600).
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
}

/// `sharing=` of a cache mount.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sharing {
    /// Concurrent writers share one directory.
    #[default]
    Shared,
    /// Each concurrent writer gets its own directory.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// File actions applied in order to `inputs[0]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileOp {
    /// The actions.
    pub actions: Vec<FileAction>,
}

/// One file action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileAction {
    /// COPY / ADD.
    Copy(Copy),
    /// WORKDIR's implicit mkdir -p, and `COPY` destinations.
    Mkdir {
        /// Absolute path.
        path: String,
        /// Mode of created directories.
        mode: u32,
        /// Create missing parents.
        parents: bool,
        /// Owner of created directories (default root).
        owner: Option<Owner>,
    },
    /// `COPY <<EOF /path` inline files.
    Mkfile {
        /// Absolute path.
        path: String,
        /// Mode.
        mode: u32,
        /// Contents.
        data: String,
        /// Owner.
        owner: Option<Owner>,
    },
    /// Removal.
    Rm {
        /// Absolute path.
        path: String,
        /// Do not fail if it does not exist.
        allow_not_found: bool,
    },
}

/// A COPY or ADD from one source input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Copy {
    /// Index into the file vertex's `inputs` (a `Local`, a stage, an image, an
    /// `Http` or `Git` source).
    pub source: usize,
    /// Source paths as written (after expansion). For `Local` inputs they
    /// are relative to the context root (a leading `/` means the root); for
    /// filesystems they are resolved inside that filesystem.
    pub src: Vec<String>,
    /// Destination, absolute (WORKDIR already applied). A trailing `/`
    /// means "into this directory".
    pub dest: String,
    /// `--chown` (resolved by the solver against the destination's
    /// `/etc/passwd` and `/etc/group`).
    pub owner: Option<Owner>,
    /// `--chmod`.
    pub mode: Option<Chmod>,
    /// Wildcards (`*`, `?`, `[…]`) in `src` are patterns.
    pub allow_wildcard: bool,
    /// ADD: local tar archives (any compression) are extracted.
    pub unpack_archives: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// `--parents`: keep the source path below the context root.
    pub parents: bool,
    /// `--link`.
    pub link: bool,
}

impl Copy {
    /// Copies everything at `path` of input 0 to the root, with no
    /// ownership or mode changes: what the solver uses to seed cache mounts
    /// and to key what a bind mount exposes.
    pub fn whole(path: &str) -> Copy {
        Copy {
            source: 0,
            src: vec![path.to_string()],
            dest: "/".into(),
            owner: None,
            mode: None,
            allow_wildcard: false,
            unpack_archives: false,
            exclude: Vec::new(),
            parents: false,
            link: false,
        }
    }
}

/// `--chown user[:group]`, as written after expansion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// User name or numeric uid.
    pub user: String,
    /// Group name or numeric gid; `None` means the user's primary group
    /// (or, for a numeric user, the same number).
    pub group: Option<String>,
}

/// `--chmod`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Chmod {
    /// `--chmod=0755`.
    Octal(u32),
    /// `--chmod=u+x,g-w`.
    Symbolic(String),
}

/// What a frontend hands the solver: the graph, what to build, and the image
/// config to write over the result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    /// The graph (only what the target needs).
    pub graph: Graph,
    /// The vertex whose filesystem becomes the image.
    pub target: VertexId,
    /// The image config; the solver's cli fills `rootfs.diff_ids` from the
    /// result. Its `history` has one `empty_layer: false` entry per layer.
    pub config: ImageConfig,
}

/// Named local directories (the build context and named contexts) for a
/// solve. Kept out of the IR so that digests do not depend on host paths.
pub type LocalDirs = BTreeMap<String, std::path::PathBuf>;
