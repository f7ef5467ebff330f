//! USER resolution from the container's `/etc/passwd` and `/etc/group`, with Docker's
//! semantics (moby/sys/user `GetExecUser`). Pure: the files' contents come in as strings.

use crate::Error;

/// The identity the container process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ids {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// The home directory from passwd, `/` when the user has no entry.
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    records(text).filter_map(|fields| {
        Some(PasswdEntry {
            name: fields.first()?,
            uid: fields.get(2)?.parse().ok()?,
            gid: fields.get(3)?.parse().ok()?,
            home: fields.get(5).copied().unwrap_or(""),
        })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    records(text).filter_map(|fields| {
        Some(GroupEntry {
            name: fields.first()?,
            gid: fields.get(2)?.parse().ok()?,
            members: fields
                .get(3)
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        })
    })
}

/// Non-empty, non-comment lines split on `:`.
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}

/// Resolves `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`, …) against the
/// container's passwd and group files (`None` when the file does not exist).
///
/// Like Docker: a numeric user or group needs no entry; a name must have one; when the
/// user matched an entry and no group is given, the supplementary groups are the groups
/// listing the user's name as a member.
pub(crate) fn resolve(spec: &str, passwd: Option<&str>, group: Option<&str>) -> Result<Ids, Error> {
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, g),
        None => (spec, ""),
    };
    let numeric_uid: Option<u32> = user_arg.parse().ok();
    let mut ids = Ids {
        uid: 0,
        gid: 0,
        groups: Vec::new(),
        home: "/".to_string(),
    };
    let mut user_name = None;
    let matched = passwd.and_then(|text| {
        passwd_entries(text).find(|e| match (user_arg, numeric_uid) {
            ("", _) => e.uid == 0,
            (_, Some(uid)) => e.uid == uid,
            (name, None) => e.name == name,
        })
    });
    match (matched, numeric_uid) {
        (Some(entry), _) => {
            ids.uid = entry.uid;
            ids.gid = entry.gid;
            ids.home = if entry.home.is_empty() {
                "/"
            } else {
                entry.home
            }
            .to_string();
            user_name = Some(entry.name);
        }
        (None, Some(uid)) => ids.uid = uid,
        (None, None) if user_arg.is_empty() => {}
        (None, None) => return Err(Error::UserNotFound(user_arg.to_string())),
    }

    if group_arg.is_empty() {
        if let (Some(name), Some(text)) = (user_name, group) {
            let mut groups: Vec<u32> = group_entries(text)
                .filter(|g| g.members.contains(&name))
                .map(|g| g.gid)
                .collect();
            groups.dedup();
            ids.groups = groups;
        }
    } else {
        let numeric_gid: Option<u32> = group_arg.parse().ok();
        let found = group.and_then(|text| {
            group_entries(text)
                .find(|g| g.name == group_arg || Some(g.gid) == numeric_gid)
                .map(|g| g.gid)
        });
        ids.gid = match (found, numeric_gid) {
            (Some(gid), _) | (None, Some(gid)) => gid,
            (None, None) => return Err(Error::GroupNotFound(group_arg.to_string())),
        };
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
broken line
nohome:x:1001:1001::::
";
    const GROUP: &str = "\
root:x:0:
wheel:x:10:app,root
app:x:1000:
docker:x:999:other, app
";

    fn ids(spec: &str) -> Result<Ids, Error> {
        resolve(spec, Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn empty_is_root_with_its_home() {
        let r = ids("").unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (0, 0, "/root"));
        assert_eq!(r.groups, vec![10]);
    }

    #[test]
    fn name_resolves_uid_gid_home_and_supplementary_groups() {
        let r = ids("app").unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (1000, 1000, "/home/app"));
        assert_eq!(r.groups, vec![10, 999]);
    }

    #[test]
    fn numeric_uid_with_an_entry_uses_it() {
        let r = ids("1000").unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (1000, 1000, "/home/app"));
    }

    #[test]
    fn numeric_uid_without_entry_gets_gid_0_and_home_slash() {
        let r = ids("4242").unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (4242, 0, "/"));
        assert!(r.groups.is_empty());
    }

    #[test]
    fn explicit_group_by_name_or_number_and_no_supplementary_groups() {
        let r = ids("app:wheel").unwrap();
        assert_eq!((r.uid, r.gid), (1000, 10));
        assert!(r.groups.is_empty());
        let r = ids("4242:4343").unwrap();
        assert_eq!((r.uid, r.gid), (4242, 4343));
        let r = ids("daemon:999").unwrap();
        assert_eq!((r.uid, r.gid), (1, 999));
    }

    #[test]
    fn unknown_names_are_clear_errors() {
        assert!(matches!(ids("nobody"), Err(Error::UserNotFound(u)) if u == "nobody"));
        assert!(matches!(ids("app:nogroup"), Err(Error::GroupNotFound(g)) if g == "nogroup"));
    }

    #[test]
    fn missing_files() {
        let r = resolve("", None, None).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (0, 0, "/"));
        assert_eq!(resolve("7:8", None, None).unwrap().gid, 8);
        assert!(matches!(
            resolve("app", None, None),
            Err(Error::UserNotFound(_))
        ));
    }

    #[test]
    fn empty_home_field_means_slash() {
        assert_eq!(ids("nohome").unwrap().home, "/");
    }
}
