//! `ADD <git remote>#<ref>:<subdir>`: a checkout made with the system
//! `git`, fed to the ADD's copy like a downloaded file.
//!
//! Why the system `git` and not a crate: it speaks every transport users
//! have configured (smart and dumb HTTP, ssh with their agent, `insteadOf`
//! rewrites, credential helpers) and is what BuildKit shells out to as well.
//!
//! The cache key is the remote, the *resolved commit id*, the subdir and
//! `--keep-git-dir`: a branch or tag is resolved with `git ls-remote` on
//! every build (one small request, no clone), a full commit id is its own
//! id. So a moved branch rebuilds the ADD, an unchanged one is cached, and
//! the clone itself happens only when the ADD actually runs
//! ([`Checkout::dir`] is lazy, like [`super::http::Remote`]).
//!
//! The clone is `git init` + `git fetch --depth=1 <remote> <ref>` +
//! `git checkout` of the resolved commit, then `git submodule update
//! --init --recursive` when there is a `.gitmodules` (as BuildKit does;
//! relative submodule URLs resolve against the remote). Dumb HTTP servers
//! cannot serve shallow fetches, so a fetch refused for that reason is
//! retried in full.
//!
//! Files are owned by 0:0 (or `--chown`, applied by the copy) and every
//! entry's mtime is the **commit time** of the checked-out commit (one of
//! BuildKit's two choices; it is deterministic and says something true).
//! `.git` (and the submodules' `.git` links) is dropped unless
//! `--keep-git-dir`. `--checksum` is a commit id
//! (full, or an abbreviation of at least 7 hex digits): the build fails if
//! the ref resolves to another commit.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock};

use bake_store::Store;

use crate::digest::Key;
use crate::ir::Source;

/// Why a git source failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `git` is not installed (or not on `PATH`).
    #[error("ADD from a git repository needs the `git` command, which was not found on PATH: install git")]
    GitMissing(#[source] std::io::Error),
    /// A git command could not be started.
    #[error("running git {args}")]
    Spawn {
        /// The arguments.
        args: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A git command failed; `stderr` is git's own message.
    #[error("git {args} failed: {stderr}")]
    Command {
        /// The arguments.
        args: String,
        /// git's stderr, trimmed.
        stderr: String,
    },
    /// The remote has no branch or tag of that name.
    #[error(
        "git ref {reference:?} not found in {remote} (give a branch, a tag or a full commit id)"
    )]
    RefNotFound {
        /// The remote.
        remote: String,
        /// The ref asked for.
        reference: String,
    },
    /// The `#ref:subdir` sub-directory does not exist in the commit.
    #[error("subdirectory {subdir:?} not found in {remote} at {commit}")]
    SubdirMissing {
        /// The remote.
        remote: String,
        /// The subdir asked for.
        subdir: String,
        /// The commit checked out.
        commit: String,
    },
    /// The subdir leaves the repository (`..` or a symlink pointing out).
    #[error("subdirectory {0:?} is outside the repository")]
    SubdirEscapes(String),
    /// `--checksum` is not a commit id.
    #[error("invalid checksum {0:?} for a git source: expected a commit id (7 to 64 hex digits)")]
    InvalidChecksum(String),
    /// The ref resolved to another commit than `--checksum`.
    #[error(
        "checksum mismatch for {remote}#{reference}: expected commit {expected}, got {actual}"
    )]
    Mismatch {
        /// The remote.
        remote: String,
        /// The ref.
        reference: String,
        /// `--checksum`.
        expected: String,
        /// The resolved commit.
        actual: String,
    },
    /// The ref moved between resolving and fetching it.
    #[error("git ref {reference:?} of {remote} moved during the build (resolved {resolved}, fetched {fetched}): build again")]
    Moved {
        /// The remote.
        remote: String,
        /// The ref.
        reference: String,
        /// What `ls-remote` said.
        resolved: String,
        /// What the fetch brought.
        fetched: String,
    },
    /// Preparing the checkout (removing `.git`, setting times) failed.
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
    /// No temp dir could be made in the store.
    #[error(transparent)]
    Layout(#[from] bake_store::layout::Error),
}

/// What a git source asks for (the IR's `Source::Git`, borrowed).
#[derive(Clone, Copy, Debug)]
pub struct Spec<'a> {
    /// Remote URL.
    pub remote: &'a str,
    /// Branch, tag or commit; the default branch when `None`.
    pub reference: Option<&'a str>,
    /// Sub-directory to take.
    pub subdir: Option<&'a str>,
    /// `--keep-git-dir`.
    pub keep_git_dir: bool,
    /// `--checksum`: the commit the ref must resolve to.
    pub checksum: Option<&'a str>,
}

impl<'a> Spec<'a> {
    /// The request of a `Source::Git`; `None` for any other source.
    pub fn of(source: &'a Source) -> Option<Spec<'a>> {
        match source {
            Source::Git {
                remote,
                reference,
                subdir,
                keep_git_dir,
                checksum,
            } => Some(Spec {
                remote,
                reference: reference.as_deref(),
                subdir: subdir.as_deref(),
                keep_git_dir: *keep_git_dir,
                checksum: checksum.as_deref(),
            }),
            _ => None,
        }
    }
}

/// A ref resolved to a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Resolved {
    /// The commit id (hex).
    commit: String,
    /// What to fetch: the full ref name, or the commit id itself.
    fetch: String,
}

/// A checked-out tree: the temp dir (removed on drop) and the directory
/// inside it to copy from.
struct Fetched {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

/// A git source of one solve: resolved once, cloned at most once, on first
/// need.
pub struct Checkout {
    store: Arc<Store>,
    remote: String,
    reference: Option<String>,
    subdir: Option<String>,
    keep_git_dir: bool,
    checksum: Option<String>,
    resolved: OnceLock<Resolved>,
    fetched: OnceLock<Fetched>,
    busy: Mutex<()>,
}

impl std::fmt::Debug for Checkout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkout")
            .field("remote", &self.remote)
            .field("reference", &self.reference)
            .field("subdir", &self.subdir)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Checkout {
    fn eq(&self, other: &Checkout) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Checkout {
    /// A source for `spec`; nothing is run yet.
    ///
    /// # Errors
    /// [`Error::InvalidChecksum`].
    pub fn new(store: Arc<Store>, spec: Spec<'_>) -> Result<Checkout, Error> {
        let checksum = spec
            .checksum
            .map(|c| {
                let c = c.strip_prefix("sha1:").unwrap_or(c).to_ascii_lowercase();
                if (7..=64).contains(&c.len()) && is_hex(&c) {
                    Ok(c)
                } else {
                    Err(Error::InvalidChecksum(c))
                }
            })
            .transpose()?;
        Ok(Checkout {
            store,
            remote: spec.remote.to_string(),
            reference: spec.reference.map(str::to_string),
            subdir: spec.subdir.map(str::to_string).filter(|s| !s.is_empty()),
            keep_git_dir: spec.keep_git_dir,
            checksum,
            resolved: OnceLock::new(),
            fetched: OnceLock::new(),
            busy: Mutex::new(()),
        })
    }

    /// The content key: remote, resolved commit, subdir, keep-git-dir.
    /// Resolving a branch or tag asks the remote (`git ls-remote`).
    ///
    /// # Errors
    /// git missing or failing, an unknown ref, a `--checksum` mismatch.
    pub fn key(&self) -> Result<Key, Error> {
        let r = self.resolve()?;
        Ok(Key::of(
            format!(
                "bake.git.v1\0{}\0{}\0{}\0{}",
                self.remote,
                r.commit,
                self.subdir.as_deref().unwrap_or(""),
                self.keep_git_dir
            )
            .as_bytes(),
        ))
    }

    /// The directory to copy from (the subdir of the checkout), cloning
    /// first if needed.
    ///
    /// # Errors
    /// As [`Checkout::key`], plus fetch/checkout failures and a missing
    /// subdir.
    pub fn dir(&self) -> Result<&Path, Error> {
        if let Some(f) = self.fetched.get() {
            return Ok(&f.root);
        }
        let _one_at_a_time = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = self.fetched.get() {
            return Ok(&f.root);
        }
        let resolved = self.resolve()?.clone();
        let fetched = self.clone_into(&resolved)?;
        Ok(&self.fetched.get_or_init(|| fetched).root)
    }

    fn reference_label(&self) -> String {
        self.reference.clone().unwrap_or_else(|| "HEAD".to_string())
    }

    fn resolve(&self) -> Result<&Resolved, Error> {
        if let Some(r) = self.resolved.get() {
            return Ok(r);
        }
        let r = match self.reference.as_deref() {
            Some(c) if is_commit_id(c) => Resolved {
                commit: c.to_ascii_lowercase(),
                fetch: c.to_ascii_lowercase(),
            },
            reference => {
                let pattern = reference.unwrap_or("HEAD");
                // `name^{}` too: the commit an annotated tag points at.
                let peeled = format!("{pattern}^{{}}");
                let out = git(None, ["ls-remote", "--", &self.remote, pattern, &peeled])?;
                pick_ref(&String::from_utf8_lossy(&out.stdout), pattern).ok_or_else(|| {
                    Error::RefNotFound {
                        remote: self.remote.clone(),
                        reference: pattern.to_string(),
                    }
                })?
            }
        };
        if let Some(expected) = &self.checksum {
            if !r.commit.starts_with(expected.as_str()) {
                return Err(Error::Mismatch {
                    remote: self.remote.clone(),
                    reference: self.reference_label(),
                    expected: expected.clone(),
                    actual: r.commit,
                });
            }
        }
        Ok(self.resolved.get_or_init(|| r))
    }

    fn clone_into(&self, r: &Resolved) -> Result<Fetched, Error> {
        let dir = self.store.temp_dir("git")?;
        let tree = dir.path().join("tree");
        git(
            None,
            [OsStr::new("init"), OsStr::new("-q"), tree.as_os_str()],
        )?;
        // A remote named `origin`, so that relative submodule URLs
        // (`../lib.git`) resolve against it.
        git(Some(&tree), ["remote", "add", "--", "origin", &self.remote])?;
        shallow_or_full(|depth| {
            let mut args = vec!["fetch", "-q", "--no-tags"];
            args.extend(depth);
            args.extend(["origin", &r.fetch]);
            git(Some(&tree), args)
        })?;
        let out = git(Some(&tree), ["rev-parse", "FETCH_HEAD^{commit}"])?;
        let fetched = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if fetched != r.commit {
            return Err(Error::Moved {
                remote: self.remote.clone(),
                reference: self.reference_label(),
                resolved: r.commit.clone(),
                fetched,
            });
        }
        git(
            Some(&tree),
            [
                "-c",
                "advice.detachedHead=false",
                "checkout",
                "-q",
                &r.commit,
            ],
        )?;
        if tree.join(".gitmodules").exists() {
            // BuildKit checks submodules out too.
            shallow_or_full(|depth| {
                let mut args = vec!["submodule", "update", "-q", "--init", "--recursive"];
                args.extend(depth);
                git(Some(&tree), args)
            })?;
        }
        let out = git(Some(&tree), ["log", "-1", "--format=%ct", &r.commit])?;
        let time: i64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        if !self.keep_git_dir {
            remove_git_dirs(&tree)?;
        }
        let root = match &self.subdir {
            Some(s) => subdir(&tree, s).and_then(|p| {
                p.ok_or_else(|| Error::SubdirMissing {
                    remote: self.remote.clone(),
                    subdir: s.clone(),
                    commit: r.commit.clone(),
                })
            })?,
            None => tree,
        };
        set_times(&root, time)?;
        Ok(Fetched { _dir: dir, root })
    }
}

/// Runs `op` with `--depth=1`, and again without it when the server
/// cannot serve shallow fetches (dumb HTTP, a plain file server).
fn shallow_or_full(
    op: impl Fn(Option<&'static str>) -> Result<Output, Error>,
) -> Result<Output, Error> {
    match op(Some("--depth=1")) {
        Err(Error::Command { stderr, .. }) if stderr.contains("shallow") => op(None),
        other => other,
    }
}

/// Removes the repository's `.git` and the `.git` links of its
/// submodules (git never tracks a path named `.git`, so every one of them
/// is git's own).
fn remove_git_dirs(tree: &Path) -> Result<(), Error> {
    let mut found = Vec::new();
    let mut walk = walkdir::WalkDir::new(tree).min_depth(1).into_iter();
    while let Some(entry) = walk.next() {
        let entry = entry.map_err(|e| Error::Io {
            op: "walk",
            path: e.path().unwrap_or(tree).to_path_buf(),
            source: e.into(),
        })?;
        if entry.file_name() == ".git" {
            if entry.file_type().is_dir() {
                walk.skip_current_dir();
            }
            found.push((entry.path().to_path_buf(), entry.file_type().is_dir()));
        }
    }
    for (path, is_dir) in found {
        let removed = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(io("remove", &path))?;
    }
    Ok(())
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A full SHA-1 or SHA-256 commit id (an abbreviation is not: a remote
/// cannot be asked for one).
fn is_commit_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && is_hex(s)
}

/// Picks the commit for `name` from `git ls-remote` output, in git's own
/// order of precedence (`refs/<name>`, `refs/tags/`, `refs/heads/`); an
/// annotated tag resolves to the commit it points at (`^{}`), but is
/// fetched by its name.
fn pick_ref(listing: &str, name: &str) -> Option<Resolved> {
    let refs: Vec<(&str, &str)> = listing
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(sha, r)| (sha.trim(), r.trim()))
        .collect();
    let find = |r: &str| refs.iter().find(|(_, n)| *n == r).map(|(s, _)| *s);
    let candidates = if name == "HEAD" || name.starts_with("refs/") {
        vec![name.to_string()]
    } else {
        vec![
            format!("refs/{name}"),
            format!("refs/tags/{name}"),
            format!("refs/heads/{name}"),
        ]
    };
    candidates.into_iter().find_map(|full| {
        let sha = find(&format!("{full}^{{}}")).or_else(|| find(&full))?;
        Some(Resolved {
            commit: sha.to_ascii_lowercase(),
            fetch: full,
        })
    })
}

/// `tree/<subdir>` if it is a directory inside `tree` (symlinks
/// resolved), `None` if it does not exist.
fn subdir(tree: &Path, sub: &str) -> Result<Option<PathBuf>, Error> {
    let rel = Path::new(sub.trim_start_matches('/'));
    if rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(Error::SubdirEscapes(sub.to_string()));
    }
    let joined = tree.join(rel);
    let Ok(real) = joined.canonicalize() else {
        return Ok(None);
    };
    let base = tree.canonicalize().map_err(io("resolve", tree))?;
    if !real.starts_with(&base) {
        return Err(Error::SubdirEscapes(sub.to_string()));
    }
    Ok(real.is_dir().then_some(real))
}

/// Sets every entry's atime and mtime to `secs` (symlinks themselves, not
/// their targets).
fn set_times(root: &Path, secs: i64) -> Result<(), Error> {
    use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD};
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    // Children before their directory, so setting a child's time does not
    // bump the parent's again.
    for entry in walkdir::WalkDir::new(root).contents_first(true) {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            Error::Io {
                op: "walk",
                path,
                source: e.into(),
            }
        })?;
        utimensat(CWD, entry.path(), &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io("set times", entry.path())(e.into()))?;
    }
    Ok(())
}

/// Runs `git` with `args` (in `cwd`), never prompting for credentials,
/// and returns its output, or its stderr as the error.
fn git<I, S>(cwd: Option<&Path>, args: I) -> Result<Output, Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args
        .into_iter()
        .map(|a| a.as_ref().to_os_string())
        .collect();
    let shown = args
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new("git");
    cmd.args(&args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null());
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::GitMissing(e)
        } else {
            Error::Spawn {
                args: shown.clone(),
                source: e,
            }
        }
    })?;
    if !out.status.success() {
        return Err(Error::Command {
            args: shown,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = "\
c75964de554c9d9bb869f34b28de8d91f0196eb6\tHEAD
1111111111111111111111111111111111111111\trefs/heads/main
2222222222222222222222222222222222222222\trefs/heads/v1
3333333333333333333333333333333333333333\trefs/tags/v1
05cc44f691d88e10003a1e4961070096b9e68c7d\trefs/tags/ann
4444444444444444444444444444444444444444\trefs/tags/ann^{}
";

    #[test]
    fn refs_resolve_in_gits_order() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            (
                "HEAD",
                Some(("c75964de554c9d9bb869f34b28de8d91f0196eb6", "HEAD")),
            ),
            (
                "main",
                Some((
                    "1111111111111111111111111111111111111111",
                    "refs/heads/main",
                )),
            ),
            // A tag beats a branch of the same name, as in git.
            (
                "v1",
                Some(("3333333333333333333333333333333333333333", "refs/tags/v1")),
            ),
            (
                "refs/heads/v1",
                Some(("2222222222222222222222222222222222222222", "refs/heads/v1")),
            ),
            // An annotated tag resolves to its commit, fetched by name.
            (
                "ann",
                Some(("4444444444444444444444444444444444444444", "refs/tags/ann")),
            ),
            ("nope", None),
        ];
        for (name, want) in cases {
            let got = pick_ref(LISTING, name).map(|r| (r.commit, r.fetch));
            let want = want.map(|(c, f)| (c.to_string(), f.to_string()));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn commit_ids() {
        assert!(is_commit_id("c75964de554c9d9bb869f34b28de8d91f0196eb6"));
        assert!(!is_commit_id("c75964d"));
        assert!(!is_commit_id("main"));
    }

    #[test]
    fn subdirs_stay_inside() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("/etc", t.path().join("out")).unwrap();
        assert!(subdir(t.path(), "sub").unwrap().is_some());
        assert!(subdir(t.path(), "/sub/").unwrap().is_some());
        assert!(subdir(t.path(), "missing").unwrap().is_none());
        assert!(matches!(
            subdir(t.path(), "../x"),
            Err(Error::SubdirEscapes(_))
        ));
        assert!(matches!(
            subdir(t.path(), "out"),
            Err(Error::SubdirEscapes(_))
        ));
    }
}
