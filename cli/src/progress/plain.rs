//! BuildKit's `--progress=plain` format: numbered vertices, timestamped
//! output lines, `DONE`/`CACHED`/`ERROR` trailers.
//!
//! ```text
//! #3 [build 2/3] RUN make
//! #3 0.123 cc -o app main.c
//! #3 DONE 1.2s
//! ```
//!
//! The renderer takes plain values and an explicit time so that it can be
//! tested with a fixed sequence of events; the solver adapter lives in
//! `progress/mod.rs`.

use std::collections::HashMap;
use std::io::{self, Write};
use std::time::Instant;

/// Per-vertex display state.
struct Vertex {
    /// `#N`, numbered in order of first appearance as BuildKit does.
    number: usize,
    name: String,
    started: Option<Instant>,
    /// Incomplete trailing lines, one buffer per stream (stdout, stderr),
    /// kept until their newline arrives so lines are never split.
    partial: [Vec<u8>; 2],
}

/// Writes plain progress to `out` (stderr in the cli).
pub struct Plain<W: Write> {
    out: W,
    vertices: HashMap<usize, Vertex>,
    next_number: usize,
    /// The vertex that printed last; its header is repeated when another
    /// vertex's output interleaves, so every line stays attributable.
    last: Option<usize>,
}

impl<W: Write> Plain<W> {
    /// A renderer numbering vertices from `#1`.
    pub fn new(out: W) -> Self {
        Plain {
            out,
            vertices: HashMap::new(),
            next_number: 1,
            last: None,
        }
    }

    /// Gives the writer back (for tests).
    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }

    fn vertex(&mut self, id: usize, name: Option<&str>) -> &mut Vertex {
        let next = &mut self.next_number;
        let v = self.vertices.entry(id).or_insert_with(|| {
            let number = *next;
            *next += 1;
            Vertex {
                number,
                name: String::new(),
                started: None,
                partial: [Vec::new(), Vec::new()],
            }
        });
        if let Some(name) = name {
            if v.name.is_empty() {
                v.name = name.to_string();
            }
        }
        v
    }

    /// Prints `#N name` unless this vertex was the last to print.
    fn header(&mut self, id: usize) -> io::Result<()> {
        if self.last == Some(id) {
            return Ok(());
        }
        self.last = Some(id);
        let v = &self.vertices[&id];
        writeln!(self.out, "#{} {}", v.number, v.name)
    }

    /// A vertex began executing.
    pub fn started(&mut self, id: usize, name: &str, at: Instant) -> io::Result<()> {
        self.vertex(id, Some(name)).started = Some(at);
        self.last = None;
        self.header(id)
    }

    /// A vertex was satisfied from the cache.
    pub fn cached(&mut self, id: usize, name: &str) -> io::Result<()> {
        let number = self.vertex(id, Some(name)).number;
        self.header(id)?;
        writeln!(self.out, "#{number} CACHED")?;
        self.finish(id)
    }

    /// Output of a vertex; `stderr` selects the stream's line buffer.
    pub fn log(&mut self, id: usize, stderr: bool, data: &[u8], at: Instant) -> io::Result<()> {
        let v = self.vertex(id, None);
        let buf = &mut v.partial[usize::from(stderr)];
        buf.extend_from_slice(data);
        let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
            return Ok(());
        };
        let complete: Vec<u8> = buf.drain(..=end).collect();
        let elapsed = v
            .started
            .map_or(0.0, |s| at.duration_since(s).as_secs_f64());
        let number = v.number;
        self.header(id)?;
        for line in complete[..complete.len() - 1].split(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(line);
            writeln!(
                self.out,
                "#{number} {elapsed:.3} {}",
                line.trim_end_matches('\r')
            )?;
        }
        Ok(())
    }

    /// A status line without a timestamp (`#7 writing image sha256:… done`).
    pub fn status(&mut self, id: usize, text: &str) -> io::Result<()> {
        let number = self.vertex(id, None).number;
        self.header(id)?;
        writeln!(self.out, "#{number} {text}")
    }

    /// A vertex finished successfully.
    pub fn done(&mut self, id: usize, seconds: f64, at: Instant) -> io::Result<()> {
        self.flush_partial(id, at)?;
        let number = self.vertex(id, None).number;
        self.header(id)?;
        writeln!(self.out, "#{number} DONE {seconds:.1}s")?;
        self.finish(id)
    }

    /// A vertex failed.
    pub fn failed(&mut self, id: usize, message: &str, at: Instant) -> io::Result<()> {
        self.flush_partial(id, at)?;
        let number = self.vertex(id, None).number;
        self.header(id)?;
        writeln!(self.out, "#{number} ERROR: {message}")?;
        self.finish(id)
    }

    /// Prints output that never got its newline.
    fn flush_partial(&mut self, id: usize, at: Instant) -> io::Result<()> {
        for stderr in [false, true] {
            let v = self.vertex(id, None);
            if !v.partial[usize::from(stderr)].is_empty() {
                self.log(id, stderr, b"\n", at)?;
            }
        }
        Ok(())
    }

    /// The blank line BuildKit puts after a finished vertex.
    fn finish(&mut self, _id: usize) -> io::Result<()> {
        self.last = None;
        writeln!(self.out)?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn text(p: Plain<Vec<u8>>) -> String {
        String::from_utf8(p.into_inner()).unwrap()
    }

    #[test]
    fn renders_a_cached_then_an_executed_vertex() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut p = Plain::new(Vec::new());
        p.cached(0, "[1/2] FROM docker.io/library/busybox:latest")
            .unwrap();
        p.started(1, "[2/2] RUN echo hi", ms(0)).unwrap();
        p.log(1, false, b"hi\nthere", ms(123)).unwrap();
        p.log(1, false, b" you\n", ms(200)).unwrap();
        p.done(1, 1.234, ms(300)).unwrap();
        assert_eq!(
            text(p),
            "#1 [1/2] FROM docker.io/library/busybox:latest\n#1 CACHED\n\n\
             #2 [2/2] RUN echo hi\n#2 0.123 hi\n#2 0.200 there you\n#2 DONE 1.2s\n\n"
        );
    }

    #[test]
    fn interleaved_output_repeats_the_header() {
        let t0 = Instant::now();
        let mut p = Plain::new(Vec::new());
        p.started(5, "[a 1/1] RUN a", t0).unwrap();
        p.started(6, "[b 1/1] RUN b", t0).unwrap();
        p.log(5, true, b"from a\n", t0).unwrap();
        p.log(6, false, b"from b\n", t0).unwrap();
        p.failed(6, "exit code: 3", t0).unwrap();
        assert_eq!(
            text(p),
            "#1 [a 1/1] RUN a\n#2 [b 1/1] RUN b\n#1 [a 1/1] RUN a\n#1 0.000 from a\n\
             #2 [b 1/1] RUN b\n#2 0.000 from b\n#2 ERROR: exit code: 3\n\n"
        );
    }

    #[test]
    fn a_partial_line_is_flushed_when_the_vertex_ends() {
        let t0 = Instant::now();
        let mut p = Plain::new(Vec::new());
        p.started(0, "RUN printf x", t0).unwrap();
        p.log(0, false, b"no newline", t0).unwrap();
        p.failed(0, "boom", t0).unwrap();
        assert_eq!(
            text(p),
            "#1 RUN printf x\n#1 0.000 no newline\n#1 ERROR: boom\n\n"
        );
    }

    #[test]
    fn status_lines_have_no_timestamp() {
        let t0 = Instant::now();
        let mut p = Plain::new(Vec::new());
        p.started(9, "exporting to image", t0).unwrap();
        p.status(9, "writing image sha256:abc done").unwrap();
        p.done(9, 0.0, t0).unwrap();
        assert_eq!(
            text(p),
            "#1 exporting to image\n#1 writing image sha256:abc done\n#1 DONE 0.0s\n\n"
        );
    }
}
