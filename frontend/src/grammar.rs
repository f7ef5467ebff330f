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
    // Most lines have no flags: then the grammar would only find the
    // keyword, so split it off by hand and keep the parser for flags.
    let lead = text.len() - text.trim_start_matches([' ', '\t']).len();
    let kw_len = text[lead..].find([' ', '\t']).unwrap_or(text.len() - lead);
    let after = &text[lead + kw_len..];
    let rest_start = text.len() - after.trim_start_matches([' ', '\t']).len();
    if kw_len > 0 && !text[rest_start..].starts_with("--") {
        let trimmed = text[rest_start..].trim_end();
        return Some(Line {
            keyword: text[lead..lead + kw_len].to_string(),
            keyword_range: lead..lead + kw_len,
            flags: Vec::new(),
            rest: trimmed.to_string(),
            rest_range: rest_start..rest_start + trimmed.len(),
        });
    }
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
    let rest_start = pair.as_span().end();
    let raw = &text[rest_start..];
    let trimmed = raw.trim_end();
    out.rest = trimmed.to_string();
    out.rest_range = rest_start..rest_start + trimmed.len();
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

/// Words split on blanks outside quotes, quotes and escapes kept (ENV,
/// LABEL, ARG). A quote that is never closed runs to the end of the line;
/// the escape character escapes the next character, also inside double
/// quotes, never inside single quotes. Hand-written (it was a pest rule):
/// it runs on every ENV/LABEL/ARG, and a per-character parser made it the
/// slowest part of parsing.
pub(crate) fn escaped_words(text: &str, escape: char) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        if quote.is_none() && (c == ' ' || c == '\t') {
            if let Some(s) = start.take() {
                out.push(s..i);
            }
            continue;
        }
        start.get_or_insert(i);
        match quote {
            Some('\'') if c == '\'' => quote = None,
            Some('\'') => {}
            _ if c == escape => {
                // An escape at the very end is an ordinary character.
                chars.next();
            }
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None => {}
        }
    }
    if let Some(s) = start {
        out.push(s..text.len());
    }
    out
}

/// Words split on blanks only.
pub(crate) fn plain_words(text: &str) -> Vec<Range<usize>> {
    // Blanks only, no quotes: a split, not a grammar (and the hottest
    // call of lowering, so not worth a parser's per-character cost).
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c == ' ' || c == '\t', start) {
            (true, Some(s)) => {
                out.push(s..i);
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(s..text.len());
    }
    out
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

    /// Regression cases for the hand-written splitters that replaced the
    /// slow per-character grammar rules (same results as the rules gave).
    #[test]
    fn hand_written_splitters_keep_the_grammar_semantics() {
        let cases: &[(&str, char, &[&str])] = &[
            (r#"a="x \" y" b"#, '\\', &[r#"a="x \" y""#, "b"]),
            ("a=x\\", '\\', &["a=x\\"]),
            ("\ta\t\tb ", '\\', &["a", "b"]),
            ("k='open", '\\', &["k='open"]),
            ("é=ü ö", '\\', &["é=ü", "ö"]),
        ];
        for (text, esc, want) in cases {
            assert_eq!(words(text, *esc), *want, "{text:?}");
        }
        // single quotes: no escapes inside, blanks kept
        assert_eq!(words(r"a='x \' b", '\\'), [r"a='x \'", "b"]);
        let text = "\ta\tb  c ";
        let got: Vec<_> = plain_words(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(got, ["a", "b", "c"]);
        // the no-flag fast path and the grammar agree on keyword and rest
        for text in [
            "RUN echo hi  ",
            "  copy a b",
            "FROM\tx AS y",
            "CMD",
            "RUN -x",
        ] {
            let fast = line(text).unwrap();
            assert!(fast.flags.is_empty(), "{text}");
            assert_eq!(&text[fast.keyword_range.clone()], fast.keyword, "{text}");
            assert_eq!(&text[fast.rest_range.clone()], fast.rest, "{text}");
        }
        let l = line("RUN\t--network=none  echo").unwrap();
        assert_eq!((l.flags.len(), l.rest.as_str()), (1, "echo"));
    }
}
