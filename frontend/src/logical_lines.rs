//! The hand-written pre-pass: physical lines → logical instruction lines.
//!
//! This is the part of Dockerfile syntax a PEG handles badly because it
//! depends on state: the escape character chosen by a directive, CRLF,
//! comments, line continuations (where comment and empty lines *inside* a
//! continuation are skipped, as BuildKit does), and heredoc bodies that
//! follow the line that opens them. The result keeps a map from every byte
//! of the joined text back to the source, so that the grammar's spans can
//! be reported as file positions.

use crate::ast::Heredoc;
use crate::error::{Error, ErrorKind, Source, Span, Warning};
use crate::heredoc;

/// One instruction as the grammar sees it.
#[derive(Clone, Debug)]
pub(crate) struct LogicalLine {
    /// The instruction text with continuations joined (escape character and
    /// newline removed), without heredoc bodies.
    pub text: String,
    /// `(offset in text, offset in source)` at the start of every physical
    /// piece, ascending.
    pub segments: Vec<(usize, usize)>,
    /// Heredoc bodies opened by this line, in order.
    pub heredocs: Vec<Heredoc>,
    /// 1-based number and source offset of the physical line the
    /// instruction starts on: positions without rescanning the source.
    pub first_line: (usize, usize),
    /// Source offset just past the instruction (including heredoc bodies).
    pub end: usize,
}

impl LogicalLine {
    /// Source offset of a byte offset in `text`.
    pub fn source_offset(&self, text_offset: usize) -> usize {
        let i = self
            .segments
            .partition_point(|&(t, _)| t <= text_offset)
            .saturating_sub(1);
        let (t, s) = self.segments[i];
        s + (text_offset - t)
    }

    /// Source span of a byte range in `text`.
    pub fn source_span(&self, range: std::ops::Range<usize>) -> Span {
        let start = self.source_offset(range.start);
        let end = if range.end > range.start {
            self.source_offset(range.end - 1) + 1
        } else {
            start
        };
        start..end
    }
}

/// A physical line: its start offset and its content without the line end.
struct Physical<'a> {
    start: usize,
    content: &'a str,
}

fn physical_lines(text: &str, base: usize) -> Vec<Physical<'_>> {
    let mut out = Vec::new();
    let mut pos = base;
    for raw in text.split_inclusive('\n') {
        let content = raw.strip_suffix('\n').unwrap_or(raw);
        let content = content.strip_suffix('\r').unwrap_or(content);
        out.push(Physical {
            start: pos,
            content,
        });
        pos += raw.len();
    }
    out
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// The line without a trailing escape character (and blanks after it), if
/// it continues on the next line.
fn strip_continuation(line: &str, escape: char) -> Option<&str> {
    line.trim_end_matches([' ', '\t']).strip_suffix(escape)
}

/// Heredocs are only read for the instructions that take them.
fn takes_heredocs(text: &str) -> bool {
    let keyword = text.split_whitespace().next().unwrap_or("");
    ["RUN", "COPY", "ADD"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(keyword))
}

/// Splits `src.text[start..]` into logical lines.
///
/// # Errors
/// An unterminated heredoc.
pub(crate) fn split(
    src: &Source<'_>,
    start: usize,
    escape: char,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<LogicalLine>, Error> {
    let lines = physical_lines(&src.text[start..], start);
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let first = &lines[i];
        i += 1;
        let trimmed = first.content.trim_start();
        if trimmed.is_empty() || is_comment(trimmed) {
            continue;
        }
        let lead = first.content.len() - trimmed.len();
        let mut line = LogicalLine {
            text: String::new(),
            segments: Vec::new(),
            heredocs: Vec::new(),
            first_line: (i, first.start),
            end: first.start + first.content.len(),
        };
        let mut piece = trimmed;
        let mut piece_start = first.start + lead;
        let mut empty_continuation = false;
        loop {
            let cont = strip_continuation(piece, escape);
            line.segments.push((line.text.len(), piece_start));
            line.text.push_str(cont.unwrap_or(piece));
            if cont.is_none() {
                break;
            }
            // Inside a continuation, comment lines and empty lines are
            // skipped (BuildKit warns about the empty ones).
            let mut next = None;
            while i < lines.len() {
                let l = &lines[i];
                i += 1;
                if is_comment(l.content) {
                    continue;
                }
                if l.content.trim().is_empty() {
                    empty_continuation = true;
                    continue;
                }
                next = Some(l);
                break;
            }
            let Some(next) = next else { break };
            piece = next.content;
            piece_start = next.start;
            line.end = next.start + next.content.len();
        }
        if empty_continuation {
            warnings.push(src.warning(
                "NoEmptyContinuation",
                Some(first.start + lead),
                "Empty continuation line".to_string(),
            ));
        }
        if takes_heredocs(&line.text) {
            for marker in heredoc::markers(&line.text, escape) {
                let span = line.source_span(marker.range.clone());
                let mut body = String::new();
                let mut terminated = false;
                while i < lines.len() {
                    let l = &lines[i];
                    i += 1;
                    line.end = l.start + l.content.len();
                    let candidate = if marker.chomp {
                        l.content.trim_start_matches('\t')
                    } else {
                        l.content
                    };
                    if candidate == marker.name {
                        terminated = true;
                        break;
                    }
                    body.push_str(l.content);
                    body.push('\n');
                }
                if !terminated {
                    return Err(src
                        .error(ErrorKind::Syntax, span, "unterminated heredoc")
                        .with_help(format!(
                            "the heredoc body must end with a line holding only `{}`",
                            marker.name
                        )));
                }
                line.heredocs.push(Heredoc {
                    name: marker.name,
                    body,
                    expand: marker.expand,
                    chomp: marker.chomp,
                    span,
                });
            }
        }
        out.push(line);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, escape: char) -> (Vec<LogicalLine>, Vec<Warning>) {
        let src = Source { file: "D", text };
        let mut w = Vec::new();
        let lines = split(&src, 0, escape, &mut w).unwrap();
        (lines, w)
    }

    fn texts(text: &str, escape: char) -> Vec<String> {
        run(text, escape).0.into_iter().map(|l| l.text).collect()
    }

    #[test]
    fn joins_and_skips() {
        let cases: &[(&str, char, &[&str])] = &[
            ("FROM a\nRUN x\n", '\\', &["FROM a", "RUN x"]),
            (
                "FROM a\r\nRUN x \\\r\n  y\r\n",
                '\\',
                &["FROM a", "RUN x   y"],
            ),
            ("# c\n\n  FROM a  \n", '\\', &["FROM a  "]),
            ("RUN a \\\n# comment\n b\n", '\\', &["RUN a  b"]),
            ("RUN a \\  \n\n b\n", '\\', &["RUN a  b"]),
            ("RUN a `\n b\n", '`', &["RUN a  b"]),
            ("RUN a \\\n b\n", '`', &["RUN a \\", "b"]),
            ("RUN a \\", '\\', &["RUN a "]),
        ];
        for (text, esc, want) in cases {
            assert_eq!(texts(text, *esc), *want, "{text:?}");
        }
    }

    #[test]
    fn empty_continuation_warns() {
        let (_, w) = run("RUN a \\\n\n b\n", '\\');
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].line, 1);
    }

    #[test]
    fn offsets_map_back() {
        let text = "FROM a\nRUN x \\\n  yz\n";
        let (lines, _) = run(text, '\\');
        let l = &lines[1];
        let at = l.text.find("yz").unwrap();
        assert_eq!(&text[l.source_offset(at)..l.source_offset(at) + 2], "yz");
    }

    #[test]
    fn heredocs() {
        let text = "RUN <<A cat - <<-B\none\nA\n\ttwo\n\tB\nFROM x\n";
        let (lines, _) = run(text, '\\');
        assert_eq!(lines.len(), 2);
        let h = &lines[0].heredocs;
        assert_eq!(h[0].name, "A");
        assert_eq!(h[0].body, "one\n");
        assert_eq!(h[1].body, "\ttwo\n");
        assert!(h[1].chomp);
        assert_eq!(lines[1].text, "FROM x");
    }

    #[test]
    fn heredoc_only_for_run_copy_add() {
        assert_eq!(
            texts("LABEL a=<<EOF\nRUN x\n", '\\'),
            ["LABEL a=<<EOF", "RUN x"]
        );
    }

    #[test]
    fn unterminated_heredoc() {
        let text = "FROM a\nRUN <<EOF\necho never\n";
        let src = Source { file: "D", text };
        let e = split(&src, 0, '\\', &mut Vec::new()).unwrap_err();
        assert_eq!(e.to_string(), "D:2:5: unterminated heredoc");
    }
}
