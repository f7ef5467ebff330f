//! Build progress: turns the solver's [`Event`]s (and the cli's own steps,
//! such as resolving base images and exporting the image) into one of the
//! `--progress` displays.
//!
//! Progress goes to stderr and never fails a build: a write error on stderr
//! is ignored (there is nowhere left to report it).

mod plain;
pub mod transfer;
mod tty;

use std::io::{IsTerminal, Stderr, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use bake_runner::Stream;
use bake_solver::Event;

pub use plain::Plain;
pub use tty::Tty;

use crate::app::ProgressMode;

/// Ids for the cli's own steps, far above any vertex index so the two
/// never collide in the renderers' numbering.
const FIRST_STEP_ID: usize = 1 << 40;

/// The display chosen by `--progress`.
enum Display {
    Plain(Mutex<Plain<Stderr>>),
    Tty(Mutex<Tty>),
    RawJson(Mutex<Stderr>),
    Quiet,
}

/// A progress display shared by the solver's worker threads.
pub struct Progress {
    display: Display,
    next_step: AtomicUsize,
}

/// A step of the cli's own (`exporting to image`), shown like a vertex.
pub struct Step {
    id: usize,
    started: Instant,
}

impl Progress {
    /// The display for `--progress`: `auto` means spinners on a terminal and
    /// plain lines otherwise (CI logs, pipes).
    pub fn new(mode: ProgressMode) -> Progress {
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Tty,
            ProgressMode::Auto => ProgressMode::Plain,
            other => other,
        };
        let display = match mode {
            ProgressMode::Tty => Display::Tty(Mutex::new(Tty::new())),
            ProgressMode::Quiet => Display::Quiet,
            ProgressMode::Rawjson => Display::RawJson(Mutex::new(std::io::stderr())),
            ProgressMode::Plain | ProgressMode::Auto => {
                Display::Plain(Mutex::new(Plain::new(std::io::stderr())))
            }
        };
        Progress {
            display,
            next_step: AtomicUsize::new(FIRST_STEP_ID),
        }
    }

    /// Whether nothing but the result is to be printed (`--progress=quiet`).
    pub fn is_quiet(&self) -> bool {
        matches!(self.display, Display::Quiet)
    }

    /// Shows one solver event.
    pub fn event(&self, event: &Event) {
        let now = Instant::now();
        match &self.display {
            Display::Plain(p) => {
                let _ = plain_event(&mut lock(p), event, now);
            }
            Display::Tty(t) => {
                let mut t = lock(t);
                match event {
                    Event::Started { vertex, name } => t.started(vertex.0, name),
                    Event::Cached { vertex, name } => t.cached(vertex.0, name),
                    Event::Log { vertex, data, .. } => t.log(vertex.0, data),
                    Event::Done { vertex, seconds } => t.done(vertex.0, *seconds),
                    Event::Failed { vertex, message } => t.failed(vertex.0, message),
                }
            }
            Display::RawJson(out) => {
                let line = raw_json(event);
                let mut out = lock(out);
                let _ = writeln!(out, "{line}");
            }
            Display::Quiet => {}
        }
    }

    /// Starts a step of the cli's own, shown like a vertex named `name`.
    pub fn begin(&self, name: &str) -> Step {
        let step = Step {
            id: self.next_step.fetch_add(1, Ordering::Relaxed),
            started: Instant::now(),
        };
        match &self.display {
            Display::Plain(p) => {
                let _ = lock(p).started(step.id, name, step.started);
            }
            Display::Tty(t) => lock(t).started(step.id, name),
            Display::RawJson(_) | Display::Quiet => {}
        }
        step
    }

    /// A line of a step's progress (`writing image sha256:… done`).
    pub fn status(&self, step: &Step, text: &str) {
        match &self.display {
            Display::Plain(p) => {
                let _ = lock(p).status(step.id, text);
            }
            Display::Tty(t) => lock(t).status(step.id, text),
            Display::RawJson(_) | Display::Quiet => {}
        }
    }

    /// Ends a step successfully.
    pub fn end(&self, step: Step) {
        let seconds = step.started.elapsed().as_secs_f64();
        match &self.display {
            Display::Plain(p) => {
                let _ = lock(p).done(step.id, seconds, Instant::now());
            }
            Display::Tty(t) => lock(t).done(step.id, seconds),
            Display::RawJson(_) | Display::Quiet => {}
        }
    }

    /// Ends a step with an error.
    pub fn fail(&self, step: Step, message: &str) {
        match &self.display {
            Display::Plain(p) => {
                let _ = lock(p).failed(step.id, message, Instant::now());
            }
            Display::Tty(t) => lock(t).failed(step.id, message),
            Display::RawJson(_) | Display::Quiet => {}
        }
    }

    /// Stops any spinner still running (after success or failure).
    pub fn finish(&self) {
        if let Display::Tty(t) = &self.display {
            lock(t).finish();
        }
    }
}

/// Feeds one solver event to a plain renderer.
fn plain_event<W: Write>(p: &mut Plain<W>, event: &Event, now: Instant) -> std::io::Result<()> {
    match event {
        Event::Started { vertex, name } => p.started(vertex.0, name, now),
        Event::Cached { vertex, name } => p.cached(vertex.0, name),
        Event::Log {
            vertex,
            stream,
            data,
        } => p.log(vertex.0, *stream == Stream::Stderr, data, now),
        Event::Done { vertex, seconds } => p.done(vertex.0, *seconds, now),
        Event::Failed { vertex, message } => p.failed(vertex.0, message, now),
    }
}

/// Locks a display, recovering it if a thread panicked while drawing:
/// progress is cosmetic and must not turn one panic into two.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `--progress=rawjson`: one object per event, with a `type` field
/// (`started`, `cached`, `log`, `done`, `failed`) and the vertex index.
/// Log data is text (invalid UTF-8 replaced) so tests can match on it.
pub fn raw_json(event: &Event) -> serde_json::Value {
    use serde_json::json;
    match event {
        Event::Started { vertex, name } => {
            json!({"type": "started", "vertex": vertex.0, "name": name})
        }
        Event::Cached { vertex, name } => {
            json!({"type": "cached", "vertex": vertex.0, "name": name})
        }
        Event::Log {
            vertex,
            stream,
            data,
        } => json!({
            "type": "log",
            "vertex": vertex.0,
            "stream": if *stream == Stream::Stderr { "stderr" } else { "stdout" },
            "data": String::from_utf8_lossy(data),
        }),
        Event::Done { vertex, seconds } => {
            json!({"type": "done", "vertex": vertex.0, "seconds": seconds})
        }
        Event::Failed { vertex, message } => {
            json!({"type": "failed", "vertex": vertex.0, "message": message})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bake_solver::ir::VertexId;

    #[test]
    fn plain_output_of_a_fixed_build() {
        let now = Instant::now();
        let events = [
            Event::Cached {
                vertex: VertexId(0),
                name: "[1/3] FROM docker.io/library/busybox:latest".into(),
            },
            Event::Started {
                vertex: VertexId(2),
                name: "[2/3] RUN echo hi".into(),
            },
            Event::Log {
                vertex: VertexId(2),
                stream: Stream::Stdout,
                data: b"hi\n".to_vec(),
            },
            Event::Done {
                vertex: VertexId(2),
                seconds: 0.31,
            },
            Event::Started {
                vertex: VertexId(3),
                name: "[3/3] RUN exit 3".into(),
            },
            Event::Failed {
                vertex: VertexId(3),
                message:
                    "process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3"
                        .into(),
            },
        ];
        let mut p = Plain::new(Vec::new());
        for e in &events {
            plain_event(&mut p, e, now).unwrap();
        }
        let text = String::from_utf8(p.into_inner()).unwrap();
        assert_eq!(
            text,
            "#1 [1/3] FROM docker.io/library/busybox:latest\n#1 CACHED\n\n\
             #2 [2/3] RUN echo hi\n#2 0.000 hi\n#2 DONE 0.3s\n\n\
             #3 [3/3] RUN exit 3\n\
             #3 ERROR: process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3\n\n"
        );
    }

    #[test]
    fn raw_json_has_one_flat_object_per_event() {
        let e = Event::Cached {
            vertex: VertexId(3),
            name: "[2/2] RUN x".into(),
        };
        assert_eq!(
            raw_json(&e).to_string(),
            r#"{"name":"[2/2] RUN x","type":"cached","vertex":3}"#
        );
        let e = Event::Log {
            vertex: VertexId(1),
            stream: Stream::Stderr,
            data: b"hi\n".to_vec(),
        };
        assert_eq!(
            raw_json(&e).to_string(),
            r#"{"data":"hi\n","stream":"stderr","type":"log","vertex":1}"#
        );
    }
}
