//! `--chown`: resolving `user[:group]` against the destination's
//! `/etc/passwd` and `/etc/group`.

use std::path::{Path, PathBuf};

use crate::beneath;
use crate::ir::Owner;

/// Why an owner cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A user name that the destination's `/etc/passwd` does not have.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    /// A group name that the destination's `/etc/group` does not have.
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    /// Reading `/etc/passwd` or `/etc/group` failed.
    #[error("reading {path:?}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Resolving the file beneath the root failed.
    #[error(transparent)]
    Resolve(#[from] beneath::Error),
}

/// A numeric owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ids {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

fn read_db(root: &Path, file: &str) -> Result<String, Error> {
    let path = beneath::host_path(root, file, true)?;
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(Error::Read { path, source }),
    }
}

/// Finds `name` in a passwd/group style file: returns fields 2 and 3.
fn lookup(db: &str, name: &str) -> Option<(u32, Option<u32>)> {
    db.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 3 && f[0] == name {
            Some((f[2].parse().ok()?, f.get(3).and_then(|g| g.parse().ok())))
        } else {
            None
        }
    })
}

/// Resolves `owner` in the filesystem at `root` (the COPY destination).
///
/// A numeric user without a group gets the same number as gid (BuildKit);
/// a user name without a group gets its primary group.
///
/// # Errors
/// Unknown names, unreadable files.
pub fn resolve(root: &Path, owner: &Owner) -> Result<Ids, Error> {
    let mut passwd = None;
    let (uid, primary) = match owner.user.parse::<u32>() {
        Ok(uid) => (uid, uid),
        Err(_) => {
            let db = passwd.insert(read_db(root, "/etc/passwd")?);
            match lookup(db, &owner.user) {
                Some((uid, Some(gid))) => (uid, gid),
                _ => return Err(Error::UnknownUser(owner.user.clone())),
            }
        }
    };
    let gid = match &owner.group {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let db = read_db(root, "/etc/group")?;
                lookup(&db, g)
                    .map(|(gid, _)| gid)
                    .ok_or_else(|| Error::UnknownGroup(g.clone()))?
            }
        },
    };
    Ok(Ids { uid, gid })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(u: &str, g: Option<&str>) -> Owner {
        Owner {
            user: u.to_string(),
            group: g.map(str::to_string),
        }
    }

    #[test]
    fn names_numbers_and_defaults() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::fs::write(
            t.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\napp:x:1000:1000:app:/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            t.path().join("etc/group"),
            "root:x:0:\nnobody:x:65534:\napp:x:1000:\n",
        )
        .unwrap();
        let r = |u, g| resolve(t.path(), &owner(u, g)).unwrap();
        assert_eq!(
            r("app", Some("app")),
            Ids {
                uid: 1000,
                gid: 1000
            }
        );
        assert_eq!(
            r("app", None),
            Ids {
                uid: 1000,
                gid: 1000
            }
        );
        assert_eq!(r("nobody", Some("root")), Ids { uid: 65534, gid: 0 });
        assert_eq!(
            r("app", Some("nobody")),
            Ids {
                uid: 1000,
                gid: 65534
            }
        );
        assert_eq!(
            r("1234", None),
            Ids {
                uid: 1234,
                gid: 1234
            }
        );
        assert_eq!(r("1234", Some("5")), Ids { uid: 1234, gid: 5 });
        assert!(matches!(
            resolve(t.path(), &owner("ghost", None)),
            Err(Error::UnknownUser(_))
        ));
        assert!(matches!(
            resolve(t.path(), &owner("app", Some("ghosts"))),
            Err(Error::UnknownGroup(_))
        ));
    }
}
