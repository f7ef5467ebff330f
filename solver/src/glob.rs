//! Go's `filepath.Match` syntax, plus Docker's `**`, compiled to a small
//! NFA.
//!
//! `*` is any run of non-`/` characters, `?` one non-`/` character,
//! `[…]` a class (`^` negates, `a-z` ranges, `\` escapes), `\x` a literal
//! `x`. With `**` enabled (`.dockerignore`, `--exclude`), `**/` and a `**`
//! inside a pattern match any number of whole path segments (Docker's
//! `(.*/)?`) and a trailing `**` anything at all (`.*`).

/// Why a pattern is malformed (Go's `filepath.ErrBadPattern`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Unterminated class, trailing `\`, bad range.
    #[error("syntax error in pattern `{0}`")]
    BadPattern(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Lit(char),
    /// `*`.
    Star,
    /// `?`.
    Quest,
    /// `[…]`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**/` or a `**` followed by more: `(.*/)?`.
    Segments,
    /// A trailing `**`: `.*`.
    Rest,
}

/// A compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
}

/// An NFA state: a token index, and for [`Token::Segments`] whether it is
/// inside the `.*` part (and may only leave after a `/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct State(usize, bool);

impl Glob {
    /// Compiles `pattern`; `double_star` enables `**`.
    ///
    /// # Errors
    /// [`Error::BadPattern`] like Go's `filepath.Match`.
    pub fn new(pattern: &str, double_star: bool) -> Result<Glob, Error> {
        let bad = || Error::BadPattern(pattern.to_string());
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' if double_star && chars.get(i) == Some(&'*') => {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    if i == chars.len() {
                        tokens.push(Token::Rest);
                    } else {
                        tokens.push(Token::Segments);
                    }
                }
                '*' => tokens.push(Token::Star),
                '?' => tokens.push(Token::Quest),
                '\\' => {
                    let &n = chars.get(i).ok_or_else(bad)?;
                    i += 1;
                    tokens.push(Token::Lit(n));
                }
                '[' => {
                    let negated = chars.get(i) == Some(&'^');
                    if negated {
                        i += 1;
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let &c = chars.get(i).ok_or_else(bad)?;
                        if c == ']' && !first {
                            i += 1;
                            break;
                        }
                        first = false;
                        let lo = class_char(&chars, &mut i).ok_or_else(bad)?;
                        let mut hi = lo;
                        if chars.get(i) == Some(&'-') {
                            i += 1;
                            hi = class_char(&chars, &mut i).ok_or_else(bad)?;
                            if hi < lo {
                                return Err(bad());
                            }
                        }
                        ranges.push((lo, hi));
                    }
                    tokens.push(Token::Class { negated, ranges });
                }
                c => tokens.push(Token::Lit(c)),
            }
        }
        Ok(Glob { tokens })
    }

    /// Whether the pattern has any wildcard (is not a plain literal).
    pub fn has_wildcards(&self) -> bool {
        self.tokens.iter().any(|t| !matches!(t, Token::Lit(_)))
    }

    fn closure(&self, states: &mut Vec<State>) {
        let mut k = 0;
        while k < states.len() {
            let State(t, inner) = states[k];
            let skip = matches!(self.tokens.get(t), Some(Token::Star) | Some(Token::Rest))
                || (matches!(self.tokens.get(t), Some(Token::Segments)) && !inner);
            if skip && !states.contains(&State(t + 1, false)) {
                states.push(State(t + 1, false));
            }
            k += 1;
        }
    }

    fn step(&self, states: &[State], c: char) -> Vec<State> {
        let mut next = Vec::new();
        let add = |s: State, next: &mut Vec<State>| {
            if !next.contains(&s) {
                next.push(s);
            }
        };
        for &State(t, _) in states {
            match self.tokens.get(t) {
                None => {}
                Some(Token::Lit(x)) if *x == c => add(State(t + 1, false), &mut next),
                Some(Token::Lit(_)) => {}
                Some(Token::Quest) if c != '/' => add(State(t + 1, false), &mut next),
                Some(Token::Quest) => {}
                Some(Token::Star) if c != '/' => add(State(t, false), &mut next),
                Some(Token::Star) => {}
                Some(Token::Rest) => add(State(t, false), &mut next),
                Some(Token::Segments) => {
                    add(State(t, true), &mut next);
                    if c == '/' {
                        add(State(t + 1, false), &mut next);
                    }
                }
                Some(Token::Class { negated, ranges }) => {
                    let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                    if inside != *negated {
                        add(State(t + 1, false), &mut next);
                    }
                }
            }
        }
        self.closure(&mut next);
        next
    }

    fn run(&self, s: &str) -> Vec<State> {
        let mut states = vec![State(0, false)];
        self.closure(&mut states);
        for c in s.chars() {
            if states.is_empty() {
                break;
            }
            states = self.step(&states, c);
        }
        states
    }

    /// Whether the whole of `s` matches.
    pub fn matches(&self, s: &str) -> bool {
        let end = self.tokens.len();
        self.run(s).iter().any(|s| s.0 == end)
    }

    /// Whether some string starting with `prefix` (and longer than it)
    /// could match: used to decide whether to walk into an excluded
    /// directory that an exception might re-include something from.
    pub fn could_match_below(&self, prefix: &str) -> bool {
        !self.run(prefix).is_empty()
    }
}

fn class_char(chars: &[char], i: &mut usize) -> Option<char> {
    let c = *chars.get(*i)?;
    *i += 1;
    match c {
        '\\' => {
            let n = *chars.get(*i)?;
            *i += 1;
            Some(n)
        }
        '-' | ']' => None,
        c => Some(c),
    }
}

/// Go's `filepath.Match(pattern, name)`.
///
/// # Errors
/// [`Error::BadPattern`].
pub fn go_match(pattern: &str, name: &str) -> Result<bool, Error> {
    Ok(Glob::new(pattern, false)?.matches(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_filepath_match_table() {
        // From Go's path/filepath match_test.go.
        let cases: &[(&str, &str, Result<bool, ()>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("a[^a]b", "a☺b", Ok(true)),
            ("a???b", "a☺b", Ok(false)),
            ("a[^a][^a][^a]b", "a☺b", Ok(false)),
            ("[a-ζ]*", "α", Ok(true)),
            ("*[a-ζ]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", Err(())),
            ("[-]", "-", Err(())),
            ("[x-]", "x", Err(())),
            ("[-x]", "x", Err(())),
            ("\\", "a", Err(())),
            ("[a-b-c]", "a", Err(())),
            ("[", "a", Err(())),
            ("[^", "a", Err(())),
            ("[^bc", "a", Err(())),
            ("a[", "ab", Err(())),
            ("*x", "xxx", Ok(true)),
        ];
        for (p, s, want) in cases {
            let got = go_match(p, s).map_err(|_| ());
            assert_eq!(&got, want, "Match({p:?}, {s:?})");
        }
    }

    #[test]
    fn double_star() {
        let g = |p: &str| Glob::new(p, true).unwrap();
        assert!(g("**/*.go").matches("a.go"));
        assert!(g("**/*.go").matches("x/y/a.go"));
        assert!(!g("**/*.go").matches("x/y/a.goo"));
        assert!(g("a/**/b").matches("a/b"));
        assert!(g("a/**/b").matches("a/x/y/b"));
        assert!(!g("a/**/b").matches("a/xb"));
        assert!(g("a/**").matches("a/x/y"));
        assert!(g("**").matches("anything/at/all"));
        assert!(g("dir/**").could_match_below("dir/"));
        assert!(g("**/keep").could_match_below("dir/"));
        assert!(!g("other/keep").could_match_below("dir/"));
        assert!(g("d*/keep").could_match_below("dir/"));
    }
}
