//! Bridge networking and published ports: `bake run --network bridge`, `-p`, `-P`,
//! `bake port`, the PORTS column of `bake ps`, and the slirp4netns helper's lifetime.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use std::path::Path;

use crate::harness::{base_arg, scratch_dir, setup, skip, testdata, Bake};

/// Removes the container when the test ends, even by a failed assertion: a detached
/// container would otherwise outlive the test (and keep its slirp4netns).
pub struct RemoveOnDrop<'a>(pub &'a Bake, pub &'static str);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["rm", "-f", self.1]);
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /` on 127.0.0.1:`port`, retried while the server starts (the deadline only
/// bounds a hang). Returns the whole response, or the last error.
fn http_get(port: u16) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut body = String::new();
            s.read_to_string(&mut body)?;
            Ok(body)
        })();
        match attempt {
            Ok(body) if body.starts_with("HTTP/") => return Ok(body),
            Ok(body) if Instant::now() > deadline => return Err(format!("got {body:?}")),
            Err(e) if Instant::now() > deadline => return Err(e.to_string()),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Host pids of the slirp4netns processes whose parent is `supervisor`.
fn slirp_children(supervisor: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
        };
        if field("Name:").as_deref() == Some("slirp4netns")
            && field("PPid:").and_then(|p| p.parse::<u32>().ok()) == Some(supervisor)
        {
            pids.push(pid);
        }
    }
    pids
}

/// slirp4netns processes whose parent is not a bake sandbox supervisor: leaked ones
/// (re-parented to init when their supervisor died without ending them).
fn orphaned_slirp() -> Vec<u32> {
    let field = |pid: &str, key: &str| -> Option<String> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().into_owned();
            let pid_n = pid.parse::<u32>().ok()?;
            if field(&pid, "Name:")? != "slirp4netns" {
                return None;
            }
            let parent = field(&pid, "PPid:")?;
            let cmdline = std::fs::read(format!("/proc/{parent}/cmdline")).unwrap_or_default();
            let supervised = String::from_utf8_lossy(&cmdline).contains("__bake-sandbox");
            (!supervised).then_some(pid_n)
        })
        .collect()
}

/// The supervisor pid of container `name` (from its state file).
fn supervisor(bake: &Bake, id: &str) -> u32 {
    let state = bake.root().join("containers").join(id).join("state.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    json["supervisor"].as_u64().unwrap() as u32
}

/// Waits (bounded) until `pids` are all gone.
fn gone(pids: &[u32]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if pids
            .iter()
            .all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// No slirp4netns, no test: CI has it (install-deps.sh); elsewhere say why.
fn have_slirp() -> bool {
    let found = std::process::Command::new("slirp4netns")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    !skip((!found).then(|| "slirp4netns is not installed".to_string()))
}

/// This machine's first global IPv4 address (`ip -4 -o addr show scope global`).
fn global_address() -> Option<Ipv4Addr> {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let word = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)?;
    word.split('/').next()?.parse().ok()
}

/// Compiles a C test helper into a static binary (the test image has no libc).
pub fn cc_static(source: &Path, out: &Path) {
    let status = std::process::Command::new("cc")
        .args(["-static", "-O", "-o"])
        .arg(out)
        .arg(source)
        .status()
        .expect("running cc (gcc is needed to build the test helpers)");
    assert!(status.success(), "cc -static {} failed", source.display());
}

/// Builds `dockerfile` in `ctx` (which holds the files it copies) as `tag`.
pub fn build_in(bake: &Bake, ctx: &Path, dockerfile: &str, tag: &str, base: &str) -> String {
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    let [a, b] = base_arg(base);
    let out = bake.run(&[
        "build",
        "--progress=plain",
        "-t",
        tag,
        &a,
        &b,
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out}");
    out.stderr
}

const SERVE: &str =
    "mkdir -p /www && echo hello-from-bake > /www/index.html && exec httpd -f -p 8080 -h /www";

#[test]
fn a_published_port_serves_http_and_stop_ends_the_helper() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    if !have_slirp() {
        return;
    }
    bake.ok(&["pull", "-q", &base]);
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    let _cleanup = RemoveOnDrop(&bake, "web");
    let out = bake.ok(&[
        "run", "-d", "--name", "web", "-p", &publish, &base, "sh", "-c", SERVE,
    ]);
    let id = out.stdout.trim().to_string();

    let body = http_get(port)
        .unwrap_or_else(|e| panic!("no answer on {port}: {e}\n{}", bake.run(&["logs", "web"])));
    assert!(body.contains("hello-from-bake"), "{body}");

    assert_eq!(
        bake.ok(&["port", "web"]).stdout,
        format!("8080/tcp -> 127.0.0.1:{port}\n")
    );
    assert_eq!(
        bake.ok(&["port", "web", "8080"]).stdout,
        format!("127.0.0.1:{port}\n")
    );
    let none = bake.run(&["port", "web", "9999/udp"]);
    assert_ne!(none.code, 0, "{none}");
    let ps = bake.ok(&["ps"]);
    assert!(ps.stdout.lines().next().unwrap().contains("PORTS"), "{ps}");
    let line = ps.stdout.lines().find(|l| l.contains("web")).unwrap();
    assert!(
        line.contains(&format!("127.0.0.1:{port}->8080/tcp")),
        "{ps}"
    );

    // The helper is the supervisor's child and dies with the container.
    let helpers = slirp_children(supervisor(&bake, &id));
    assert_eq!(
        helpers.len(),
        1,
        "slirp4netns under the supervisor: {helpers:?}"
    );
    bake.ok(&["stop", "-t", "2", "web"]);
    assert!(
        gone(&helpers),
        "slirp4netns {helpers:?} outlived `bake stop`"
    );
    assert!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
        "port {port} still answers after stop"
    );
    // Exited containers show no ports in ps -a, like Docker.
    let ps = bake.ok(&["ps", "-a"]);
    assert!(!ps.stdout.contains("->8080/tcp"), "{ps}");
    bake.ok(&["rm", "web"]);
}

#[test]
fn publish_all_maps_exposed_ports_and_rm_force_ends_the_helper() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    if !have_slirp() {
        return;
    }
    let ctx = tempfile::tempdir_in(scratch_dir()).unwrap();
    cc_static(
        &testdata("net").join("udp-echo.c"),
        &ctx.path().join("udp-echo"),
    );
    let df = "ARG BASE\nFROM $BASE\nCOPY udp-echo /bin/\nEXPOSE 8080\nEXPOSE 5353/udp\n";
    build_in(&bake, ctx.path(), df, "exposer:1", &base);
    let script = format!("udp-echo 5353 & {SERVE}");
    let _cleanup = RemoveOnDrop(&bake, "pa");
    let id = bake
        .ok(&[
            "run",
            "-d",
            "-P",
            "--name",
            "pa",
            "exposer:1",
            "sh",
            "-c",
            &script,
        ])
        .stdout
        .trim()
        .to_string();

    let listed = bake.ok(&["port", "pa"]).stdout;
    let host_port = |side: &str| -> u16 {
        let line = listed
            .lines()
            .find(|l| l.starts_with(side))
            .unwrap_or_else(|| panic!("no {side} in {listed:?}"));
        let host = line.rsplit_once(" -> ").unwrap().1;
        assert!(host.starts_with("0.0.0.0:"), "{listed}");
        host.rsplit_once(':').unwrap().1.parse().unwrap()
    };
    let (tcp, udp) = (host_port("8080/tcp"), host_port("5353/udp"));
    assert_ne!(tcp, 0);
    let ps = bake.ok(&["ps"]).stdout;
    assert!(ps.contains(&format!("0.0.0.0:{tcp}->8080/tcp")), "{ps}");
    assert!(ps.contains(&format!("0.0.0.0:{udp}->5353/udp")), "{ps}");

    let body = http_get(tcp).unwrap_or_else(|e| panic!("no answer on {tcp}: {e}"));
    assert!(body.contains("hello-from-bake"), "{body}");

    // UDP: a datagram to the host port is echoed by the container (resent until the
    // echo server is up). Sent to the host's own global address: slirp4netns drops UDP
    // replies to a client on the host's loopback (the price of
    // --disable-host-loopback, see docs/runner.md).
    match global_address() {
        None => eprintln!("skipped: UDP check: the host has no global IPv4 address"),
        Some(address) => {
            let sock = UdpSocket::bind((address, 0)).unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut reply = String::new();
            while Instant::now() < deadline && reply.is_empty() {
                sock.send_to(b"through-slirp", (address, udp)).unwrap();
                let mut buf = [0u8; 64];
                if let Ok((n, _)) = sock.recv_from(&mut buf) {
                    reply = String::from_utf8_lossy(&buf[..n]).into_owned();
                }
            }
            assert_eq!(reply, "echo:through-slirp", "{}", bake.run(&["logs", "pa"]));
        }
    }

    let helpers = slirp_children(supervisor(&bake, &id));
    assert_eq!(helpers.len(), 1, "{helpers:?}");
    bake.ok(&["rm", "-f", "pa"]);
    assert!(
        gone(&helpers),
        "slirp4netns {helpers:?} outlived `bake rm -f`"
    );
}

#[test]
fn the_bridge_has_its_own_address_dns_and_no_way_to_host_loopback() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    if !have_slirp() {
        return;
    }
    bake.ok(&["pull", "-q", &base]);
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let out = bake.ok(&[
        "run",
        "--rm",
        "--network",
        "bridge",
        "--hostname",
        "boxy",
        &base,
        "sh",
        "-c",
        "ip -4 addr show tap0 | grep -o 'inet [0-9./]*'; ip route | grep default; \
         cat /etc/resolv.conf; grep boxy /etc/hosts; \
         for a in 10.0.2.2 127.0.0.1; do \
           if nc -w 2 $a \"$1\" </dev/null; then echo REACHED $a; else echo BLOCKED $a; fi; \
         done",
        "sh",
        &port,
    ]);
    let s = &out.stdout;
    assert!(s.contains("inet 10.0.2.100/24"), "{out}");
    assert!(s.contains("default via 10.0.2.2"), "{out}");
    assert!(s.contains("nameserver 10.0.2.3"), "{out}");
    assert!(s.contains("10.0.2.100\tboxy"), "{out}");
    assert!(
        s.contains("BLOCKED 10.0.2.2") && s.contains("BLOCKED 127.0.0.1"),
        "{out}"
    );
    assert!(!s.contains("REACHED"), "{out}");
    assert!(
        listener.accept().is_err(),
        "the host's loopback listener got a connection from the container"
    );
    // --rm: the helper did not outlive its supervisor.
    let orphans = orphaned_slirp();
    assert!(gone(&orphans), "leftover slirp4netns {orphans:?}");
}

#[test]
fn port_errors_are_clear() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    if !have_slirp() {
        return;
    }
    bake.ok(&["pull", "-q", &base]);
    for network in ["host", "none"] {
        let out = bake.run(&[
            "run",
            "--rm",
            "--network",
            network,
            "-p",
            "8080:80",
            &base,
            "true",
        ]);
        assert_eq!(out.code, 125, "{out}");
        assert!(out.stderr.contains("conflicting options"), "{out}");
    }
    let bad = bake.run(&["run", "--rm", "-p", "80-90:80-90", &base, "true"]);
    assert_eq!(bad.code, 125, "{bad}");
    assert!(
        bad.stderr.contains("port ranges are not supported"),
        "{bad}"
    );

    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let spec = format!("127.0.0.1:{port}:80");
    let out = bake.run(&["run", "--rm", "-p", &spec, &base, "true"]);
    assert_eq!(out.code, 125, "{out}");
    assert!(
        out.stderr
            .contains(&format!("cannot publish 127.0.0.1:{port}->80/tcp"))
            && out.stderr.contains("already in use"),
        "{out}"
    );
    // Nothing is left of the failed container.
    assert!(!bake.ok(&["ps", "-a"]).stdout.contains("true"));
    assert!(
        gone(&orphaned_slirp()),
        "slirp4netns left after a failed start"
    );
}

/// `curl -g` of `url` (an IPv6 literal in brackets), retried while the server starts
/// (the deadline only bounds a hang). Returns the body, or curl's last error.
fn curl(url: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = std::process::Command::new("curl")
            .args(["-gsS", "--max-time", "5", url])
            .output()
            .expect("running curl");
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        if Instant::now() > deadline {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// No IPv6 on this host's loopback (or no curl): the IPv6 tests cannot run here.
fn have_ipv6() -> bool {
    let v6 = TcpListener::bind((std::net::Ipv6Addr::LOCALHOST, 0)).is_ok();
    let curl = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    !skip(match (v6, curl) {
        (false, _) => Some("the host has no IPv6 (::1)".into()),
        (_, false) => Some("curl is not installed".into()),
        _ => None,
    })
}

/// Host pids of bake's IPv6 port proxies whose parent is `supervisor`.
fn proxy_children(supervisor: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains("__bake-port-proxy") {
            continue;
        }
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let parent = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .and_then(|p| p.trim().parse::<u32>().ok());
        if parent == Some(supervisor) {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn a_published_port_answers_on_ipv6_too_like_docker() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    if !have_slirp() || !have_ipv6() {
        return;
    }
    bake.ok(&["pull", "-q", &base]);
    let port = free_port();
    let publish = format!("{port}:8080");
    let _cleanup = RemoveOnDrop(&bake, "web6");
    let id = bake
        .ok(&[
            "run", "-d", "--name", "web6", "-p", &publish, &base, "sh", "-c", SERVE,
        ])
        .stdout
        .trim()
        .to_string();

    let body = curl(&format!("http://[::1]:{port}/")).unwrap_or_else(|e| {
        panic!(
            "no answer on [::1]:{port}: {e}\n{}",
            bake.run(&["logs", "web6"])
        )
    });
    assert!(body.contains("hello-from-bake"), "{body}");
    let body = http_get(port).unwrap_or_else(|e| panic!("no answer on 127.0.0.1:{port}: {e}"));
    assert!(body.contains("hello-from-bake"), "{body}");

    assert_eq!(
        bake.ok(&["port", "web6"]).stdout,
        format!("8080/tcp -> 0.0.0.0:{port}\n8080/tcp -> [::]:{port}\n")
    );
    assert_eq!(
        bake.ok(&["port", "web6", "8080/tcp"]).stdout,
        format!("0.0.0.0:{port}\n[::]:{port}\n")
    );
    let ps = bake.ok(&["ps"]);
    let line = ps.stdout.lines().find(|l| l.contains("web6")).unwrap();
    assert!(
        line.contains(&format!("0.0.0.0:{port}->8080/tcp, [::]:{port}->8080/tcp")),
        "{ps}"
    );

    // The IPv6 relay is the supervisor's child and ends with the container.
    let proxies = proxy_children(supervisor(&bake, &id));
    assert_eq!(proxies.len(), 1, "port proxies: {proxies:?}");
    bake.ok(&["stop", "-t", "2", "web6"]);
    assert!(
        gone(&proxies),
        "port proxy {proxies:?} outlived `bake stop`"
    );
    assert!(
        TcpStream::connect((std::net::Ipv6Addr::LOCALHOST, port)).is_err(),
        "[::1]:{port} still answers after stop"
    );
}

#[test]
fn an_ipv6_host_address_publishes_on_it_alone() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    if !have_slirp() || !have_ipv6() {
        return;
    }
    let ctx = tempfile::tempdir_in(scratch_dir()).unwrap();
    cc_static(
        &testdata("net").join("udp-echo.c"),
        &ctx.path().join("udp-echo"),
    );
    let df = "ARG BASE\nFROM $BASE\nCOPY udp-echo /bin/\n";
    build_in(&bake, ctx.path(), df, "echo6:1", &base);
    let (tcp, udp) = (free_port(), free_port());
    let tcp_spec = format!("[::1]:{tcp}:8080");
    let udp_spec = format!("[::]:{udp}:5353/udp");
    let script = format!("udp-echo 5353 & {SERVE}");
    let _cleanup = RemoveOnDrop(&bake, "only6");
    bake.ok(&[
        "run", "-d", "--name", "only6", "-p", &tcp_spec, "-p", &udp_spec, "echo6:1", "sh", "-c",
        &script,
    ]);

    let body = curl(&format!("http://[::1]:{tcp}/")).unwrap_or_else(|e| {
        panic!(
            "no answer on [::1]:{tcp}: {e}\n{}",
            bake.run(&["logs", "only6"])
        )
    });
    assert!(body.contains("hello-from-bake"), "{body}");
    // Published on ::1 only: nothing listens on the IPv4 loopback.
    let v4 = TcpStream::connect((Ipv4Addr::LOCALHOST, tcp));
    assert!(v4.is_err(), "127.0.0.1:{tcp} answered: {v4:?}");

    // UDP over IPv6, from the host's loopback (relayed by bake, not slirp4netns, so
    // the loopback client gets its reply).
    let sock = UdpSocket::bind((std::net::Ipv6Addr::LOCALHOST, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut reply = String::new();
    while Instant::now() < deadline && reply.is_empty() {
        sock.send_to(b"over-v6", (std::net::Ipv6Addr::LOCALHOST, udp))
            .unwrap();
        let mut buf = [0u8; 64];
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            reply = String::from_utf8_lossy(&buf[..n]).into_owned();
        }
    }
    assert_eq!(reply, "echo:over-v6", "{}", bake.run(&["logs", "only6"]));

    assert_eq!(
        bake.ok(&["port", "only6"]).stdout,
        format!("8080/tcp -> [::1]:{tcp}\n5353/udp -> [::]:{udp}\n")
    );
    let ps = bake.ok(&["ps"]).stdout;
    assert!(
        ps.contains(&format!("[::1]:{tcp}->8080/tcp, [::]:{udp}->5353/udp")),
        "{ps}"
    );
    bake.ok(&["rm", "-f", "only6"]);
}

#[test]
fn ipv6_port_errors_are_clear() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    if !have_slirp() || !have_ipv6() {
        return;
    }
    bake.ok(&["pull", "-q", &base]);
    for (spec, why) in [
        ("::1:8080:80", "IPv6 host address goes in brackets"),
        ("[::1:8080:80", "missing ']'"),
        ("[nope]:8080:80", "is not an IPv6 address"),
    ] {
        let out = bake.run(&["run", "--rm", "-p", spec, &base, "true"]);
        assert_eq!(out.code, 125, "{spec}: {out}");
        assert!(
            out.stderr.contains("-p/--publish") && out.stderr.contains(why),
            "{spec}: {out}"
        );
    }
    // A taken IPv6 port fails the start, naming it; its IPv4 twin is not at fault.
    let taken = TcpListener::bind((std::net::Ipv6Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let spec = format!("[::1]:{port}:80");
    let out = bake.run(&["run", "--rm", "-p", &spec, &base, "true"]);
    assert_eq!(out.code, 125, "{out}");
    assert!(
        out.stderr
            .contains(&format!("cannot publish [::1]:{port}->80/tcp"))
            && out.stderr.contains("already in use"),
        "{out}"
    );
    assert!(
        gone(&orphaned_slirp()),
        "slirp4netns left after a failed start"
    );
}
