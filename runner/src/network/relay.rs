//! The relays of the IPv6 port proxy (see `proxy`): each TCP connection, or each UDP
//! client's datagrams, accepted on a host socket and passed on to the container's
//! address from inside its network namespace, as Docker's `docker-proxy` does.
//!
//! Runs on threads made after the proxy joined the container's network namespace, so
//! every socket made here is the container's; the listeners were made on the host.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::CONTAINER_ADDRESS;

/// How long a UDP client may stay silent before its relay socket is dropped (Docker's
/// `docker-proxy` uses the same 90 s).
const UDP_IDLE: Duration = Duration::from_secs(90);

/// How long a relay waits after a failed accept or receive before it tries again: an
/// error that persists (EMFILE, ENOBUFS) must not turn the loop into a busy spin.
const RETRY: Duration = Duration::from_millis(50);

/// The container side of a relay: its address in its own namespace.
fn upstream(port: u16) -> SocketAddr {
    let ip: Ipv4Addr = CONTAINER_ADDRESS.parse().unwrap_or(Ipv4Addr::LOCALHOST);
    SocketAddr::from((ip, port))
}

/// Accepts connections forever, each relayed on threads of its own.
pub(super) fn tcp(listener: &TcpListener, port: u16) {
    for client in listener.incoming() {
        let Ok(client) = client else {
            std::thread::sleep(RETRY);
            continue;
        };
        std::thread::spawn(move || {
            // Refused (nothing listens yet): the client sees its connection closed,
            // as with docker-proxy.
            if let Ok(server) = TcpStream::connect(upstream(port)) {
                splice(client, server);
            }
        });
    }
}

/// Copies both ways until both sides are done; a half-close is passed on.
fn splice(client: TcpStream, server: TcpStream) {
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || copy_half(client2, server2));
    copy_half(server, client);
    let _ = up.join();
}

fn copy_half(mut from: TcpStream, mut to: TcpStream) {
    match std::io::copy(&mut from, &mut to) {
        Ok(_) => {
            let _ = to.shutdown(Shutdown::Write);
        }
        Err(_) => {
            // A reset on one side ends both directions.
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
        }
    }
}

/// Relays datagrams: one socket in the container's namespace per client address, whose
/// replies go back to that client from the host socket; dropped after [`UDP_IDLE`].
pub(super) fn udp(socket: &UdpSocket, port: u16) {
    let flows: Arc<Mutex<HashMap<SocketAddr, UdpSocket>>> = Arc::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, client)) = socket.recv_from(&mut buf) else {
            std::thread::sleep(RETRY);
            continue;
        };
        let existing = flows
            .lock()
            .ok()
            .and_then(|f| f.get(&client).and_then(|s| s.try_clone().ok()));
        let flow = match existing {
            Some(flow) => flow,
            None => {
                let Some(flow) = open_flow(socket, port, client, &flows) else {
                    continue;
                };
                flow
            }
        };
        let _ = flow.send(&buf[..n]);
    }
}

/// A relay socket for `client` plus the thread that returns its replies.
fn open_flow(
    host: &UdpSocket,
    port: u16,
    client: SocketAddr,
    flows: &Arc<Mutex<HashMap<SocketAddr, UdpSocket>>>,
) -> Option<UdpSocket> {
    let flow = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    flow.connect(upstream(port)).ok()?;
    flow.set_read_timeout(Some(UDP_IDLE)).ok()?;
    let (replies, host) = (flow.try_clone().ok()?, host.try_clone().ok()?);
    flows.lock().ok()?.insert(client, flow.try_clone().ok()?);
    let flows = Arc::clone(flows);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        // A timeout (idle) or a refused send (ICMP port unreachable) ends the flow.
        while let Ok(n) = replies.recv(&mut buf) {
            let _ = host.send_to(&buf[..n], client);
        }
        if let Ok(mut flows) = flows.lock() {
            flows.remove(&client);
        }
    });
    Some(flow)
}
