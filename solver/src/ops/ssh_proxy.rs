//! `RUN --mount=type=ssh,uid=…,gid=…,mode=…`: the agent socket a RUN sees
//! is a socket of its own, owned and moded as asked, forwarding every
//! connection to the host's agent.
//!
//! Bind-mounting the host's `$SSH_AUTH_SOCK` would keep the host socket's
//! owner and mode (typically the host user, 0600 — unusable by a RUN as
//! `USER app`), and chmod'ing it would change the host's socket. BuildKit
//! also serves a socket of its own per mount; this does the same with a
//! thread per connection copying bytes both ways. The proxy lives exactly
//! as long as the RUN: dropping [`SshProxy`] stops accepting and removes
//! the socket.

use std::io;
use std::net::Shutdown;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A forwarding socket; stops and removes itself when dropped.
pub struct SshProxy {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl SshProxy {
    /// Listens at `path` (owned `uid:gid`, mode `mode`) and forwards each
    /// connection to the agent at `agent`.
    ///
    /// # Errors
    /// When the socket cannot be created, chowned or chmoded.
    pub fn start(path: &Path, agent: &Path, uid: u32, gid: u32, mode: u32) -> io::Result<SshProxy> {
        let listener = UnixListener::bind(path)?;
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        let stop = Arc::new(AtomicBool::new(false));
        let agent = agent.to_path_buf();
        let accept = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("ssh-proxy".into())
                .spawn(move || serve(&listener, &agent, &stop))?
        };
        Ok(SshProxy {
            path: path.to_path_buf(),
            stop,
            accept: Some(accept),
        })
    }

    /// The socket to bind into the RUN.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SshProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(listener: &UnixListener, agent: &Path, stop: &AtomicBool) {
    for client in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let Ok(upstream) = UnixStream::connect(agent) else {
            // No agent: the client sees the connection close, as ssh-add
            // does when the agent is gone.
            continue;
        };
        // Detached: a connection outliving the RUN ends when its process
        // (killed with the RUN's pid namespace) closes its end.
        let _ = std::thread::Builder::new()
            .name("ssh-proxy-conn".into())
            .spawn(move || pump(client, upstream));
    }
}

/// Copies both ways until either side closes.
fn pump(client: UnixStream, upstream: UnixStream) {
    let (Ok(mut c_read), Ok(mut u_read)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let (mut c_write, mut u_write) = (client, upstream);
    let up = std::thread::spawn(move || {
        let _ = io::copy(&mut c_read, &mut u_write);
        let _ = u_write.shutdown(Shutdown::Write);
    });
    let _ = io::copy(&mut u_read, &mut c_write);
    let _ = c_write.shutdown(Shutdown::Write);
    let _ = up.join();
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn the_proxy_has_the_asked_owner_and_mode_and_reaches_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let agent_path = dir.path().join("agent.sock");
        let agent = UnixListener::bind(&agent_path).unwrap();
        // A stand-in agent: answers each request with it reversed.
        std::thread::spawn(move || {
            for s in agent.incoming() {
                let mut s = s.unwrap();
                let mut buf = [0u8; 5];
                s.read_exact(&mut buf).unwrap();
                buf.reverse();
                s.write_all(&buf).unwrap();
            }
        });
        let proxy_path = dir.path().join("proxy.sock");
        let proxy = SshProxy::start(&proxy_path, &agent_path, 1000, 1001, 0o660).unwrap();
        let meta = std::fs::metadata(proxy.path()).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o777),
            (1000, 1001, 0o660)
        );
        for _ in 0..2 {
            let mut c = UnixStream::connect(&proxy_path).unwrap();
            c.write_all(b"hello").unwrap();
            let mut back = [0u8; 5];
            c.read_exact(&mut back).unwrap();
            assert_eq!(&back, b"olleh");
        }
        drop(proxy);
        assert!(!proxy_path.exists(), "the socket is removed with the proxy");
    }
}
