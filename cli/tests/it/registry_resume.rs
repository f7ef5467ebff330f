//! Resumable pulls: a proxy in front of the registry cuts a layer download
//! mid-blob; bake asks again with `Range: bytes=N-` (in the same run, or —
//! when the proxy then refuses everything, so the pull fails — in the next
//! run, from the partial file it kept in the store's `tmp/`), and the image
//! that results is intact.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::harness::{base_arg, scratch_dir, setup, Bake, Registry};

/// Bytes after which the proxy cuts the connection it is relaying.
const CUT_AFTER: u64 = 2 << 20;
/// Size of the incompressible file in the test image's layer.
const BIG: usize = 4 << 20;

#[derive(Default)]
struct ProxyState {
    /// Cut the next connection that relays more than this many bytes to
    /// the client (0: do not cut).
    cut_after: AtomicU64,
    /// After the cut, refuse every request until cleared.
    block_after_cut: AtomicBool,
    blocked: AtomicBool,
    /// The `Range` headers of the requests relayed.
    ranges: Mutex<Vec<String>>,
    stop: AtomicBool,
}

/// A TCP proxy to the registry that can cut a download once.
struct CuttingProxy {
    addr: String,
    state: Arc<ProxyState>,
    thread: Option<JoinHandle<()>>,
}

impl CuttingProxy {
    fn start(upstream: &str) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(ProxyState::default());
        let upstream = upstream.to_string();
        let thread = {
            let state = state.clone();
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if state.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    if state.blocked.load(Ordering::SeqCst) {
                        continue; // dropped: closed at once
                    }
                    let Ok(server) = TcpStream::connect(&upstream) else {
                        continue;
                    };
                    relay(&state, client, server);
                }
            })
        };
        CuttingProxy {
            addr,
            state,
            thread: Some(thread),
        }
    }

    fn ranges(&self) -> Vec<String> {
        self.state.ranges.lock().unwrap().clone()
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Two pumps for one connection: requests up (noting `Range` headers),
/// responses down (counting, and cutting when told).
fn relay(state: &Arc<ProxyState>, client: TcpStream, server: TcpStream) {
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let up_state = state.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let n = match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if up_state.blocked.load(Ordering::SeqCst) {
                break;
            }
            let text = String::from_utf8_lossy(&buf[..n]);
            for line in text.lines() {
                if let Some(v) = line
                    .to_ascii_lowercase()
                    .strip_prefix("range:")
                    .map(str::trim)
                {
                    up_state.ranges.lock().unwrap().push(v.to_string());
                }
            }
            if s_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = c_read.shutdown(Shutdown::Both);
        let _ = s_write.shutdown(Shutdown::Both);
    });
    let down_state = state.clone();
    let (mut s_read, mut c_write) = (server, client);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 << 10];
        let mut relayed = 0u64;
        loop {
            let n = match s_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if down_state.blocked.load(Ordering::SeqCst) {
                break;
            }
            let limit = down_state.cut_after.load(Ordering::SeqCst);
            if limit > 0 && relayed + n as u64 > limit {
                // Cut once: only this connection, only now.
                if down_state
                    .cut_after
                    .compare_exchange(limit, 0, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    let keep = (limit - relayed) as usize;
                    let _ = c_write.write_all(&buf[..keep]);
                    if down_state.block_after_cut.load(Ordering::SeqCst) {
                        down_state.blocked.store(true, Ordering::SeqCst);
                    }
                    break;
                }
            }
            relayed += n as u64;
            if c_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_read.shutdown(Shutdown::Both);
        let _ = c_write.shutdown(Shutdown::Both);
    });
}

/// Builds and pushes (directly) `ADDR/big/app:1`: busybox plus a layer
/// holding an incompressible file; returns the name and the file's sha256.
fn push_big_image(reg: &Registry, base: &str, bake: &Bake) -> (String, String) {
    let ctx = tempfile::Builder::new()
        .prefix("bake-it-resume-")
        .tempdir_in(scratch_dir())
        .unwrap();
    let mut data = Vec::with_capacity(BIG);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while data.len() < BIG {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(ctx.path().join("big.bin"), &data).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "ARG BASE\nFROM ${BASE}\nCOPY big.bin /big.bin\n",
    )
    .unwrap();
    let out = Command::new("sha256sum")
        .arg(ctx.path().join("big.bin"))
        .output()
        .unwrap();
    let sum = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let name = format!("{}/big/app:1", reg.addr);
    let [a, b] = base_arg(base);
    bake.ok(&[
        "build",
        "--progress=plain",
        "-t",
        &name,
        &a,
        &b,
        ctx.path().to_str().unwrap(),
    ]);
    bake.ok(&["push", &name]);
    (name, sum)
}

/// `sha256sum /big.bin` inside the image.
fn sum_inside(bake: &Bake, name: &str) -> String {
    let out = bake.ok(&["run", "--rm", name, "sha256sum", "/big.bin"]);
    out.stdout
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// `tmp/partial-*` files of a store, with their sizes.
fn partials(bake: &Bake) -> Vec<(String, u64)> {
    std::fs::read_dir(bake.root().join("tmp"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("partial-"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect()
}

#[test]
fn a_cut_download_resumes_with_a_range_request_in_the_same_run() {
    let Some((reg, base, bake)) = setup() else {
        return;
    };
    let (name, sum) = push_big_image(&reg, &base, &bake);
    let proxy = CuttingProxy::start(&reg.addr);
    proxy.state.cut_after.store(CUT_AFTER, Ordering::SeqCst);
    let via_proxy = name.replacen(&reg.addr, &proxy.addr, 1);

    let fresh = Bake::new();
    fresh.ok(&["pull", &via_proxy]);
    assert_eq!(
        proxy.state.cut_after.load(Ordering::SeqCst),
        0,
        "the proxy never cut"
    );
    let ranges = proxy.ranges();
    assert!(
        ranges
            .iter()
            .any(|r| r.starts_with("bytes=") && !r.starts_with("bytes=0-")),
        "no resuming range request: {ranges:?}"
    );
    assert!(partials(&fresh).is_empty(), "{:?}", partials(&fresh));
    assert_eq!(sum_inside(&fresh, &via_proxy), sum);
}

#[test]
fn a_failed_pull_leaves_a_partial_blob_that_the_next_run_resumes() {
    let Some((reg, base, bake)) = setup() else {
        return;
    };
    let (name, sum) = push_big_image(&reg, &base, &bake);
    let proxy = CuttingProxy::start(&reg.addr);
    proxy.state.block_after_cut.store(true, Ordering::SeqCst);
    proxy.state.cut_after.store(CUT_AFTER, Ordering::SeqCst);
    let via_proxy = name.replacen(&reg.addr, &proxy.addr, 1);

    // The proxy cuts, then refuses everything: the pull fails …
    let fresh = Bake::new();
    let out = fresh.run(&["pull", &via_proxy]);
    assert_ne!(out.code, 0, "{out}");
    // … keeping what arrived under a name derived from the digest.
    let kept = partials(&fresh);
    let (file, size) = kept
        .iter()
        .max_by_key(|(_, size)| *size)
        .cloned()
        .unwrap_or_else(|| panic!("no partial download kept\n{out}"));
    assert!(size > 0, "{kept:?}");
    assert_eq!(file.len(), "partial-".len() + 64, "{file}");

    // The next run asks only for the rest.
    proxy.state.blocked.store(false, Ordering::SeqCst);
    let before = proxy.ranges().len();
    fresh.ok(&["pull", &via_proxy]);
    let ranges = proxy.ranges()[before..].to_vec();
    assert!(
        ranges.contains(&format!("bytes={size}-")),
        "expected a request for bytes={size}-: {ranges:?}"
    );
    assert!(partials(&fresh).is_empty(), "{:?}", partials(&fresh));
    assert_eq!(sum_inside(&fresh, &via_proxy), sum);
}
