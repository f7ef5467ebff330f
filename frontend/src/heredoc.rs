//! Heredoc markers (`<<EOF`, `<<-EOF`, `<<"EOF"`, `2<<'EOF'`) in an
//! instruction line.
//!
//! Like BuildKit, the line is split into shell words (quotes kept, nothing
//! expanded) and every word of the form `[digits]<<[-]word` opens a heredoc.
//! Any quote in the delimiter word means the body is not expanded.

/// A heredoc opener found in a logical line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Marker {
    /// The delimiter, quotes removed.
    pub name: String,
    /// No quote in the delimiter: `$VAR`s in the body are expanded (COPY/ADD).
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from body lines and the delimiter.
    pub chomp: bool,
    /// Byte range of the whole marker word in the line.
    pub range: std::ops::Range<usize>,
}

/// Splits `line` into whitespace-separated words, honouring quotes and the
/// escape character, and returns their byte ranges.
pub(crate) fn shell_words(line: &str, escape: char) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if quote.is_none() && c.is_whitespace() {
            if let Some(s) = start.take() {
                out.push(s..i);
            }
            continue;
        }
        if start.is_none() {
            start = Some(i);
        }
        match quote {
            Some('\'') if c == '\'' => quote = None,
            Some('\'') => {}
            Some(q) if c == q => quote = None,
            _ if c == escape => {
                chars.next();
            }
            None if c == '\'' || c == '"' => quote = Some(c),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(s..line.len());
    }
    out
}

/// Parses one word as a heredoc opener.
pub(crate) fn parse_marker(word: &str) -> Option<(String, bool, bool)> {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let quoted = rest.contains(['\'', '"']);
    let name: String = rest.chars().filter(|&c| c != '\'' && c != '"').collect();
    if name.is_empty() {
        return None;
    }
    Some((name, !quoted, chomp))
}

/// Every heredoc opener in `line`, left to right.
pub(crate) fn markers(line: &str, escape: char) -> Vec<Marker> {
    shell_words(line, escape)
        .into_iter()
        .filter_map(|range| {
            let (name, expand, chomp) = parse_marker(&line[range.clone()])?;
            Some(Marker {
                name,
                expand,
                chomp,
                range,
            })
        })
        .collect()
}

/// The body as the heredoc delivers it: with `<<-`, leading tabs removed
/// from every line.
pub(crate) fn content(body: &str, chomp: bool) -> String {
    if !chomp {
        return body.to_string();
    }
    body.split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_table() {
        type Case<'a> = (&'a str, Option<(&'a str, bool, bool)>);
        let cases: &[Case] = &[
            ("<<EOF", Some(("EOF", true, false))),
            ("<<-EOF", Some(("EOF", true, true))),
            ("<<\"EOF\"", Some(("EOF", false, false))),
            ("<<'EOF'", Some(("EOF", false, false))),
            ("<<-'E'OF", Some(("EOF", false, true))),
            ("2<<EOF", Some(("EOF", true, false))),
            ("<<", None),
            ("<<<EOF", None),
            ("a<<EOF", None),
            ("echo", None),
        ];
        for (word, want) in cases {
            let got = parse_marker(word);
            let want = want.map(|(n, e, c)| (n.to_string(), e, c));
            assert_eq!(got, want, "{word}");
        }
    }

    #[test]
    fn several_markers_and_quotes() {
        let m = markers("cat <<A 'x <<B' <<-B > /f", '\\');
        let names: Vec<_> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["A", "B"]);
        assert!(m[1].chomp);
    }

    #[test]
    fn chomp_strips_tabs() {
        assert_eq!(content("\t\ta\n\tb\n", true), "a\nb\n");
        assert_eq!(content("\ta\n", false), "\ta\n");
    }
}
