//! `bake cp`: files and directories between a container and the host, with
//! `docker cp`'s rules for trailing `/` and `/.`, and `-` for a tar stream on
//! stdout or stdin.
//!
//! Where the container's files are seen (decided here):
//! - a running container through `/proc/<pid>/root`, its own root in its own mount
//!   namespace: reads see its volumes and tmpfs mounts, and writes go through its
//!   overlay into the upper dir, with the kernel making whiteouts and copy-ups (never
//!   a second overlay on an upper dir that is in use, which overlayfs forbids);
//! - a stopped one through its overlay (image layers + its upper dir) mounted in
//!   bake's private mount namespace for the duration of the command; its volumes
//!   are not mounted then.
//!
//! Every path in the container is resolved with `RESOLVE_IN_ROOT` beneath that root
//! (see [`tree`]): a symlink the container planted never leads out of it.

pub mod tree;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use bake_runner::Status;
use clap::Args;

use self::tree::{Kind, Owner, Root};
use super::container::{self, Container};
use crate::app::Global;

/// `bake cp`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// Keep the owner (uid:gid) of what is copied.
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Follow a symlink given as the source.
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// `CONTAINER:SRC_PATH`, a host path, or `-` (a tar on stdin).
    #[arg(value_name = "SRC")]
    pub source: String,
    /// `CONTAINER:DEST_PATH`, a host path, or `-` (a tar on stdout).
    #[arg(value_name = "DEST")]
    pub destination: String,
}

/// One side of the copy.
#[derive(Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `-`.
    Stream,
    /// A host path.
    Host(String),
    /// `CONTAINER:PATH` (the path made absolute).
    Container(String, String),
}

/// Docker's reading: `-`; a path that starts with `/` or `.` is the host's; else
/// `NAME:PATH` names a container; anything without a `:` is a host path (pure).
pub fn endpoint(text: &str) -> Endpoint {
    if text == "-" {
        return Endpoint::Stream;
    }
    if text.starts_with('/') || text.starts_with('.') {
        return Endpoint::Host(text.into());
    }
    match text.split_once(':') {
        Some((name, path)) if !name.is_empty() => {
            let path = if path.starts_with('/') {
                path.to_string()
            } else {
                format!("/{path}")
            };
            Endpoint::Container(name.into(), path)
        }
        _ => Endpoint::Host(text.into()),
    }
}

/// Where a copy lands: the directory extracted into, and the name the source takes
/// there (`None`: the source directory's contents go straight in, for `SRC/.`).
#[derive(Debug, PartialEq, Eq)]
pub struct Placement {
    /// The destination directory (must exist).
    pub dir: String,
    /// The top entry's name.
    pub name: Option<String>,
}

/// `docker cp`'s table (pure): `src_kind` is what the source is, `dst_kind` what
/// the destination is, if it exists.
///
/// # Errors
/// Docker's errors: a source with a trailing `/` that is not a directory, a
/// directory copied onto a file, a missing destination directory named with `/`.
pub fn place(src: &str, src_kind: Kind, dst: &str, dst_kind: Option<Kind>) -> Result<Placement> {
    let contents = src.ends_with("/.") || src == ".";
    let src_slash = src.ends_with('/');
    if src_kind == Kind::Other && (contents || src_slash) {
        bail!("source {src:?} is not a directory");
    }
    let (_, src_name) = tree::split(src.trim_end_matches("/."));
    let (dst_parent, dst_name) = tree::split(dst);
    match dst_kind {
        None => {
            if dst.ends_with('/') && src_kind == Kind::Other {
                bail!("destination directory {dst:?} must exist");
            }
            Ok(Placement {
                dir: dst_parent,
                name: Some(dst_name),
            })
        }
        Some(Kind::Other) => {
            if src_kind == Kind::Dir {
                bail!("cannot copy a directory to a file: {dst:?}");
            }
            if dst.ends_with('/') {
                bail!("destination {dst:?} is not a directory");
            }
            Ok(Placement {
                dir: dst_parent,
                name: Some(dst_name),
            })
        }
        Some(Kind::Dir) => Ok(Placement {
            dir: dst.to_string(),
            name: if contents && src_kind == Kind::Dir {
                None
            } else {
                Some(src_name)
            },
        }),
    }
}

/// A container's root for the duration of the command.
pub struct ContainerRoot {
    /// Its `/`.
    pub root: Root,
    /// Host pid of its pid 1 when it runs (its mount table is `/proc/<pid>/mountinfo`).
    pub pid: Option<u32>,
    // Kept for their drop: the overlay is unmounted, then its mount point removed.
    _mount: Option<bake_runner::OverlayMount>,
    _dir: Option<tempfile::TempDir>,
}

impl ContainerRoot {
    /// Ends a write into the container: a stopped container's view made by copying
    /// (`BAKE_SNAPSHOTTER=copy`) is written into its upper dir; overlayfs has it there.
    ///
    /// # Errors
    /// When the copied view cannot be synced.
    pub fn finish(mut self) -> Result<()> {
        match self._mount.take() {
            Some(mount) => mount.finish().context("saving the copy into the container"),
            None => Ok(()),
        }
    }
}

/// The container's `/`, as described in the module doc.
///
/// # Errors
/// When the root cannot be opened or mounted.
pub fn container_root(global: &Global, c: &Container) -> Result<ContainerRoot> {
    let state = c.state();
    if state.status == Status::Running {
        let root = Root::open(Path::new(&format!("/proc/{}/root", state.pid)))
            .with_context(|| format!("opening the root of container {}", c.config.name))?;
        // The pid could have ended (and been reused) before the open: check again.
        let again = c.state();
        if again.status != Status::Running || again.pid != state.pid {
            bail!("container {} exited during the copy", c.config.name);
        }
        return Ok(ContainerRoot {
            root,
            pid: Some(state.pid),
            _mount: None,
            _dir: None,
        });
    }
    crate::host::prepare_mounts()?;
    let store = super::open_store(global)?;
    let dir = store.temp_dir("cp").context("making a mount point")?;
    let rootfs = &c.config.plan.rootfs;
    let mount = bake_runner::mount_overlay(
        &rootfs.lowers,
        Some((&rootfs.upper, &rootfs.work)),
        dir.path(),
    )
    .with_context(|| format!("mounting the file system of container {}", c.config.name))?;
    let root = Root::open(dir.path())?;
    Ok(ContainerRoot {
        root,
        pid: None,
        _mount: Some(mount),
        _dir: Some(dir),
    })
}

/// An absolute host path (relative ones are taken from the working directory),
/// keeping a trailing `/` or `/.`.
fn absolute(path: &str) -> Result<String> {
    if path.starts_with('/') {
        return Ok(path.to_string());
    }
    let cwd = std::env::current_dir().context("reading the working directory")?;
    Ok(format!("{}/{path}", cwd.display()))
}

/// Copies as asked.
pub fn run(global: &Global, args: &CpArgs) -> Result<()> {
    let store_root = super::store_root(global);
    let owner = if args.archive {
        Owner::Archive
    } else {
        Owner::Caller
    };
    match (endpoint(&args.source), endpoint(&args.destination)) {
        (Endpoint::Container(name, src), dst) => {
            let c = container::find(&store_root, &name)?;
            let ctr = container_root(global, &c)?;
            let Some(src_kind) = ctr.root.kind(&src, args.follow_link)? else {
                bail!("Could not find the file {src} in container {name}");
            };
            match dst {
                Endpoint::Stream => {
                    let (_, base) = tree::split(src.trim_end_matches("/."));
                    let name = (!src.ends_with("/.")).then_some(base.as_str());
                    let mut out = std::io::stdout().lock();
                    tree::archive(&ctr.root, &src, name, args.follow_link, &mut out)?;
                    out.flush()?;
                    Ok(())
                }
                Endpoint::Host(dst) => {
                    let dst = absolute(&dst)?;
                    let at = place(&src, src_kind, &dst, tree::host_kind(Path::new(&dst)))?;
                    if tree::host_kind(Path::new(&at.dir)) != Some(Kind::Dir) {
                        bail!("no such directory: {}", at.dir);
                    }
                    let host = Root::open(&PathBuf::from(&at.dir))?;
                    pipe(
                        |w| tree::archive(&ctr.root, &src, at.name.as_deref(), args.follow_link, w),
                        |r| tree::extract(&host, "/", r, owner),
                    )
                }
                Endpoint::Container(..) => {
                    bail!("copying between containers is not supported")
                }
            }
        }
        (src, Endpoint::Container(name, dst)) => {
            let c = container::find(&store_root, &name)?;
            let ctr = container_root(global, &c)?;
            let dst_kind = ctr.root.kind(&dst, true)?;
            let written = match src {
                Endpoint::Stream => {
                    if dst_kind != Some(Kind::Dir) {
                        bail!("destination {dst:?} must be a directory in container {name}");
                    }
                    tree::extract(&ctr.root, &dst, std::io::stdin().lock(), owner)?;
                    Ok(())
                }
                Endpoint::Host(src) => {
                    let src = absolute(&src)?;
                    let Some(src_kind) = tree::host_kind(Path::new(&src)) else {
                        bail!("no such file or directory: {src}");
                    };
                    let at = place(&src, src_kind, &dst, dst_kind)?;
                    if ctr.root.kind(&at.dir, true)? != Some(Kind::Dir) {
                        bail!("no such directory in container {name}: {}", at.dir);
                    }
                    let host = tree::host_root()?;
                    pipe(
                        |w| tree::archive(&host, &src, at.name.as_deref(), args.follow_link, w),
                        |r| tree::extract(&ctr.root, &at.dir, r, owner),
                    )
                }
                Endpoint::Container(..) => unreachable!("matched above"),
            };
            written?;
            ctr.finish()
        }
        _ => Err(anyhow!(
            "one of the paths must name a container: CONTAINER:PATH"
        )),
    }
}

/// Runs `produce` (writing a tar) on a thread and `consume` (reading it) here,
/// connected by a pipe, so nothing is buffered whole.
fn pipe(
    produce: impl FnOnce(&mut std::io::PipeWriter) -> Result<(), tree::Error> + Send,
    consume: impl FnOnce(std::io::PipeReader) -> Result<(), tree::Error>,
) -> Result<()> {
    let (reader, mut writer) = std::io::pipe().context("creating a pipe")?;
    std::thread::scope(|s| {
        let producer = s.spawn(move || produce(&mut writer));
        let consumed = consume(reader);
        let produced = producer
            .join()
            .map_err(|_| anyhow!("the copying thread panicked"))?;
        // The producer's error first: the consumer's is often only its consequence.
        produced?;
        consumed?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_read_like_dockers() {
        assert_eq!(endpoint("-"), Endpoint::Stream);
        assert_eq!(endpoint("./a:b"), Endpoint::Host("./a:b".into()));
        assert_eq!(endpoint("/x:y"), Endpoint::Host("/x:y".into()));
        assert_eq!(
            endpoint("web:etc/hosts"),
            Endpoint::Container("web".into(), "/etc/hosts".into())
        );
        assert_eq!(
            endpoint("web:/"),
            Endpoint::Container("web".into(), "/".into())
        );
        assert_eq!(endpoint("plain"), Endpoint::Host("plain".into()));
    }

    fn at(dir: &str, name: Option<&str>) -> Placement {
        Placement {
            dir: dir.into(),
            name: name.map(String::from),
        }
    }

    #[test]
    fn placement_follows_dockers_table() {
        use Kind::{Dir, Other};
        // a file
        assert_eq!(
            place("/a/f", Other, "/d/new", None).unwrap(),
            at("/d", Some("new"))
        );
        assert!(place("/a/f", Other, "/d/new/", None).is_err());
        assert_eq!(
            place("/a/f", Other, "/d/g", Some(Other)).unwrap(),
            at("/d", Some("g"))
        );
        assert_eq!(
            place("/a/f", Other, "/d", Some(Dir)).unwrap(),
            at("/d", Some("f"))
        );
        assert!(place("/a/f/", Other, "/d", Some(Dir)).is_err());
        // a directory
        assert_eq!(
            place("/a/s", Dir, "/d/new", None).unwrap(),
            at("/d", Some("new"))
        );
        assert_eq!(
            place("/a/s/.", Dir, "/d/new", None).unwrap(),
            at("/d", Some("new"))
        );
        assert!(place("/a/s", Dir, "/d/g", Some(Other)).is_err());
        assert_eq!(
            place("/a/s", Dir, "/d", Some(Dir)).unwrap(),
            at("/d", Some("s"))
        );
        assert_eq!(
            place("/a/s/", Dir, "/d", Some(Dir)).unwrap(),
            at("/d", Some("s"))
        );
        assert_eq!(
            place("/a/s/.", Dir, "/d", Some(Dir)).unwrap(),
            at("/d", None)
        );
    }
}
