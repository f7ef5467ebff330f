//! Parser directives (`# syntax=`, `# escape=`, `# check=`) at the top of a
//! Dockerfile.
//!
//! BuildKit reads directives only from the leading comment lines: the first
//! line that is not a well-formed known directive (an empty line, an
//! ordinary comment, an instruction) ends the search, and a directive after
//! that is an ordinary comment.

use serde::Serialize;

use crate::error::{Error, ErrorKind, Source};

/// The directives of a Dockerfile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Directives {
    /// `# syntax=`: the frontend image BuildKit would use; bake records it
    /// and always parses with its own frontend.
    pub syntax: Option<String>,
    /// `# escape=`: the escape and line-continuation character, `\` or `` ` ``.
    pub escape: char,
    /// `# check=`: lint configuration, recorded as written.
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

/// `# key = value` with a known key, or `None`.
fn directive(line: &str) -> Option<(String, &str)> {
    let rest = line.trim_start().strip_prefix('#')?;
    let (key, value) = rest.split_once('=')?;
    let key = key.trim();
    if key.is_empty()
        || !key.starts_with(|c: char| c.is_ascii_alphabetic())
        || !key.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return None;
    }
    let key = key.to_ascii_lowercase();
    matches!(key.as_str(), "syntax" | "escape" | "check").then_some((key, value.trim()))
}

/// Reads the directives from the start of `text` (a BOM already skipped).
/// `offset` is where `text` starts in the source, for error positions.
///
/// # Errors
/// A directive given twice, or an escape other than `\` and `` ` ``.
pub(crate) fn parse(src: &Source<'_>, text: &str, offset: usize) -> Result<Directives, Error> {
    let mut out = Directives::default();
    let mut seen: Vec<String> = Vec::new();
    let mut pos = offset;
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\n', '\r']);
        let Some((key, value)) = directive(content) else {
            break;
        };
        let span = pos..pos + content.len();
        if seen.contains(&key) {
            return Err(src.error(
                ErrorKind::Syntax,
                span,
                format!("only one {key} parser directive can be used"),
            ));
        }
        match key.as_str() {
            "escape" => {
                out.escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(src.error(
                            ErrorKind::Syntax,
                            span,
                            format!("invalid escape token '{value}' does not match ` or \\"),
                        ))
                    }
                }
            }
            "syntax" => out.syntax = Some(value.to_string()),
            _ => out.check = Some(value.to_string()),
        }
        seen.push(key);
        pos += line.len();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<Directives, Error> {
        let src = Source { file: "D", text };
        parse(&src, text, 0)
    }

    #[test]
    fn table() {
        let cases: &[(&str, char, Option<&str>)] = &[
            ("# escape=`\nFROM a\n", '`', None),
            ("#escape = \\\nFROM a\n", '\\', None),
            (
                "# syntax=docker/dockerfile:1\n# escape=`\n",
                '`',
                Some("docker/dockerfile:1"),
            ),
            // an empty line ends the directives
            ("\n# escape=`\nFROM a\n", '\\', None),
            // an ordinary comment ends them
            ("# hello\n# escape=`\n", '\\', None),
            // after an instruction they are comments
            ("FROM a\n# escape=`\n", '\\', None),
            // unknown directives are comments, and end the search
            ("# foo=bar\n# escape=`\n", '\\', None),
            ("# ESCAPE=`\r\nFROM a\r\n", '`', None),
        ];
        for (text, escape, syntax) in cases {
            let d = run(text).unwrap();
            assert_eq!(d.escape, *escape, "{text:?}");
            assert_eq!(d.syntax.as_deref(), *syntax, "{text:?}");
        }
    }

    #[test]
    fn errors() {
        assert!(run("# escape=x\n")
            .unwrap_err()
            .to_string()
            .contains("invalid escape token"));
        let e = run("# escape=`\n# escape=\\\n").unwrap_err();
        assert_eq!(e.line(), Some(2));
        assert!(e.message().contains("only one escape parser directive"));
    }
}
