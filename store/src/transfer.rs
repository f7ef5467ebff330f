//! Moving images between the store and a registry: [`Store::pull`] and
//! [`Store::push`], with per-blob [`TransferEvent`]s for the cli's progress
//! display.
//!
//! Blobs move on a few worker threads (network-bound; the store's own work
//! — unpacking, compressing — is on the calling thread or in the workers,
//! never in rayon's pool); layers are unpacked in order on the calling
//! thread while later ones are still downloading.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::export::ExportOptions;
use crate::layout::Store;
use crate::oci::{media_types, Descriptor, Digest, ImageConfig, Index, Manifest};
use crate::reference::Reference;
use crate::registry::{select_manifest, Client, Error};
use crate::snapshots::ChainId;

pub use crate::registry::{PlatformSpec, RegistryOptions};

/// Blobs transferred at once.
const JOBS: usize = 3;
/// Largest image config bake accepts.
const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// Progress is reported at most every this many bytes per blob.
const PROGRESS_STEP: u64 = 256 << 10;

/// Why a blob was not transferred.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The destination already has it (a local blob or snapshot on pull, a
    /// registry blob on push).
    Exists,
}

/// What a pull or push is doing, blob by blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferEvent {
    /// A manifest was resolved: the reference and the manifest digest used.
    Resolved {
        /// The reference as asked for.
        reference: String,
        /// The image manifest's digest.
        manifest: Digest,
    },
    /// A blob transfer began.
    Started {
        /// The blob.
        digest: Digest,
        /// Its size in bytes.
        size: u64,
    },
    /// Bytes moved so far for a blob (cumulative).
    Progress {
        /// The blob.
        digest: Digest,
        /// Bytes so far.
        bytes: u64,
    },
    /// A blob transfer finished.
    Done {
        /// The blob.
        digest: Digest,
    },
    /// A blob was not transferred.
    Skipped {
        /// The blob.
        digest: Digest,
        /// Why.
        reason: Skip,
    },
    /// A pulled layer is being unpacked into a snapshot.
    Unpacking {
        /// The layer blob.
        digest: Digest,
    },
}

/// Wraps a store error with the operation and what it worked on.
fn store_error(
    op: &'static str,
    what: impl std::fmt::Display,
    source: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    Error::Store {
        op,
        what: what.to_string(),
        source: Box::new(source),
    }
}

fn is_index(media_type: &str) -> bool {
    media_type == media_types::OCI_INDEX || media_type == media_types::DOCKER_MANIFEST_LIST
}

fn is_manifest(media_type: &str) -> bool {
    media_type == media_types::OCI_MANIFEST || media_type == media_types::DOCKER_MANIFEST
}

fn is_layer(media_type: &str) -> bool {
    [
        media_types::OCI_LAYER_TAR,
        media_types::OCI_LAYER_GZIP,
        media_types::OCI_LAYER_ZSTD,
        media_types::DOCKER_LAYER_GZIP,
    ]
    .contains(&media_type)
}

fn parse<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
    url: &str,
) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Invalid {
        what,
        url: url.to_string(),
        reason: e.to_string(),
    })
}

/// A reader that reports progress, stops when the transfer is cancelled,
/// and restarts its count when rewound (an upload retry).
struct Tracked<'a, R> {
    inner: R,
    digest: &'a Digest,
    emit: &'a dyn Fn(TransferEvent),
    cancel: &'a AtomicBool,
    bytes: u64,
    reported: u64,
}

impl<'a, R> Tracked<'a, R> {
    fn new(
        inner: R,
        digest: &'a Digest,
        emit: &'a dyn Fn(TransferEvent),
        cancel: &'a AtomicBool,
    ) -> Self {
        Tracked {
            inner,
            digest,
            emit,
            cancel,
            bytes: 0,
            reported: 0,
        }
    }
}

impl<R: Read> Read for Tracked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            // Not `Interrupted`: `io::copy` retries that forever.
            return Err(io::Error::other("transfer cancelled"));
        }
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        if self.bytes - self.reported >= PROGRESS_STEP || (n == 0 && self.bytes > self.reported) {
            self.reported = self.bytes;
            (self.emit)(TransferEvent::Progress {
                digest: self.digest.clone(),
                bytes: self.bytes,
            });
        }
        Ok(n)
    }
}

impl<R: Seek> Seek for Tracked<'_, R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let at = self.inner.seek(pos)?;
        self.bytes = at;
        self.reported = at;
        Ok(at)
    }
}

enum Message<R> {
    Event(TransferEvent),
    Finished(usize, Result<R, Error>),
}

/// Runs `job(i, emit, cancel)` for every `i < n` on up to [`JOBS`] threads.
/// On the calling thread, forwards events to `progress` and hands each
/// result to `finished` as it arrives. The first error (from a job or from
/// `finished`) cancels what has not started and is returned once every
/// worker has stopped.
fn run_parallel<R: Send>(
    n: usize,
    job: impl Fn(usize, &dyn Fn(TransferEvent), &AtomicBool) -> Result<R, Error> + Sync,
    progress: &dyn Fn(TransferEvent),
    mut finished: impl FnMut(usize, R) -> Result<(), Error>,
) -> Result<(), Error> {
    let next = AtomicUsize::new(0);
    let cancel = AtomicBool::new(false);
    let mut first_error = None;
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<Message<R>>();
        for _ in 0..JOBS.min(n) {
            let tx = tx.clone();
            let (job, next, cancel) = (&job, &next, &cancel);
            scope.spawn(move || {
                let event_tx = tx.clone();
                let emit = move |e: TransferEvent| {
                    let _ = event_tx.send(Message::Event(e));
                };
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n || cancel.load(Ordering::Relaxed) {
                        break;
                    }
                    let result = job(i, &emit, cancel);
                    if tx.send(Message::Finished(i, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for message in rx {
            match message {
                Message::Event(e) => progress(e),
                Message::Finished(i, result) => {
                    if first_error.is_some() {
                        continue;
                    }
                    if let Err(e) = result.and_then(|r| finished(i, r)) {
                        cancel.store(true, Ordering::Relaxed);
                        first_error = Some(e);
                    }
                }
            }
        }
    });
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

impl Store {
    /// Pulls `reference` for `platform` into the store and tags it; returns
    /// the image id.
    ///
    /// Resolves the manifest (an index or manifest list picks the
    /// platform's entry), fetches and verifies the config, then for every
    /// layer whose snapshot is missing downloads the blob (unless it is
    /// already stored; a few at a time, every byte verified) and unpacks it
    /// in order, checking its diff id. Handles OCI and Docker schema 2
    /// media types.
    ///
    /// # Errors
    /// The registry's errors ([`Error::NotFound`], [`Error::Unauthorized`],
    /// [`Error::DigestMismatch`], [`Error::NoMatchingPlatform`], …),
    /// [`Error::UnsupportedMediaType`] for schema 1 and foreign layers, and
    /// [`Error::Store`] when the store fails.
    pub fn pull(
        &self,
        reference: &Reference,
        platform: &PlatformSpec,
        opts: &RegistryOptions,
        progress: &dyn Fn(TransferEvent),
    ) -> Result<Digest, Error> {
        // Blobs land before the tag that keeps them: garbage collection
        // must wait until the tag is written.
        let _lock = self
            .lock_shared()
            .map_err(|e| store_error("lock", self.root().display(), e))?;
        let client = Client::new(&reference.registry, opts)?;
        let repo = reference.repository.as_str();
        let asked = match (&reference.digest, &reference.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        };
        let url_of = |r: &str| format!("{}/v2/{repo}/manifests/{r}", client.base_url());

        let (mut bytes, mut media_type, mut manifest_digest) = client.get_manifest(repo, &asked)?;
        // An index may point at another index (rare, but legal): two hops.
        for _ in 0..2 {
            if !is_index(&media_type) {
                break;
            }
            let index: Index = parse(&bytes, "index", &url_of(&manifest_digest.to_string()))?;
            let entry = select_manifest(&index, platform, &reference.to_string())?;
            (bytes, media_type, manifest_digest) =
                client.get_manifest(repo, &entry.digest.to_string())?;
        }
        let manifest_url = url_of(&manifest_digest.to_string());
        if !is_manifest(&media_type) {
            return Err(Error::UnsupportedMediaType {
                url: manifest_url,
                media_type,
            });
        }
        let manifest: Manifest = parse(&bytes, "manifest", &manifest_url)?;
        if let Some(layer) = manifest.layers.iter().find(|l| !is_layer(&l.media_type)) {
            return Err(Error::UnsupportedMediaType {
                url: format!("{manifest_url} (layer {})", layer.digest),
                media_type: layer.media_type.clone(),
            });
        }
        progress(TransferEvent::Resolved {
            reference: reference.to_string(),
            manifest: manifest_digest.clone(),
        });

        // The config: small, read whole, verified by the blob reader.
        let config_digest = &manifest.config.digest;
        let config_url = format!("{}/v2/{repo}/blobs/{config_digest}", client.base_url());
        let mut config_bytes = Vec::new();
        let mut reader = client.open_blob(repo, config_digest)?;
        if let Err(source) = (&mut reader)
            .take(MAX_CONFIG_BYTES)
            .read_to_end(&mut config_bytes)
        {
            return Err(reader.mismatch_error().unwrap_or(Error::Io {
                op: "get config",
                url: config_url,
                source,
            }));
        }
        if Digest::of(&config_bytes) != *config_digest {
            // Only reachable when the config was cut at the size limit.
            return Err(Error::Invalid {
                what: "config",
                url: config_url,
                reason: format!("larger than {MAX_CONFIG_BYTES} bytes"),
            });
        }
        let config: ImageConfig = parse(&config_bytes, "config", &config_url)?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(Error::Invalid {
                what: "manifest",
                url: manifest_url,
                reason: format!(
                    "{} layers but the config lists {} diff ids",
                    manifest.layers.len(),
                    config.rootfs.diff_ids.len()
                ),
            });
        }
        // The image is the config exactly as pulled: its digest is the
        // image id docker shows, and a push sends the same bytes back.
        // (`put_image` would re-encode it and drop fields bake does not
        // model, changing the id.)
        let id = self
            .put_blob_bytes(&config_bytes)
            .map_err(|e| store_error("store config", config_digest, e))?;
        let chains = ChainId::chain(&config.rootfs.diff_ids);
        let layers = &manifest.layers;
        let mut unpacked = 0;
        let mut ready = vec![false; layers.len()];
        run_parallel(
            layers.len(),
            |i, emit, cancel| self.fetch_layer(&client, repo, &layers[i], &chains[i], emit, cancel),
            progress,
            |i, ()| {
                ready[i] = true;
                while unpacked < layers.len() && ready[unpacked] {
                    let at = unpacked;
                    if !self.has_snapshot(&chains[at]) {
                        progress(TransferEvent::Unpacking {
                            digest: layers[at].digest.clone(),
                        });
                        let parent = at.checked_sub(1).map(|p| &chains[p]);
                        self.unpack_layer(
                            &layers[at].digest,
                            &layers[at].media_type,
                            parent,
                            Some(&config.rootfs.diff_ids[at]),
                        )
                        .map_err(|e| store_error("unpack layer", &layers[at].digest, e))?;
                    }
                    unpacked += 1;
                }
                Ok(())
            },
        )?;

        // Kept so that `remember_manifest` can record it and a later push
        // of the same image can send it byte for byte.
        self.put_blob_bytes(&bytes)
            .map_err(|e| store_error("store manifest", &manifest_digest, e))?;
        self.tag(reference, &id)
            .map_err(|e| store_error("tag", reference, e))?;
        self.remember_manifest(&id, reference, &manifest_digest);
        Ok(id)
    }

    /// Makes one pulled layer's blob local, unless its snapshot or blob
    /// already is.
    fn fetch_layer(
        &self,
        client: &Client,
        repo: &str,
        layer: &Descriptor,
        chain: &ChainId,
        emit: &dyn Fn(TransferEvent),
        cancel: &AtomicBool,
    ) -> Result<(), Error> {
        let digest = &layer.digest;
        if self.has_snapshot(chain) || self.has_blob(digest) {
            emit(TransferEvent::Skipped {
                digest: digest.clone(),
                reason: Skip::Exists,
            });
            return Ok(());
        }
        emit(TransferEvent::Started {
            digest: digest.clone(),
            size: layer.size,
        });
        let blob = client.open_blob(repo, digest)?;
        let mut tracked = Tracked::new(blob, digest, emit, cancel);
        // put_blob writes under tmp/ and renames only after verifying the
        // digest; the blob reader also fails at a mismatching end.
        if let Err(e) = self.put_blob(&mut tracked, Some(digest)) {
            return Err(tracked
                .inner
                .mismatch_error()
                .unwrap_or_else(|| store_error("store layer", digest, e)));
        }
        emit(TransferEvent::Done {
            digest: digest.clone(),
        });
        Ok(())
    }

    /// Pushes image `id` as `reference` with gzip layers; returns the
    /// manifest digest. See [`Store::push_with`].
    ///
    /// # Errors
    /// As [`Store::push_with`].
    pub fn push(
        &self,
        id: &Digest,
        reference: &Reference,
        opts: &RegistryOptions,
        progress: &dyn Fn(TransferEvent),
    ) -> Result<Digest, Error> {
        self.push_with(id, reference, opts, &ExportOptions::default(), progress)
    }

    /// Pushes image `id` as `reference`, its layers compressed as `export`
    /// says; returns the manifest digest.
    ///
    /// The manifest comes from [`Store::image_manifest`]: a manifest a pull
    /// or an earlier push recorded is sent again byte for byte when its
    /// blobs are the ones `export` picks (a pulled image keeps its upstream
    /// digest); otherwise layers are exported (once; the blob is kept for
    /// the next push) and an OCI manifest is built. Blobs are checked with
    /// HEAD and uploaded only if missing (a few at a time), then the
    /// config; the manifest goes last, by tag (or, for a digest-only
    /// reference, by its own digest).
    ///
    /// # Errors
    /// The registry's errors and [`Error::Store`] when the image or one of
    /// its layers cannot be read or exported.
    pub fn push_with(
        &self,
        id: &Digest,
        reference: &Reference,
        opts: &RegistryOptions,
        export: &ExportOptions,
        progress: &dyn Fn(TransferEvent),
    ) -> Result<Digest, Error> {
        // Exported blobs are referenced only by the snapshot record written
        // after them: keep garbage collection out meanwhile.
        let _lock = self
            .lock_shared()
            .map_err(|e| store_error("lock", self.root().display(), e))?;
        let client = Client::new(&reference.registry, opts)?;
        let repo = reference.repository.as_str();
        let image = self
            .image_manifest(id, export, false)
            .map_err(|e| store_error("export image", id, e))?;
        let layers = &image.manifest.layers;
        run_parallel(
            layers.len(),
            |i, emit, cancel| self.send_blob(&client, repo, &layers[i], emit, cancel),
            progress,
            |_, ()| Ok(()),
        )?;
        let config = &image.manifest.config;
        self.send_blob(&client, repo, config, progress, &AtomicBool::new(false))?;

        let tag = match &reference.tag {
            Some(tag) => tag.clone(),
            None => image.digest.to_string(),
        };
        let digest = client.put_manifest(repo, &tag, &image.bytes, &image.media_type)?;
        progress(TransferEvent::Resolved {
            reference: reference.to_string(),
            manifest: digest.clone(),
        });
        self.remember_manifest(id, reference, &digest);
        Ok(digest)
    }

    /// Uploads one stored blob unless the repository already has it.
    fn send_blob(
        &self,
        client: &Client,
        repo: &str,
        descriptor: &Descriptor,
        emit: &dyn Fn(TransferEvent),
        cancel: &AtomicBool,
    ) -> Result<(), Error> {
        let digest = descriptor.digest.clone();
        if client.head_blob(repo, &digest)? {
            emit(TransferEvent::Skipped {
                digest,
                reason: Skip::Exists,
            });
            return Ok(());
        }
        emit(TransferEvent::Started {
            digest: digest.clone(),
            size: descriptor.size,
        });
        let path = self.blob_path(&digest);
        let file =
            std::fs::File::open(&path).map_err(|e| store_error("open blob", path.display(), e))?;
        let mut tracked = Tracked::new(file, &digest, emit, cancel);
        client.put_blob(repo, &digest, descriptor.size, &mut tracked)?;
        emit(TransferEvent::Done { digest });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::process::Command;

    use super::*;
    use crate::oci::{canonical_json, ContainerConfig, Platform, RootFs};
    use crate::registry::test_registry::{find_program, TestRegistry};
    use crate::snapshots::Layer;

    fn open_store(dir: &tempfile::TempDir) -> Store {
        Store::open(&dir.path().join("store")).unwrap()
    }

    /// A snapshot holding `files` on top of `parent`.
    fn commit(store: &Store, parent: Option<&ChainId>, files: &[(&str, &[u8])]) -> Layer {
        let work = store.temp_dir("test").unwrap();
        let upper = work.path().join("upper");
        for (path, content) in files {
            let path = upper.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        store.commit_snapshot(&upper, parent, Some(0)).unwrap()
    }

    /// A two-layer image in a fresh store.
    fn build_image(store: &Store) -> Digest {
        let bottom = commit(store, None, &[("etc/hello.txt", b"hello\n")]);
        let big: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let top = commit(
            store,
            Some(&bottom.chain_id),
            &[
                ("app/data.bin", &big),
                ("app/run.sh", b"#!/bin/sh\necho hi\n"),
            ],
        );
        let config = ImageConfig {
            created: Some("1970-01-01T00:00:00Z".into()),
            architecture: "amd64".into(),
            os: "linux".into(),
            config: Some(ContainerConfig {
                cmd: Some(vec!["/app/run.sh".into()]),
                ..Default::default()
            }),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![bottom.diff_id, top.diff_id],
            },
            ..Default::default()
        };
        store.put_image(&config).unwrap()
    }

    fn amd64() -> PlatformSpec {
        "linux/amd64".parse().unwrap()
    }

    fn reference(reg: &TestRegistry, name: &str) -> Reference {
        format!("{}/{name}", reg.host).parse().unwrap()
    }

    /// Runs `f` with a progress callback and returns what it reported.
    fn with_events<T>(f: impl FnOnce(&dyn Fn(TransferEvent)) -> T) -> (T, Vec<TransferEvent>) {
        let events = RefCell::new(Vec::new());
        let out = f(&|e| events.borrow_mut().push(e));
        (out, events.into_inner())
    }

    fn count(events: &[TransferEvent], f: impl Fn(&TransferEvent) -> bool) -> usize {
        events.iter().filter(|e| f(e)).count()
    }

    #[test]
    fn push_then_pull_into_a_fresh_store_gives_the_same_image() {
        let Some(reg) = TestRegistry::start() else {
            return;
        };
        let opts = RegistryOptions::default();
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (open_store(&dir_a), open_store(&dir_b));
        let id = build_image(&a);
        let target = reference(&reg, "team/app:v1");

        let (pushed, events) = with_events(|p| a.push(&id, &target, &opts, p));
        let manifest_digest = pushed.unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
        // Two layers and the config went up.
        assert_eq!(
            count(&events, |e| matches!(e, TransferEvent::Done { .. })),
            3,
            "{events:?}"
        );
        assert!(count(&events, |e| matches!(e, TransferEvent::Progress { .. })) >= 2);

        // Again: everything is already there.
        let (again, events) = with_events(|p| a.push(&id, &target, &opts, p));
        assert_eq!(again.unwrap(), manifest_digest);
        assert_eq!(
            count(&events, |e| matches!(e, TransferEvent::Skipped { .. })),
            3,
            "{events:?}"
        );

        if find_program("skopeo").is_some() {
            let out = Command::new("skopeo")
                .args(["inspect", "--tls-verify=false"])
                .arg(format!("docker://{target}"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(info["Digest"], manifest_digest.to_string());
            assert_eq!(info["Layers"].as_array().unwrap().len(), 2);
        } else {
            println!("skipped: skopeo not installed (the skopeo inspect check)");
        }

        let (pulled, events) = with_events(|p| b.pull(&target, &amd64(), &opts, p));
        let pulled = pulled.unwrap();
        assert_eq!(pulled, id);
        assert_eq!(
            count(&events, |e| matches!(e, TransferEvent::Unpacking { .. })),
            2
        );
        assert!(events.contains(&TransferEvent::Resolved {
            reference: target.to_string(),
            manifest: manifest_digest.clone(),
        }));
        let layers = b.image_layers(&pulled).unwrap();
        assert_eq!(layers, a.image_layers(&id).unwrap());
        let hello = b
            .snapshot_diff_dir(&layers[0].chain_id)
            .join("etc/hello.txt");
        assert_eq!(std::fs::read(hello).unwrap(), b"hello\n");
        assert_eq!(b.resolve(&target.to_string()).unwrap(), Some(id.clone()));

        // A second pull finds every snapshot and downloads nothing.
        let (again, events) = with_events(|p| b.pull(&target, &amd64(), &opts, p));
        assert_eq!(again.unwrap(), id);
        assert_eq!(
            count(&events, |e| matches!(e, TransferEvent::Started { .. })),
            0
        );

        // Pushing the pulled image elsewhere reuses the pulled blobs.
        let copy = reference(&reg, "other/app:v1");
        assert_eq!(
            b.push(&pulled, &copy, &opts, &|_| {}).unwrap(),
            manifest_digest
        );
    }

    #[test]
    fn pull_selects_the_platform_from_an_index_and_reads_docker_media_types() {
        let Some(reg) = TestRegistry::start() else {
            return;
        };
        let opts = RegistryOptions::default();
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (open_store(&dir_a), open_store(&dir_b));
        let id = build_image(&a);
        let pushed = reference(&reg, "multi/app:oci");
        a.push(&id, &pushed, &opts, &|_| {}).unwrap();

        // The same blobs under a Docker schema 2 manifest …
        let client = Client::new(&reg.host, &opts).unwrap();
        let (bytes, _, oci_digest) = client.get_manifest("multi/app", "oci").unwrap();
        let mut manifest: Manifest = serde_json::from_slice(&bytes).unwrap();
        manifest.media_type = Some(media_types::DOCKER_MANIFEST.into());
        manifest.config.media_type = media_types::DOCKER_CONFIG.into();
        for layer in &mut manifest.layers {
            layer.media_type = media_types::DOCKER_LAYER_GZIP.into();
        }
        let docker_bytes = canonical_json(&manifest).unwrap();
        let docker_digest = client
            .put_manifest(
                "multi/app",
                "docker",
                &docker_bytes,
                media_types::DOCKER_MANIFEST,
            )
            .unwrap();
        // … listed for arm64 in a manifest list that has amd64 → the OCI one.
        let entry = |digest: &Digest, size: usize, media_type: &str, arch: &str| Descriptor {
            media_type: media_type.into(),
            digest: digest.clone(),
            size: size as u64,
            platform: Some(Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: None,
            }),
            annotations: Default::default(),
        };
        let index = Index {
            schema_version: 2,
            media_type: Some(media_types::DOCKER_MANIFEST_LIST.into()),
            manifests: vec![
                entry(
                    &docker_digest,
                    docker_bytes.len(),
                    media_types::DOCKER_MANIFEST,
                    "arm64",
                ),
                entry(&oci_digest, bytes.len(), media_types::OCI_MANIFEST, "amd64"),
            ],
            annotations: Default::default(),
        };
        client
            .put_manifest(
                "multi/app",
                "list",
                &canonical_json(&index).unwrap(),
                media_types::DOCKER_MANIFEST_LIST,
            )
            .unwrap();
        let list = reference(&reg, "multi/app:list");

        let (pulled, events) = with_events(|p| b.pull(&list, &amd64(), &opts, p));
        assert_eq!(pulled.unwrap(), id);
        assert!(events.contains(&TransferEvent::Resolved {
            reference: list.to_string(),
            manifest: oci_digest,
        }));
        // arm64 picks the Docker manifest: same image, blobs already local.
        let (pulled, events) =
            with_events(|p| b.pull(&list, &"linux/arm64".parse().unwrap(), &opts, p));
        assert_eq!(pulled.unwrap(), id);
        assert!(events.contains(&TransferEvent::Resolved {
            reference: list.to_string(),
            manifest: docker_digest,
        }));
        // A fresh store pulls the Docker manifest's blobs.
        let dir_c = tempfile::tempdir().unwrap();
        let c = open_store(&dir_c);
        assert_eq!(
            c.pull(
                &reference(&reg, "multi/app:docker"),
                &amd64(),
                &opts,
                &|_| {}
            )
            .unwrap(),
            id
        );

        let err = b
            .pull(&list, &"linux/s390x".parse().unwrap(), &opts, &|_| {})
            .unwrap_err();
        assert!(
            matches!(&err, Error::NoMatchingPlatform { available, .. } if available.len() == 2),
            "{err}"
        );
    }

    #[test]
    fn a_corrupt_layer_fails_the_pull_and_stores_nothing() {
        let Some(reg) = TestRegistry::start() else {
            return;
        };
        let opts = RegistryOptions::default();
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (open_store(&dir_a), open_store(&dir_b));
        let id = build_image(&a);
        let target = reference(&reg, "bad/app:v1");
        a.push(&id, &target, &opts, &|_| {}).unwrap();
        let client = Client::new(&reg.host, &opts).unwrap();
        let (bytes, _, _) = client.get_manifest("bad/app", "v1").unwrap();
        let manifest: Manifest = serde_json::from_slice(&bytes).unwrap();
        let victim = &manifest.layers[1].digest;
        let path = reg.blob_data_path(victim);
        let mut data = std::fs::read(&path).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0x55;
        std::fs::write(&path, data).unwrap();

        let err = b.pull(&target, &amd64(), &opts, &|_| {}).unwrap_err();
        assert!(
            matches!(&err, Error::DigestMismatch { expected, .. } if expected == victim),
            "{err}"
        );
        assert!(!b.has_blob(victim));
        assert_eq!(b.resolve(&target.to_string()).unwrap(), None);

        let missing = reference(&reg, "bad/app:nope");
        let err = b.pull(&missing, &amd64(), &opts, &|_| {}).unwrap_err();
        assert!(err.to_string().contains("bad/app:nope"), "{err}");
    }

    #[test]
    fn a_pulled_image_keeps_its_config_bytes_as_its_id() {
        let Some(reg) = TestRegistry::start() else {
            return;
        };
        let opts = RegistryOptions::default();
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (open_store(&dir_a), open_store(&dir_b));
        let id = build_image(&a);
        a.push(&id, &reference(&reg, "raw/app:base"), &opts, &|_| {})
            .unwrap();
        let client = Client::new(&reg.host, &opts).unwrap();
        let (bytes, _, _) = client.get_manifest("raw/app", "base").unwrap();
        let mut manifest: Manifest = serde_json::from_slice(&bytes).unwrap();

        // A config as another builder writes it: other key order, spaces,
        // fields bake does not model.
        let diff_ids = a.image_config(&id).unwrap().rootfs.diff_ids;
        let config = format!(
            r#"{{ "os": "linux", "architecture": "amd64", "docker_version": "27.0",
                 "container_config": {{"Hostname": "x"}},
                 "rootfs": {{ "diff_ids": ["{}", "{}"], "type": "layers" }} }}"#,
            diff_ids[0], diff_ids[1]
        );
        let config_digest = Digest::of(config.as_bytes());
        client
            .put_blob(
                "raw/app",
                &config_digest,
                config.len() as u64,
                &mut io::Cursor::new(config.as_bytes()),
            )
            .unwrap();
        manifest.config.digest = config_digest.clone();
        manifest.config.size = config.len() as u64;
        let manifest_bytes = canonical_json(&manifest).unwrap();
        let manifest_digest = client
            .put_manifest(
                "raw/app",
                "foreign",
                &manifest_bytes,
                media_types::OCI_MANIFEST,
            )
            .unwrap();

        let pulled = b
            .pull(
                &reference(&reg, "raw/app:foreign"),
                &amd64(),
                &opts,
                &|_| {},
            )
            .unwrap();
        assert_eq!(pulled, config_digest);
        assert_eq!(b.image_layers(&pulled).unwrap().len(), 2);
        assert_eq!(b.read_blob(&pulled).unwrap(), config.as_bytes());
        let copy = reference(&reg, "raw/copy:1");
        assert_eq!(
            b.push(&pulled, &copy, &opts, &|_| {}).unwrap(),
            manifest_digest
        );
    }

    /// Regression: a cancelled read returned `Interrupted`, which `io::copy`
    /// retries forever, so a failed pull hung while another layer was still
    /// downloading.
    #[test]
    fn a_failing_job_cancels_the_others() {
        let digest = Digest::of(b"endless");
        let result = run_parallel(
            2,
            |i, emit, cancel| {
                if i == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    return Err(Error::NotFound {
                        what: "first".into(),
                        url: String::new(),
                    });
                }
                let mut endless = Tracked::new(io::repeat(7), &digest, emit, cancel);
                io::copy(&mut endless, &mut io::sink()).map_err(|source| Error::Io {
                    op: "copy",
                    url: String::new(),
                    source,
                })?;
                Ok(())
            },
            &|_| {},
            |_, ()| Ok(()),
        );
        assert!(
            matches!(&result, Err(Error::NotFound { what, .. }) if what == "first"),
            "{result:?}"
        );
    }
}
