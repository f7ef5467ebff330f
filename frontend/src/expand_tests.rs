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
        ("${SET:x}", ExpandError::UnsupportedModifier('x')),
        ("${SET@x}", ExpandError::UnsupportedModifier('@')),
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
                message: "is not allowed to be unset".into(),
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
