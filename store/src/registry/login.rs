//! `bake login` / `bake logout`: the `auths` entries of the docker
//! `config.json` ([`super::auth`] reads them). Every other key of the file
//! (credential helpers, proxies, …) is kept as it was.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::auth::{docker_config_path, normalize_host};
use super::Error;

fn cred_err(path: &Path, reason: impl ToString) -> Error {
    Error::Credentials {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The config file to edit: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
///
/// # Errors
/// [`Error::Credentials`] when neither `DOCKER_CONFIG` nor `HOME` is set.
pub fn config_path() -> Result<PathBuf, Error> {
    docker_config_path().ok_or_else(|| {
        cred_err(
            Path::new("config.json"),
            "neither DOCKER_CONFIG nor HOME is set",
        )
    })
}

fn read(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            Ok(_) => Err(cred_err(path, "not a JSON object")),
            Err(e) => Err(cred_err(path, e)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
        Err(e) => Err(cred_err(path, e)),
    }
}

/// Writes the file atomically, readable by its owner only (it holds
/// passwords).
fn write(path: &Path, map: serde_json::Map<String, serde_json::Value>) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| cred_err(path, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| cred_err(path, e))?;
    let mut bytes = serde_json::to_vec_pretty(&serde_json::Value::Object(map)).expect("serialises");
    bytes.push(b'\n');
    tmp.write_all(&bytes).map_err(|e| cred_err(path, e))?;
    tmp.as_file().sync_all().map_err(|e| cred_err(path, e))?;
    tmp.persist(path).map_err(|e| cred_err(path, e.error))?;
    Ok(())
}

/// The `auths` key docker uses for a host (`https://index.docker.io/v1/`
/// for Docker Hub, the host itself otherwise).
fn auths_key(host: &str) -> String {
    if normalize_host(host) == "docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        host.to_string()
    }
}

/// Stores `user`/`password` for `host` as `auths.<host>.auth` (base64 of
/// `user:password`, what docker writes); returns the file written.
///
/// # Errors
/// [`Error::Credentials`] when the file is unreadable, not JSON, or cannot
/// be written.
pub fn save_credentials(host: &str, user: &str, password: &str) -> Result<PathBuf, Error> {
    let path = config_path()?;
    let mut map = read(&path)?;
    let auths = map
        .entry("auths")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    let Some(auths) = auths.as_object_mut() else {
        return Err(cred_err(&path, "`auths` is not an object"));
    };
    let wanted = normalize_host(host);
    auths.retain(|k, _| normalize_host(k) != wanted);
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    auths.insert(auths_key(host), serde_json::json!({ "auth": auth }));
    write(&path, map)?;
    Ok(path)
}

/// Removes the `auths` entries for `host`; returns whether there was one.
///
/// # Errors
/// As [`save_credentials`].
pub fn remove_credentials(host: &str) -> Result<bool, Error> {
    let path = config_path()?;
    let mut map = read(&path)?;
    let wanted = normalize_host(host);
    let removed = match map.get_mut("auths").and_then(|a| a.as_object_mut()) {
        Some(auths) => {
            let before = auths.len();
            auths.retain(|k, _| normalize_host(k) != wanted);
            auths.len() != before
        }
        None => false,
    };
    if removed {
        write(&path, map)?;
    }
    Ok(removed)
}
