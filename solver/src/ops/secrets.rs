//! `RUN --mount=type=secret` and `type=ssh`: what the build is given with
//! `--secret` / `--ssh`, and how a RUN sees it.
//!
//! A secret never reaches a layer, a cache key or the history: the IR names
//! it only by id (so its content is not in any digest), its file lives in
//! the RUN's private temp dir outside the rootfs and is bind-mounted
//! read-only (the runner removes the mount-point stub it had to create), and
//! `env=` values are given to the process only. As in BuildKit, changing a
//! secret's content does not invalidate the cache.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bake_runner::MountSpec;

use super::{io_err, Error};

/// Where a secret's bytes come from.
#[derive(Clone)]
pub enum Secret {
    /// `--secret id=…,src=PATH`: read when a RUN mounts it.
    File(PathBuf),
    /// `--secret id=…,env=VAR`: the variable's value, read by the cli.
    Value(Vec<u8>),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::File(p) => f.debug_tuple("File").field(p).finish(),
            // Never print a secret's value.
            Secret::Value(_) => f.write_str("Value(..)"),
        }
    }
}

/// The secrets and SSH agent sockets a build may mount, by id.
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    /// `--secret id=ID,…`.
    pub secrets: BTreeMap<String, Secret>,
    /// `--ssh ID=SOCKET` (`default` is `$SSH_AUTH_SOCK`).
    pub ssh: BTreeMap<String, PathBuf>,
}

/// A secret file's owner and mode inside the RUN.
pub struct FileAttrs {
    /// Mode bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl Secrets {
    /// The bytes of secret `id`; `None` when the build was not given it.
    ///
    /// # Errors
    /// The secret's file cannot be read.
    pub fn read(&self, id: &str) -> Result<Option<Vec<u8>>, Error> {
        match self.secrets.get(id) {
            None => Ok(None),
            Some(Secret::Value(v)) => Ok(Some(v.clone())),
            Some(Secret::File(p)) => fs::read(p).map(Some).map_err(io_err("read secret", p)),
        }
    }

    /// Mounts secret `id` at `target`: its file is written to `path` (in
    /// the RUN's temp dir) and bind-mounted read-only. `None` when the secret
    /// was not given and is not `required` (BuildKit skips the mount).
    ///
    /// # Errors
    /// [`Error::MissingSecret`] when required; write failures.
    pub fn mount(
        &self,
        id: &str,
        required: bool,
        target: &str,
        attrs: &FileAttrs,
        path: &Path,
    ) -> Result<Option<(MountSpec, Vec<u8>)>, Error> {
        let Some(bytes) = self.read(id)? else {
            return if required {
                Err(Error::MissingSecret(id.to_string()))
            } else {
                Ok(None)
            };
        };
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io_err("create secret", path))?;
        f.write_all(&bytes).map_err(io_err("write secret", path))?;
        std::os::unix::fs::fchown(&f, Some(attrs.uid), Some(attrs.gid))
            .map_err(io_err("chown secret", path))?;
        f.set_permissions(fs::Permissions::from_mode(attrs.mode))
            .map_err(io_err("chmod secret", path))?;
        Ok(Some((
            MountSpec::Bind {
                source: path.to_path_buf(),
                target: target.to_string(),
                readonly: true,
            },
            bytes,
        )))
    }

    /// Binds SSH agent socket `id` at `target`. `None` when not given and
    /// not `required`.
    ///
    /// # Errors
    /// [`Error::MissingSsh`] when required.
    pub fn ssh_mount(
        &self,
        id: &str,
        required: bool,
        target: &str,
    ) -> Result<Option<MountSpec>, Error> {
        match self.ssh.get(id) {
            Some(socket) => Ok(Some(MountSpec::Bind {
                source: socket.clone(),
                target: target.to_string(),
                readonly: false,
            })),
            None if required => Err(Error::MissingSsh(id.to_string())),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn secrets_are_written_with_their_mode_and_skipped_when_optional() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::write(&src, "s3cr3t").unwrap();
        let s = Secrets {
            secrets: BTreeMap::from([
                ("file".to_string(), Secret::File(src)),
                ("env".to_string(), Secret::Value(b"v".to_vec())),
            ]),
            ssh: BTreeMap::new(),
        };
        assert_eq!(format!("{:?}", s.secrets["env"]), "Value(..)");
        let attrs = FileAttrs {
            mode: 0o440,
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
        };
        let (spec, bytes) = s
            .mount(
                "file",
                true,
                "/run/secrets/file",
                &attrs,
                &dir.path().join("m0"),
            )
            .unwrap()
            .unwrap();
        assert_eq!(bytes, b"s3cr3t");
        let MountSpec::Bind {
            source, readonly, ..
        } = spec
        else {
            panic!("not a bind")
        };
        assert!(readonly);
        assert_eq!(fs::metadata(&source).unwrap().mode() & 0o7777, 0o440);
        assert!(s
            .mount("nope", false, "/x", &attrs, &dir.path().join("m1"))
            .unwrap()
            .is_none());
        assert!(matches!(
            s.mount("nope", true, "/x", &attrs, &dir.path().join("m2")),
            Err(Error::MissingSecret(_))
        ));
        assert!(s.ssh_mount("default", false, "/s").unwrap().is_none());
        assert!(s.ssh_mount("default", true, "/s").is_err());
    }
}
