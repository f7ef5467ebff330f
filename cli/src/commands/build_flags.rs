//! `bake build` flags that feed the solver rather than the frontend:
//! `--secret`, `--ssh` and `--no-cache-filter`.

use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use bake_frontend::ast::{Dockerfile, Kind};
use bake_solver::ir::{Definition, Op};
use bake_solver::ops::secrets::{Secret, Secrets};

/// `--secret id=ID[,src=PATH|,env=VAR][,type=file|env]` (buildx syntax) and
/// `--ssh ID[=SOCKET]` into what the solver mounts. A secret given by
/// `env=` is read now; one given by `src=` when a RUN mounts it.
pub fn secrets(
    secret_flags: &[String],
    ssh_flags: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<Secrets> {
    let mut out = Secrets::default();
    for flag in secret_flags {
        let (id, secret) = secret(flag, &env).with_context(|| format!("--secret {flag}"))?;
        out.secrets.insert(id, secret);
    }
    for flag in ssh_flags {
        let (id, socket) = ssh(flag, &env).with_context(|| format!("--ssh {flag}"))?;
        out.ssh.insert(id, socket);
    }
    Ok(out)
}

fn secret(flag: &str, env: &impl Fn(&str) -> Option<String>) -> Result<(String, Secret)> {
    let (mut id, mut src, mut var, mut kind) = (None, None, None, None);
    for field in flag.split(',') {
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| anyhow!("`{field}` is not key=value"))?;
        match k.to_ascii_lowercase().as_str() {
            "id" => id = Some(v.to_string()),
            "src" | "source" => src = Some(v.to_string()),
            "env" => var = Some(v.to_string()),
            "type" => kind = Some(v.to_ascii_lowercase()),
            other => bail!("unexpected key `{other}`"),
        }
    }
    let id = id
        .or_else(|| var.clone())
        .or_else(|| {
            src.as_deref()
                .and_then(|s| s.rsplit('/').next().map(str::to_string))
        })
        .ok_or_else(|| anyhow!("an id is required"))?;
    let from_env = |name: &str| {
        env(name)
            .map(|v| Secret::Value(v.into_bytes()))
            .ok_or_else(|| anyhow!("environment variable {name} is not set"))
    };
    let secret = match (kind.as_deref(), src, var) {
        (Some("env"), Some(name), None) | (_, None, Some(name)) => from_env(&name)?,
        (Some("env"), None, None) => from_env(&id)?,
        (None | Some("file"), Some(path), None) => Secret::File(PathBuf::from(path)),
        // `--secret id=X` alone: the variable X if set, else the file X
        // (buildx does the same).
        (None, None, None) => match env(&id) {
            Some(v) => Secret::Value(v.into_bytes()),
            None => Secret::File(PathBuf::from(&id)),
        },
        (Some(t), _, _) if t != "env" && t != "file" => bail!("unsupported type `{t}`"),
        _ => bail!("give either src= or env=, not both"),
    };
    if let Secret::File(p) = &secret {
        std::fs::metadata(p).with_context(|| format!("secret file {}", p.display()))?;
    }
    Ok((id, secret))
}

fn ssh(flag: &str, env: &impl Fn(&str) -> Option<String>) -> Result<(String, PathBuf)> {
    let (id, paths) = match flag.split_once('=') {
        Some((id, paths)) => (id.to_string(), Some(paths)),
        None => (flag.to_string(), None),
    };
    let socket = match paths {
        Some(p) => PathBuf::from(p.split(',').next().unwrap_or(p)),
        None => env("SSH_AUTH_SOCK")
            .map(PathBuf::from)
            .ok_or_else(|| anyhow!("SSH_AUTH_SOCK is not set; give --ssh {id}=SOCKET"))?,
    };
    let meta = std::fs::metadata(&socket)
        .with_context(|| format!("SSH agent socket {}", socket.display()))?;
    if !meta.file_type().is_socket() {
        bail!(
            "{} is not a socket: only agent sockets are supported, not key files",
            socket.display()
        );
    }
    Ok((id, socket))
}

/// `--no-cache-filter=STAGE[,STAGE]`: every vertex of the named stages
/// (by `AS` name or index) runs instead of being looked up. A vertex
/// belongs to the stage whose `FROM` precedes its instruction's line.
///
/// # Errors
/// A name that is no stage of the Dockerfile.
pub fn no_cache_filter(df: &Dockerfile, def: &mut Definition, filters: &[String]) -> Result<()> {
    let wanted: Vec<String> = filters
        .iter()
        .flat_map(|f| f.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    // (first line, index, name) of each stage.
    let stages: Vec<(usize, String, Option<String>)> = df
        .instructions
        .iter()
        .filter_map(|i| match &i.kind {
            Kind::From(f) => Some((
                i.line,
                f.alias.as_ref().map(|a| a.text.to_ascii_lowercase()),
            )),
            _ => None,
        })
        .enumerate()
        .map(|(n, (line, alias))| (line, n.to_string(), alias))
        .collect();
    for w in &wanted {
        if !stages
            .iter()
            .any(|(_, n, a)| n == w || a.as_deref() == Some(w))
        {
            bail!("--no-cache-filter: no stage named {w}");
        }
    }
    for vertex in &mut def.graph.vertices {
        let Some(origin) = &vertex.origin else {
            continue;
        };
        if matches!(vertex.op, Op::Source(_)) {
            continue;
        }
        let stage = stages
            .iter()
            .rev()
            .find(|(line, _, _)| *line <= origin.line);
        if let Some((_, n, alias)) = stage {
            if wanted
                .iter()
                .any(|w| w == n || alias.as_deref() == Some(w.as_str()))
            {
                vertex.ignore_cache = true;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_flags_take_a_file_or_a_variable() {
        let env = |k: &str| (k == "TOKEN").then(|| "t0k".to_string());
        let (id, s) = secret("id=tok,env=TOKEN", &env).unwrap();
        assert_eq!(id, "tok");
        assert!(matches!(s, Secret::Value(v) if v == b"t0k"));
        let (id, s) = secret("id=TOKEN", &env).unwrap();
        assert_eq!(id, "TOKEN");
        assert!(matches!(s, Secret::Value(_)));
        let (_, s) = secret("id=f,src=/etc/hostname", &env).unwrap();
        assert!(matches!(s, Secret::File(_)));
        assert!(secret("id=x,env=UNSET", &env).is_err());
        assert!(secret("id=x,src=/nonexistent/file", &env).is_err());
        assert!(secret("id=x,bogus=1", &env).is_err());
    }

    #[test]
    fn ssh_needs_a_socket() {
        let none = |_: &str| None;
        assert!(ssh("default", &none).is_err());
        assert!(ssh("default=/etc/hostname", &none)
            .unwrap_err()
            .to_string()
            .contains("not a socket"));
    }
}
