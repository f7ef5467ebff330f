//! Credentials (docker `config.json`, credential helpers) and parsing of
//! `WWW-Authenticate` challenges.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;

use super::Error;

/// Basic credentials: user and password.
pub(crate) type Credentials = (String, String);

/// What a registry asked for in a `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Basic realm="…"`.
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
        /// `invalid_token` (expired or not trusted: fetch another),
        /// `insufficient_scope` (the token does not grant the action).
        error: Option<String>,
    },
}

/// Parses one `WWW-Authenticate` value. Unknown schemes give `None`.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = match header.find(char::is_whitespace) {
        Some(i) => (&header[..i], &header[i..]),
        None => (header, ""),
    };
    let params = parse_params(rest);
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
            error: params.get("error").cloned(),
        })
    } else {
        None
    }
}

/// `key=value, key="quoted, value"` → map (keys lowercased).
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() && chars.peek().is_none() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        let key = key.trim().to_ascii_lowercase();
        if !key.is_empty() {
            out.insert(key, value.trim().to_string());
        }
        if chars.peek().is_none() {
            return out;
        }
    }
}

/// The `Authorization` value for basic credentials.
pub(crate) fn basic_header((user, password): &Credentials) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// `~/.docker/config.json`, the parts bake reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub(crate) fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    let home = std::env::var_os("HOME").filter(|d| !d.is_empty())?;
    Some(PathBuf::from(home).join(".docker").join("config.json"))
}

/// A registry key of `auths` / `credHelpers` reduced to the host it names:
/// `https://index.docker.io/v1/` → `docker.io`, `https://h:5000` → `h:5000`.
pub(crate) fn normalize_host(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => host,
    }
}

/// The server URL a credential helper is asked about for `host`.
fn helper_server_url(host: &str) -> String {
    if normalize_host(host) == "docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        host.to_string()
    }
}

/// Looks up credentials for `host` (as written in a reference) in the
/// docker config file at `path`. A missing file means no credentials.
///
/// # Errors
/// [`Error::Credentials`] when the file exists but is not valid JSON or an
/// `auth` field is not base64 `user:password`.
pub(crate) fn credentials_from_file(path: &Path, host: &str) -> Result<Option<Credentials>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Credentials {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        }
    };
    let config: DockerConfig = serde_json::from_str(&text).map_err(|e| Error::Credentials {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let wanted = normalize_host(host);

    // A per-registry helper wins over the default store, which wins over
    // plain `auths` entries: the order docker itself uses.
    let helper = config
        .cred_helpers
        .iter()
        .find(|(k, _)| normalize_host(k) == wanted)
        .map(|(_, v)| v.clone())
        .or(config.creds_store.clone());
    if let Some(helper) = helper {
        if let Some(creds) = credentials_from_helper(&helper, host) {
            return Ok(Some(creds));
        }
    }

    let Some(entry) = config
        .auths
        .iter()
        .find(|(k, _)| normalize_host(k) == wanted)
        .map(|(_, v)| v)
    else {
        return Ok(None);
    };
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let bad = |reason: &str| Error::Credentials {
            path: path.to_path_buf(),
            reason: format!("auths.{wanted}.auth: {reason}"),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| bad(&e.to_string()))?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad("not UTF-8"))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| bad("expected base64 of user:password"))?;
        return Ok(Some((user.to_string(), password.to_string())));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) => Ok(Some((u.clone(), p.clone()))),
        _ => Ok(None),
    }
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// Asks `docker-credential-<helper> get`. A helper that is missing, fails
/// or has nothing for the host gives `None`: the registry then decides
/// whether anonymous access is enough, and says so if not.
fn credentials_from_helper(helper: &str, host: &str) -> Option<Credentials> {
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let _ = stdin.write_all(helper_server_url(host).as_bytes());
    drop(stdin);
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        return None;
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout).ok()?;
    // `<token>` marks an identity token, which needs an OAuth2 exchange bake
    // does not do.
    if answer.username == "<token>" {
        return None;
    }
    Some((answer.username, answer.secret))
}

/// Credentials for `host` from the user's docker config, if any.
///
/// # Errors
/// As [`credentials_from_file`].
pub(crate) fn lookup_credentials(host: &str) -> Result<Option<Credentials>, Error> {
    match docker_config_path() {
        Some(path) => credentials_from_file(&path, host),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenge_with_quoted_commas() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull,push".into()),
                error: None,
            })
        );
        let c = parse_challenge(
            r#"Bearer realm="http://a/token",service="s",scope="repository:x:push",error="insufficient_scope""#,
        );
        assert!(
            matches!(c, Some(Challenge::Bearer { error: Some(e), .. }) if e == "insufficient_scope")
        );
    }

    #[test]
    fn parses_basic_and_rejects_unknown_schemes() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("basic"), Some(Challenge::Basic));
        assert_eq!(parse_challenge(r#"Negotiate abc"#), None);
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None);
    }

    #[test]
    fn parses_unquoted_params_and_spaces() {
        let p = parse_params(r#" Realm=http://a/b , service = "s\"x" ,flag"#);
        assert_eq!(p["realm"], "http://a/b");
        assert_eq!(p["service"], "s\"x");
        assert_eq!(p["flag"], "");
    }

    #[test]
    fn normalizes_docker_hub_keys() {
        assert_eq!(normalize_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_host("docker.io"), "docker.io");
        assert_eq!(normalize_host("http://localhost:5000"), "localhost:5000");
        assert_eq!(
            helper_server_url("docker.io"),
            "https://index.docker.io/v1/"
        );
        assert_eq!(helper_server_url("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn reads_auth_fields_from_config_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let b64 = base64::engine::general_purpose::STANDARD;
        std::fs::write(
            &path,
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},
                   "localhost:5000":{{"auth":"{}"}},
                   "other.example":{{"username":"u","password":"p"}}}}}}"#,
                b64.encode("hub:pw"),
                b64.encode("me:se:cret")
            ),
        )
        .unwrap();
        assert_eq!(
            credentials_from_file(&path, "docker.io").unwrap(),
            Some(("hub".into(), "pw".into()))
        );
        assert_eq!(
            credentials_from_file(&path, "localhost:5000").unwrap(),
            Some(("me".into(), "se:cret".into()))
        );
        assert_eq!(
            credentials_from_file(&path, "other.example").unwrap(),
            Some(("u".into(), "p".into()))
        );
        assert_eq!(credentials_from_file(&path, "quay.io").unwrap(), None);
        assert_eq!(
            credentials_from_file(&dir.path().join("missing.json"), "docker.io").unwrap(),
            None
        );
    }

    #[test]
    fn malformed_config_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"auths":{"h":{"auth":"!!"}}}"#).unwrap();
        let err = credentials_from_file(&path, "h").unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
        std::fs::write(&path, "{").unwrap();
        assert!(credentials_from_file(&path, "h").is_err());
    }

    #[test]
    fn missing_credential_helper_falls_back_to_auths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let b64 = base64::engine::general_purpose::STANDARD.encode("a:b");
        std::fs::write(
            &path,
            format!(
                r#"{{"credsStore":"bake-test-no-such-helper","auths":{{"h":{{"auth":"{b64}"}}}}}}"#
            ),
        )
        .unwrap();
        assert_eq!(
            credentials_from_file(&path, "h").unwrap(),
            Some(("a".into(), "b".into()))
        );
    }
}
