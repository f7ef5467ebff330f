//! sha256 of a stream on a thread of its own.
//!
//! Packing a layer is a sequential walk: stat, read, emit tar blocks. With
//! the sha256 of the stream computed inline, hashing is a third of the
//! packer's time (SHA-NI, ~1.4 GB/s, on a 300 MB layer). [`HashPipe`] hands
//! the stream to a second thread in 1 MiB chunks instead, so walking and
//! hashing overlap; the digest is of exactly the same bytes, in the same
//! order. A plain scoped thread, not rayon: it blocks on a channel.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};

use sha2::{Digest as _, Sha256};

use crate::oci::Digest;

/// How many bytes go to the hashing thread at a time.
const CHUNK: usize = 1 << 20;
/// Chunks in flight before the writer waits for the hasher.
const IN_FLIGHT: usize = 4;

/// A writer that passes every byte to `out` and has it hashed (sha256) on a
/// scoped thread.
pub(crate) struct HashPipe<'scope, W> {
    out: W,
    buf: Vec<u8>,
    tx: Option<SyncSender<Vec<u8>>>,
    /// Emptied chunks coming back, to be reused.
    spare: Receiver<Vec<u8>>,
    hasher: ScopedJoinHandle<'scope, (Digest, u64)>,
}

impl<'scope, W: Write> HashPipe<'scope, W> {
    /// Starts the hashing thread in `scope`.
    pub(crate) fn new<'env>(scope: &'scope Scope<'scope, 'env>, out: W) -> Self {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (back, spare) = mpsc::channel::<Vec<u8>>();
        let hasher = scope.spawn(move || {
            let mut h = Sha256::new();
            let mut len = 0u64;
            for mut chunk in rx {
                h.update(&chunk);
                len += chunk.len() as u64;
                chunk.clear();
                // The writer may be gone already (it stops after an error).
                let _ = back.send(chunk);
            }
            (Digest::from_sha256(h.finalize().into()), len)
        });
        HashPipe {
            out,
            buf: Vec::with_capacity(CHUNK),
            tx: Some(tx),
            spare,
            hasher,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let full = std::mem::replace(&mut self.buf, next);
        match &self.tx {
            Some(tx) if tx.send(full).is_ok() => Ok(()),
            _ => Err(io::Error::other("the hashing thread stopped")),
        }
    }

    /// The sha256 and length of everything written, once hashed.
    ///
    /// # Errors
    /// When the hashing thread stopped (it only stops by panicking).
    pub(crate) fn finish(mut self) -> io::Result<(Digest, u64)> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        self.tx = None;
        self.hasher
            .join()
            .map_err(|_| io::Error::other("the hashing thread panicked"))
    }
}

impl<W: Write> Write for HashPipe<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.out.write_all(data)?;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_and_length_match_a_direct_hash_at_chunk_boundaries() {
        for len in [0, 1, 511, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 7] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut copy = Vec::new();
            let (digest, n) = std::thread::scope(|s| {
                let mut pipe = HashPipe::new(s, &mut copy);
                // Uneven writes, like tar's 512-byte headers and 8 KiB blocks.
                for piece in data.chunks(8192 + 512) {
                    pipe.write_all(piece).unwrap();
                }
                pipe.finish().unwrap()
            });
            assert_eq!(n, len as u64);
            assert_eq!(digest, Digest::of(&data), "len {len}");
            assert_eq!(copy, data);
        }
    }

    /// A fixed tree: contents, modes, times and (as root) owners.
    fn fixed_tree(dir: &std::path::Path) {
        use std::fs;
        use std::os::unix::fs::{symlink, PermissionsExt};
        fs::create_dir_all(dir.join("src/a")).unwrap();
        fs::write(dir.join("src/a/f.go"), "package a\n").unwrap();
        fs::write(dir.join("src/big"), vec![42u8; 3 * CHUNK + 5]).unwrap();
        symlink("a/f.go", dir.join("src/l")).unwrap();
        fs::set_permissions(dir.join("src/big"), fs::Permissions::from_mode(0o640)).unwrap();
        for p in ["src/a/f.go", "src/big", "src/a", "src"] {
            fs::set_permissions(
                dir.join(p),
                fs::Permissions::from_mode(if p.ends_with('a') || p == "src" {
                    0o755
                } else {
                    0o644
                }),
            )
            .unwrap();
        }
        for p in ["src/a/f.go", "src/big", "src/l", "src/a", "src"] {
            let t = rustix::fs::Timespec {
                tv_sec: 1_600_000_000,
                tv_nsec: 0,
            };
            let times = rustix::fs::Timestamps {
                last_access: t,
                last_modification: t,
            };
            rustix::fs::utimensat(
                rustix::fs::CWD,
                dir.join(p),
                &times,
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .unwrap();
        }
    }

    /// The diff id is what hashing inline (before the pipe) gave, for the
    /// same bytes; as root (owners 0:0) it is pinned to a golden value.
    #[test]
    fn pack_diff_id_is_unchanged_by_the_pipe() {
        let d = tempfile::tempdir().unwrap();
        fixed_tree(d.path());
        let mut inline = crate::blobs::DigestWriter::new(Vec::new());
        let t = super::super::pack(d.path(), None, &mut inline).unwrap();
        let (digest, len, bytes) = inline.finish();
        assert_eq!((t.diff_id.clone(), t.size), (digest, len));
        assert_eq!(bytes.len() as u64, len);
        if rustix::process::geteuid().is_root() {
            assert_eq!(
                t.diff_id.to_string(),
                "sha256:277b3ea7d35bf4d6f32c8a3087e9ade82d078ad79d42c314dd588319f1f805ed",
                "the layer tar of a fixed tree changed"
            );
        }
    }

    #[test]
    fn a_failing_output_is_an_error_not_a_hang() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        std::thread::scope(|s| {
            let mut pipe = HashPipe::new(s, Broken);
            assert!(pipe.write_all(b"x").is_err());
        });
    }
}
