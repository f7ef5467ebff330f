//! Client tests: pure functions, a real `docker-registry`, and a tiny fake
//! HTTP server for what the real one cannot be made to do (bearer tokens,
//! 5xx answers).

use std::io::{BufRead, BufReader, Cursor, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use super::*;
use crate::oci::{canonical_json, Descriptor, Index, Manifest, Platform};
use crate::registry::endpoint::is_plain_http;
use crate::registry::test_registry::{TestRegistry, PASSWORD};

// ---- pure functions -------------------------------------------------------

#[test]
fn loopback_and_listed_hosts_use_plain_http() {
    let none: Vec<String> = Vec::new();
    for host in [
        "localhost",
        "localhost:5000",
        "127.0.0.1",
        "127.0.0.1:5000",
        "127.9.8.7:1",
        "[::1]",
        "[::1]:5000",
    ] {
        assert!(is_plain_http(host, &none), "{host}");
    }
    for host in [
        "docker.io",
        "ghcr.io",
        "10.0.0.1:5000",
        "[::2]:5000",
        "localhostx",
    ] {
        assert!(!is_plain_http(host, &none), "{host}");
    }
    let insecure = vec!["reg.lan:5000".to_string(), "other.lan".to_string()];
    assert!(is_plain_http("reg.lan:5000", &insecure));
    assert!(!is_plain_http("reg.lan:6000", &insecure));
    assert!(is_plain_http("other.lan:443", &insecure));
}

#[test]
fn docker_hub_maps_to_its_api_host() {
    assert_eq!(base_url("docker.io", &[]), "https://registry-1.docker.io");
    assert_eq!(base_url("ghcr.io", &[]), "https://ghcr.io");
    assert_eq!(base_url("localhost:5000", &[]), "http://localhost:5000");
}

#[test]
fn upload_locations_resolve_with_or_without_query() {
    let base = "http://h:1";
    let req = "http://h:1/v2/r/blobs/uploads/";
    assert_eq!(
        with_query(
            &resolve_location(base, req, "/v2/r/blobs/uploads/u1"),
            "digest=x"
        ),
        "http://h:1/v2/r/blobs/uploads/u1?digest=x"
    );
    assert_eq!(
        with_query(
            &resolve_location(base, req, "/v2/r/blobs/uploads/u1?_state=abc"),
            "digest=x"
        ),
        "http://h:1/v2/r/blobs/uploads/u1?_state=abc&digest=x"
    );
    assert_eq!(
        resolve_location(base, req, "https://cdn.example/up?sig=1"),
        "https://cdn.example/up?sig=1"
    );
    assert_eq!(
        resolve_location(base, req, "u2"),
        "http://h:1/v2/r/blobs/uploads/u2"
    );
}

#[test]
fn media_type_falls_back_to_the_document() {
    let oci = media_types::OCI_MANIFEST;
    assert_eq!(
        manifest_media_type(Some(&format!("{oci}; charset=utf-8")), b"{}").as_deref(),
        Some(oci)
    );
    let doc = format!(r#"{{"mediaType":"{}"}}"#, media_types::DOCKER_MANIFEST_LIST);
    assert_eq!(
        manifest_media_type(Some("application/octet-stream"), doc.as_bytes()).as_deref(),
        Some(media_types::DOCKER_MANIFEST_LIST)
    );
    assert_eq!(
        manifest_media_type(None, br#"{"manifests":[]}"#).as_deref(),
        Some(media_types::OCI_INDEX)
    );
    assert_eq!(manifest_media_type(None, b"[1]"), None);
}

// ---- against a real registry ----------------------------------------------

fn client(reg: &TestRegistry) -> Client {
    Client::with_credentials(&reg.host, &[], None)
}

/// Bytes that do not compress: a few MiB to exercise streaming.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn upload(c: &Client, repo: &str, bytes: &[u8]) -> Digest {
    let digest = Digest::of(bytes);
    c.put_blob(repo, &digest, bytes.len() as u64, &mut Cursor::new(bytes))
        .unwrap();
    digest
}

#[test]
fn blob_upload_head_download_round_trip() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let c = client(&reg);
    c.ping()
        .unwrap_or_else(|e| panic!("{e}; registry log:\n{}", reg.log()));
    let data = noise(3 << 20, 7);
    let digest = Digest::of(&data);
    assert!(!c.head_blob("team/app", &digest).unwrap());
    upload(&c, "team/app", &data);
    assert!(c.head_blob("team/app", &digest).unwrap());

    let mut out = Vec::new();
    let n = c.get_blob("team/app", &digest, &mut out).unwrap();
    assert_eq!(n, data.len() as u64);
    assert!(out == data, "downloaded bytes differ");

    let reader = c.open_blob("team/app", &digest).unwrap();
    assert_eq!(reader.content_length(), Some(data.len() as u64));

    let missing = Digest::of(b"missing");
    let err = c.open_blob("team/app", &missing).unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { what, .. } if what.contains(&missing.to_string())),
        "{err}"
    );
}

#[test]
fn upload_with_wrong_digest_is_rejected() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let c = client(&reg);
    let wrong = Digest::of(b"something else");
    let err = c
        .put_blob("app", &wrong, 5, &mut Cursor::new(b"hello".to_vec()))
        .unwrap_err();
    assert!(matches!(err, Error::Status { status: 400, .. }), "{err}");
    assert!(!c.head_blob("app", &wrong).unwrap());
}

#[test]
fn corrupted_download_is_rejected() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let c = client(&reg);
    let data = noise(100_000, 3);
    let digest = upload(&c, "app", &data);
    // Flip one byte of what the registry stores: same length, other digest.
    let path = reg.blob_data_path(&digest);
    let mut stored = std::fs::read(&path).unwrap();
    stored[50_000] ^= 0xff;
    std::fs::write(&path, &stored).unwrap();

    let mut out = Vec::new();
    let err = c.get_blob("app", &digest, &mut out).unwrap_err();
    match err {
        Error::DigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, digest);
            assert_eq!(actual, Digest::of(&stored));
        }
        other => panic!("expected a digest mismatch, got {other}"),
    }
    // A reader used directly fails at the end of the stream, not silently.
    let mut reader = c.open_blob("app", &digest).unwrap();
    let mut sink = Vec::new();
    assert!(reader.read_to_end(&mut sink).is_err());
    assert!(reader.mismatch_error().is_some());
}

/// Uploads a config and a layer and returns an OCI manifest naming them.
fn sample_manifest(c: &Client, repo: &str) -> Manifest {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = noise(10_000, 9);
    let config_digest = upload(c, repo, config);
    let layer_digest = upload(c, repo, &layer);
    Manifest {
        schema_version: 2,
        media_type: Some(media_types::OCI_MANIFEST.into()),
        config: Descriptor {
            media_type: media_types::OCI_CONFIG.into(),
            digest: config_digest,
            size: config.len() as u64,
            platform: None,
            annotations: Default::default(),
        },
        layers: vec![Descriptor {
            media_type: media_types::OCI_LAYER_GZIP.into(),
            digest: layer_digest,
            size: layer.len() as u64,
            platform: None,
            annotations: Default::default(),
        }],
        annotations: Default::default(),
    }
}

#[test]
fn manifest_put_and_get_by_tag_and_digest() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let c = client(&reg);
    let manifest = sample_manifest(&c, "team/app");
    let bytes = canonical_json(&manifest).unwrap();
    let digest = c
        .put_manifest("team/app", "v1", &bytes, media_types::OCI_MANIFEST)
        .unwrap();
    assert_eq!(digest, Digest::of(&bytes));

    let (got, media_type, got_digest) = c.get_manifest("team/app", "v1").unwrap();
    assert_eq!(got, bytes);
    assert_eq!(media_type, media_types::OCI_MANIFEST);
    assert_eq!(got_digest, digest);
    let (by_digest, _, _) = c.get_manifest("team/app", &digest.to_string()).unwrap();
    assert_eq!(by_digest, bytes);

    // An index pointing at it, as a Docker manifest list.
    let index = Index {
        schema_version: 2,
        media_type: Some(media_types::DOCKER_MANIFEST_LIST.into()),
        manifests: vec![Descriptor {
            media_type: media_types::OCI_MANIFEST.into(),
            digest: digest.clone(),
            size: bytes.len() as u64,
            platform: Some(Platform {
                architecture: "amd64".into(),
                os: "linux".into(),
                variant: None,
            }),
            annotations: Default::default(),
        }],
        annotations: Default::default(),
    };
    let index_bytes = canonical_json(&index).unwrap();
    c.put_manifest(
        "team/app",
        "multi",
        &index_bytes,
        media_types::DOCKER_MANIFEST_LIST,
    )
    .unwrap();
    let (_, media_type, _) = c.get_manifest("team/app", "multi").unwrap();
    assert_eq!(media_type, media_types::DOCKER_MANIFEST_LIST);

    let err = c.get_manifest("team/app", "nope").unwrap_err();
    let expected = format!("{}/team/app:nope", reg.host);
    assert!(
        matches!(&err, Error::NotFound { what, .. } if *what == expected),
        "{err}"
    );
    let absent = Digest::of(b"absent");
    let err = c.get_manifest("team/app", &absent.to_string()).unwrap_err();
    assert!(
        err.to_string().contains(&format!("team/app@{absent}")),
        "{err}"
    );
}

#[test]
fn manifest_naming_a_missing_blob_is_rejected() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let c = client(&reg);
    let mut manifest = sample_manifest(&c, "app");
    manifest.layers[0].digest = Digest::of(b"never uploaded");
    let bytes = canonical_json(&manifest).unwrap();
    let err = c
        .put_manifest("app", "bad", &bytes, media_types::OCI_MANIFEST)
        .unwrap_err();
    assert!(err.to_string().contains("BLOB_UNKNOWN"), "{err}");
}

#[test]
fn blobs_mount_across_repositories() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let c = client(&reg);
    let digest = upload(&c, "base/img", &noise(5000, 11));
    assert!(c.mount_blob("other/img", &digest, "base/img").unwrap());
    assert!(c.head_blob("other/img", &digest).unwrap());
    // Not in the source repository: the registry opens an upload instead.
    let absent = Digest::of(b"absent");
    assert!(!c.mount_blob("other/img", &absent, "base/img").unwrap());
}

#[test]
fn basic_auth_is_required_and_honoured() {
    let Some(reg) = TestRegistry::start_with_basic_auth("alice") else {
        return;
    };
    let anonymous = client(&reg);
    let err = anonymous.ping().unwrap_err();
    assert!(
        matches!(&err, Error::Unauthorized { reason, .. } if reason.contains("none is configured")),
        "{err}"
    );

    let wrong = Client::with_credentials(&reg.host, &[], Some(("alice".into(), "nope".into())));
    let err = wrong.head_blob("app", &Digest::of(b"x")).unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");

    // Through the public constructor, as the cli passes `--username` etc.
    let opts = RegistryOptions {
        insecure: Vec::new(),
        auth: Some(("alice".into(), PASSWORD.into())),
        ..RegistryOptions::default()
    };
    let c = Client::new(&reg.host, &opts).unwrap();
    c.ping().unwrap();
    let manifest = sample_manifest(&c, "app");
    let bytes = canonical_json(&manifest).unwrap();
    c.put_manifest("app", "v1", &bytes, media_types::OCI_MANIFEST)
        .unwrap();
    let (got, _, _) = c.get_manifest("app", "v1").unwrap();
    assert_eq!(got, bytes);
    let mut out = Vec::new();
    c.get_blob("app", &manifest.layers[0].digest, &mut out)
        .unwrap();
    assert_eq!(out.len() as u64, manifest.layers[0].size);
}

// ---- against a fake server ------------------------------------------------

/// One request as the fake server saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    target: String,
    authorization: Option<String>,
}

/// A minimal HTTP/1.1 server: one request per connection, answered by
/// `handler` with (status, extra headers, body).
fn fake_server(
    handler: impl Fn(&Seen, &str) -> (u16, Vec<(String, String)>, Vec<u8>) + Send + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let me = host.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or("").to_string();
            let target = parts.next().unwrap_or("").to_string();
            let mut authorization = None;
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = header.split_once(':') {
                    match k.trim().to_ascii_lowercase().as_str() {
                        "authorization" => authorization = Some(v.trim().to_string()),
                        "content-length" => length = v.trim().parse().unwrap_or(0),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let request = Seen {
                method,
                target,
                authorization,
            };
            log.lock().unwrap().push(request.clone());
            let (status, headers, body) = handler(&request, &me);
            let mut out = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            let _ = stream.write_all(out.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (host, seen)
}

#[test]
fn bearer_tokens_are_fetched_with_credentials_and_cached_per_scope() {
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let (host, seen) = fake_server(move |req, me| {
        if req.target.starts_with("/token") {
            // Basic alice:pw
            if req.authorization.as_deref() != Some("Basic YWxpY2U6cHc=") {
                return (401, vec![], b"{}".to_vec());
            }
            return (200, vec![], br#"{"access_token":"tok-1"}"#.to_vec());
        }
        if req.authorization.as_deref() != Some("Bearer tok-1") {
            let challenge = format!(
                r#"Bearer realm="http://{me}/token",service="fake",scope="repository:lib/app:pull""#
            );
            return (401, vec![("WWW-Authenticate".into(), challenge)], vec![]);
        }
        (
            200,
            vec![("Content-Type".into(), media_types::OCI_INDEX.into())],
            manifest.to_vec(),
        )
    });
    let c = Client::with_credentials(&host, &[], Some(("alice".into(), "pw".into())));
    let (bytes, media_type, _) = c.get_manifest("lib/app", "latest").unwrap();
    assert_eq!(bytes, manifest);
    assert_eq!(media_type, media_types::OCI_INDEX);
    c.get_manifest("lib/app", "latest").unwrap();

    let seen = seen.lock().unwrap().clone();
    let tokens: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.target.starts_with("/token"))
        .collect();
    assert_eq!(tokens.len(), 1, "{seen:?}");
    assert!(
        tokens[0].target.contains("service=fake")
            && tokens[0]
                .target
                .contains("scope=repository%3Alib%2Fapp%3Apull"),
        "{}",
        tokens[0].target
    );
    // anonymous try, token, retry, then straight through with the cache.
    assert_eq!(seen.len(), 4, "{seen:?}");

    let anonymous = Client::with_credentials(&host, &[], None);
    let err = anonymous.get_manifest("lib/app", "latest").unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
}

#[test]
fn a_token_is_fetched_again_once_its_expires_in_has_passed() {
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let (host, seen) = fake_server(move |req, me| {
        if req.target.starts_with("/token") {
            // Good for one second: bake keeps a margin, so never reused.
            return (200, vec![], br#"{"token":"t","expires_in":1}"#.to_vec());
        }
        if req.authorization.as_deref() != Some("Bearer t") {
            let challenge = format!(r#"Bearer realm="http://{me}/token",service="fake""#);
            return (401, vec![("WWW-Authenticate".into(), challenge)], vec![]);
        }
        (
            200,
            vec![("Content-Type".into(), media_types::OCI_INDEX.into())],
            manifest.to_vec(),
        )
    });
    let c = Client::with_credentials(&host, &[], None);
    c.get_manifest("lib/app", "latest").unwrap();
    c.get_manifest("lib/app", "latest").unwrap();
    let seen = seen.lock().unwrap().clone();
    let tokens = seen
        .iter()
        .filter(|s| s.target.starts_with("/token"))
        .count();
    // The challenge's token is used at once; the second call needs its own.
    assert_eq!(tokens, 2, "{seen:?}");
    // No request went out with a token bake knew to be stale.
    assert_eq!(seen.len(), 5, "{seen:?}");
}

#[test]
fn an_insufficient_scope_challenge_is_a_denial() {
    let (host, _) = fake_server(move |req, me| {
        if req.target.starts_with("/token") {
            return (200, vec![], br#"{"token":"t"}"#.to_vec());
        }
        let mut challenge = format!(
            r#"Bearer realm="http://{me}/token",service="fake",scope="repository:app:pull,push""#
        );
        if req.authorization.is_some() {
            challenge.push_str(r#",error="insufficient_scope""#);
        }
        (401, vec![("WWW-Authenticate".into(), challenge)], vec![])
    });
    let c = Client::with_credentials(&host, &[], Some(("bob".into(), "pw".into())));
    let err = c.mount_blob("app", &Digest::of(b"x"), "other").unwrap_err();
    assert!(
        matches!(&err, Error::Denied { scope, .. } if scope == "repository:app:pull,push"),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("denied: requested access to the resource is denied")
            && text.contains("user `bob` may not"),
        "{text}"
    );
}

#[test]
fn server_errors_are_retried_three_times() {
    let count = Arc::new(Mutex::new(0));
    let n = count.clone();
    let (host, _) = fake_server(move |_, _| {
        let mut n = n.lock().unwrap();
        *n += 1;
        if *n < 3 {
            (503, vec![], b"busy".to_vec())
        } else {
            (200, vec![], b"{}".to_vec())
        }
    });
    let c = Client::with_credentials(&host, &[], None);
    c.ping().unwrap();
    assert_eq!(*count.lock().unwrap(), 3);

    let (host, seen) = fake_server(|_, _| (500, vec![], b"down".to_vec()));
    let c = Client::with_credentials(&host, &[], None);
    let err = c.ping().unwrap_err();
    assert!(
        matches!(&err, Error::Status { status: 500, message, .. } if message == "down"),
        "{err}"
    );
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[test]
fn connection_refused_is_a_transport_error_naming_the_url() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = Client::with_credentials(&format!("127.0.0.1:{port}"), &[], None);
    let err = c.ping().unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}/v2/")),
        "{err}"
    );
}

#[test]
fn uploads_stream_to_an_absolute_location_with_a_query() {
    let (host, seen) = fake_server(|req, me| match req.method.as_str() {
        "POST" => (
            202,
            vec![(
                "Location".into(),
                format!("http://{me}/upload/session?_state=s1"),
            )],
            vec![],
        ),
        _ => (201, vec![], vec![]),
    });
    let c = Client::with_credentials(&host, &[], None);
    let data = b"layer bytes".to_vec();
    let digest = Digest::of(&data);
    c.put_blob("r", &digest, data.len() as u64, &mut Cursor::new(data))
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[1].method, "PUT");
    assert_eq!(
        seen[1].target,
        format!("/upload/session?_state=s1&digest=sha256%3A{}", digest.hex())
    );
}
