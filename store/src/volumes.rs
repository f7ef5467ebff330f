//! Named volumes: `volumes/<name>/_data` under the store (Docker's layout), plus a
//! small `volume.json` with the creation time.
//!
//! The store owns the directories because they outlive any container and belong
//! to the store like images do; it knows nothing of containers, so "is it in use"
//! is the caller's question. Names are checked against Docker's rule
//! (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`) before any path is built from one, so a name can
//! never be `..` or hold a `/`.

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::layout::Store;

/// Why a volume operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The name breaks Docker's rule.
    #[error(
        "invalid volume name {0:?}: it must match [a-zA-Z0-9][a-zA-Z0-9_.-]+ (two or more characters)"
    )]
    InvalidName(String),
    /// No volume has that name.
    #[error("no such volume: {0}")]
    NotFound(String),
    /// A volume directory could not be created, read or removed.
    #[error("{op} {path}")]
    Io {
        /// What was done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// One named volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// The directory containers mount (`volumes/<name>/_data`).
    pub mountpoint: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
}

/// The record kept beside `_data`.
#[derive(Serialize, Deserialize)]
struct Record {
    created: String,
}

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl Store {
    /// `volumes/`.
    pub fn volumes_dir(&self) -> PathBuf {
        self.root().join("volumes")
    }

    fn volume_dir(&self, name: &str) -> Result<PathBuf, Error> {
        if !valid_name(name) {
            return Err(Error::InvalidName(name.to_string()));
        }
        Ok(self.volumes_dir().join(name))
    }

    /// The volume `name`, if it exists.
    ///
    /// # Errors
    /// [`Error::InvalidName`].
    pub fn volume(&self, name: &str) -> Result<Option<Volume>, Error> {
        let dir = self.volume_dir(name)?;
        let data = dir.join("_data");
        if !data.is_dir() {
            return Ok(None);
        }
        let created = fs::read(dir.join("volume.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
            .map(|r| r.created)
            .unwrap_or_default();
        Ok(Some(Volume {
            name: name.to_string(),
            mountpoint: data,
            created,
        }))
    }

    /// Creates the volume `name` (an empty `_data`) unless it exists; returns it and
    /// whether it was created now. `created` is the RFC 3339 time to record.
    ///
    /// # Errors
    /// [`Error::InvalidName`], or [`Error::Io`] when the directories cannot be made.
    pub fn create_volume(&self, name: &str, created: &str) -> Result<(Volume, bool), Error> {
        if let Some(v) = self.volume(name)? {
            return Ok((v, false));
        }
        let dir = self.volume_dir(name)?;
        let io = |op, path: &PathBuf| {
            let path = path.clone();
            move |source| Error::Io { op, path, source }
        };
        let volumes = self.volumes_dir();
        fs::create_dir_all(&volumes).map_err(io("creating", &volumes))?;
        // Made under tmp/ and renamed, so a half-made volume never has the name.
        let staging = self.temp_dir("volume").map_err(|e| Error::Io {
            op: "creating a temporary dir for",
            path: dir.clone(),
            source: std::io::Error::other(e),
        })?;
        let data = staging.path().join("_data");
        fs::create_dir(&data).map_err(io("creating", &data))?;
        let record = serde_json::to_vec(&Record {
            created: created.to_string(),
        })
        .map_err(|e| Error::Io {
            op: "encoding",
            path: dir.join("volume.json"),
            source: e.into(),
        })?;
        let meta = staging.path().join("volume.json");
        fs::write(&meta, record).map_err(io("writing", &meta))?;
        let staged = staging.keep();
        match fs::rename(&staged, &dir) {
            Ok(()) => {}
            // Another process made it first: use theirs.
            Err(_) if dir.join("_data").is_dir() => {
                let _ = fs::remove_dir_all(&staged);
                let v = self
                    .volume(name)?
                    .ok_or(Error::NotFound(name.to_string()))?;
                return Ok((v, false));
            }
            Err(source) => {
                let _ = fs::remove_dir_all(&staged);
                return Err(Error::Io {
                    op: "creating",
                    path: dir,
                    source,
                });
            }
        }
        let v = self
            .volume(name)?
            .ok_or_else(|| Error::NotFound(name.to_string()))?;
        Ok((v, true))
    }

    /// Every volume, by name.
    ///
    /// # Errors
    /// [`Error::Io`] when `volumes/` cannot be listed.
    pub fn list_volumes(&self) -> Result<Vec<Volume>, Error> {
        let dir = self.volumes_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::Io {
                    op: "listing",
                    path: dir,
                    source,
                })
            }
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if valid_name(&name) {
                if let Some(v) = self.volume(&name)? {
                    out.push(v);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes the volume `name` and its data (the caller checks it is unused).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::InvalidName`], [`Error::Io`].
    pub fn remove_volume(&self, name: &str) -> Result<(), Error> {
        if self.volume(name)?.is_none() {
            return Err(Error::NotFound(name.to_string()));
        }
        let dir = self.volume_dir(name)?;
        // Renamed away first: the name is free at once, the data goes after.
        let doomed = self
            .tmp_dir()
            .join(format!(".removing-volume-{name}-{}", std::process::id()));
        let target = match fs::rename(&dir, &doomed) {
            Ok(()) => doomed,
            Err(_) => dir,
        };
        fs::remove_dir_all(&target).map_err(|source| Error::Io {
            op: "removing",
            path: target.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        for good in ["data", "my-vol.1", "a_b", "9x"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "a", "..", ".x", "-x", "a/b", "../x", "a b"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn volumes_are_created_once_listed_and_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let (v, new) = store.create_volume("data", "2024-01-01T00:00:00Z").unwrap();
        assert!(new);
        assert_eq!(v.mountpoint, tmp.path().join("volumes/data/_data"));
        std::fs::write(v.mountpoint.join("f"), "x").unwrap();
        let (again, new) = store.create_volume("data", "later").unwrap();
        assert!(!new);
        assert_eq!(again.created, "2024-01-01T00:00:00Z");
        assert!(again.mountpoint.join("f").exists());
        assert_eq!(store.list_volumes().unwrap(), vec![again]);
        assert!(matches!(
            store.create_volume("..", "t"),
            Err(Error::InvalidName(_))
        ));
        store.remove_volume("data").unwrap();
        assert!(store.list_volumes().unwrap().is_empty());
        assert!(matches!(
            store.remove_volume("data"),
            Err(Error::NotFound(_))
        ));
    }
}
