//! Layer downloads that survive a cut connection and a killed process.
//!
//! The bytes of a layer being pulled go to `tmp/partial-<hex of its
//! digest>` — a name derived from the digest, so the next run (or the next
//! try of this one) finds them. A try that breaks off mid-blob asks again
//! with `Range: bytes=N-` and appends; a registry that answers 200 instead
//! of 206 sends the whole blob, and the file starts over. Whatever the
//! path, the blob is renamed into `blobs/` only after the sha256 of all its
//! bytes — kept ones included — matches the digest; a mismatch deletes the
//! partial file, so a corrupt one cannot poison later runs.
//!
//! A partial file is locked (`flock`) while written: a second process
//! pulling the same layer at the same time downloads its own copy instead
//! of interleaving writes. Garbage collection removes partial files left
//! in `tmp/` for long.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use super::{store_error, TransferEvent, PROGRESS_STEP};
use crate::layout::Store;
use crate::oci::{Descriptor, Digest};
use crate::registry::{Client, Error};

/// Tries in a row that may fail without moving a byte before the pull
/// gives up (the partial file stays for the next run).
const MAX_IDLE_TRIES: u32 = 3;

/// Where the partial download of `digest` lives.
pub(crate) fn partial_path(store: &Store, digest: &Digest) -> PathBuf {
    store.tmp_dir().join(format!("partial-{}", digest.hex()))
}

/// How one try ended.
enum Try {
    /// The body ended: all bytes are in the file.
    Complete,
    /// Reading the body failed after `moved` new bytes; worth another try.
    Broken { moved: u64, error: Error },
    /// The kept bytes were dropped (the registry disagreed with them).
    Restarted,
}

/// Downloads `layer` into the store, resuming what an earlier try or run
/// left. `Ok(false)`: someone else holds the partial file (the caller
/// downloads without resuming).
pub(crate) fn download(
    store: &Store,
    client: &Client,
    repo: &str,
    layer: &Descriptor,
    emit: &dyn Fn(TransferEvent),
    cancel: &AtomicBool,
) -> Result<bool, Error> {
    let digest = &layer.digest;
    let path = partial_path(store, digest);
    let io_error = |op: &'static str, e: io::Error| store_error(op, path.display(), e);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io_error("open partial download", e))?;
    if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        return Ok(false);
    }

    // What an earlier run kept, hashed again: the file is only a cache.
    let mut hasher = Sha256::new();
    let mut have = io::copy(&mut (&file), &mut HashSink(&mut hasher))
        .map_err(|e| io_error("read partial download", e))?;
    if have > layer.size {
        restart(&mut file, &mut hasher, &mut have).map_err(|e| io_error("truncate", e))?;
    }
    emit(TransferEvent::Started {
        digest: digest.clone(),
        size: layer.size,
    });
    if have > 0 {
        emit(TransferEvent::Progress {
            digest: digest.clone(),
            bytes: have,
        });
    }

    let mut idle = 0;
    while have < layer.size || layer.size == 0 {
        let outcome = one_try(
            client,
            repo,
            digest,
            &mut file,
            &path,
            &mut hasher,
            &mut have,
            emit,
            cancel,
        )?;
        match outcome {
            Try::Complete => break,
            Try::Restarted => {}
            Try::Broken { moved, error } => {
                idle = if moved > 0 { 0 } else { idle + 1 };
                if idle >= MAX_IDLE_TRIES || cancel.load(Ordering::Relaxed) {
                    return Err(error);
                }
                std::thread::sleep(Duration::from_millis(200 * u64::from(idle)));
            }
        }
    }

    let actual = Digest::from_sha256(hasher.finalize().into());
    if actual != *digest {
        drop(file);
        let _ = std::fs::remove_file(&path);
        return Err(Error::DigestMismatch {
            url: format!("{}/v2/{repo}/blobs/{digest}", client.base_url()),
            expected: digest.clone(),
            actual,
        });
    }
    persist(store, &file, &path, digest)?;
    emit(TransferEvent::Done {
        digest: digest.clone(),
    });
    Ok(true)
}

/// One request: from `have` on, appending to `file`.
#[allow(clippy::too_many_arguments)]
fn one_try(
    client: &Client,
    repo: &str,
    digest: &Digest,
    file: &mut File,
    path: &Path,
    hasher: &mut Sha256,
    have: &mut u64,
    emit: &dyn Fn(TransferEvent),
    cancel: &AtomicBool,
) -> Result<Try, Error> {
    let io_error = |op: &'static str, e: io::Error| store_error(op, path.display(), e);
    let body = match client.open_blob_range(repo, digest, *have) {
        Ok(body) => body,
        // The kept bytes are no prefix the registry agrees with: start over.
        Err(Error::Status { status: 416, .. } | Error::Invalid { .. }) if *have > 0 => {
            restart(file, hasher, have).map_err(|e| io_error("truncate", e))?;
            return Ok(Try::Restarted);
        }
        Err(e @ (Error::Transport { .. } | Error::Io { .. })) => {
            return Ok(Try::Broken { moved: 0, error: e })
        }
        Err(e) => return Err(e),
    };
    if body.start != *have {
        // The registry sent the whole blob.
        restart(file, hasher, have).map_err(|e| io_error("truncate", e))?;
    }
    file.seek(SeekFrom::End(0))
        .map_err(|e| io_error("seek partial download", e))?;
    let mut reader = body.reader;
    let mut buf = vec![0u8; 64 << 10];
    let mut moved = 0;
    let mut reported = *have;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Io {
                op: "get blob",
                url: body.url,
                source: io::Error::other("transfer cancelled"),
            });
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Ok(Try::Broken {
                    moved,
                    error: Error::Io {
                        op: "get blob",
                        url: body.url,
                        source,
                    },
                })
            }
        };
        file.write_all(&buf[..n])
            .map_err(|e| io_error("write partial download", e))?;
        hasher.update(&buf[..n]);
        *have += n as u64;
        moved += n as u64;
        if *have - reported >= PROGRESS_STEP {
            reported = *have;
            emit(TransferEvent::Progress {
                digest: digest.clone(),
                bytes: *have,
            });
        }
    }
    if *have > reported {
        emit(TransferEvent::Progress {
            digest: digest.clone(),
            bytes: *have,
        });
    }
    Ok(Try::Complete)
}

/// Empties the partial file and the hash of its bytes.
fn restart(file: &mut File, hasher: &mut Sha256, have: &mut u64) -> io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    *hasher = Sha256::new();
    *have = 0;
    Ok(())
}

/// Makes the verified partial file the blob: fsync, read-only, rename,
/// fsync of the directory (as [`crate::blobs`] does for its writes).
fn persist(store: &Store, file: &File, path: &Path, digest: &Digest) -> Result<(), Error> {
    let target = store.blob_path(digest);
    let fail = |op: &'static str, e: io::Error| store_error(op, target.display(), e);
    file.sync_all().map_err(|e| fail("sync blob", e))?;
    rustix::fs::fchmod(file, rustix::fs::Mode::from_raw_mode(0o444))
        .map_err(|e| fail("chmod blob", e.into()))?;
    std::fs::rename(path, &target).map_err(|e| fail("rename blob", e))?;
    if let Some(dir) = target.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| fail("sync blob directory", e))?;
    }
    Ok(())
}

/// A writer that only hashes.
struct HashSink<'a>(&'a mut Sha256);

impl Write for HashSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::registry::RegistryOptions;

    /// How the fake registry answers a blob GET.
    #[derive(Clone, Copy)]
    enum Answer {
        /// Announce the whole blob, send only this many bytes, hang up.
        Cut(usize),
        /// The whole blob, 200, whatever the range.
        Whole,
        /// Honour `Range: bytes=N-` with 206.
        Ranged,
    }

    /// Serves one blob, answering the n-th request as `answers[n]` (the
    /// last one repeats); returns the host and the `Range` headers seen.
    fn serve(blob: Vec<u8>, answers: Vec<Answer>) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut range = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("range:") {
                        range = Some(v.trim().to_string());
                    }
                }
                log.lock().unwrap().push(range.clone());
                let answer = answers[n.min(answers.len() - 1)];
                let from = range
                    .as_deref()
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok())
                    .unwrap_or(0);
                let (head, body) = match answer {
                    Answer::Cut(keep) => (
                        format!("200 OK\r\nContent-Length: {}", blob.len()),
                        &blob[..keep],
                    ),
                    Answer::Whole => (format!("200 OK\r\nContent-Length: {}", blob.len()), &blob[..]),
                    Answer::Ranged => (
                        format!(
                            "206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {from}-{}/{}",
                            blob.len() - from,
                            blob.len() - 1,
                            blob.len()
                        ),
                        &blob[from..],
                    ),
                };
                let _ = write!(stream, "HTTP/1.1 {head}\r\nConnection: close\r\n\r\n");
                let _ = stream.write_all(body);
            }
        });
        (host, seen)
    }

    fn blob() -> (Vec<u8>, Descriptor) {
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 253) as u8).collect();
        let descriptor = Descriptor {
            media_type: crate::oci::media_types::OCI_LAYER_GZIP.into(),
            digest: Digest::of(&bytes),
            size: bytes.len() as u64,
            platform: None,
            annotations: Default::default(),
        };
        (bytes, descriptor)
    }

    fn fetch(store: &Store, host: &str, layer: &Descriptor) -> Result<bool, Error> {
        let client = Client::new(host, &RegistryOptions::default()).unwrap();
        download(store, &client, "r", layer, &|_| {}, &AtomicBool::new(false))
    }

    #[test]
    fn a_cut_body_is_resumed_and_a_registry_ignoring_ranges_restarts_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (bytes, layer) = blob();
        // Cut, resumed with 206; then (new digest file) cut, answered 200.
        let (host, seen) = serve(bytes.clone(), vec![Answer::Cut(100_000), Answer::Ranged]);
        assert!(fetch(&store, &host, &layer).unwrap());
        assert_eq!(
            std::fs::read(store.blob_path(&layer.digest)).unwrap(),
            bytes
        );
        assert_eq!(
            *seen.lock().unwrap(),
            [None, Some("bytes=100000-".to_string())]
        );
        assert!(!partial_path(&store, &layer.digest).exists());

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (host, seen) = serve(bytes.clone(), vec![Answer::Cut(70_000), Answer::Whole]);
        assert!(fetch(&store, &host, &layer).unwrap());
        assert_eq!(
            std::fs::read(store.blob_path(&layer.digest)).unwrap(),
            bytes
        );
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_corrupt_partial_file_fails_once_and_is_thrown_away() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (bytes, layer) = blob();
        let mut wrong = bytes[..50_000].to_vec();
        wrong[10] ^= 0xff;
        std::fs::write(partial_path(&store, &layer.digest), &wrong).unwrap();
        let (host, seen) = serve(bytes.clone(), vec![Answer::Ranged]);

        let err = fetch(&store, &host, &layer).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert_eq!(seen.lock().unwrap()[0].as_deref(), Some("bytes=50000-"));
        assert!(!partial_path(&store, &layer.digest).exists());
        assert!(!store.has_blob(&layer.digest));

        assert!(fetch(&store, &host, &layer).unwrap());
        assert_eq!(
            std::fs::read(store.blob_path(&layer.digest)).unwrap(),
            bytes
        );
    }

    #[test]
    fn a_partial_file_someone_else_holds_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (_, layer) = blob();
        let path = partial_path(&store, &layer.digest);
        let held = File::create(&path).unwrap();
        rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive).unwrap();
        // No request is made: the caller downloads on its own.
        assert!(!fetch(&store, "127.0.0.1:9", &layer).unwrap());
    }
}
