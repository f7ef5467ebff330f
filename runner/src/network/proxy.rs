//! IPv6 published ports: a small user-space proxy, because slirp4netns cannot listen
//! on IPv6.
//!
//! Debian's slirp4netns 1.2.0 (libslirp 4.7) forwards host ports with libslirp's
//! `slirp_add_hostfwd`, which takes an IPv4 `in_addr` only: `add_hostfwd` with
//! `"host_addr": "::"` is "bad arguments.host_addr", with or without `--enable-ipv6`
//! (IPv6 host forwarding came with `slirp_add_hostxfwd` in later slirp4netns). So IPv6
//! bindings (`[::]`, the twin of every `-p` without address, and `-p [::1]:8080:80`)
//! are served the way Docker's own `docker-proxy` serves them: a process listens on
//! the host's IPv6 address and relays each TCP connection, or each UDP client's
//! datagrams, to the container's IPv4 address and port (Docker's bridge is IPv4-only
//! by default too, so the service in the container sees the same as with Docker: an
//! IPv4 peer, not the client's address).
//!
//! The supervisor binds the IPv6 sockets itself (IPv6-only, so that slirp4netns's
//! `0.0.0.0` listener on the same port does not conflict; a taken port fails the
//! start at once), then re-executes bake with [`PORT_PROXY_ARG`], passing the
//! sockets, the container's network namespace and a pipe. The proxy joins the
//! namespace (sockets keep the namespace they were made in: the listeners stay on the
//! host, the connections it opens are the container's), starts one thread per
//! listener (`relay`) and reports ready on the pipe. It lives until the supervisor
//! closes its end of a second pipe (or dies: parent-death SIGKILL), like slirp4netns.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddrV6, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};

use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{
    bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
    SockaddrIn6,
};
use rustix::pipe::{pipe_with, PipeFlags};
use serde::{Deserialize, Serialize};

use super::{network_error, PortMapping, Protocol};
use crate::Error;

/// The hidden first argument that makes the bake binary act as the IPv6 port proxy:
/// its `main` must call [`port_proxy_main`] when it sees it, before anything else.
pub const PORT_PROXY_ARG: &str = "__bake-port-proxy";

/// The proxy's own messages (a failed start), kept in the sandbox's scratch dir.
const LOG: &str = "port-proxy.log";

/// A socket bound IPv6-only to `ip`:`port` (listening, for TCP): an IPv6 binding
/// must not take the port from `0.0.0.0` as a dual-stack socket would.
///
/// # Errors
/// The socket, setsockopt, bind or listen error (`AddrInUse` for a taken port).
pub(crate) fn bind_v6(ip: Ipv6Addr, port: u16, protocol: Protocol) -> std::io::Result<OwnedFd> {
    let kind = match protocol {
        Protocol::Tcp => SockType::Stream,
        Protocol::Udp => SockType::Datagram,
    };
    let fd = socket(AddressFamily::Inet6, kind, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    if protocol == Protocol::Tcp {
        // As std's TcpListener does: a port in TIME_WAIT from an earlier container is
        // free again.
        setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    }
    bind(
        fd.as_raw_fd(),
        &SockaddrIn6::from(SocketAddrV6::new(ip, port, 0, 0)),
    )?;
    if protocol == Protocol::Tcp {
        listen(&fd, Backlog::new(128).unwrap_or(Backlog::MAXCONN))?;
    }
    Ok(fd)
}

/// What the proxy process is given (as JSON in its second argument): fd numbers it
/// inherits and what to relay each listener to.
#[derive(Debug, Serialize, Deserialize)]
struct Config {
    netns: RawFd,
    ready: RawFd,
    exit: RawFd,
    listeners: Vec<Listener>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Listener {
    fd: RawFd,
    protocol: Protocol,
    container_port: u16,
}

/// The running proxy of one container; dropping it ends the proxy.
pub(crate) struct Proxy {
    child: Child,
    /// The write end of the proxy's exit pipe: it exits when this is closed.
    _exit: OwnedFd,
}

impl Proxy {
    /// Binds `mappings` (all IPv6) on the host and starts the proxy relaying them into
    /// the network namespace `netns`; returns once it serves.
    ///
    /// # Errors
    /// [`Error::PortInUse`] for a taken host port, [`Error::Network`] otherwise.
    pub(crate) fn start(
        scratch: &Path,
        netns: &OwnedFd,
        mappings: &[&PortMapping],
    ) -> Result<Proxy, Error> {
        let mut sockets = Vec::new();
        for mapping in mappings {
            let std::net::IpAddr::V6(ip) = mapping.host_ip else {
                continue;
            };
            let socket = bind_v6(ip, mapping.host_port, mapping.protocol).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AddrInUse {
                    Error::PortInUse {
                        mapping: mapping.to_string(),
                    }
                } else {
                    network_error(&format!("publishing {mapping}"))(e)
                }
            })?;
            sockets.push((socket, *mapping));
        }
        let pipe = || {
            pipe_with(PipeFlags::CLOEXEC)
                .map_err(|e| network_error("creating a pipe for the port proxy")(e.into()))
        };
        let (ready_read, ready_write) = pipe()?;
        let (exit_read, exit_write) = pipe()?;
        let config = Config {
            netns: netns.as_raw_fd(),
            ready: ready_write.as_raw_fd(),
            exit: exit_read.as_raw_fd(),
            listeners: sockets
                .iter()
                .map(|(fd, m)| Listener {
                    fd: fd.as_raw_fd(),
                    protocol: m.protocol,
                    container_port: m.container_port,
                })
                .collect(),
        };
        let mut inherited: Vec<RawFd> = vec![config.netns, config.ready, config.exit];
        inherited.extend(config.listeners.iter().map(|l| l.fd));
        let log_path = scratch.join(LOG);
        let log = File::create(&log_path).map_err(network_error("creating port-proxy.log"))?;
        let json = serde_json::to_string(&config).unwrap_or_default();
        let mut command = Command::new("/proc/self/exe");
        command
            .arg(PORT_PROXY_ARG)
            .arg(json)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: fcntl(2) and prctl(2) are async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                for &fd in &inherited {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(network_error("starting the port proxy"))?;
        drop(command);
        drop(ready_write);
        drop(exit_read);
        drop(sockets);
        let mut proxy = Proxy {
            child,
            _exit: exit_write,
        };
        // "ok" once it serves, else its error; EOF if it died.
        let mut reply = String::new();
        let _ = File::from(ready_read).read_to_string(&mut reply);
        if reply != "ok" {
            let _ = proxy.child.kill();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let message = if reply.is_empty() {
                format!("the port proxy exited before serving {}", log.trim())
            } else {
                reply
            };
            return Err(Error::Network {
                what: "starting the IPv6 port proxy".into(),
                message,
            });
        }
        Ok(proxy)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Entry point of the proxy process (see the module doc). The cli's `main` calls it
/// when its first argument is [`PORT_PROXY_ARG`]. Exits 0 when the supervisor closes
/// the exit pipe, 1 when it could not start (the reason went to the ready pipe).
pub fn port_proxy_main() -> ExitCode {
    let Some(config) = std::env::args()
        .nth(2)
        .and_then(|json| serde_json::from_str::<Config>(&json).ok())
    else {
        return ExitCode::FAILURE;
    };
    // SAFETY: the supervisor passed these fds, open and meant for us alone.
    let (netns, ready, exit) = unsafe {
        (
            OwnedFd::from_raw_fd(config.netns),
            File::from_raw_fd(config.ready),
            File::from_raw_fd(config.exit),
        )
    };
    let listeners: Vec<(OwnedFd, &Listener)> = config
        .listeners
        .iter()
        // SAFETY: as above.
        .map(|l| (unsafe { OwnedFd::from_raw_fd(l.fd) }, l))
        .collect();
    serve(netns, ready, exit, listeners)
}

fn serve(
    netns: OwnedFd,
    mut ready: File,
    mut exit: File,
    listeners: Vec<(OwnedFd, &Listener)>,
) -> ExitCode {
    // Before any thread: threads inherit the namespace of the thread that makes them.
    if let Err(e) = setns(&netns, CloneFlags::CLONE_NEWNET) {
        let _ = write!(ready, "joining the container's network namespace: {e}");
        return ExitCode::FAILURE;
    }
    drop(netns);
    for (fd, listener) in listeners {
        let port = listener.container_port;
        match listener.protocol {
            Protocol::Tcp => {
                let socket = TcpListener::from(fd);
                std::thread::spawn(move || super::relay::tcp(&socket, port));
            }
            Protocol::Udp => {
                let socket = UdpSocket::from(fd);
                std::thread::spawn(move || super::relay::udp(&socket, port));
            }
        }
    }
    let _ = ready.write_all(b"ok");
    drop(ready);
    // Blocks until the supervisor closes its end (EOF) or dies.
    let _ = exit.read(&mut [0u8; 1]);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn an_ipv6_binding_leaves_the_ipv4_port_alone() {
        if !super::super::ports::host_has_ipv6() {
            eprintln!("skipped: this host has no IPv6");
            return;
        }
        let v4 = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        let port = v4.local_addr().unwrap().port();
        let v6 = bind_v6(Ipv6Addr::UNSPECIFIED, port, Protocol::Tcp).unwrap();
        let again = bind_v6(Ipv6Addr::UNSPECIFIED, port, Protocol::Tcp).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AddrInUse);
        drop(v6);
        let udp = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        let port = udp.local_addr().unwrap().port();
        bind_v6(Ipv6Addr::LOCALHOST, port, Protocol::Udp).unwrap();
    }

    #[test]
    fn the_config_round_trips() {
        let config = Config {
            netns: 3,
            ready: 4,
            exit: 5,
            listeners: vec![Listener {
                fd: 6,
                protocol: Protocol::Udp,
                container_port: 53,
            }],
        };
        let json = serde_json::to_string(&config).unwrap();
        let back: Config = serde_json::from_str(&json).unwrap();
        assert_eq!(back.listeners[0].container_port, 53);
        assert!(json.contains("\"udp\""), "{json}");
    }
}
