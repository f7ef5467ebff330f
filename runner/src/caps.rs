//! Capabilities: Docker's default set unless privileged.

use std::str::FromStr;

use caps::{CapSet, Capability};

pub(crate) use caps::CapsHashSet;

use crate::Error;

/// Docker's default capability set (moby `oci/caps/defaults.go`).
pub(crate) const DEFAULT: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

fn caps_error(e: caps::errors::CapsError) -> Error {
    Error::Capabilities {
        message: e.to_string(),
    }
}

/// Parses `NET_ADMIN`, `net_admin` or `CAP_NET_ADMIN` (`ALL` is handled by [`effective_set`]).
fn parse(name: &str) -> Result<Capability, Error> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    Capability::from_str(&full).map_err(|_| Error::Capabilities {
        message: format!("unknown capability {name:?}"),
    })
}

/// Docker's rule for `--cap-add`/`--cap-drop`: the default set minus the dropped ones
/// (all of them for `ALL`), plus the added ones (every capability for `ALL`).
pub(crate) fn effective_set(add: &[String], drop: &[String]) -> Result<CapsHashSet, Error> {
    let is_all = |n: &String| n.eq_ignore_ascii_case("all");
    let mut set: CapsHashSet = if drop.iter().any(is_all) {
        CapsHashSet::new()
    } else {
        DEFAULT.into_iter().collect()
    };
    for name in drop.iter().filter(|n| !is_all(n)) {
        set.remove(&parse(name)?);
    }
    if add.iter().any(is_all) {
        set.extend(caps::all());
    }
    for name in add.iter().filter(|n| !is_all(n)) {
        set.insert(parse(name)?);
    }
    Ok(set)
}

/// Cuts the bounding set down to `keep` (see [`effective_set`]) and empties the
/// ambient set; the first half of the capability change, done while still fully
/// privileged (it needs CAP_SETPCAP), before the uid/gid switch (which needs
/// CAP_SETUID/CAP_SETGID even when `keep` has neither, e.g. `--cap-drop ALL`).
/// Privileged sandboxes keep everything but the ambient set.
///
/// Must run after every mount (the following [`restrict_sets`] drops CAP_SYS_ADMIN).
pub(crate) fn restrict_bounding(privileged: bool, keep: &CapsHashSet) -> Result<(), Error> {
    // Ambient caps may be unsupported by an old kernel: then there are none to clear.
    let _ = caps::clear(None, CapSet::Ambient);
    if privileged {
        return Ok(());
    }
    for cap in caps::read(None, CapSet::Bounding).map_err(caps_error)? {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(caps_error)?;
        }
    }
    Ok(())
}

/// The second half, after the uid/gid switch: root keeps exactly `keep` as its
/// effective, permitted and inheritable sets; any other user already lost its
/// effective and permitted sets in setuid (no PR_SET_KEEPCAPS), as with Docker, and
/// gets an empty inheritable set.
pub(crate) fn restrict_sets(privileged: bool, keep: &CapsHashSet, root: bool) -> Result<(), Error> {
    if privileged {
        return Ok(());
    }
    let keep = if root {
        keep.clone()
    } else {
        CapsHashSet::new()
    };
    // effective ⊆ permitted must hold after every capset: shrink effective first.
    for set in [CapSet::Effective, CapSet::Permitted, CapSet::Inheritable] {
        caps::set(None, set, &keep).map_err(caps_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_set_has_no_sys_admin_and_fourteen_caps() {
        let set: CapsHashSet = DEFAULT.into_iter().collect();
        assert_eq!(set.len(), 14);
        assert!(!set.contains(&Capability::CAP_SYS_ADMIN));
        assert!(set.contains(&Capability::CAP_SETUID));
    }

    #[test]
    fn cap_add_and_drop_follow_docker() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let set = effective_set(&s(&["NET_ADMIN"]), &s(&["cap_chown"])).unwrap();
        assert!(set.contains(&Capability::CAP_NET_ADMIN));
        assert!(!set.contains(&Capability::CAP_CHOWN));
        assert_eq!(set.len(), 14);
        let set = effective_set(&s(&["kill"]), &s(&["ALL"])).unwrap();
        assert_eq!(set.into_iter().collect::<Vec<_>>(), [Capability::CAP_KILL]);
        assert!(effective_set(&s(&["all"]), &[]).unwrap().len() > 30);
        assert!(effective_set(&s(&["NOPE"]), &[]).is_err());
    }
}
