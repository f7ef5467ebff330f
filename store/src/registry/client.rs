//! [`Client`]: the distribution API of one registry host.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;

use super::auth::{self, Challenge, Credentials};
pub use super::blob::BlobReader;
use super::endpoint::{base_url, resolve_location, with_query};
use super::{Error, RegistryOptions};
use crate::oci::{media_types, Digest};
use token::Token;

/// Tries per request: connection failures and 5xx answers are retried.
const MAX_TRIES: u32 = 3;
/// Manifests larger than this are refused (the distribution spec's advice).
const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// How much of an error body is read to explain the error.
const MAX_ERROR_BODY: u64 = 64 << 10;

/// The manifest media types bake asks for, most wanted first.
const MANIFEST_ACCEPT: [&str; 4] = [
    media_types::OCI_INDEX,
    media_types::DOCKER_MANIFEST_LIST,
    media_types::OCI_MANIFEST,
    media_types::DOCKER_MANIFEST,
];

/// A client for one registry host. Cheap to share between threads
/// (`&Client` is all the operations need); it caches tokens per scope.
pub struct Client {
    /// The host as written in references (`docker.io`, `localhost:5000`).
    host: String,
    /// `https://registry-1.docker.io`, `http://localhost:5000`, …
    base: String,
    agent: ureq::Agent,
    credentials: Option<Credentials>,
    auth: Mutex<AuthState>,
}

/// What the registry asked for, learnt from its first 401.
#[derive(Default)]
struct AuthState {
    /// Send basic credentials with every request.
    basic: bool,
    /// Token endpoint and service, once the registry asked for a bearer token.
    bearer: Option<(String, Option<String>)>,
    /// Tokens by scope set (the scopes joined by spaces).
    tokens: HashMap<String, Token>,
}

/// A request body that can be sent again after a retry.
enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    Stream {
        reader: &'a mut dyn ReadSeek,
        len: u64,
    },
}

trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

/// One request, as [`Client::execute`] sends it.
struct Call<'a> {
    op: &'static str,
    method: &'static str,
    url: String,
    headers: Vec<(&'static str, String)>,
    scopes: Vec<String>,
    body: Body<'a>,
}

impl<'a> Call<'a> {
    fn new(op: &'static str, method: &'static str, url: String, scopes: Vec<String>) -> Self {
        Call {
            op,
            method,
            url,
            headers: Vec::new(),
            scopes,
            body: Body::Empty,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn body(mut self, body: Body<'a>) -> Self {
        self.body = body;
        self
    }
}

/// `sha256:abc` with the colon percent-encoded, for a query string.
fn query_digest(digest: &Digest) -> String {
    format!("sha256%3A{}", digest.hex())
}

fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

#[derive(Deserialize)]
struct ErrorsBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The distribution error codes of a response body, or its first line.
fn error_message(response: ureq::Response) -> String {
    let mut body = String::new();
    let _ = response
        .into_reader()
        .take(MAX_ERROR_BODY)
        .read_to_string(&mut body);
    if let Ok(parsed) = serde_json::from_str::<ErrorsBody>(&body) {
        if !parsed.errors.is_empty() {
            return parsed
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.code, e.message))
                .collect::<Vec<_>>()
                .join("; ");
        }
    }
    let body = body.trim();
    if body.is_empty() {
        "(empty body)".to_string()
    } else {
        body.chars().take(200).collect()
    }
}

/// The error for an answer the operation does not expect. A 401 whose
/// bearer challenge says `insufficient_scope` is a refusal, not a missing
/// login: [`Error::Denied`] with `hint`.
fn status_error_with(op: &'static str, url: &str, response: ureq::Response, hint: &str) -> Error {
    let status = response.status();
    if let Some(Challenge::Bearer {
        scope,
        error: Some(error),
        ..
    }) = response
        .header("WWW-Authenticate")
        .and_then(auth::parse_challenge)
    {
        if status == 401 && error == "insufficient_scope" {
            return Error::Denied {
                op,
                url: url.to_string(),
                scope: scope.unwrap_or_default(),
                hint: hint.to_string(),
            };
        }
    }
    let message = error_message(response);
    match status {
        401 | 403 => Error::Unauthorized {
            op,
            url: url.to_string(),
            reason: message,
        },
        _ => Error::Status {
            op,
            url: url.to_string(),
            status,
            message,
        },
    }
}

/// Reads a whole (small) body, refusing more than `limit` bytes.
fn read_limited(
    response: ureq::Response,
    limit: u64,
    what: &'static str,
    url: &str,
) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    response
        .into_reader()
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Io {
            op: "read",
            url: url.to_string(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(Error::Invalid {
            what,
            url: url.to_string(),
            reason: format!("larger than {limit} bytes"),
        });
    }
    Ok(bytes)
}

/// The media type of a manifest: the `Content-Type` when it is one bake
/// knows, else the document's own `mediaType`, else guessed from its shape.
fn manifest_media_type(content_type: Option<&str>, body: &[u8]) -> Option<String> {
    let content_type = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_ascii_lowercase())
        .filter(|c| MANIFEST_ACCEPT.contains(&c.as_str()) || c.contains("manifest.v1"));
    if content_type.is_some() {
        return content_type;
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Shape {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    let shape: Shape = serde_json::from_slice(body).ok()?;
    shape.media_type.or_else(|| {
        if shape.manifests.is_some() {
            Some(media_types::OCI_INDEX.to_string())
        } else if shape.config.is_some() {
            Some(media_types::OCI_MANIFEST.to_string())
        } else {
            None
        }
    })
}

fn retryable(transport: &ureq::Transport) -> bool {
    matches!(
        transport.kind(),
        ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Io | ureq::ErrorKind::Dns
    )
}

fn backoff(attempt: u32) {
    std::thread::sleep(Duration::from_millis(250 * 4u64.pow(attempt - 1)));
}

impl Client {
    /// A client for `host` as written in references (`docker.io`,
    /// `localhost:5000`, `ghcr.io`). Plain HTTP for loopback hosts and
    /// `opts.insecure`, HTTPS otherwise. Credentials: `opts.auth`, else the
    /// docker `config.json` entry (or credential helper) for the host.
    ///
    /// # Errors
    /// [`Error::Credentials`] when the docker config file is malformed.
    pub fn new(host: &str, opts: &RegistryOptions) -> Result<Client, Error> {
        let credentials = match &opts.auth {
            Some(creds) => Some(creds.clone()),
            None => auth::lookup_credentials(host)?,
        };
        Ok(Client::with_credentials(host, &opts.insecure, credentials))
    }

    fn with_credentials(
        host: &str,
        insecure: &[String],
        credentials: Option<Credentials>,
    ) -> Client {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(120))
            .timeout_write(Duration::from_secs(120))
            .user_agent(concat!("bake/", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            host: host.to_string(),
            base: base_url(host, insecure),
            agent,
            credentials,
            auth: Mutex::new(AuthState::default()),
        }
    }

    /// The error for an answer the operation does not expect (see
    /// [`status_error_with`]).
    fn status_error(&self, op: &'static str, url: &str, response: ureq::Response) -> Error {
        let hint = match &self.credentials {
            Some((user, _)) => format!("; user `{user}` may not"),
            None => format!(
                "; no credentials for {}: bake login {}",
                self.host, self.host
            ),
        };
        status_error_with(op, url, response, &hint)
    }

    /// The host this client talks to, as written in references.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `scheme://endpoint` requests go to.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Checks that the host speaks the distribution API (`GET /v2/`),
    /// authenticating if it asks to.
    ///
    /// # Errors
    /// Connection failures, [`Error::Unauthorized`], [`Error::Status`].
    pub fn ping(&self) -> Result<(), Error> {
        let url = format!("{}/v2/", self.base);
        let response = self.execute(Call::new("ping", "GET", url.clone(), Vec::new()))?;
        match response.status() {
            200 => Ok(()),
            _ => Err(self.status_error("ping", &url, response)),
        }
    }

    /// Fetches a manifest or index by tag or digest: its bytes, media type
    /// and digest (sha256 of the bytes). When `reference` is a digest, the
    /// bytes are checked against it.
    ///
    /// # Errors
    /// [`Error::NotFound`] naming `host/repo:reference`,
    /// [`Error::DigestMismatch`], [`Error::Invalid`] for an oversized or
    /// unrecognisable document, and the transport/auth errors.
    pub fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(Vec<u8>, String, Digest), Error> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let call = Call::new("get manifest", "GET", url.clone(), vec![pull_scope(repo)])
            .header("Accept", MANIFEST_ACCEPT.join(", "));
        let response = self.execute(call)?;
        match response.status() {
            200 => {}
            404 => return Err(self.not_found(repo, reference, &url)),
            _ => return Err(self.status_error("get manifest", &url, response)),
        }
        let content_type = response.header("Content-Type").map(str::to_string);
        let bytes = read_limited(response, MAX_MANIFEST_BYTES, "manifest", &url)?;
        let digest = Digest::of(&bytes);
        if let Ok(expected) = reference.parse::<Digest>() {
            if expected != digest {
                return Err(Error::DigestMismatch {
                    url,
                    expected,
                    actual: digest,
                });
            }
        }
        let media_type =
            manifest_media_type(content_type.as_deref(), &bytes).ok_or_else(|| Error::Invalid {
                what: "manifest",
                url: url.clone(),
                reason: "no media type and not a manifest or index".to_string(),
            })?;
        Ok((bytes, media_type, digest))
    }

    /// Uploads a manifest under `tag` (or a digest); returns its digest.
    ///
    /// # Errors
    /// [`Error::Status`] when the registry rejects it (e.g. a blob it
    /// names is missing), [`Error::DigestMismatch`] when the registry
    /// reports another digest, and the transport/auth errors.
    pub fn put_manifest(
        &self,
        repo: &str,
        tag: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, Error> {
        let url = format!("{}/v2/{repo}/manifests/{tag}", self.base);
        let call = Call::new("put manifest", "PUT", url.clone(), vec![push_scope(repo)])
            .header("Content-Type", media_type)
            .body(Body::Bytes(bytes));
        let response = self.execute(call)?;
        if !(200..=202).contains(&response.status()) {
            return Err(self.status_error("put manifest", &url, response));
        }
        let digest = Digest::of(bytes);
        if let Some(reported) = response
            .header("Docker-Content-Digest")
            .and_then(|d| d.trim().parse::<Digest>().ok())
        {
            if reported != digest {
                return Err(Error::DigestMismatch {
                    url,
                    expected: digest,
                    actual: reported,
                });
            }
        }
        Ok(digest)
    }

    /// Whether the repository has the blob (`HEAD`).
    ///
    /// # Errors
    /// Anything but 200/404, and the transport/auth errors.
    pub fn head_blob(&self, repo: &str, digest: &Digest) -> Result<bool, Error> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let response = self.execute(Call::new(
            "head blob",
            "HEAD",
            url.clone(),
            vec![pull_scope(repo)],
        ))?;
        match response.status() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.status_error("head blob", &url, response)),
        }
    }

    /// Opens a blob for streaming. The reader hashes every byte and fails
    /// at the end of the stream if the bytes do not hash to `digest`, so a
    /// consumer that treats a read error as "discard what you wrote" never
    /// keeps a corrupt blob.
    ///
    /// # Errors
    /// [`Error::NotFound`] naming the blob, and the transport/auth errors.
    pub fn open_blob(&self, repo: &str, digest: &Digest) -> Result<BlobReader, Error> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let response = self.execute(Call::new(
            "get blob",
            "GET",
            url.clone(),
            vec![pull_scope(repo)],
        ))?;
        match response.status() {
            200 => {}
            404 => {
                return Err(Error::NotFound {
                    what: format!("blob {digest} in {}/{repo}", self.host),
                    url,
                })
            }
            _ => return Err(self.status_error("get blob", &url, response)),
        }
        let content_length = response
            .header("Content-Length")
            .and_then(|l| l.trim().parse().ok());
        Ok(BlobReader::new(
            response.into_reader(),
            digest.clone(),
            url,
            content_length,
        ))
    }

    /// Opens a blob from byte `offset` on, for resuming a download: asks
    /// with `Range: bytes=offset-` (when `offset > 0`). The body is *not*
    /// verified — the caller hashes the bytes it kept and these. When the
    /// registry ignores the range (200) the body starts at 0, which
    /// [`BlobRange::start`] says.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Invalid`] for a `Content-Range` that
    /// does not start at `offset`, [`Error::Status`] (416 included: the
    /// caller should start over), and the transport/auth errors.
    pub fn open_blob_range(
        &self,
        repo: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<BlobRange, Error> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let mut call = Call::new("get blob", "GET", url.clone(), vec![pull_scope(repo)]);
        if offset > 0 {
            call = call.header("Range", format!("bytes={offset}-"));
        }
        let response = self.execute(call)?;
        let start = match response.status() {
            200 => 0,
            206 => {
                let range = response.header("Content-Range").unwrap_or("").trim();
                let first = range
                    .strip_prefix("bytes ")
                    .and_then(|r| r.split('-').next())
                    .and_then(|n| n.trim().parse::<u64>().ok());
                if first != Some(offset) {
                    return Err(Error::Invalid {
                        what: "partial response",
                        url,
                        reason: format!("Content-Range `{range}` for bytes={offset}-"),
                    });
                }
                offset
            }
            404 => {
                return Err(Error::NotFound {
                    what: format!("blob {digest} in {}/{repo}", self.host),
                    url,
                })
            }
            _ => return Err(self.status_error("get blob", &url, response)),
        };
        Ok(BlobRange {
            reader: response.into_reader(),
            start,
            url,
        })
    }

    /// Streams a blob into `writer`, verifying its digest; returns its size.
    /// On [`Error::DigestMismatch`] the writer has received bytes that must
    /// be discarded.
    ///
    /// # Errors
    /// As [`Client::open_blob`], plus [`Error::DigestMismatch`] and
    /// [`Error::Io`] for a failed read or write.
    pub fn get_blob(
        &self,
        repo: &str,
        digest: &Digest,
        writer: &mut dyn Write,
    ) -> Result<u64, Error> {
        let mut reader = self.open_blob(repo, digest)?;
        match io::copy(&mut reader, writer) {
            Ok(n) => Ok(n),
            Err(source) => Err(reader.mismatch_error().unwrap_or(Error::Io {
                op: "get blob",
                url: reader.url().to_string(),
                source,
            })),
        }
    }

    /// Uploads a blob of `size` bytes: `POST` an upload session, then one
    /// monolithic `PUT ?digest=`. The reader is rewound if a try has to be
    /// repeated; it is streamed, never held in memory.
    ///
    /// # Errors
    /// [`Error::Status`] when the registry rejects the upload (a digest
    /// that does not match the bytes gives `DIGEST_INVALID`),
    /// [`Error::Location`], and the transport/auth errors.
    pub fn put_blob<R: Read + Seek>(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        reader: &mut R,
    ) -> Result<(), Error> {
        let session = self.start_upload(repo)?;
        let location = with_query(session.location(), &query_digest_pair(digest));
        let call = Call::new(
            "upload blob",
            "PUT",
            location.clone(),
            vec![push_scope(repo)],
        )
        .header("Content-Type", "application/octet-stream")
        .body(Body::Stream { reader, len: size });
        let response = self.execute(call)?;
        match response.status() {
            201 | 204 => Ok(()),
            _ => Err(self.status_error("upload blob", &location, response)),
        }
    }

    /// Asks the registry to mount a blob from another repository of the
    /// same host. `true` when it did (201); `false` when it started an
    /// upload instead (202), which is then cancelled and the caller uploads.
    ///
    /// # Errors
    /// Other answers, and the transport/auth errors.
    pub fn mount_blob(&self, repo: &str, digest: &Digest, from_repo: &str) -> Result<bool, Error> {
        let url = format!(
            "{}/v2/{repo}/blobs/uploads/?mount={}&from={from_repo}",
            self.base,
            query_digest(digest)
        );
        let response = self.execute(Call::new(
            "mount blob",
            "POST",
            url.clone(),
            vec![push_scope(repo), pull_scope(from_repo)],
        ))?;
        match response.status() {
            201 => Ok(true),
            202 => {
                // Cancel the session the registry opened instead; it would
                // expire anyway, so a failure here changes nothing.
                if let Some(loc) = response.header("Location") {
                    let cancel = resolve_location(&self.base, &url, loc.trim());
                    let _ = self.execute(Call::new(
                        "cancel upload",
                        "DELETE",
                        cancel,
                        vec![push_scope(repo)],
                    ));
                }
                Ok(false)
            }
            _ => Err(self.status_error("mount blob", &url, response)),
        }
    }

    fn not_found(&self, repo: &str, reference: &str, url: &str) -> Error {
        let sep = if reference.parse::<Digest>().is_ok() {
            '@'
        } else {
            ':'
        };
        Error::NotFound {
            what: format!("{}/{repo}{sep}{reference}", self.host),
            url: url.to_string(),
        }
    }

    /// Sends a request: adds what authentication is known, answers one 401
    /// challenge, retries connection failures and 5xx with backoff. Returns
    /// the response whatever its status (4xx included) for the caller to
    /// judge.
    fn execute(&self, mut call: Call<'_>) -> Result<ureq::Response, Error> {
        let start = match &mut call.body {
            Body::Stream { reader, .. } => {
                Some(reader.stream_position().map_err(|source| Error::Io {
                    op: call.op,
                    url: call.url.clone(),
                    source,
                })?)
            }
            _ => None,
        };
        let mut attempt = 0;
        // Challenges answered for this request: the first 401 (no or an
        // unknown token), and one more when the registry rejected the
        // token itself (`invalid_token`: it expired meanwhile).
        let mut challenges = 0;
        let mut fresh: Option<String> = None;
        loop {
            attempt += 1;
            let mut request = self.agent.request(call.method, &call.url);
            for (name, value) in &call.headers {
                request = request.set(name, value);
            }
            // The token a challenge just brought is used as is, even when
            // its lifetime is shorter than the margin `authorization` keeps.
            let value = match fresh.take() {
                Some(value) => Some(value),
                None => self.authorization(&call.scopes)?,
            };
            if let Some(value) = value {
                request = request.set("Authorization", &value);
            }
            let result = match &mut call.body {
                Body::Empty => request.call(),
                Body::Bytes(bytes) => request.send_bytes(bytes),
                Body::Stream { reader, len } => {
                    if let Some(start) = start {
                        reader
                            .seek(SeekFrom::Start(start))
                            .map_err(|source| Error::Io {
                                op: call.op,
                                url: call.url.clone(),
                                source,
                            })?;
                    }
                    request
                        .set("Content-Length", &len.to_string())
                        .send(&mut **reader)
                }
            };
            let response = match result {
                Ok(response) | Err(ureq::Error::Status(_, response)) => response,
                Err(ureq::Error::Transport(transport)) => {
                    if attempt < MAX_TRIES && retryable(&transport) {
                        backoff(attempt);
                        continue;
                    }
                    return Err(Error::Transport {
                        op: call.op,
                        url: call.url,
                        source: Box::new(transport),
                    });
                }
            };
            if response.status() == 401 {
                let challenge = response.header("WWW-Authenticate").map(str::to_string);
                let invalid_token = matches!(
                    challenge.as_deref().and_then(auth::parse_challenge),
                    Some(Challenge::Bearer { error: Some(e), .. }) if e == "invalid_token"
                );
                if challenges == 0 || (challenges == 1 && invalid_token) {
                    challenges += 1;
                    fresh = self.answer_challenge(
                        call.op,
                        &call.url,
                        challenge.as_deref(),
                        &call.scopes,
                    )?;
                    continue;
                }
            }
            if response.status() >= 500 && attempt < MAX_TRIES {
                backoff(attempt);
                continue;
            }
            return Ok(response);
        }
    }
}

/// A blob body from [`BlobRange::start`] on (see [`Client::open_blob_range`]).
pub struct BlobRange {
    /// The body: the blob's bytes from `start` to its end, unverified.
    pub reader: Box<dyn Read + Send + Sync>,
    /// Where the body starts: the offset asked for, or 0 when the registry
    /// sent the whole blob.
    pub start: u64,
    /// The URL, for errors.
    pub url: String,
}

impl std::fmt::Debug for BlobRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobRange")
            .field("start", &self.start)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn query_digest_pair(digest: &Digest) -> String {
    format!("digest={}", query_digest(digest))
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials or tokens.
        f.debug_struct("Client")
            .field("host", &self.host)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

mod stream;
mod token;

#[cfg(test)]
mod tests;
