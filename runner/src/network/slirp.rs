//! Runs `slirp4netns` for one container: a fresh network namespace (held by an fd, so
//! the container's pid 1 can join it before it execs), configured with a tap device,
//! an address, a default route and a DNS forwarder, plus the published ports
//! (`add_hostfwd` on slirp4netns's API socket; IPv6 ones through [`Proxy`]).
//!
//! Lifetime: slirp4netns gets the read end of a pipe as `--exit-fd` and exits when
//! the supervisor (which holds the write end) is gone, and a parent-death SIGKILL for
//! good measure; [`Slirp`]'s drop kills and reaps it when the container has exited.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use nix::sched::{setns, unshare, CloneFlags};
use rustix::fs::{Mode, OFlags};
use rustix::pipe::{pipe_with, PipeFlags};

use super::network_error;
use super::proxy::Proxy;
use super::{PortMapping, CONTAINER_ADDRESS, TOOL};
use crate::Error;

/// The API socket's name in the sandbox's scratch dir.
const API_SOCKET: &str = "slirp4netns.sock";
/// slirp4netns's own messages (it is chatty): shown when it fails.
const LOG: &str = "slirp4netns.log";

/// A running slirp4netns serving one container's network namespace.
pub(crate) struct Slirp {
    child: Child,
    netns: OwnedFd,
    /// The write end of `--exit-fd`: slirp4netns exits when it is closed.
    _exit: OwnedFd,
    /// The relay of the IPv6 bindings, if any (dropped after slirp4netns is ended).
    _proxy: Option<Proxy>,
}

/// A new network namespace, held by the returned fd; this process stays in its own.
fn new_netns() -> Result<OwnedFd, Error> {
    if crate::rootless::in_user_namespace() {
        // No way back into the host's namespace from a user namespace.
        return crate::rootless::new_netns_in_child();
    }
    let open = |path: &str| {
        rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| network_error("opening a network namespace")(e.into()))
    };
    let host = open("/proc/thread-self/ns/net")?;
    unshare(CloneFlags::CLONE_NEWNET).map_err(|source| Error::Unshare {
        namespaces: "CLONE_NEWNET".into(),
        source,
    })?;
    let new = open("/proc/thread-self/ns/net");
    // Back to the host's namespace, whatever happened: slirp4netns is spawned from it.
    setns(host.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|e| network_error("returning to the host's network namespace")(e.into()))?;
    new
}

impl Slirp {
    /// Creates the container's network namespace, starts slirp4netns on it, waits until
    /// the namespace is configured and publishes `ports`. `scratch` is the sandbox's
    /// private directory (API socket, log).
    ///
    /// # Errors
    /// [`Error::NetworkToolMissing`] without slirp4netns, [`Error::PortInUse`] when a
    /// host port is taken, [`Error::Network`] for any other failure.
    pub(crate) fn start(scratch: &Path, ports: &[PortMapping]) -> Result<Slirp, Error> {
        let netns = new_netns()?;
        let pipe = || {
            pipe_with(PipeFlags::CLOEXEC)
                .map_err(|e| network_error("creating a pipe for slirp4netns")(e.into()))
        };
        let (ready_read, ready_write) = pipe()?;
        let (exit_read, exit_write) = pipe()?;
        let log_path = scratch.join(LOG);
        let log = File::create(&log_path).map_err(network_error("creating slirp4netns.log"))?;
        let log_err = log
            .try_clone()
            .map_err(network_error("creating slirp4netns.log"))?;
        let inherited: [RawFd; 3] = [
            ready_write.as_raw_fd(),
            exit_read.as_raw_fd(),
            netns.as_raw_fd(),
        ];
        let mut command = Command::new(TOOL.0);
        command
            .args([
                "--configure",
                "--mtu=65520",
                // The container must not reach services bound to the host's 127.0.0.1
                // through the gateway (Docker's bridge cannot either).
                "--disable-host-loopback",
                "--netns-type=path",
            ])
            .arg(format!("--ready-fd={}", inherited[0]))
            .arg(format!("--exit-fd={}", inherited[1]))
            .arg(format!("--api-socket={API_SOCKET}"))
            .arg(format!("/proc/self/fd/{}", inherited[2]))
            .arg("tap0")
            .current_dir(scratch)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // SAFETY: fcntl(2) and prctl(2) are async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                for fd in inherited {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NetworkToolMissing {
                    tool: TOOL.0.into(),
                    package: TOOL.1.into(),
                }
            } else {
                network_error("starting slirp4netns")(e)
            }
        })?;
        drop(command);
        drop(ready_write);
        drop(exit_read);
        let mut slirp = Slirp {
            child,
            netns,
            _exit: exit_write,
            _proxy: None,
        };
        // One byte ("1") once the namespace is configured; EOF if slirp4netns died.
        let mut ready = [0u8; 1];
        let got = File::from(ready_read).read(&mut ready).unwrap_or(0);
        if got == 0 {
            return Err(Error::Network {
                what: "starting slirp4netns".into(),
                message: log_tail(&log_path),
            });
        }
        let dir = rustix::fs::open(
            scratch,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| network_error("opening the sandbox's scratch dir")(e.into()))?;
        // Through the fd: the scratch dir's own path may exceed a socket path's 108 bytes.
        let socket = format!("/proc/self/fd/{}/{API_SOCKET}", dir.as_raw_fd());
        // slirp4netns listens on IPv4 only; IPv6 bindings go to bake's proxy.
        let (v4, v6): (Vec<&PortMapping>, Vec<&PortMapping>) =
            ports.iter().partition(|m| m.host_ip.is_ipv4());
        for mapping in v4 {
            publish(&socket, mapping)?;
        }
        if !v6.is_empty() {
            slirp._proxy = Some(Proxy::start(scratch, &slirp.netns, &v6)?);
        }
        Ok(slirp)
    }

    /// The container's network namespace, for its pid 1 to join.
    pub(crate) fn netns(&self) -> &OwnedFd {
        &self.netns
    }
}

impl Drop for Slirp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asks slirp4netns to forward `mapping` (one request per connection).
fn publish(socket: &str, mapping: &PortMapping) -> Result<(), Error> {
    let what = format!("publishing {mapping}");
    let request = serde_json::json!({
        "execute": "add_hostfwd",
        "arguments": {
            "proto": mapping.protocol.as_str(),
            "host_addr": mapping.host_ip.to_string(),
            "host_port": mapping.host_port,
            "guest_addr": CONTAINER_ADDRESS,
            "guest_port": mapping.container_port,
        }
    });
    let mut stream = UnixStream::connect(socket).map_err(network_error(&what))?;
    stream
        .write_all(request.to_string().as_bytes())
        .map_err(network_error(&what))?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(network_error(&what))?;
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap_or_default();
    if reply.get("return").is_some() {
        return Ok(());
    }
    if mapping.host_port_in_use() {
        return Err(Error::PortInUse {
            mapping: mapping.to_string(),
        });
    }
    Err(Error::Network {
        what,
        message: reply["error"]["desc"]
            .as_str()
            .unwrap_or("slirp4netns gave no reason")
            .to_string(),
    })
}

/// The last lines slirp4netns wrote, for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("; ");
    if tail.is_empty() {
        "slirp4netns exited before the network was ready".into()
    } else {
        tail
    }
}
