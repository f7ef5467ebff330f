//! Where requests go: scheme and endpoint for a host, upload locations.

use std::net::Ipv4Addr;

/// Whether `host` (`name` or `name:port`) is reached over plain HTTP:
/// loopback names and addresses always, and the hosts listed as insecure
/// (with or without the port).
pub(crate) fn is_plain_http(host: &str, insecure: &[String]) -> bool {
    let name = host_name(host);
    if insecure.iter().any(|h| h == host || h == name) {
        return true;
    }
    name.eq_ignore_ascii_case("localhost")
        || name == "[::1]"
        || name.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// The host without its port: `a:5000` → `a`, `[::1]:5000` → `[::1]`.
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// `scheme://endpoint` for a host as written in a reference.
pub(crate) fn base_url(host: &str, insecure: &[String]) -> String {
    // Docker Hub's API lives on another name than the one references use.
    let endpoint = match host {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        other => other,
    };
    let scheme = if is_plain_http(host, insecure) {
        "http"
    } else {
        "https"
    };
    format!("{scheme}://{endpoint}")
}

/// Resolves an upload `Location` (absolute, absolute-path or relative)
/// against the base URL and the URL that returned it.
pub(crate) fn resolve_location(base: &str, request_url: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        let dir = request_url.split('?').next().unwrap_or(request_url);
        let dir = &dir[..dir.rfind('/').map_or(dir.len(), |i| i + 1)];
        format!("{dir}{location}")
    }
}

/// Appends `key=value` to a URL that may already have a query.
pub(crate) fn with_query(url: &str, query: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}
