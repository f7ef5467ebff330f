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
use crate::registry::{select_manifest, Client, Error, KnownBlobs};
use crate::snapshots::ChainId;

pub use crate::registry::{PlatformSpec, RegistryOptions};

mod resume;

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
    /// A blob was not uploaded: the registry mounted it from another
    /// repository of the same host that bake knew to hold it.
    Mounted {
        /// The blob.
        digest: Digest,
        /// The repository it was mounted from, e.g. `team/base`.
        from: String,
    },
    /// A pull is trying a mirror of the reference's registry (`failure`
    /// `None`), or the mirror failed and the next one (or the registry
    /// itself) is tried.
    Mirror {
        /// The mirror host, e.g. `mirror.local:5000`.
        mirror: String,
        /// Why it failed, once it did.
        failure: Option<String>,
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
pub(crate) fn run_parallel<R: Send>(
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
        // Mirrors first, in order; any failure there but the store's own
        // moves on to the next, and the registry itself comes last.
        for mirror in opts.mirrors.get(&reference.registry).into_iter().flatten() {
            progress(TransferEvent::Mirror {
                mirror: mirror.clone(),
                failure: None,
            });
            let pulled = Client::new(mirror, opts)
                .and_then(|c| self.pull_from(&c, reference, platform, progress));
            match pulled {
                Ok(id) => return Ok(id),
                Err(e @ Error::Store { .. }) => return Err(e),
                Err(e) => progress(TransferEvent::Mirror {
                    mirror: mirror.clone(),
                    failure: Some(e.to_string()),
                }),
            }
        }
        let client = Client::new(&reference.registry, opts)?;
        self.pull_from(&client, reference, platform, progress)
    }

    /// [`Store::pull`] from one host: the reference's registry or a mirror
    /// of it (same repository and tag), tagging the image as `reference`.
    fn pull_from(
        &self,
        client: &Client,
        reference: &Reference,
        platform: &PlatformSpec,
        progress: &dyn Fn(TransferEvent),
    ) -> Result<Digest, Error> {
        let repo = reference.repository.as_str();
        let asked = reference.manifest_ref();
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
            |i, emit, cancel| self.fetch_layer(client, repo, &layers[i], &chains[i], emit, cancel),
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
        let known = self.known_blobs();
        for blob in layers.iter().chain(std::iter::once(&manifest.config)) {
            known.record(client.host(), &blob.digest, repo);
        }
        Ok(id)
    }

    /// Which repositories of which registries hold which blobs, as far as
    /// this store's pulls and pushes saw (for cross-repository mounts).
    pub fn known_blobs(&self) -> KnownBlobs {
        KnownBlobs::new(&self.root().join("registry").join("known-blobs"))
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
        if resume::download(self, client, repo, layer, emit, cancel)? {
            return Ok(());
        }
        // Another process is downloading this layer into the partial file:
        // fetch a private copy, without resuming.
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
        // Layers without a blob yet are uploaded while they are compressed
        // (see `push_stream`); the manifest then finds their blobs stored.
        let image_layers = self
            .image_layers(id)
            .map_err(|e| store_error("export image", id, e))?;
        let streamed = self
            .stream_new_layers(&client, repo, &image_layers, export, progress)
            .map_err(|e| store_error("export image", id, e))?;
        let image = self
            .image_manifest(id, export, false)
            .map_err(|e| store_error("export image", id, e))?;
        let layers = &image.manifest.layers;
        let known = self.known_blobs();
        run_parallel(
            layers.len(),
            |i, emit, cancel| match streamed.contains(&layers[i].digest) {
                true => {
                    known.record(&reference.registry, &layers[i].digest, repo);
                    Ok(())
                }
                false => self.send_blob(&client, &known, repo, &layers[i], emit, cancel),
            },
            progress,
            |_, ()| Ok(()),
        )?;
        let config = &image.manifest.config;
        self.send_blob(
            &client,
            &known,
            repo,
            config,
            progress,
            &AtomicBool::new(false),
        )?;

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

    /// Uploads one stored blob unless the repository already has it or
    /// the registry can mount it from a repository known to hold it (image
    /// and cache pushes).
    pub(crate) fn send_blob(
        &self,
        client: &Client,
        known: &KnownBlobs,
        repo: &str,
        descriptor: &Descriptor,
        emit: &dyn Fn(TransferEvent),
        cancel: &AtomicBool,
    ) -> Result<(), Error> {
        let digest = descriptor.digest.clone();
        let host = client.host();
        if client.head_blob(repo, &digest)? {
            known.record(host, &digest, repo);
            emit(TransferEvent::Skipped {
                digest,
                reason: Skip::Exists,
            });
            return Ok(());
        }
        for from in known.sources(host, &digest, repo) {
            match client.mount_blob(repo, &digest, &from) {
                Ok(true) => {
                    known.record(host, &digest, repo);
                    emit(TransferEvent::Mounted { digest, from });
                    return Ok(());
                }
                // Gone from there, or not ours to read: upload instead.
                Ok(false) | Err(Error::Denied { .. } | Error::Unauthorized { .. }) => {}
                Err(e) => return Err(e),
            }
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
        known.record(host, &digest, repo);
        emit(TransferEvent::Done { digest });
        Ok(())
    }
}

#[cfg(test)]
mod tests;
