//! Interactive progress on a terminal: one indicatif line per vertex, a
//! spinner while it runs with its latest output line, a tick and the time
//! when it is done. The output of a failed vertex is printed in full
//! (its last lines) above the bars, since that is what the user needs.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How many output lines of a running vertex are kept for an error report.
const KEPT_LINES: usize = 12;

/// Per-vertex display state.
struct Vertex {
    bar: ProgressBar,
    /// `#N`, in order of first appearance.
    number: usize,
    name: String,
    /// What the line says once the vertex is over (printed by `finish`).
    summary: Option<String>,
    lines: VecDeque<String>,
    partial: Vec<u8>,
}

/// Spinner-per-vertex progress on stderr.
pub struct Tty {
    multi: MultiProgress,
    vertices: HashMap<usize, Vertex>,
    next_number: usize,
}

impl Tty {
    /// Draws on stderr.
    pub fn new() -> Self {
        Tty {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            vertices: HashMap::new(),
            next_number: 1,
        }
    }

    fn running_style() -> ProgressStyle {
        ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {wide_msg} {elapsed:>4}")
            .expect("static template")
    }

    fn finished_style() -> ProgressStyle {
        ProgressStyle::with_template("{prefix:.bold} {wide_msg}").expect("static template")
    }

    fn vertex(&mut self, id: usize, name: &str) -> &mut Vertex {
        let multi = &self.multi;
        let next = &mut self.next_number;
        self.vertices.entry(id).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(Self::running_style());
            bar.set_prefix(format!("#{next}"));
            let number = *next;
            *next += 1;
            bar.set_message(name.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            Vertex {
                bar,
                number,
                name: name.to_string(),
                summary: None,
                lines: VecDeque::new(),
                partial: Vec::new(),
            }
        })
    }

    /// A vertex began executing.
    pub fn started(&mut self, id: usize, name: &str) {
        self.vertex(id, name);
    }

    /// A vertex was satisfied from the cache.
    pub fn cached(&mut self, id: usize, name: &str) {
        let v = self.vertex(id, name);
        Self::conclude(v, console::style("CACHED").blue().to_string());
    }

    /// Output of a vertex: the latest complete line is shown next to its name.
    pub fn log(&mut self, id: usize, data: &[u8]) {
        let v = self.vertex(id, "");
        v.partial.extend_from_slice(data);
        let Some(end) = v.partial.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let complete: Vec<u8> = v.partial.drain(..=end).collect();
        for line in complete[..complete.len() - 1].split(|&b| b == b'\n') {
            if v.lines.len() == KEPT_LINES {
                v.lines.pop_front();
            }
            v.lines
                .push_back(String::from_utf8_lossy(line).trim_end().to_string());
        }
        if let Some(last) = v.lines.back() {
            v.bar
                .set_message(format!("{} {}", v.name, console::style(last).dim()));
        }
    }

    /// A status line (`writing image …`) shown in place of output.
    pub fn status(&mut self, id: usize, text: &str) {
        let v = self.vertex(id, "");
        v.bar.set_message(format!("{} {}", v.name, text));
    }

    /// A vertex finished successfully.
    pub fn done(&mut self, id: usize, seconds: f64) {
        let v = self.vertex(id, "");
        Self::conclude(
            v,
            console::style(format!("{seconds:.1}s")).green().to_string(),
        );
    }

    /// A vertex failed: its last output lines and the message are printed.
    pub fn failed(&mut self, id: usize, message: &str) {
        let v = self.vertex(id, "");
        if !v.partial.is_empty() {
            let rest = String::from_utf8_lossy(&v.partial).trim_end().to_string();
            v.lines.push_back(rest);
            v.partial.clear();
        }
        Self::conclude(v, console::style("ERROR").red().bold().to_string());
        let mut report = String::new();
        for line in &v.lines {
            report.push_str(&format!("  > {line}\n"));
        }
        report.push_str(&format!("  ERROR: {message}"));
        // `println` on a MultiProgress writes above the bars without tearing them.
        let _ = self.multi.println(report);
    }

    /// Freezes a vertex's line with its outcome.
    fn conclude(v: &mut Vertex, outcome: String) {
        let line = format!("{} {outcome}", v.name);
        v.bar.set_style(Self::finished_style());
        v.bar.finish_with_message(line.clone());
        v.summary = Some(line);
    }

    /// Replaces the bars with plain, newline-terminated lines (one per
    /// vertex, in order), so that what follows (an error, the shell prompt)
    /// starts on a line of its own and the log stays readable after a
    /// resize. Vertices shown so far are forgotten; later steps get new bars.
    pub fn finish(&mut self) {
        let mut done: Vec<Vertex> = self.vertices.drain().map(|(_, v)| v).collect();
        done.sort_by_key(|v| v.number);
        for v in &done {
            if !v.bar.is_finished() {
                v.bar.abandon();
            }
        }
        let _ = self.multi.clear();
        for v in done {
            // Removed so that bars added later do not redraw these.
            self.multi.remove(&v.bar);
            let line = v.summary.unwrap_or(v.name);
            eprintln!("{} {line}", console::style(format!("#{}", v.number)).bold());
        }
    }
}
