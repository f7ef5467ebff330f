//! `bake logs`: what a detached container wrote (its `container.log`).

use std::io::{Read, Seek, SeekFrom, Write};

use anyhow::{Context, Result};
use bake_runner::Status;
use clap::Args;

use super::container;
use crate::app::Global;

/// `bake logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing new output until the container exits.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines (`all` for everything).
    #[arg(short = 'n', long, value_name = "N", default_value = "all")]
    pub tail: String,
    /// Container name or id.
    pub container: String,
}

/// The last `n` lines of `data` (pure).
pub fn tail(data: &[u8], n: usize) -> &[u8] {
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &data[i + 1..];
            }
        }
    }
    if n == 0 {
        &data[data.len()..]
    } else {
        data
    }
}

/// Prints the log (and follows it with `-f`).
pub fn run(global: &Global, args: &LogsArgs) -> Result<()> {
    let root = super::store_root(global);
    let c = container::find(&root, &args.container)?;
    let path = c.log_path();
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        // Run in the foreground: its output went to the terminal, nothing was logged.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !args.follow => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut data = Vec::new();
    file.read_to_end(&mut data)
        .with_context(|| format!("reading {}", path.display()))?;
    let shown = match args.tail.as_str() {
        "all" | "-1" => &data[..],
        n => tail(
            &data,
            n.parse().with_context(|| format!("invalid --tail {n:?}"))?,
        ),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(shown)?;
    out.flush()?;
    if !args.follow {
        return Ok(());
    }
    let mut pos = data.len() as u64;
    loop {
        let running = c.state().status == Status::Running;
        file.seek(SeekFrom::Start(pos))?;
        let mut more = Vec::new();
        file.read_to_end(&mut more)?;
        pos += more.len() as u64;
        out.write_all(&more)?;
        out.flush()?;
        // Read once more after it stopped: what it wrote last is in the file by then.
        if !running {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_takes_whole_lines() {
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", 1), b"c");
        assert_eq!(tail(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(tail(b"a\nb\n", 0), b"");
    }
}
