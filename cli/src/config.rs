//! The registries part of bake's config file: `$BAKE_CONFIG`, else
//! `$XDG_CONFIG_HOME/bake/config.toml` (`~/.config/bake/config.toml`).
//!
//! ```toml
//! insecure = ["registry.lan:5000"]        # plain HTTP, like --insecure-registry
//!
//! [registries."docker.io"]
//! mirrors = ["127.0.0.1:5000"]            # pulls try these first, in order
//! insecure = false                        # this host itself over plain HTTP
//! ```
//!
//! A mirror may be written as a URL (`http://host:port` also makes it
//! plain HTTP). Unknown keys are an error naming the file, not ignored:
//! a typo must not silently turn a mirror off. The `toml` crate parses it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bake_store::registry::RegistryOptions;
use serde::Deserialize;

/// The file's contents.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Hosts reached over plain HTTP.
    #[serde(default)]
    pub insecure: Vec<String>,
    /// Settings per registry host.
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryConfig>,
}

/// `[registries."HOST"]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Hosts to pull this registry's repositories from first.
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// Reach this host over plain HTTP.
    #[serde(default)]
    pub insecure: bool,
}

/// Where the config file is: `$BAKE_CONFIG` (must exist), else the XDG
/// location (may not).
fn location() -> Option<(PathBuf, bool)> {
    if let Some(path) = std::env::var_os("BAKE_CONFIG").filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(path), true));
    }
    let dir = match std::env::var_os("XDG_CONFIG_HOME").filter(|d| Path::new(d).is_absolute()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?).join(".config"),
    };
    Some((dir.join("bake").join("config.toml"), false))
}

/// Reads the config file; none at the default location is an empty config.
///
/// # Errors
/// `$BAKE_CONFIG` naming a missing file, an unreadable file, or TOML that
/// does not match [`Config`] — each naming the file.
pub fn load() -> Result<Config> {
    let Some((path, required)) = location() else {
        return Ok(Config::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(Config::default())
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    parse(&text).with_context(|| format!("config file {}", path.display()))
}

fn parse(text: &str) -> Result<Config> {
    let config: Config = toml::from_str(text)?;
    for (host, registry) in &config.registries {
        for mirror in &registry.mirrors {
            if mirror_host(mirror).0.is_empty() {
                bail!("registries.\"{host}\".mirrors: empty mirror {mirror:?}");
            }
        }
    }
    Ok(config)
}

/// `http://h:5000/` → (`h:5000`, plain HTTP); `h:5000` → (`h:5000`, as
/// the host's rules say).
fn mirror_host(mirror: &str) -> (String, bool) {
    let (rest, http) = match mirror.strip_prefix("http://") {
        Some(rest) => (rest, true),
        None => (mirror.strip_prefix("https://").unwrap_or(mirror), false),
    };
    (rest.trim_end_matches('/').to_string(), http)
}

/// Registry hosts as references write them (`index.docker.io` is
/// `docker.io`).
fn normalize(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        other => other.to_string(),
    }
}

impl Config {
    /// Adds the file's settings and `flag_mirrors` (`--registry-mirror`,
    /// for Docker Hub, tried before the file's) to `options`.
    pub fn apply(&self, flag_mirrors: &[String], options: &mut RegistryOptions) {
        options.insecure.extend(self.insecure.iter().cloned());
        let mut add = |registry: &str, mirror: &str| {
            let (host, http) = mirror_host(mirror);
            if http {
                options.insecure.push(host.clone());
            }
            let list = options.mirrors.entry(normalize(registry)).or_default();
            if !list.contains(&host) {
                list.push(host);
            }
        };
        for mirror in flag_mirrors {
            add("docker.io", mirror);
        }
        for (registry, settings) in &self.registries {
            for mirror in &settings.mirrors {
                add(registry, mirror);
            }
        }
        for (registry, settings) in &self.registries {
            if settings.insecure {
                options.insecure.push(registry.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_and_insecure_hosts_reach_the_options() {
        let config = parse(
            r#"
            insecure = ["lan:5000"]
            [registries."docker.io"]
            mirrors = ["http://m1:5000/", "m2"]
            [registries."quay.io"]
            insecure = true
            "#,
        )
        .unwrap();
        let mut options = RegistryOptions::default();
        config.apply(&["flag:5000".to_string(), "m2".to_string()], &mut options);
        assert_eq!(options.mirrors["docker.io"], ["flag:5000", "m2", "m1:5000"]);
        assert!(options.insecure.contains(&"lan:5000".to_string()));
        assert!(options.insecure.contains(&"m1:5000".to_string()));
        assert!(options.insecure.contains(&"quay.io".to_string()));
        assert!(!options.insecure.contains(&"m2".to_string()));
    }

    #[test]
    fn unknown_keys_and_bad_types_are_errors() {
        assert!(parse("[registries.\"docker.io\"]\nmirror = [\"x\"]\n").is_err());
        assert!(parse("insecure = \"x\"\n").is_err());
        assert!(parse("[registries.\"docker.io\"]\nmirrors = [\"http://\"]\n").is_err());
        assert!(parse("").unwrap().registries.is_empty());
    }
}
