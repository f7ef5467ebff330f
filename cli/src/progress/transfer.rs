//! Registry transfers as the user sees them.
//!
//! [`describe`] words each of the store's [`TransferEvent`]s as docker
//! does, one line per blob state change (`a1b2c3d4e5f6: Pushing`, `Layer
//! already exists`, `Pushed`; `Downloading`, `Already exists`,
//! `Extracting`, `Download complete`). [`TransferView`] shows them: on a
//! terminal, one indicatif bar per blob with bytes, total and rate; else
//! those lines, the finishing ones with the size moved
//! (`a1b2c3d4e5f6: Pushed 12.30 MB`).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{DecimalBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::app::ProgressMode;
use bake_store::oci::Digest;
use bake_store::transfer::{Skip, TransferEvent};

/// Which way the blobs move; docker words the same events differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Registry → store.
    Pull,
    /// Store → registry.
    Push,
}

/// The line docker would print for this event, if any.
pub fn describe(event: &TransferEvent, direction: Direction) -> Option<String> {
    use Direction::{Pull, Push};
    let (digest, status) = match (event, direction) {
        (TransferEvent::Started { digest, .. }, Pull) => (digest, "Downloading"),
        (TransferEvent::Started { digest, .. }, Push) => (digest, "Pushing"),
        (TransferEvent::Done { digest }, Pull) => (digest, "Download complete"),
        (TransferEvent::Done { digest }, Push) => (digest, "Pushed"),
        (
            TransferEvent::Skipped {
                digest,
                reason: Skip::Exists,
            },
            Pull,
        ) => (digest, "Already exists"),
        (
            TransferEvent::Skipped {
                digest,
                reason: Skip::Exists,
            },
            Push,
        ) => (digest, "Layer already exists"),
        (TransferEvent::Unpacking { digest }, _) => (digest, "Extracting"),
        (TransferEvent::Mirror { mirror, failure }, _) => {
            return Some(match failure {
                None => format!("Trying mirror {mirror}"),
                Some(why) => format!("Mirror {mirror} failed: {why}"),
            })
        }
        (TransferEvent::Mounted { digest, from }, _) => {
            return Some(format!("{}: Mounted from {from}", digest.short()))
        }
        (TransferEvent::Resolved { .. } | TransferEvent::Progress { .. }, _) => return None,
    };
    Some(format!("{}: {status}", digest.short()))
}

/// Where a [`TransferView`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (`bake pull`, `bake push`).
    Stdout,
    /// Standard error (the implicit pull of `bake run`).
    Stderr,
}

impl Stream {
    fn write_line(self, line: &str) {
        // Progress never fails a transfer: a closed stream is ignored.
        let _ = match self {
            Stream::Stdout => writeln!(std::io::stdout().lock(), "{line}"),
            Stream::Stderr => writeln!(std::io::stderr().lock(), "{line}"),
        };
    }

    fn is_terminal(self) -> bool {
        match self {
            Stream::Stdout => std::io::stdout().is_terminal(),
            Stream::Stderr => std::io::stderr().is_terminal(),
        }
    }
}

/// Bars on a terminal, lines elsewhere.
enum Mode {
    Bars {
        multi: MultiProgress,
        bars: HashMap<Digest, ProgressBar>,
    },
    Lines,
    Quiet,
}

struct State {
    mode: Mode,
    /// Bytes moved per blob (the size from `Started`, then `Progress`).
    bytes: HashMap<Digest, u64>,
}

/// The display of one pull or push; shared by the transfer's threads.
pub struct TransferView {
    direction: Direction,
    stream: Stream,
    state: Mutex<State>,
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix}: {msg:<18} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

fn status_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix}: {msg}").unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl TransferView {
    /// A view for `mode` (`auto`: bars when `stream` is a terminal;
    /// `tty`: bars; `quiet`: nothing; otherwise lines).
    pub fn new(mode: ProgressMode, direction: Direction, stream: Stream) -> TransferView {
        let bars = match mode {
            ProgressMode::Auto => stream.is_terminal(),
            ProgressMode::Tty => true,
            _ => false,
        };
        let mode = if bars {
            let target = match stream {
                Stream::Stdout => ProgressDrawTarget::stdout(),
                Stream::Stderr => ProgressDrawTarget::stderr(),
            };
            Mode::Bars {
                multi: MultiProgress::with_draw_target(target),
                bars: HashMap::new(),
            }
        } else if mode == ProgressMode::Quiet {
            Mode::Quiet
        } else {
            Mode::Lines
        };
        TransferView {
            direction,
            stream,
            state: Mutex::new(State {
                mode,
                bytes: HashMap::new(),
            }),
        }
    }

    /// A line that is not about one blob (`Digest: …`), above the bars.
    pub fn say(&self, line: &str) {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &state.mode {
            Mode::Bars { multi, .. } => {
                if multi.println(line).is_err() {
                    self.stream.write_line(line);
                }
            }
            Mode::Lines => self.stream.write_line(line),
            Mode::Quiet => {}
        }
    }

    /// Shows one event.
    pub fn event(&self, event: &TransferEvent) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let State { mode, bytes } = &mut *state;
        match event {
            TransferEvent::Started { digest, size } => {
                bytes.insert(digest.clone(), 0);
                if let Mode::Bars { multi, bars } = mode {
                    let bar = multi.add(ProgressBar::new(*size));
                    bar.set_style(bar_style());
                    bar.set_prefix(digest.short().to_string());
                    bar.enable_steady_tick(Duration::from_millis(200));
                    bars.insert(digest.clone(), bar);
                }
            }
            TransferEvent::Progress { digest, bytes: n } => {
                bytes.insert(digest.clone(), *n);
            }
            _ => {}
        }
        let line = describe(event, self.direction);
        match mode {
            Mode::Quiet => {}
            Mode::Lines => {
                let Some(mut line) = line else { return };
                if let TransferEvent::Done { digest } = event {
                    if let Some(n) = bytes.get(digest) {
                        line.push_str(&format!(" {}", DecimalBytes(*n)));
                    }
                }
                self.stream.write_line(&line);
            }
            Mode::Bars { multi, bars } => {
                let digest = match event {
                    TransferEvent::Started { digest, .. }
                    | TransferEvent::Progress { digest, .. }
                    | TransferEvent::Done { digest }
                    | TransferEvent::Skipped { digest, .. }
                    | TransferEvent::Mounted { digest, .. }
                    | TransferEvent::Unpacking { digest } => digest,
                    _ => {
                        if let Some(line) = line {
                            let _ = multi.println(line);
                        }
                        return;
                    }
                };
                let bar = bars.entry(digest.clone()).or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new(0));
                    bar.set_style(status_style());
                    bar.set_prefix(digest.short().to_string());
                    bar
                });
                match event {
                    TransferEvent::Progress { bytes: n, .. } => bar.set_position(*n),
                    // The rate stays the transfer's, not decaying after it.
                    TransferEvent::Done { .. } => bar.disable_steady_tick(),
                    _ => {}
                }
                if let Some(line) = line {
                    // The status part of docker's line.
                    let status = line.split_once(": ").map_or(line.as_str(), |(_, s)| s);
                    bar.set_message(status.to_string());
                }
                if matches!(
                    (event, self.direction),
                    (TransferEvent::Done { .. }, Direction::Push)
                        | (
                            TransferEvent::Skipped { .. } | TransferEvent::Mounted { .. },
                            _
                        )
                ) {
                    bar.finish();
                }
            }
        }
    }

    /// Stops the bars (leaving their last state on screen); a pull's say
    /// `Pull complete` when it `succeeded`.
    pub fn finish(&self, succeeded: bool) {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Mode::Bars { bars, .. } = &state.mode {
            for bar in bars.values() {
                if !bar.is_finished() {
                    if succeeded && self.direction == Direction::Pull {
                        bar.set_message("Pull complete");
                    }
                    bar.finish();
                }
            }
        }
    }
}

/// The manifest digest a pull resolved to, when the event reports it.
pub fn manifest_digest(event: &TransferEvent) -> Option<Digest> {
    match event {
        TransferEvent::Resolved { manifest, .. } => Some(manifest.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_like_docker() {
        let digest = Digest::of(b"layer");
        let short = digest.short().to_string();
        let skipped = TransferEvent::Skipped {
            digest: digest.clone(),
            reason: Skip::Exists,
        };
        assert_eq!(
            describe(&skipped, Direction::Push).unwrap(),
            format!("{short}: Layer already exists")
        );
        assert_eq!(
            describe(&skipped, Direction::Pull).unwrap(),
            format!("{short}: Already exists")
        );
        let done = TransferEvent::Done {
            digest: digest.clone(),
        };
        assert_eq!(
            describe(&done, Direction::Push).unwrap(),
            format!("{short}: Pushed")
        );
        let progress = TransferEvent::Progress {
            digest: digest.clone(),
            bytes: 10,
        };
        assert_eq!(describe(&progress, Direction::Pull), None);
        let resolved = TransferEvent::Resolved {
            reference: "x".into(),
            manifest: digest.clone(),
        };
        assert_eq!(manifest_digest(&resolved), Some(digest));
    }
}
