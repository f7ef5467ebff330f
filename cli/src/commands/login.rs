//! `bake login [-u USER] [--password-stdin] REGISTRY` and `bake logout
//! REGISTRY`: credentials in the docker `config.json` (`$DOCKER_CONFIG`
//! or `~/.docker`), which push, pull and `FROM` then use.

use std::io::{Read, Write};

use anyhow::{anyhow, bail, Context, Result};
use bake_store::registry::{login, Client};
use clap::Args;

use crate::app::Global;

/// `bake login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// User name.
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password (visible in the process list: prefer --password-stdin).
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Read the password from stdin.
    #[arg(long)]
    pub password_stdin: bool,
    /// Registry host (default docker.io).
    pub server: Option<String>,
}

/// `bake logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry host (default docker.io).
    pub server: Option<String>,
}

/// `https://host:5000/v2/` → `host:5000`; default `docker.io`.
fn host(server: Option<&str>) -> String {
    let s = server.unwrap_or("docker.io");
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        h => h.to_string(),
    }
}

/// Checks the credentials against the registry (`GET /v2/`), then saves
/// them.
pub fn login(global: &Global, args: &LoginArgs) -> Result<()> {
    let Some(user) = &args.username else {
        bail!("bake login needs -u USER (it never prompts)");
    };
    let password = match (&args.password, args.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            p.clone()
        }
        (None, true) => {
            let mut p = String::new();
            std::io::stdin()
                .read_to_string(&mut p)
                .context("reading the password from stdin")?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => bail!("give the password with --password-stdin"),
    };
    let host = host(args.server.as_deref());
    let mut options = super::try_registry_options(global)?;
    options.auth = Some((user.clone(), password.clone()));
    let client = Client::new(&host, &options)?;
    client
        .ping()
        .map_err(|e| anyhow!("login to {host} failed: {e}"))?;
    let path = login::save_credentials(&host, user, &password)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "Credentials saved in {}", path.display())?;
    writeln!(out, "Login Succeeded")?;
    Ok(())
}

/// Forgets the credentials for the registry.
pub fn logout(args: &LogoutArgs) -> Result<()> {
    let host = host(args.server.as_deref());
    let mut out = std::io::stdout().lock();
    if login::remove_credentials(&host)? {
        writeln!(out, "Removing login credentials for {host}")?;
    } else {
        writeln!(out, "Not logged in to {host}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn servers_become_hosts() {
        assert_eq!(super::host(None), "docker.io");
        assert_eq!(
            super::host(Some("https://index.docker.io/v1/")),
            "docker.io"
        );
        assert_eq!(super::host(Some("localhost:5000")), "localhost:5000");
    }
}
