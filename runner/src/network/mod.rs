//! Bridge networking for containers (`bake run --network bridge`, `-p`, `-P`).
//!
//! The container gets a network namespace of its own whose only way out is a tap
//! device served by `slirp4netns` (Debian package `slirp4netns`), a user-space TCP/IP
//! stack that NATs the container's traffic through ordinary host sockets and listens
//! on the host for published ports. No bridge, veth pair, iptables rule or routing
//! change is made on the host, and nothing needs cleaning up when bake is killed.
//!
//! Why slirp4netns and not `pasta` (Debian's `passt`): both were tried here as root.
//! slirp4netns 1.2.0 configured the namespace (`--configure`), forwarded a published
//! port and signalled readiness in ~5 ms. Debian 12's pasta (2023-03) refuses to run as
//! root (it switches to `nobody`, then fails with "Couldn't open user namespace
//! /proc/PID/ns/user: Permission denied"), and copies the host's own address into the
//! namespace instead of a private one.
//!
//! The addresses are slirp4netns's defaults (the same as podman's rootless network).
//! IPv6 published ports (`[::]`, `[::1]`) are relayed by bake's own proxy (`proxy`),
//! since slirp4netns 1.2.0 can only listen on IPv4.

mod ports;
mod proxy;
mod relay;
mod slirp;

pub use ports::{PortMapping, Protocol};
pub use proxy::{port_proxy_main, PORT_PROXY_ARG};
pub(crate) use slirp::Slirp;

/// The container's address on its tap device (`/24`).
pub const CONTAINER_ADDRESS: &str = "10.0.2.100";
/// The gateway: slirp4netns's NAT towards the host and the outside world.
pub const GATEWAY: &str = "10.0.2.2";
/// slirp4netns's DNS forwarder, written to the container's `/etc/resolv.conf`.
pub const DNS: &str = "10.0.2.3";
/// The tool that provides bridge networking, and the Debian package that ships it.
pub const TOOL: (&str, &str) = ("slirp4netns", "slirp4netns");

use crate::{Error, Network, Options, Plan};

/// Published ports need bridge networking and an assigned host port each (Docker:
/// "published ports are discarded when using host network mode" is a warning there; an
/// error here, since nothing would be published).
///
/// # Errors
/// [`Error::InvalidPlan`] saying which rule is broken.
pub(crate) fn check(plan: &Plan, options: &Options) -> Result<(), Error> {
    if !options.ports.is_empty() && plan.network != Network::Bridge {
        return Err(Error::InvalidPlan {
            message: "published ports need --network bridge".into(),
        });
    }
    if let Some(m) = options.ports.iter().find(|m| m.host_port == 0) {
        return Err(Error::InvalidPlan {
            message: format!("no host port assigned to {}", m.container_side()),
        });
    }
    Ok(())
}

/// A network setup step that failed with an I/O error (slirp4netns, the
/// IPv6 port proxy).
fn network_error(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Network {
        what: what.to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rootfs;

    fn plan(network: Network) -> Plan {
        Plan {
            rootfs: Rootfs {
                lowers: vec![],
                upper: "/u".into(),
                work: "/w".into(),
            },
            args: vec!["true".into()],
            env: vec![],
            cwd: "/".into(),
            user: String::new(),
            hostname: String::new(),
            network,
            mounts: vec![],
            hosts: vec![],
            readonly_rootfs: false,
            privileged: false,
        }
    }

    #[test]
    fn ports_need_the_bridge_and_an_assigned_host_port() {
        let mut options = Options {
            ports: vec![PortMapping::parse("8080:80").unwrap()],
            ..Options::default()
        };
        assert!(check(&plan(Network::Bridge), &options).is_ok());
        let e = check(&plan(Network::Host), &options).unwrap_err();
        assert!(e.to_string().contains("--network bridge"), "{e}");
        options.ports = vec![PortMapping::parse("80/udp").unwrap()];
        let e = check(&plan(Network::Bridge), &options).unwrap_err();
        assert!(
            e.to_string().contains("no host port assigned to 80/udp"),
            "{e}"
        );
        assert!(check(&plan(Network::None), &Options::default()).is_ok());
    }

    #[test]
    fn a_missing_tool_names_its_package() {
        let e = Error::NetworkToolMissing {
            tool: TOOL.0.into(),
            package: TOOL.1.into(),
        };
        assert!(e.to_string().contains("apt-get install slirp4netns"), "{e}");
        assert_eq!(e.docker_code(), 125);
    }
}
