//! The pest grammar (`dockerfile.pest`) and thin typed wrappers around its
//! rules. Every wrapper returns byte ranges into the text it was given.

use std::ops::Range;

use pest::Parser;
use pest_derive::Parser;

#[derive(Parser)]
#[grammar = "dockerfile.pest"]
struct DockerfileParser;

/// A `--name[=value]` flag as the grammar saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawFlag {
    pub name: String,
    /// Quotes removed.
    pub value: Option<String>,
    pub range: Range<usize>,
}

/// A logical line split into keyword, leading flags and the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub keyword: String,
    pub keyword_range: Range<usize>,
    pub flags: Vec<RawFlag>,
    /// The rest, trimmed.
    pub rest: String,
    pub rest_range: Range<usize>,
}

/// Removes the quotes of a flag value (`--from="a b"` → `a b`), as
/// BuildKit's flag extraction does.
fn unquote(value: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    for c in value.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            None if c == '"' || c == '\'' => quote = Some(c),
            _ => out.push(c),
        }
    }
    out
}

/// Splits an instruction line. Never fails for a line that starts with a
/// non-blank character (which the pre-pass guarantees).
pub(crate) fn line(text: &str) -> Option<Line> {
    let pair = DockerfileParser::parse(Rule::instruction, text)
        .ok()?
        .next()?;
    let mut out = Line {
        keyword: String::new(),
        keyword_range: 0..0,
        flags: Vec::new(),
        rest: String::new(),
        rest_range: text.len()..text.len(),
    };
    for p in pair.into_inner() {
        let span = p.as_span();
        match p.as_rule() {
            Rule::keyword => {
                out.keyword = p.as_str().to_string();
                out.keyword_range = span.start()..span.end();
            }
            Rule::flag => {
                let mut name = String::new();
                let mut value = None;
                for part in p.into_inner() {
                    match part.as_rule() {
                        Rule::flag_name => name = part.as_str().to_string(),
                        Rule::flag_value => value = Some(unquote(part.as_str())),
                        _ => {}
                    }
                }
                out.flags.push(RawFlag {
                    name,
                    value,
                    range: span.start()..span.end(),
                });
            }
            Rule::rest => {
                let raw = p.as_str();
                let trimmed = raw.trim_end();
                out.rest = trimmed.to_string();
                out.rest_range = span.start()..span.start() + trimmed.len();
            }
            _ => {}
        }
    }
    Some(out)
}

/// `["a", "b"]` → the strings, or `None` when the text is not a JSON array
/// of strings (then Docker uses the shell form).
pub(crate) fn json_array(text: &str) -> Option<Vec<String>> {
    let pair = DockerfileParser::parse(Rule::json_array, text)
        .ok()?
        .next()?;
    pair.into_inner()
        .filter(|p| p.as_rule() == Rule::json_string)
        .map(|p| serde_json::from_str::<String>(p.as_str()).ok())
        .collect()
}

/// Words split on blanks outside quotes, quotes and escapes kept.
pub(crate) fn escaped_words(text: &str, escape: char) -> Vec<Range<usize>> {
    let mut input = String::with_capacity(text.len() + 1);
    input.push(escape);
    input.push_str(text);
    let shift = escape.len_utf8();
    let Ok(mut pairs) = DockerfileParser::parse(Rule::escaped_words, &input) else {
        return Vec::new();
    };
    let Some(top) = pairs.next() else {
        return Vec::new();
    };
    top.into_inner()
        .filter(|p| p.as_rule() == Rule::word)
        .map(|p| p.as_span().start() - shift..p.as_span().end() - shift)
        .collect()
}

/// Words split on blanks only.
pub(crate) fn plain_words(text: &str) -> Vec<Range<usize>> {
    let Ok(mut pairs) = DockerfileParser::parse(Rule::plain_words, text) else {
        return Vec::new();
    };
    let Some(top) = pairs.next() else {
        return Vec::new();
    };
    top.into_inner()
        .filter(|p| p.as_rule() == Rule::plain_word)
        .map(|p| p.as_span().start()..p.as_span().end())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str, esc: char) -> Vec<&str> {
        escaped_words(text, esc)
            .into_iter()
            .map(|r| &text[r])
            .collect()
    }

    #[test]
    fn lines() {
        let l = line("COPY --from=build --chown=\"a b\" --link -- --x /y  ").unwrap();
        assert_eq!(l.keyword, "COPY");
        let names: Vec<_> = l.flags.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["from", "chown", "link"]);
        assert_eq!(l.flags[1].value.as_deref(), Some("a b"));
        assert_eq!(l.flags[2].value, None);
        assert_eq!(l.rest, "--x /y");
        let l = line("run").unwrap();
        assert_eq!((l.keyword.as_str(), l.rest.as_str()), ("run", ""));
        let l = line("RUN --mount=type=cache,target=/c echo --not-a-flag").unwrap();
        assert_eq!(l.flags.len(), 1);
        assert_eq!(l.rest, "echo --not-a-flag");
    }

    #[test]
    fn json() {
        let cases: &[(&str, Option<&[&str]>)] = &[
            (r#"["a", "b c"]"#, Some(&["a", "b c"])),
            (r#"  [ "x\"y" ,"\u00e9" ]  "#, Some(&["x\"y", "é"])),
            ("[]", Some(&[])),
            (r#"["echo", 'single']"#, None),
            ("[not json", None),
            (r#"["a", 1]"#, None),
            ("echo [a]", None),
        ];
        for (text, want) in cases {
            let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(json_array(text), want, "{text}");
        }
    }

    #[test]
    fn word_splitting() {
        assert_eq!(
            words(r#"a=1 b="x y" c='p q'"#, '\\'),
            ["a=1", r#"b="x y""#, "c='p q'"]
        );
        assert_eq!(words(r"a=x\ y b", '\\'), [r"a=x\ y", "b"]);
        assert_eq!(words("a=x` y b", '`'), ["a=x` y", "b"]);
        assert_eq!(words(r#"a="open b"#, '\\'), [r#"a="open b"#]);
        assert_eq!(words("   ", '\\'), Vec::<&str>::new());
        let text = "a  \"b c\"";
        let got: Vec<_> = plain_words(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(got, ["a", "\"b", "c\""]);
    }
}
