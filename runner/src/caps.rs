//! Capabilities: Docker's default set unless privileged.

use caps::{CapSet, Capability, CapsHashSet};

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

/// Cuts the bounding, effective, permitted and inheritable sets down to [`DEFAULT`] and
/// empties the ambient set. Privileged sandboxes keep everything but the ambient set.
///
/// Must run after every mount (it drops CAP_SYS_ADMIN) and before setuid: the default set
/// keeps CAP_SETUID/CAP_SETGID for that, and a switch to a non-root uid then clears the
/// effective and permitted sets, as for any process (no PR_SET_KEEPCAPS).
pub(crate) fn restrict(privileged: bool) -> Result<(), Error> {
    // Ambient caps may be unsupported by an old kernel: then there are none to clear.
    let _ = caps::clear(None, CapSet::Ambient);
    if privileged {
        return Ok(());
    }
    let keep: CapsHashSet = DEFAULT.into_iter().collect();
    // Needs CAP_SETPCAP in the effective set, so the bounding set goes first.
    for cap in caps::read(None, CapSet::Bounding).map_err(caps_error)? {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(caps_error)?;
        }
    }
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
}
