//! Published ports: Docker's `-p [hostip:][hostport:]ctrport[/tcp|/udp]` syntax
//! (`hostip` may be an IPv6 address in brackets: `[::1]:8080:80`) and the mappings
//! the runner forwards.
//!
//! Like Docker, a `-p` value without a host address publishes on every address of
//! both families: `0.0.0.0` and, when the host has IPv6, `[::]` on the same host port
//! ([`PortMapping::parse_bindings`]). The two are separate mappings, so `bake port`
//! and `bake ps` list both, as Docker does.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, UdpSocket};
use std::sync::OnceLock;

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
    /// The host address listened on (`0.0.0.0` / `::`: every address of the family).
    pub host_ip: IpAddr,
    /// The host port; 0 until [`PortMapping::assign_free_ports`] picks one.
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

/// Whether this host can listen on IPv6 at all (`::1` on its loopback). Docker skips
/// the `[::]` binding of a `-p` without address on a host without IPv6, quietly.
pub(crate) fn host_has_ipv6() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok())
}

/// Splits `[v6]:rest` or `v4:rest` / `rest` into (address text, parts after it).
fn split_address<'a>(spec: &str, ports: &'a str) -> Result<(&'a str, Vec<&'a str>), Error> {
    if let Some(bracketed) = ports.strip_prefix('[') {
        let (ip, rest) = bracketed
            .split_once(']')
            .ok_or_else(|| invalid(spec, "missing ']' after the IPv6 host address"))?;
        let rest = rest.strip_prefix(':').ok_or_else(|| {
            invalid(
                spec,
                "expected [ipv6]:hostport:containerport or [ipv6]::containerport",
            )
        })?;
        let parts: Vec<&str> = rest.split(':').collect();
        if parts.len() != 2 {
            return Err(invalid(
                spec,
                "expected [ipv6]:hostport:containerport or [ipv6]::containerport",
            ));
        }
        return Ok((ip, parts));
    }
    let parts: Vec<&str> = ports.split(':').collect();
    match parts[..] {
        [_] | [_, _] => Ok(("", parts)),
        [ip, _, _] => Ok((ip, parts[1..].to_vec())),
        _ => Err(invalid(
            spec,
            "expected [hostip:][hostport:]containerport (an IPv6 host address goes in \
             brackets: [::1]:8080:80)",
        )),
    }
}

impl PortMapping {
    /// Parses a `-p` value: `ctrport`, `hostport:ctrport`, `hostip:hostport:ctrport` or
    /// `hostip::ctrport` (`hostip` an IPv4 address or an IPv6 one in brackets), each
    /// optionally followed by `/tcp` or `/udp`. A missing host port is 0 (to be
    /// assigned); a missing host address is `0.0.0.0` (see
    /// [`PortMapping::parse_bindings`] for the `[::]` twin Docker adds).
    ///
    /// # Errors
    /// [`Error::InvalidPlan`] naming the spec: ranges, bad addresses, bad numbers,
    /// another protocol.
    pub fn parse(spec: &str) -> Result<PortMapping, Error> {
        Self::parse_spec(spec).map(|(mapping, _)| mapping)
    }

    /// [`PortMapping::parse`], plus whether the spec named a host address.
    fn parse_spec(spec: &str) -> Result<(PortMapping, bool), Error> {
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
        let bracketed = ports.starts_with('[');
        let (ip, parts) = split_address(spec, ports)?;
        let (host, ctr) = match parts[..] {
            [ctr] => ("", ctr),
            [host, ctr] => (host, ctr),
            _ => unreachable!("split_address yields one or two parts"),
        };
        let host_ip: IpAddr = if bracketed {
            ip.parse::<Ipv6Addr>()
                .map_err(|_| invalid(spec, &format!("{ip:?} is not an IPv6 address")))?
                .into()
        } else if ip.is_empty() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            ip.parse::<Ipv4Addr>()
                .map_err(|_| {
                    invalid(
                        spec,
                        &format!("{ip:?} is not an IPv4 address (IPv6 goes in brackets)"),
                    )
                })?
                .into()
        };
        let host_port = if host.is_empty() {
            0
        } else {
            port(spec, host, "host port")?
        };
        let mapping = PortMapping {
            host_ip,
            host_port,
            container_port: port(spec, ctr, "container port")?,
            protocol,
        };
        Ok((mapping, bracketed || !ip.is_empty()))
    }

    /// The bindings of one `-p` value, as Docker makes them: the mapping, and when the
    /// value names no host address and the host has IPv6 ([`host_has_ipv6`]), its twin
    /// on `[::]` right after it (same host port, once assigned).
    ///
    /// # Errors
    /// As [`PortMapping::parse`].
    pub fn parse_bindings(spec: &str) -> Result<Vec<PortMapping>, Error> {
        let (mapping, addressed) = Self::parse_spec(spec)?;
        Ok(Self::with_twin(mapping, !addressed && host_has_ipv6()))
    }

    fn with_twin(mapping: PortMapping, twin: bool) -> Vec<PortMapping> {
        let mut out = vec![mapping.clone()];
        if twin {
            out.push(PortMapping {
                host_ip: Ipv6Addr::UNSPECIFIED.into(),
                ..mapping
            });
        }
        out
    }

    /// The bindings of `container_port` on a host port still to be assigned (`-P`):
    /// `0.0.0.0`, and `[::]` when the host has IPv6.
    pub fn any_host_port(container_port: u16, protocol: Protocol) -> Vec<PortMapping> {
        let mapping = PortMapping {
            host_ip: Ipv4Addr::UNSPECIFIED.into(),
            host_port: 0,
            container_port,
            protocol,
        };
        Self::with_twin(mapping, host_has_ipv6())
    }

    /// Whether `next` is the `[::]` twin of `self` made by
    /// [`PortMapping::parse_bindings`]: it shares `self`'s host port.
    fn is_twin(&self, next: &PortMapping) -> bool {
        self.host_ip == IpAddr::from(Ipv4Addr::UNSPECIFIED)
            && next.host_ip == IpAddr::from(Ipv6Addr::UNSPECIFIED)
            && (self.host_port, self.container_port, self.protocol)
                == (next.host_port, next.container_port, next.protocol)
    }

    /// Picks a free host port for every mapping that has none, by asking the kernel for
    /// one (bind to port 0) and releasing it; an IPv4/IPv6 twin gets one port free on
    /// both. Another process may take it before the container starts; the start then
    /// fails with [`Error::PortInUse`].
    ///
    /// # Errors
    /// The bind error, as [`Error::Network`].
    pub fn assign_free_ports(ports: &mut [PortMapping]) -> Result<(), Error> {
        let mut i = 0;
        while i < ports.len() {
            let twin = i + 1 < ports.len() && ports[i].is_twin(&ports[i + 1]);
            if ports[i].host_port == 0 {
                let port = ports[i].free_port(twin.then(|| ports[i + 1].host_ip))?;
                ports[i].host_port = port;
                if twin {
                    ports[i + 1].host_port = port;
                }
            }
            i += if twin { 2 } else { 1 };
        }
        Ok(())
    }

    /// A port free on `host_ip` (and on `also`, when given).
    fn free_port(&self, also: Option<IpAddr>) -> Result<u16, Error> {
        let error = |e: std::io::Error| Error::Network {
            what: format!(
                "finding a free {} port on {}",
                self.protocol.as_str(),
                self.host_ip
            ),
            message: e.to_string(),
        };
        // The kernel's pick for one family may be taken in the other: a few tries.
        let mut last = None;
        for _ in 0..20 {
            let picked = match self.protocol {
                Protocol::Tcp => TcpListener::bind((self.host_ip, 0)).and_then(|l| l.local_addr()),
                Protocol::Udp => UdpSocket::bind((self.host_ip, 0)).and_then(|s| s.local_addr()),
            }
            .map_err(error)?
            .port();
            let Some(other) = also else {
                return Ok(picked);
            };
            let probe = PortMapping {
                host_ip: other,
                host_port: picked,
                ..self.clone()
            };
            if !probe.host_port_in_use() {
                return Ok(picked);
            }
            last = Some(picked);
        }
        Err(error(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("no port free on both families (last tried {last:?})"),
        )))
    }

    /// Whether the host port is taken right now (a listener on it, or a bound UDP
    /// socket). An IPv6 address is probed IPv6-only, as it is published.
    pub(crate) fn host_port_in_use(&self) -> bool {
        let result = match self.host_ip {
            IpAddr::V4(_) => {
                let address = (self.host_ip, self.host_port);
                match self.protocol {
                    Protocol::Tcp => TcpListener::bind(address).map(drop),
                    Protocol::Udp => UdpSocket::bind(address).map(drop),
                }
            }
            IpAddr::V6(ip) => super::proxy::bind_v6(ip, self.host_port, self.protocol).map(drop),
        };
        matches!(result, Err(e) if e.kind() == std::io::ErrorKind::AddrInUse)
    }

    /// `80/tcp`: the container side, as `docker port` prints it.
    pub fn container_side(&self) -> String {
        format!("{}/{}", self.container_port, self.protocol.as_str())
    }

    /// `0.0.0.0:8080` or `[::]:8080`: the host side.
    pub fn host_side(&self) -> String {
        match self.host_ip {
            IpAddr::V4(ip) => format!("{ip}:{}", self.host_port),
            IpAddr::V6(ip) => format!("[{ip}]:{}", self.host_port),
        }
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
            (IpAddr::from(Ipv4Addr::LOCALHOST), 0, 53)
        );
        assert_eq!(m.protocol, Protocol::Udp);
        assert_eq!(p("80/tcp").container_side(), "80/tcp");
    }

    #[test]
    fn ipv6_host_addresses_go_in_brackets() {
        assert_eq!(p("[::1]:8080:80").to_string(), "[::1]:8080->80/tcp");
        assert_eq!(p("[::]:8080:80/udp").to_string(), "[::]:8080->80/udp");
        let m = p("[fe80::1]::80");
        assert_eq!(m.host_ip, "fe80::1".parse::<IpAddr>().unwrap());
        assert_eq!(m.host_port, 0);
    }

    #[test]
    fn an_address_less_spec_gets_an_ipv6_twin() {
        let (m, addressed) = PortMapping::parse_spec("8080:80").unwrap();
        assert!(!addressed);
        let both = PortMapping::with_twin(m, true);
        let shown: Vec<String> = both.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["0.0.0.0:8080->80/tcp", "[::]:8080->80/tcp"]);
        assert!(both[0].is_twin(&both[1]));
        for spec in ["0.0.0.0:8080:80", "127.0.0.1::80", "[::]:8080:80"] {
            assert!(PortMapping::parse_spec(spec).unwrap().1, "{spec}");
        }
        // What a host without IPv6 gets.
        assert_eq!(PortMapping::with_twin(p("80"), false).len(), 1);
    }

    #[test]
    fn twins_get_one_port_free_on_both_families() {
        if !host_has_ipv6() {
            eprintln!("skipped: this host has no IPv6");
            return;
        }
        let mut ports = PortMapping::any_host_port(80, Protocol::Tcp);
        ports.extend(PortMapping::any_host_port(53, Protocol::Udp));
        assert_eq!(ports.len(), 4);
        PortMapping::assign_free_ports(&mut ports).unwrap();
        assert_ne!(ports[0].host_port, 0);
        assert_eq!(ports[0].host_port, ports[1].host_port);
        assert_eq!(ports[2].host_port, ports[3].host_port);
        assert_eq!(ports[1].host_side(), format!("[::]:{}", ports[0].host_port));
    }

    #[test]
    fn bad_specs_say_why() {
        for (spec, why) in [
            ("8000-8010:80-90", "ranges"),
            ("8080:80/sctp", "sctp"),
            ("::1:8080:80", "brackets"),
            ("[::1:8080:80", "missing ']'"),
            ("[::1]:80", "[ipv6]:hostport:containerport"),
            ("[127.0.0.1]:8080:80", "not an IPv6 address"),
            ("[::1]:8080:x", "container port"),
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
        let mut ports = vec![PortMapping {
            host_ip: Ipv4Addr::LOCALHOST.into(),
            ..PortMapping::any_host_port(80, Protocol::Tcp).remove(0)
        }];
        PortMapping::assign_free_ports(&mut ports).unwrap();
        let m = &ports[0];
        assert_ne!(m.host_port, 0);
        assert!(!m.host_port_in_use());
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, m.host_port)).unwrap();
        assert!(m.host_port_in_use());
        drop(listener);
    }
}
