//! A small bearer-token service in front of the test registry, as the
//! docker token specification describes it: `GET /token?service=…&scope=…`
//! with basic credentials answers `{"token": <JWT>}`; the JWT is RS256,
//! signed by a key whose self-signed certificate the registry trusts
//! (`auth: token: rootcertbundle`), and carries that certificate in its
//! `x5c` header (distribution verifies an `x5c` chain against the bundle,
//! so no libtrust key id is needed).
//!
//! It grants, per requested `repository:NAME:ACTIONS` scope, the actions
//! the user is allowed; it records every request so that tests can check
//! which scopes the client asked for, and it can hand out already expired
//! tokens to make the registry reject them.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tempfile::TempDir;

use crate::harness::scratch_dir;

/// The `service` the registry names in its challenges (the token audience).
pub const SERVICE: &str = "bake-test-registry";
/// The token issuer the registry trusts.
const ISSUER: &str = "bake-test-issuer";

/// One `GET /token` as the issuer saw it.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// The basic-auth user, if any (and whether its password was right).
    pub user: Option<String>,
    /// The `scope` parameters asked for.
    pub scopes: Vec<String>,
    /// Whether a token was issued (false: wrong credentials, 401).
    pub issued: bool,
}

/// The token service: a thread serving HTTP on a free 127.0.0.1 port;
/// stopped when dropped.
pub struct TokenIssuer {
    /// `http://127.0.0.1:PORT/token`.
    pub realm: String,
    shared: Arc<Shared>,
    addr: String,
    thread: Option<JoinHandle<()>>,
    dir: TempDir,
}

struct Shared {
    key: EncodingKey,
    /// Standard base64 of the certificate's DER (the `x5c` entry).
    x5c: String,
    /// user → (password, allowed actions).
    users: Mutex<HashMap<String, (String, Vec<String>)>>,
    requests: Mutex<Vec<TokenRequest>>,
    /// How many of the next tokens are issued already expired.
    expired: AtomicUsize,
    serial: AtomicUsize,
    stop: AtomicBool,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TokenIssuer {
    /// Generates an RSA key and a self-signed certificate (openssl) and
    /// starts serving.
    pub fn start() -> TokenIssuer {
        let dir = tempfile::Builder::new()
            .prefix("bake-it-tokens-")
            .tempdir_in(scratch_dir())
            .unwrap();
        openssl(
            dir.path(),
            &["genrsa", "-traditional", "-out", "key.pem", "2048"],
        );
        openssl(
            dir.path(),
            &[
                "req",
                "-new",
                "-x509",
                "-key",
                "key.pem",
                "-out",
                "cert.pem",
                "-days",
                "2",
                "-subj",
                "/CN=bake-test-issuer",
            ],
        );
        openssl(
            dir.path(),
            &[
                "x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der",
            ],
        );
        let key = EncodingKey::from_rsa_pem(&std::fs::read(dir.path().join("key.pem")).unwrap())
            .expect("RSA key");
        let x5c = base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(dir.path().join("cert.der")).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared {
            key,
            x5c,
            users: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
            expired: AtomicUsize::new(0),
            serial: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = shared.clone();
                    std::thread::spawn(move || serve(&shared, stream));
                }
            })
        };
        TokenIssuer {
            realm: format!("http://{addr}/token"),
            shared,
            addr,
            thread: Some(thread),
            dir,
        }
    }

    /// Lets `user` / `password` have `actions` (`pull`, `push`) on every
    /// repository.
    pub fn add_user(&self, user: &str, password: &str, actions: &[&str]) {
        self.shared.users.lock().unwrap().insert(
            user.to_string(),
            (
                password.to_string(),
                actions.iter().map(|a| a.to_string()).collect(),
            ),
        );
    }

    /// The next `n` tokens are issued expired (the registry rejects them
    /// with `error="invalid_token"`, as it does a token that expired during
    /// a long push).
    pub fn expire_next(&self, n: usize) {
        self.shared.expired.store(n, Ordering::SeqCst);
    }

    /// Every token request so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The registry's `auth:` config section for this issuer.
    pub fn registry_config(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    \
             rootcertbundle: {}\n",
            self.realm,
            self.dir.path().join("cert.pem").display()
        )
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(&self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `%3A` → `:`, `+` → space.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(mut stream: TcpStream, status: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Answers one request and closes the connection.
fn serve(shared: &Shared, stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() || request_line.is_empty() {
        return;
    }
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_string());
            }
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/token" {
        return respond(stream, "404 Not Found", "{}");
    }
    let mut scopes = Vec::new();
    let mut service = String::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "scope" => scopes.extend(percent_decode(v).split(' ').map(str::to_string)),
            "service" => service = percent_decode(v),
            _ => {}
        }
    }
    scopes.retain(|s| !s.is_empty());

    // Who is asking: nobody (anonymous, no access), or a user whose
    // password must be right.
    let credentials = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        });
    let allowed: Vec<String> = match &credentials {
        None => Vec::new(),
        Some((user, password)) => {
            let users = shared.users.lock().unwrap();
            match users.get(user) {
                Some((right, actions)) if right == password => actions.clone(),
                _ => {
                    drop(users);
                    shared.requests.lock().unwrap().push(TokenRequest {
                        user: Some(user.clone()),
                        scopes,
                        issued: false,
                    });
                    return respond(
                        stream,
                        "401 Unauthorized",
                        r#"{"errors":[{"code":"UNAUTHORIZED","message":"incorrect username or password"}]}"#,
                    );
                }
            }
        }
    };
    if service != SERVICE {
        return respond(
            stream,
            "400 Bad Request",
            &format!(
                r#"{{"errors":[{{"code":"DENIED","message":"unknown service {service:?}"}}]}}"#
            ),
        );
    }

    // Grant, per repository scope, the asked actions the user may have.
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|scope| {
            let (kind, rest) = scope.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            let granted: Vec<&str> = actions
                .split(',')
                .filter(|a| allowed.iter().any(|x| x == a))
                .collect();
            Some(serde_json::json!({"type": kind, "name": name, "actions": granted}))
        })
        .collect();
    let serial = shared.serial.fetch_add(1, Ordering::SeqCst);
    let expired = shared
        .expired
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    // Far enough in the past to beat the registry's 60 s clock-skew leeway.
    let issued_at = if expired { now() - 3600 } else { now() };
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": credentials.as_ref().map(|(u, _)| u.as_str()).unwrap_or(""),
        "aud": SERVICE,
        "exp": issued_at + 300,
        "nbf": issued_at - 10,
        "iat": issued_at,
        "jti": format!("bake-test-{serial}"),
        "access": access,
    });
    let mut header = Header::new(Algorithm::RS256);
    header.x5c = Some(vec![shared.x5c.clone()]);
    let token = jsonwebtoken::encode(&header, &claims, &shared.key).unwrap();
    shared.requests.lock().unwrap().push(TokenRequest {
        user: credentials.map(|(u, _)| u),
        scopes,
        issued: true,
    });
    respond(
        stream,
        "200 OK",
        &serde_json::json!({"token": token, "expires_in": 300}).to_string(),
    );
}
