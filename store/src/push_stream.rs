//! Compress-while-uploading for a push.
//!
//! A built layer has no compressed blob until it first leaves the store.
//! Making the blob and then uploading it costs the sum of the two; on a
//! small machine pushing a 1 GB layer that is ~8 s of compression followed
//! by ~5 s of upload. Here the compressed bytes go to the store's blob file
//! and, through a bounded channel, into a streamed `PATCH` of an upload
//! session at the same time, so the push costs about the larger of the
//! two. The blob still lands in the store (a re-push HEADs it and skips;
//! `bake save` reuses it), and it is the same blob a plain export makes,
//! so digests do not depend on how the image left.
//!
//! Anything that goes wrong on the network side only loses the overlap:
//! the layer is stored regardless and the caller uploads it the ordinary
//! (retrying, seekable) way.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use crate::export::ExportOptions;
use crate::oci::{Descriptor, Digest};
use crate::registry::Client;
use crate::snapshots::{self, Layer};
use crate::transfer::TransferEvent;
use crate::Store;

/// Compressed chunks in flight between the compressor and the upload
/// (each up to a gzip member, ~1 MiB or less): bounds memory, and lets the
/// compressor run ahead of a momentarily slow network.
const IN_FLIGHT: usize = 8;
/// Layers compressed and uploaded at once; each compressor already uses
/// every core, so more only adds connections.
const PARALLEL_LAYERS: usize = 2;

impl Store {
    /// Exports the layers of `layers` that have no blob under `export` yet,
    /// uploading each to `repo` of `client` while it is compressed. Returns
    /// the blobs the registry now has from this (reported to `progress`
    /// once accepted: its digest is not known before the last byte);
    /// layers not in the set
    /// (already exported, or whose streamed upload failed) are left to the
    /// ordinary upload, their blobs stored either way.
    ///
    /// # Errors
    /// Only the store's: a layer that cannot be read or exported.
    pub(crate) fn stream_new_layers(
        &self,
        client: &Client,
        repo: &str,
        layers: &[Layer],
        export: &ExportOptions,
        progress: &dyn Fn(TransferEvent),
    ) -> Result<HashSet<Digest>, snapshots::Error> {
        let mut todo = Vec::new();
        for layer in layers {
            if self.existing_layer_blob(layer, export)?.is_none() {
                todo.push(layer);
            }
        }
        let next = AtomicUsize::new(0);
        let sent = Mutex::new(Vec::new());
        let failed = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..PARALLEL_LAYERS.min(todo.len()) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(layer) = todo.get(i) else { break };
                    if failed.lock().map_or(true, |f| f.is_some()) {
                        break;
                    }
                    match self.stream_layer(client, repo, layer, export) {
                        Ok(Some(descriptor)) => {
                            if let Ok(mut sent) = sent.lock() {
                                sent.push(descriptor);
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            if let Ok(mut f) = failed.lock() {
                                f.get_or_insert(e);
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(e);
        }
        let sent = sent.into_inner().unwrap_or_else(|e| e.into_inner());
        for d in &sent {
            progress(TransferEvent::Started {
                digest: d.digest.clone(),
                size: d.size,
            });
            progress(TransferEvent::Progress {
                digest: d.digest.clone(),
                bytes: d.size,
            });
            progress(TransferEvent::Done {
                digest: d.digest.clone(),
            });
        }
        Ok(sent.into_iter().map(|d| d.digest).collect())
    }

    /// Exports one layer, mirroring the blob into an upload session; the
    /// blob when the registry accepted it.
    fn stream_layer(
        &self,
        client: &Client,
        repo: &str,
        layer: &Layer,
        export: &ExportOptions,
    ) -> Result<Option<Descriptor>, snapshots::Error> {
        let Ok(mut session) = client.start_upload(repo) else {
            // The ordinary upload will report the registry's complaint.
            let _ = self.export_layer_at(layer, export.compression, export.level)?;
            return Ok(None);
        };
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let (descriptor, uploaded) = std::thread::scope(|s| {
            let upload = s.spawn(move || {
                let mut body = ChannelReader::new(rx);
                client
                    .upload_chunk(&mut session, &mut body)
                    .map(|()| session)
            });
            let mut mirror = ChannelWriter(tx);
            let descriptor = self.export_layer_mirrored(
                layer,
                export.compression,
                export.level,
                Some(&mut mirror),
            );
            // Closing the channel ends the PATCH body.
            drop(mirror);
            (descriptor, upload.join())
        });
        let descriptor = descriptor?;
        let Ok(Ok(session)) = uploaded else {
            return Ok(None);
        };
        if client.finish_upload(session, &descriptor.digest).is_err() {
            return Ok(None);
        }
        Ok(Some(descriptor))
    }
}

/// The compressor's end of the channel.
struct ChannelWriter(SyncSender<Vec<u8>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "upload stopped"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The upload's end: the chunks as one byte stream, ending when the
/// compressor drops its end.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl ChannelReader {
    fn new(rx: Receiver<Vec<u8>>) -> Self {
        ChannelReader {
            rx,
            chunk: Vec::new(),
            at: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_yields_the_written_bytes_in_order_then_ends() {
        let (tx, rx) = sync_channel(2);
        let writer = std::thread::spawn(move || {
            let mut w = ChannelWriter(tx);
            for i in 0..100u8 {
                w.write_all(&vec![i; usize::from(i) * 7]).unwrap();
            }
        });
        let mut got = Vec::new();
        ChannelReader::new(rx).read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        let want: Vec<u8> = (0..100u8)
            .flat_map(|i| vec![i; usize::from(i) * 7])
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn new_layers_reach_the_registry_while_compressed_and_are_stored_too() {
        use crate::registry::test_registry::TestRegistry;
        use crate::registry::RegistryOptions;
        let Some(reg) = TestRegistry::start() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let work = store.temp_dir("test").unwrap();
        let upper = work.path().join("upper");
        std::fs::create_dir_all(&upper).unwrap();
        // Several gzip members' worth, partly incompressible.
        let text = b"GET /api/v1/items status=200\n".repeat(100_000);
        let noise: Vec<u8> = (0..3_000_000u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect();
        std::fs::write(upper.join("log.txt"), &text).unwrap();
        std::fs::write(upper.join("noise.bin"), &noise).unwrap();
        let layer = store.commit_snapshot(&upper, None, Some(0)).unwrap();
        let client = Client::new(&reg.host, &RegistryOptions::default()).unwrap();
        let export = ExportOptions::default();

        let mut events = Vec::new();
        let record = std::cell::RefCell::new(&mut events);
        let sent = store
            .stream_new_layers(
                &client,
                "team/streamed",
                std::slice::from_ref(&layer),
                &export,
                &|e| record.borrow_mut().push(e),
            )
            .unwrap();
        let stored = store.existing_layer_blob(&layer, &export).unwrap();
        let stored = stored.expect("the blob is stored as well as sent");
        assert_eq!(
            sent,
            HashSet::from([stored.digest.clone()]),
            "{}",
            reg.log()
        );
        assert!(client.head_blob("team/streamed", &stored.digest).unwrap());
        let mut pulled = Vec::new();
        client
            .get_blob("team/streamed", &stored.digest, &mut pulled)
            .unwrap();
        assert_eq!(pulled, store.read_blob(&stored.digest).unwrap());
        assert!(matches!(events.last(), Some(TransferEvent::Done { .. })));

        // Exported now: nothing is streamed again.
        let again = store
            .stream_new_layers(&client, "team/streamed", &[layer], &export, &|_| {})
            .unwrap();
        assert!(again.is_empty());
    }

    #[test]
    fn a_writer_whose_reader_is_gone_fails_instead_of_blocking() {
        let (tx, rx) = sync_channel(1);
        drop(rx);
        let err = ChannelWriter(tx).write(b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
