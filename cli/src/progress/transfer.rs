//! Registry transfers as docker prints them: one line per blob state change
//! (`a1b2c3d4e5f6: Pushing`, `Layer already exists`, `Pushed`;
//! `Downloading`, `Already exists`, `Extracting`, `Download complete`), from
//! the store's [`TransferEvent`]s. Byte counts are not printed: these are
//! plain log lines, not a redrawn screen.

use bake_store::oci::Digest;
use bake_store::transfer::{Skip, TransferEvent};

/// Which way the blobs move; docker words the same events differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Registry → store.
    Pull,
    /// Store → registry.
    Push,
}

/// The line docker would print for this event, if any.
pub fn describe(event: &TransferEvent, direction: Direction) -> Option<String> {
    use Direction::{Pull, Push};
    let (digest, status) = match (event, direction) {
        (TransferEvent::Started { digest, .. }, Pull) => (digest, "Downloading"),
        (TransferEvent::Started { digest, .. }, Push) => (digest, "Pushing"),
        (TransferEvent::Done { digest }, Pull) => (digest, "Download complete"),
        (TransferEvent::Done { digest }, Push) => (digest, "Pushed"),
        (
            TransferEvent::Skipped {
                digest,
                reason: Skip::Exists,
            },
            Pull,
        ) => (digest, "Already exists"),
        (
            TransferEvent::Skipped {
                digest,
                reason: Skip::Exists,
            },
            Push,
        ) => (digest, "Layer already exists"),
        (TransferEvent::Unpacking { digest }, _) => (digest, "Extracting"),
        (TransferEvent::Resolved { .. } | TransferEvent::Progress { .. }, _) => return None,
    };
    Some(format!("{}: {status}", digest.short()))
}

/// The manifest digest a pull resolved to, when the event reports it.
pub fn manifest_digest(event: &TransferEvent) -> Option<Digest> {
    match event {
        TransferEvent::Resolved { manifest, .. } => Some(manifest.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_like_docker() {
        let digest = Digest::of(b"layer");
        let short = digest.short().to_string();
        let skipped = TransferEvent::Skipped {
            digest: digest.clone(),
            reason: Skip::Exists,
        };
        assert_eq!(
            describe(&skipped, Direction::Push).unwrap(),
            format!("{short}: Layer already exists")
        );
        assert_eq!(
            describe(&skipped, Direction::Pull).unwrap(),
            format!("{short}: Already exists")
        );
        let done = TransferEvent::Done {
            digest: digest.clone(),
        };
        assert_eq!(
            describe(&done, Direction::Push).unwrap(),
            format!("{short}: Pushed")
        );
        let progress = TransferEvent::Progress {
            digest: digest.clone(),
            bytes: 10,
        };
        assert_eq!(describe(&progress, Direction::Pull), None);
        let resolved = TransferEvent::Resolved {
            reference: "x".into(),
            manifest: digest.clone(),
        };
        assert_eq!(manifest_digest(&resolved), Some(digest));
    }
}
