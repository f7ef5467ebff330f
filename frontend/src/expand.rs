//! Word expansion as BuildKit's `shell/lex.go` does it: `$a`, `${a}`,
//! `${a:-w}` `${a-w}` `${a:+w}` `${a+w}` `${a:?m}` `${a?m}`, pattern
//! removal `${a#p}` `${a##p}` `${a%p}` `${a%%p}`, replacement `${a/p/r}`
//! `${a//p/r}` (patterns: `*`, `?`), the escape character, single quotes
//! (literal) and double quotes (expansions, no splitting).
//!
//! Quotes are removed by expansion. [`word`] yields one string;
//! [`words`] also splits on blanks outside quotes (EXPOSE); [`heredoc`]
//! treats quotes as ordinary characters (COPY heredoc bodies).

/// Why a word could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// `'…` never closed.
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    /// `"…` never closed.
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    /// `${…` never closed.
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// `${}` or `${!x}`: no variable name.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// `${a@x}`, `${a:#p}` and other modifiers Docker does not have;
    /// holds what was written after the name (`@`, `:#`), as BuildKit
    /// shows it.
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// `${a/p}`: a replacement needs the second `/` (BuildKit's words).
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// `${a#\d}`: in a pattern only `\*`, `\?`, `\\`, `\}` and `\/`
    /// are escapes.
    #[error("invalid pattern ({pattern}) in substitution: invalid escape '\\{escaped}'")]
    InvalidPattern {
        /// The pattern as written (escapes kept).
        pattern: String,
        /// The character after the backslash (empty at the end).
        escaped: String,
    },
    /// `${a:?message}` with `a` unset (or empty).
    #[error("{name}: {message}")]
    Required {
        /// The variable.
        name: String,
        /// The message from the Dockerfile, or a default.
        message: String,
    },
}

/// Expands one word (no splitting).
///
/// # Errors
/// See [`ExpandError`].
pub fn word(
    text: &str,
    escape: char,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut lexer = Lexer::new(text, escape, env, false);
    let mut sink = Sink::single();
    lexer.run(&[], &mut sink)?;
    Ok(sink.into_single())
}

/// Expands a word and splits the result on blanks outside quotes (an
/// unquoted variable holding `80 443` gives two words).
///
/// # Errors
/// See [`ExpandError`].
pub fn words(
    text: &str,
    escape: char,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, ExpandError> {
    let mut lexer = Lexer::new(text, escape, env, false);
    let mut sink = Sink::split();
    lexer.run(&[], &mut sink)?;
    Ok(sink.into_words())
}

/// Expands a heredoc body: `$VAR`s and escapes only; quotes are text.
///
/// # Errors
/// See [`ExpandError`].
pub fn heredoc(
    text: &str,
    escape: char,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut lexer = Lexer::new(text, escape, env, true);
    let mut sink = Sink::single();
    lexer.run(&[], &mut sink)?;
    Ok(sink.into_single())
}

/// Where expanded characters go.
enum Sink {
    Single(String),
    Split {
        words: Vec<String>,
        cur: String,
        started: bool,
    },
}

impl Sink {
    fn single() -> Sink {
        Sink::Single(String::new())
    }

    fn split() -> Sink {
        Sink::Split {
            words: Vec::new(),
            cur: String::new(),
            started: false,
        }
    }

    /// A character that is not subject to splitting (quoted or escaped).
    fn literal(&mut self, c: char) {
        match self {
            Sink::Single(s) => s.push(c),
            Sink::Split { cur, started, .. } => {
                cur.push(c);
                *started = true;
            }
        }
    }

    /// Marks that a word exists even if empty (`""`).
    fn mark(&mut self) {
        if let Sink::Split { started, .. } = self {
            *started = true;
        }
    }

    /// One character subject to splitting on blanks (without the
    /// allocation of a one-character string: this is the per-character path).
    fn splittable_char(&mut self, c: char) {
        match self {
            Sink::Single(s) => s.push(c),
            Sink::Split { .. } => {
                let mut buf = [0u8; 4];
                self.splittable(c.encode_utf8(&mut buf));
            }
        }
    }

    /// Text subject to splitting on blanks.
    fn splittable(&mut self, text: &str) {
        match self {
            Sink::Single(s) => s.push_str(text),
            Sink::Split {
                words,
                cur,
                started,
            } => {
                for c in text.chars() {
                    if c == ' ' || c == '\t' || c == '\n' {
                        if *started {
                            words.push(std::mem::take(cur));
                            *started = false;
                        }
                    } else {
                        cur.push(c);
                        *started = true;
                    }
                }
            }
        }
    }

    fn into_single(self) -> String {
        match self {
            Sink::Single(s) => s,
            Sink::Split { .. } => unreachable!("single sink expected"),
        }
    }

    fn into_words(self) -> Vec<String> {
        match self {
            Sink::Split {
                mut words,
                cur,
                started,
            } => {
                if started {
                    words.push(cur);
                }
                words
            }
            Sink::Single(s) => vec![s],
        }
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// Heredoc bodies: quotes are not special.
    heredoc: bool,
    /// Inside `${a#p}` / `${a/p/r}` patterns: escapes are kept, for the
    /// pattern matcher to read (BuildKit's `rawEscapes`).
    raw_escapes: bool,
}

impl<'a> Lexer<'a> {
    fn new(
        text: &str,
        escape: char,
        env: &'a dyn Fn(&str) -> Option<String>,
        heredoc: bool,
    ) -> Self {
        Lexer {
            chars: text.chars().collect(),
            pos: 0,
            escape,
            env,
            heredoc,
            raw_escapes: false,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Processes until EOF or one of `stops` (not consumed) at top level.
    fn run(&mut self, stops: &[char], sink: &mut Sink) -> Result<(), ExpandError> {
        while let Some(c) = self.peek() {
            if stops.contains(&c) {
                return Ok(());
            }
            match c {
                '\'' if !self.heredoc => {
                    self.pos += 1;
                    sink.mark();
                    loop {
                        match self.peek() {
                            None => return Err(ExpandError::UnterminatedSingleQuote),
                            Some('\'') => break,
                            Some(q) => sink.literal(q),
                        }
                        self.pos += 1;
                    }
                    self.pos += 1;
                }
                '"' if !self.heredoc => {
                    self.pos += 1;
                    sink.mark();
                    self.double_quoted(sink)?;
                }
                '$' => {
                    let value = self.dollar()?;
                    match value {
                        Some(v) => sink.splittable(&v),
                        None => sink.literal('$'),
                    }
                }
                _ if c == self.escape => {
                    self.pos += 1;
                    match self.peek() {
                        Some(n) if self.raw_escapes => {
                            sink.literal(c);
                            sink.literal(n);
                            self.pos += 1;
                        }
                        Some(n) if self.heredoc && n != '$' && n != self.escape => {
                            sink.literal(c);
                        }
                        Some(n) => {
                            sink.literal(n);
                            self.pos += 1;
                        }
                        // A trailing escape character is dropped.
                        None => {}
                    }
                }
                _ => {
                    sink.splittable_char(c);
                    self.pos += 1;
                }
            }
        }
        Ok(())
    }

    /// After the opening `"`: up to and including the closing one.
    fn double_quoted(&mut self, sink: &mut Sink) -> Result<(), ExpandError> {
        loop {
            match self.peek() {
                None => return Err(ExpandError::UnterminatedDoubleQuote),
                Some('"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some('$') => match self.dollar()? {
                    Some(v) => v.chars().for_each(|c| sink.literal(c)),
                    None => sink.literal('$'),
                },
                Some(c) if c == self.escape => {
                    self.pos += 1;
                    match self.peek() {
                        Some(n) if n == '"' || n == '$' || n == self.escape => {
                            sink.literal(n);
                            self.pos += 1;
                        }
                        _ => sink.literal(c),
                    }
                }
                Some(c) => {
                    sink.literal(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    /// A sub-word inside `${…}` up to one of `stops` (not consumed).
    fn sub_word(&mut self, stops: &[char]) -> Result<String, ExpandError> {
        let mut sink = Sink::single();
        self.run(stops, &mut sink)?;
        Ok(sink.into_single())
    }

    /// A pattern inside `${…}`, escapes kept, tokenised.
    fn pattern(&mut self, stops: &[char]) -> Result<Vec<Tok>, ExpandError> {
        let outer = std::mem::replace(&mut self.raw_escapes, true);
        let text = self.sub_word(stops);
        self.raw_escapes = outer;
        tokens(&text?)
    }

    fn lookup(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    /// At a `$`: the expansion, or `None` when the `$` is literal.
    fn dollar(&mut self) -> Result<Option<String>, ExpandError> {
        self.pos += 1;
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                self.braced().map(Some)
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let name = self.name();
                Ok(Some(self.lookup(&name).unwrap_or_default()))
            }
            Some(c) if c.is_ascii_digit() => {
                // Positional parameters are never set in a Dockerfile.
                self.pos += 1;
                Ok(Some(String::new()))
            }
            _ => Ok(None),
        }
    }

    /// After `${`: up to and including `}`.
    fn braced(&mut self) -> Result<String, ExpandError> {
        let name = self.name();
        if name.is_empty() {
            return Err(match self.peek() {
                None => ExpandError::MissingBrace,
                _ => ExpandError::BadSubstitution,
            });
        }
        let value = self.lookup(&name);
        let Some(c) = self.peek() else {
            return Err(ExpandError::MissingBrace);
        };
        self.pos += 1;
        let result = match c {
            '}' => return Ok(value.unwrap_or_default()),
            ':' => {
                let Some(m) = self.peek() else {
                    return Err(ExpandError::MissingBrace);
                };
                self.pos += 1;
                // BuildKit rejects `${a:#p}` / `${a:%p}` before reading on;
                // other unknown modifiers after the word.
                if matches!(m, '#' | '%') {
                    return Err(ExpandError::UnsupportedModifier(format!(":{m}")));
                }
                let w = self.sub_word(&['}'])?;
                if self.peek() != Some('}') {
                    return Err(ExpandError::MissingBrace);
                }
                if !matches!(m, '-' | '+' | '?') {
                    return Err(ExpandError::UnsupportedModifier(format!(":{m}")));
                }
                self.apply(&name, m, true, value, w)?
            }
            '-' | '+' | '?' => {
                let w = self.sub_word(&['}'])?;
                self.apply(&name, c, false, value, w)?
            }
            '#' | '%' => {
                let longest = self.peek() == Some(c);
                if longest {
                    self.pos += 1;
                }
                let pattern = self.pattern(&['}'])?;
                let v = value.unwrap_or_default();
                if c == '#' {
                    remove_prefix(&v, &pattern, longest)
                } else {
                    remove_suffix(&v, &pattern, longest)
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                // As in BuildKit: the pattern runs to the next unescaped
                // `/` (a `}` does not end it), and the replacement keeps
                // its escapes as written (`${a//\//\/}` gives `\/`s).
                let pattern = self.pattern(&['/'])?;
                if self.peek() != Some('/') {
                    return Err(ExpandError::MissingSlash);
                }
                self.pos += 1;
                let outer = std::mem::replace(&mut self.raw_escapes, true);
                let replacement = self.sub_word(&['}']);
                self.raw_escapes = outer;
                replace(&value.unwrap_or_default(), &pattern, &replacement?, all)
            }
            other => return Err(ExpandError::UnsupportedModifier(other.to_string())),
        };
        if self.peek() != Some('}') {
            return Err(ExpandError::MissingBrace);
        }
        self.pos += 1;
        Ok(result)
    }

    /// `-`, `+`, `?`; `null_is_unset` for the `:` forms, where an empty
    /// value counts as unset.
    fn apply(
        &self,
        name: &str,
        modifier: char,
        null_is_unset: bool,
        value: Option<String>,
        word: String,
    ) -> Result<String, ExpandError> {
        let empty = value.as_deref() == Some("");
        let set = value.is_some() && !(null_is_unset && empty);
        Ok(match modifier {
            '-' if set => value.unwrap_or_default(),
            '-' => word,
            '+' if set => word,
            '+' => String::new(),
            _ if set => value.unwrap_or_default(),
            _ => {
                // BuildKit tells an unset variable from an empty one.
                let default = if value.is_some() {
                    "is not allowed to be empty"
                } else {
                    "is not allowed to be unset"
                };
                return Err(ExpandError::Required {
                    name: name.to_string(),
                    message: if word.is_empty() {
                        default.to_string()
                    } else {
                        word
                    },
                });
            }
        })
    }
}

/// One element of a `${a#p}` pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    /// `*`: any run of characters.
    Star,
    /// `?`: one character.
    Any,
    /// A character matched as itself (`\*` is a literal star).
    Lit(char),
}

/// A pattern as BuildKit reads it: `*` and `?` are wildcards; `\*`, `\?`
/// and `\\` are those characters; `\}` and `\/` are `}` and `/`; any
/// other backslash is an error.
fn tokens(pattern: &str) -> Result<Vec<Tok>, ExpandError> {
    let mut out = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(match c {
            '*' => Tok::Star,
            '?' => Tok::Any,
            '\\' => match chars.next() {
                Some(n @ ('*' | '?' | '\\' | '}' | '/')) => Tok::Lit(n),
                other => {
                    return Err(ExpandError::InvalidPattern {
                        pattern: pattern.to_string(),
                        escaped: other.map(String::from).unwrap_or_default(),
                    })
                }
            },
            c => Tok::Lit(c),
        });
    }
    Ok(out)
}

/// Shell glob match of the whole of `s` against `p` (`*`, `?`). Iterative
/// with one backtrack point, so many `*`s cannot make it exponential.
fn glob(p: &[Tok], s: &[char]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(Tok::Star) => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(Tok::Any) => {
                pi += 1;
                si += 1;
            }
            Some(&Tok::Lit(c)) if c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&t| t == Tok::Star)
}

fn remove_prefix(value: &str, p: &[Tok], longest: bool) -> String {
    let v: Vec<char> = value.chars().collect();
    let mut ends: Box<dyn Iterator<Item = usize>> = if longest {
        Box::new((0..=v.len()).rev())
    } else {
        Box::new(0..=v.len())
    };
    match ends.find(|&i| glob(p, &v[..i])) {
        Some(i) => v[i..].iter().collect(),
        None => value.to_string(),
    }
}

fn remove_suffix(value: &str, p: &[Tok], longest: bool) -> String {
    let v: Vec<char> = value.chars().collect();
    let mut starts: Box<dyn Iterator<Item = usize>> = if longest {
        Box::new(0..=v.len())
    } else {
        Box::new((0..=v.len()).rev())
    };
    match starts.find(|&i| glob(p, &v[i..])) {
        Some(i) => v[..i].iter().collect(),
        None => value.to_string(),
    }
}

/// `${a/p/r}` (first match) and `${a//p/r}` (every match), with Go's
/// `regexp` semantics that BuildKit inherits: the leftmost match, as long
/// as the wildcards allow; a pattern that matches the empty string matches
/// between characters too (`${a/$EMPTY/x}` prepends `x`), but never right
/// after the previous match.
fn replace(value: &str, p: &[Tok], replacement: &str, all: bool) -> String {
    let v: Vec<char> = value.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut last_end: Option<usize> = None;
    while i <= v.len() {
        let found = (i..=v.len()).rev().find(|&e| glob(p, &v[i..e]));
        if let Some(end) = found {
            if end > i || last_end != Some(i) {
                out.push_str(replacement);
                last_end = Some(end);
                if !all {
                    out.extend(&v[end..]);
                    return out;
                }
                if end > i {
                    i = end;
                    continue;
                }
            }
        }
        if let Some(&c) = v.get(i) {
            out.push(c);
        }
        i += 1;
    }
    out
}

#[cfg(test)]
#[path = "expand_tests.rs"]
mod tests;
