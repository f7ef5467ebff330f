//! `bake export CTR`: the container's file system as a tar, as `docker export`
//! writes it (the image's layers with the container's changes applied; no volumes).
//!
//! The files are read through the same root as `bake cp` (see `cp`): for a running
//! container its own `/`, where the mount points (`/proc`, `/sys`, `/dev`, volumes,
//! tmpfs, the `/etc/hosts` bind) are left empty, from its `/proc/<pid>/mountinfo`;
//! for a stopped one its overlay, mounted privately for the command.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::container;
use super::cp::{container_root, tree};
use crate::app::Global;

/// `bake export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to this file instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The container (name or id).
    pub container: String,
}

/// Writes the tar.
pub fn run(global: &Global, args: &ExportArgs) -> Result<()> {
    let root = super::store_root(global);
    let c = container::find(&root, &args.container)?;
    if args.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to write a tar to a terminal: use -o FILE or redirect stdout");
    }
    let ctr = container_root(global, &c)?;
    let skip = match ctr.pid {
        Some(pid) => {
            let path = format!("/proc/{pid}/mountinfo");
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
            mount_points(&text)
        }
        None => BTreeSet::new(),
    };
    match &args.output {
        Some(file) => {
            // Written beside the target and renamed: no half tar under the real name.
            let dir = file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("creating a file in {}", dir.display()))?;
            {
                let mut out = std::io::BufWriter::new(tmp.as_file_mut());
                tree::archive_skipping(&ctr.root, "/", None, false, &skip, &mut out)?;
                out.flush()?;
            }
            tmp.persist(file)
                .with_context(|| format!("writing {}", file.display()))?;
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            tree::archive_skipping(&ctr.root, "/", None, false, &skip, &mut out)?;
            out.flush()?;
        }
    }
    Ok(())
}

/// The mount points of a mount table (`/proc/<pid>/mountinfo`, paths as its owner
/// sees them), as archive names: no leading `/`, `/` itself left out (pure).
pub fn mount_points(mountinfo: &str) -> BTreeSet<String> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape)
        .map(|p| p.trim_start_matches('/').to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let n = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(n);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_come_from_the_fifth_field() {
        let table = "\
1 0 0:50 / / rw - overlay overlay rw\n\
2 1 0:5 / /proc rw - proc proc rw\n\
3 1 8:1 /x /etc/hosts ro - ext4 /dev/sda1 rw\n\
4 1 8:1 /v /my\\040data rw - ext4 /dev/sda1 rw\n";
        let got: Vec<String> = mount_points(table).into_iter().collect();
        assert_eq!(got, ["etc/hosts", "my data", "proc"]);
    }
}
