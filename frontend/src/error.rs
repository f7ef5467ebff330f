//! Dockerfile errors and warnings, with positions.
//!
//! Every error points into the Dockerfile: its `Display` alone reads
//! `Dockerfile:3:1: unknown instruction: COPPY (did you mean COPY?)` (so a
//! plain log line is useful), and as a [`miette::Diagnostic`] it carries the
//! source and a labelled span so that the cli can show the line and a caret.

use std::fmt;
use std::ops::Range;

use miette::{NamedSource, SourceSpan};

/// A byte range in the Dockerfile source.
pub type Span = Range<usize>;

/// What kind of mistake an [`Error`] reports, for callers that branch on it
/// (exit codes, tests) without matching message text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed text: bad directive, unterminated heredoc or quote, wrong
    /// number of arguments.
    Syntax,
    /// An instruction keyword that does not exist.
    UnknownInstruction,
    /// A `--flag` the instruction does not know.
    UnknownFlag,
    /// Valid Dockerfile that bake does not implement yet.
    Unsupported,
    /// `$VAR` expansion failed (`${X:?msg}`, missing `}`, bad modifier).
    Expansion,
    /// A flag or argument value that is not acceptable (`EXPOSE notaport`,
    /// `--chmod=9`, `--network=bogus`).
    InvalidValue,
    /// Stage problems: unknown target, bad `--from`, dependency cycle,
    /// instructions before the first `FROM`.
    Stage,
    /// The image resolver could not resolve a base image.
    Resolve,
}

/// A Dockerfile error with its position. Boxed inside, so that `Result`s
/// stay small on the happy path.
#[derive(Debug)]
pub struct Error(Box<Inner>);

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{}", self.headline())]
struct Inner {
    kind: ErrorKind,
    message: String,
    file: String,
    line: Option<usize>,
    column: Option<usize>,
    #[source_code]
    source_code: NamedSource<String>,
    #[label("here")]
    label: Option<SourceSpan>,
    #[help]
    help: Option<String>,
}

impl Inner {
    fn headline(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{}:{}: {}", self.file, l, c, self.message),
            _ => format!("{}: {}", self.file, self.message),
        }
    }
}

impl Error {
    /// The kind of mistake.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The message without position.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The Dockerfile as the user named it.
    pub fn file(&self) -> &str {
        &self.0.file
    }

    /// 1-based line, when the error has a position.
    pub fn line(&self) -> Option<usize> {
        self.0.line
    }

    /// 1-based column (in characters), when the error has a position.
    pub fn column(&self) -> Option<usize> {
        self.0.column
    }

    /// Adds a hint shown under the diagnostic.
    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.0.help = Some(help.into());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Error {}

impl miette::Diagnostic for Error {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0.help()
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.0.source_code()
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.0.labels()
    }
}

/// Something worth telling the user that does not stop the build (BuildKit's
/// lint warnings and parser warnings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Stable rule name (BuildKit's lint names where one exists), e.g.
    /// `UnusedBuildArg`, `EmptyContinuation`.
    pub code: &'static str,
    /// Human text.
    pub message: String,
    /// The Dockerfile.
    pub file: String,
    /// 1-based line (0 when the warning has no position).
    pub line: usize,
    /// 1-based column (0 when the warning has no position).
    pub column: usize,
}

impl fmt::Display for Warning {
    /// BuildKit's one-line form, as `docker build` prints it during a
    /// build: `WARN: StageNameCasing: Stage name 'Build' should be
    /// lowercase (line 1)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WARN: {}: {}", self.code, self.message)?;
        if self.line != 0 {
            write!(f, " (line {})", self.line)?;
        }
        Ok(())
    }
}

/// The Dockerfile being read: file name and text, so errors can be built
/// with positions anywhere in the crate.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Source<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl<'a> Source<'a> {
    /// 1-based line and character column of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let offset = (0..=offset)
            .rev()
            .find(|&o| self.text.is_char_boundary(o))
            .unwrap_or(0);
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    /// An error at `span`.
    pub fn error(&self, kind: ErrorKind, span: Span, message: impl Into<String>) -> Error {
        let (line, column) = self.position(span.start);
        let start = span.start.min(self.text.len());
        let len = span
            .end
            .saturating_sub(span.start)
            .min(self.text.len() - start);
        Error(Box::new(Inner {
            kind,
            message: message.into(),
            file: self.file.to_string(),
            line: Some(line),
            column: Some(column),
            source_code: NamedSource::new(self.file, self.text.to_string()),
            label: Some(SourceSpan::new(start.into(), len)),
            help: None,
        }))
    }

    /// An error about the Dockerfile as a whole (no position), e.g. an
    /// unknown `--target`.
    pub fn error_at_file(&self, kind: ErrorKind, message: impl Into<String>) -> Error {
        Error(Box::new(Inner {
            kind,
            message: message.into(),
            file: self.file.to_string(),
            line: None,
            column: None,
            source_code: NamedSource::new(self.file, self.text.to_string()),
            label: None,
            help: None,
        }))
    }

    /// A warning at `offset` (or without position when `None`).
    pub fn warning(&self, code: &'static str, offset: Option<usize>, message: String) -> Warning {
        let (line, column) = offset.map_or((0, 0), |o| self.position(o));
        Warning {
            code,
            message,
            file: self.file.to_string(),
            line,
            column,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_file_line_column() {
        let src = Source {
            file: "Dockerfile",
            text: "FROM a\n  COPPY x y\n",
        };
        let e = src.error(
            ErrorKind::UnknownInstruction,
            9..14,
            "unknown instruction: COPPY",
        );
        assert_eq!(e.to_string(), "Dockerfile:2:3: unknown instruction: COPPY");
        let e = src.error_at_file(ErrorKind::Stage, "no target");
        assert_eq!(e.to_string(), "Dockerfile: no target");
    }

    #[test]
    fn columns_count_characters() {
        let src = Source {
            file: "D",
            text: "é\néé x",
        };
        assert_eq!(src.position(7), (2, 3));
    }
}
