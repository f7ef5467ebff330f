//! Table-driven tests of word expansion (in the manner of BuildKit's
//! `envVarTest`).

use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "SET" => Some("value".into()),
        "EMPTY" => Some(String::new()),
        "PATHV" => Some("/usr/local/bin/tool.tar.gz".into()),
        "TWO" => Some("80 443".into()),
        "SP" => Some("a  b".into()),
        _ => None,
    }
}

#[test]
fn word_table() {
    let cases: &[(&str, &str)] = &[
        ("plain", "plain"),
        ("$SET", "value"),
        ("${SET}", "value"),
        ("x${SET}y", "xvaluey"),
        ("$SET.txt", "value.txt"),
        ("$UNSET", ""),
        ("$", "$"),
        ("a$", "a$"),
        ("$-x", "$-x"),
        ("$1", ""),
        // defaults and alternatives
        ("${SET:-def}", "value"),
        ("${EMPTY:-def}", "def"),
        ("${UNSET:-def}", "def"),
        ("${EMPTY-def}", ""),
        ("${UNSET-def}", "def"),
        ("${SET:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${UNSET:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${UNSET:-${SET}}", "value"),
        ("${UNSET:-two words}", "two words"),
        ("${UNSET:-'q}'}", "q}"),
        ("${SET:?boom}", "value"),
        ("${EMPTY?boom}", ""),
        // patterns
        ("${PATHV#*/}", "usr/local/bin/tool.tar.gz"),
        ("${PATHV##*/}", "tool.tar.gz"),
        ("${PATHV%.*}", "/usr/local/bin/tool.tar"),
        ("${PATHV%%.*}", "/usr/local/bin/tool"),
        ("${PATHV%.t?r.gz}", "/usr/local/bin/tool"),
        ("${PATHV#nomatch}", "/usr/local/bin/tool.tar.gz"),
        ("${SET/a/A}", "vAlue"),
        ("${PATHV/\\//:}", ":usr/local/bin/tool.tar.gz"),
        ("${PATHV//\\//:}", ":usr:local:bin:tool.tar.gz"),
        ("${SET/l*/L}", "vaL"),
        ("${SET/x/y}", "value"),
        ("${SET//[/}", "value"),
        // quoting and escapes
        ("'$SET'", "$SET"),
        ("\"$SET\"", "value"),
        ("\"a 'b' $SET\"", "a 'b' value"),
        ("\\$SET", "$SET"),
        ("\"\\$SET\"", "$SET"),
        ("\"a\\\"b\"", "a\"b"),
        ("\"c:\\temp\"", "c:\\temp"),
        ("a\\ b", "a b"),
        ("ab\\", "ab"),
        ("\"\"", ""),
        ("'a'\"b\"c", "abc"),
    ];
    for (input, want) in cases {
        assert_eq!(word(input, '\\', &env).as_deref(), Ok(*want), "{input}");
    }
}

#[test]
fn backtick_escape() {
    let cases: &[(&str, &str)] = &[
        ("`$SET", "$SET"),
        ("C:\\dir\\sub", "C:\\dir\\sub"),
        ("\"c:\\temp\\\"", "c:\\temp\\"),
        ("a` b", "a b"),
    ];
    for (input, want) in cases {
        assert_eq!(word(input, '`', &env).as_deref(), Ok(*want), "{input}");
    }
}

#[test]
fn errors() {
    let cases: &[(&str, ExpandError)] = &[
        ("'abc", ExpandError::UnterminatedSingleQuote),
        ("\"abc", ExpandError::UnterminatedDoubleQuote),
        ("${SET", ExpandError::MissingBrace),
        ("${SET:-x", ExpandError::MissingBrace),
        ("${}", ExpandError::BadSubstitution),
        ("${SET:x}", ExpandError::UnsupportedModifier(":x".into())),
        ("${SET@x}", ExpandError::UnsupportedModifier("@".into())),
        (
            "${UNSET:?need it}",
            ExpandError::Required {
                name: "UNSET".into(),
                message: "need it".into(),
            },
        ),
        (
            "${EMPTY:?}",
            ExpandError::Required {
                name: "EMPTY".into(),
                message: "is not allowed to be empty".into(),
            },
        ),
        (
            "${UNSET?x}",
            ExpandError::Required {
                name: "UNSET".into(),
                message: "x".into(),
            },
        ),
    ];
    for (input, want) in cases {
        assert_eq!(word(input, '\\', &env).as_ref(), Err(want), "{input}");
    }
}

#[test]
fn splitting() {
    let cases: &[(&str, &[&str])] = &[
        ("$TWO", &["80", "443"]),
        ("\"$TWO\"", &["80 443"]),
        ("a b  c", &["a", "b", "c"]),
        ("'a b' c", &["a b", "c"]),
        ("x$SP", &["xa", "b"]),
        ("\"\"", &[""]),
        ("$UNSET", &[]),
        ("a\\ b", &["a b"]),
    ];
    for (input, want) in cases {
        assert_eq!(words(input, '\\', &env).unwrap(), *want, "{input}");
    }
}

#[test]
fn heredoc_bodies() {
    let cases: &[(&str, &str)] = &[
        ("echo \"$SET\" '$SET'\n", "echo \"value\" 'value'\n"),
        ("a \\$SET \\n\n", "a $SET \\n\n"),
        ("${UNSET:-d}\n", "d\n"),
    ];
    for (input, want) in cases {
        assert_eq!(heredoc(input, '\\', &env).as_deref(), Ok(*want), "{input}");
    }
}

/// Regression: `\*` in a `${a#p}` pattern is a literal star, not a
/// wildcard (BuildKit keeps escapes raw in patterns).
#[test]
fn escaped_glob_characters_in_patterns_are_literal() {
    let lookup = |n: &str| match n {
        "STARS" => Some("a*b*c".to_string()),
        "Q" => Some("what?now".to_string()),
        "BS" => Some(r"a\b".to_string()),
        _ => None,
    };
    let cases: &[(&str, &str)] = &[
        (r"${STARS#*\*}", "b*c"),
        (r"${STARS##*\*}", "c"),
        (r"${STARS%\**}", "a*b"),
        (r"${STARS#\*}", "a*b*c"),
        (r"${STARS/\*/-}", "a-b*c"),
        (r"${STARS//\*/-}", "a-b-c"),
        (r"${Q#*\?}", "now"),
        (r"${Q#what?}", "now"),
        (r"${BS#a\\}", "b"),
        (r"${STARS#a\}}", "a*b*c"),
    ];
    for (text, want) in cases {
        assert_eq!(word(text, '\\', &lookup).unwrap(), *want, "{text}");
    }
    let e = word(r"${STARS#\d}", '\\', &lookup).unwrap_err();
    assert_eq!(
        e.to_string(),
        r"invalid pattern (\d) in substitution: invalid escape '\d'"
    );
}

/// `${a:#p}`, `${a:%p}` and friends: BuildKit's lexer rejects `:` before
/// `#`/`%` and names the modifier as written, colon included.
#[test]
fn colon_before_pattern_modifiers_is_an_error_in_buildkit_words() {
    let cases: &[(&str, &str)] = &[
        ("${SET:#v}", "unsupported modifier (:#) in substitution"),
        ("${SET:##v}", "unsupported modifier (:#) in substitution"),
        ("${SET:%e}", "unsupported modifier (:%) in substitution"),
        ("${SET:%%e}", "unsupported modifier (:%) in substitution"),
        ("${UNSET:#v}", "unsupported modifier (:#) in substitution"),
        ("${SET:/a/b}", "unsupported modifier (:/) in substitution"),
        ("${SET:=x}", "unsupported modifier (:=) in substitution"),
        ("${SET=x}", "unsupported modifier (=) in substitution"),
        ("${SET,}", "unsupported modifier (,) in substitution"),
        // An unknown modifier after `:` is judged once the word is read.
        ("${SET:x", "syntax error: missing '}'"),
        ("${SET:", "syntax error: missing '}'"),
    ];
    for (input, want) in cases {
        let got = word(input, '\\', &env).unwrap_err().to_string();
        assert_eq!(got, *want, "{input}");
    }
}

/// `${a/p/r}`: a backslash escapes `/`, `}`, `*` and `?` in the pattern;
/// the replacement is taken with its escapes as written (BuildKit's
/// `processStopOn('}', true)`), so `\/` there stays `\/`.
#[test]
fn replacement_escapes_as_in_buildkit() {
    let lookup = |n: &str| match n {
        "F" => Some("/tmp/foo.txt".to_string()),
        "S" => Some("a*b?c}d".to_string()),
        "X" => Some("xxyy".to_string()),
        "EMPTY" => Some(String::new()),
        "NEEDLE" => Some(r"\*/".to_string()),
        "G" => Some("/foo*/*/*.txt".to_string()),
        _ => None,
    };
    let cases: &[(&str, &str)] = &[
        // BuildKit's TestProcessWithMatches cases.
        (r"${F//\//\/}", r"\/tmp\/foo.txt"),
        (r"${F/\/tmp/}", "/foo.txt"),
        (
            "${G/$NEEDLE/.} - ${G//$NEEDLE/.}",
            "/foo.*/*.txt - /foo..*.txt",
        ),
        ("${X/$EMPTY/ww}", "wwxxyy"),
        ("${X///}", "xxyy"),
        ("${UNSET///}", ""),
        // Escaped wildcards and braces in the pattern are literal.
        (r"${S/\*/-}", "a-b?c}d"),
        (r"${S/\?/-}", "a*b-c}d"),
        (r"${S/\}/-}", "a*b?c-d"),
        (r"${S//[*?\}]/-}", "a*b?c}d"),
        (r"${S//?/.}", "......."),
        // A `}` does not end the pattern; the next `/` does.
        ("${S/c}d/E}", "a*b?E"),
        // The replacement runs to the first unescaped `}`.
        (r"${X/x/a/b}", "a/bxyy"),
        (r"${X/x/\}}", r"\}xyy"),
        // Every empty match between characters, none right after a match.
        ("${X//$EMPTY/-}", "-x-x-y-y-"),
        ("${X//*/-}", "-"),
        ("${EMPTY/*/-}", "-"),
        ("${X//y*/-}", "xx-"),
    ];
    for (input, want) in cases {
        assert_eq!(word(input, '\\', &lookup).as_deref(), Ok(*want), "{input}");
    }
    for input in ["${X//ww}", "${X//}", "${X/a}", r"${X/a\/b}"] {
        assert_eq!(
            word(input, '\\', &lookup),
            Err(ExpandError::MissingSlash),
            "{input}"
        );
    }
    assert_eq!(
        ExpandError::MissingSlash.to_string(),
        "syntax error: missing '/' in ${}"
    );
}

/// `${a:?}` tells an empty variable from an unset one, as BuildKit does.
#[test]
fn required_messages_tell_empty_from_unset() {
    let msg = |input: &str| word(input, '\\', &env).unwrap_err().to_string();
    assert_eq!(msg("${EMPTY:?}"), "EMPTY: is not allowed to be empty");
    assert_eq!(msg("${UNSET:?}"), "UNSET: is not allowed to be unset");
    assert_eq!(msg("${UNSET?}"), "UNSET: is not allowed to be unset");
    assert_eq!(word("${EMPTY?}", '\\', &env).as_deref(), Ok(""));
}

/// The error reaches the user with file:line:col and a caret on the word.
#[test]
fn colon_pattern_error_points_at_the_word() {
    struct NoImages;
    impl crate::lower::ImageResolver for NoImages {
        fn resolve(
            &self,
            reference: &str,
            _: &bake_solver::ir::Platform,
        ) -> Result<crate::lower::ResolvedImage, String> {
            Err(format!("no image {reference}"))
        }
    }
    let text = "FROM scratch\nENV A=abc\nENV B=${A:#a}\n";
    let df = crate::parse(text, "Dockerfile").unwrap();
    let err =
        crate::lower::lower(&df, &crate::lower::BuildOptions::default(), &NoImages).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Dockerfile:3:5: unsupported modifier (:#) in substitution"
    );
    assert_eq!(err.kind(), crate::error::ErrorKind::Expansion);
    let labels: Vec<_> = miette::Diagnostic::labels(&err).unwrap().collect();
    assert_eq!(&text[labels[0].offset()..labels[0].offset() + 1], "B");
}
