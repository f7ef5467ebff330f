//! Published ports: Docker's `-p [hostip:][hostport:]ctrport[/tcp|/udp]` syntax and
//! the mapping the runner asks slirp4netns to forward.

use std::fmt;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};

use serde::{Deserialize, Serialize};

use crate::Error;

/// The transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`, as Docker writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One published port: host address and port forwarded to a container port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// The host address listened on (`0.0.0.0`: every address).
    pub host_ip: Ipv4Addr,
    /// The host port; 0 until [`PortMapping::assign_free_port`] picks one.
    pub host_port: u16,
    /// The port inside the container.
    pub container_port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

fn invalid(spec: &str, why: &str) -> Error {
    Error::InvalidPlan {
        message: format!("invalid port specification {spec:?}: {why}"),
    }
}

fn port(spec: &str, text: &str, what: &str) -> Result<u16, Error> {
    if text.contains('-') {
        return Err(invalid(spec, "port ranges are not supported"));
    }
    match text.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(invalid(
            spec,
            &format!("{what} {text:?} is not a port (1-65535)"),
        )),
    }
}

impl PortMapping {
    /// Parses a `-p` value: `ctrport`, `hostport:ctrport`, `hostip:hostport:ctrport` or
    /// `hostip::ctrport`, each optionally followed by `/tcp` or `/udp`. A missing host
    /// port is 0 (to be assigned); a missing host address is `0.0.0.0`.
    ///
    /// # Errors
    /// [`Error::InvalidPlan`] naming the spec: ranges, IPv6 addresses, bad numbers,
    /// another protocol.
    pub fn parse(spec: &str) -> Result<PortMapping, Error> {
        let (ports, protocol) = match spec.rsplit_once('/') {
            Some((p, "tcp")) => (p, Protocol::Tcp),
            Some((p, "udp")) => (p, Protocol::Udp),
            Some((_, other)) => {
                return Err(invalid(
                    spec,
                    &format!("protocol {other:?} is not supported (tcp, udp)"),
                ))
            }
            None => (spec, Protocol::Tcp),
        };
        if ports.starts_with('[') {
            return Err(invalid(spec, "IPv6 host addresses are not supported"));
        }
        let parts: Vec<&str> = ports.split(':').collect();
        let (ip, host, ctr) = match parts[..] {
            [ctr] => ("", "", ctr),
            [host, ctr] => ("", host, ctr),
            [ip, host, ctr] => (ip, host, ctr),
            _ => return Err(invalid(spec, "expected [hostip:][hostport:]containerport")),
        };
        let host_ip = if ip.is_empty() {
            Ipv4Addr::UNSPECIFIED
        } else {
            ip.parse()
                .map_err(|_| invalid(spec, &format!("{ip:?} is not an IPv4 address")))?
        };
        let host_port = if host.is_empty() {
            0
        } else {
            port(spec, host, "host port")?
        };
        Ok(PortMapping {
            host_ip,
            host_port,
            container_port: port(spec, ctr, "container port")?,
            protocol,
        })
    }

    /// A mapping of `container_port` to a host port still to be assigned (`-P`).
    pub fn any_host_port(container_port: u16, protocol: Protocol) -> PortMapping {
        PortMapping {
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_port: 0,
            container_port,
            protocol,
        }
    }

    /// Picks a free host port when none was given, by asking the kernel for one (bind
    /// to port 0) and releasing it. Another process may take it before the container
    /// starts; the start then fails with [`Error::PortInUse`].
    ///
    /// # Errors
    /// The bind error, as [`Error::Network`].
    pub fn assign_free_port(&mut self) -> Result<(), Error> {
        if self.host_port != 0 {
            return Ok(());
        }
        let address = (self.host_ip, 0);
        let picked = match self.protocol {
            Protocol::Tcp => TcpListener::bind(address).and_then(|l| l.local_addr()),
            Protocol::Udp => UdpSocket::bind(address).and_then(|s| s.local_addr()),
        };
        let picked = picked.map_err(|e| Error::Network {
            what: format!(
                "finding a free {} port on {}",
                self.protocol.as_str(),
                self.host_ip
            ),
            message: e.to_string(),
        })?;
        self.host_port = picked.port();
        Ok(())
    }

    /// Whether the host port is taken right now (a listener on it, or a bound UDP socket).
    pub(crate) fn host_port_in_use(&self) -> bool {
        let address = (self.host_ip, self.host_port);
        let result = match self.protocol {
            Protocol::Tcp => TcpListener::bind(address).map(drop),
            Protocol::Udp => UdpSocket::bind(address).map(drop),
        };
        matches!(result, Err(e) if e.kind() == std::io::ErrorKind::AddrInUse)
    }

    /// `80/tcp`: the container side, as `docker port` prints it.
    pub fn container_side(&self) -> String {
        format!("{}/{}", self.container_port, self.protocol.as_str())
    }

    /// `0.0.0.0:8080`: the host side.
    pub fn host_side(&self) -> String {
        format!("{}:{}", self.host_ip, self.host_port)
    }
}

/// `0.0.0.0:8080->80/tcp`, as in `docker ps`'s PORTS column.
impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{}", self.host_side(), self.container_side())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(spec: &str) -> PortMapping {
        PortMapping::parse(spec).unwrap()
    }

    #[test]
    fn docker_forms_parse() {
        assert_eq!(p("8080:80").to_string(), "0.0.0.0:8080->80/tcp");
        assert_eq!(
            p("127.0.0.1:8080:80/udp").to_string(),
            "127.0.0.1:8080->80/udp"
        );
        assert_eq!(p("80").host_port, 0);
        let m = p("127.0.0.1::53/udp");
        assert_eq!(
            (m.host_ip, m.host_port, m.container_port),
            (Ipv4Addr::LOCALHOST, 0, 53)
        );
        assert_eq!(m.protocol, Protocol::Udp);
        assert_eq!(p("80/tcp").container_side(), "80/tcp");
    }

    #[test]
    fn bad_specs_say_why() {
        for (spec, why) in [
            ("8000-8010:80-90", "ranges"),
            ("8080:80/sctp", "sctp"),
            ("[::1]:8080:80", "IPv6"),
            ("host:8080:80", "IPv4"),
            ("0:80", "host port"),
            ("8080:99999", "container port"),
            ("a:b:c:d", "expected"),
            ("", "container port"),
        ] {
            let e = PortMapping::parse(spec).unwrap_err().to_string();
            assert!(e.contains(why), "{spec}: {e}");
        }
    }

    #[test]
    fn a_free_port_is_assigned_and_a_taken_one_detected() {
        let mut m = PortMapping::any_host_port(80, Protocol::Tcp);
        m.host_ip = Ipv4Addr::LOCALHOST;
        m.assign_free_port().unwrap();
        assert_ne!(m.host_port, 0);
        assert!(!m.host_port_in_use());
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, m.host_port)).unwrap();
        assert!(m.host_port_in_use());
        drop(listener);
    }
}
