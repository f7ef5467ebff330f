//! Which `--flags` each instruction accepts, and checking them.
//!
//! Every flag BuildKit knows for an instruction is listed here; the ones
//! bake does not implement are listed as unsupported so that using one is
//! an error naming it, never silently ignored. Anything else is an unknown
//! flag.

use std::collections::BTreeMap;

use crate::ast::Flag;
use crate::error::{Error, ErrorKind, Source};

/// How often a flag may appear and whether it takes a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arity {
    /// `--name=value`, at most once.
    One,
    /// `--name=value`, any number of times.
    Many,
    /// `--name` or `--name=true|false`.
    Bool,
}

/// The flags of each instruction: `(name, arity)`.
pub(crate) fn accepted(keyword: &str) -> &'static [(&'static str, Arity)] {
    use Arity::*;
    match keyword {
        "FROM" => &[("platform", One)],
        "RUN" => &[("mount", Many), ("network", One), ("security", One)],
        "COPY" => &[
            ("from", One),
            ("chown", One),
            ("chmod", One),
            ("link", Bool),
            ("parents", Bool),
            ("exclude", Many),
        ],
        "ADD" => &[
            ("chown", One),
            ("chmod", One),
            ("link", Bool),
            ("checksum", One),
            ("keep-git-dir", Bool),
            ("unpack", Bool),
            ("exclude", Many),
        ],
        "HEALTHCHECK" => &[
            ("interval", One),
            ("timeout", One),
            ("start-period", One),
            ("start-interval", One),
            ("retries", One),
        ],
        _ => &[],
    }
}

/// Flags BuildKit accepts that bake does not implement yet.
fn unsupported(keyword: &str) -> &'static [&'static str] {
    match keyword {
        "RUN" => &["device"],
        "ADD" => &["parents"],
        _ => &[],
    }
}

/// The checked flags of one instruction, by name.
#[derive(Debug, Default)]
pub(crate) struct FlagSet {
    flags: BTreeMap<String, Vec<Flag>>,
}

impl FlagSet {
    /// A single-valued flag.
    pub fn one(&mut self, name: &str) -> Option<Flag> {
        self.flags.remove(name).and_then(|mut v| v.pop())
    }

    /// A repeatable flag, in order.
    pub fn many(&mut self, name: &str) -> Vec<Flag> {
        self.flags.remove(name).unwrap_or_default()
    }

    /// A boolean flag (already validated).
    pub fn bool(&mut self, name: &str) -> Option<bool> {
        self.one(name).map(|f| match f.value.as_deref() {
            None => true,
            Some(v) => v.eq_ignore_ascii_case("true"),
        })
    }
}

/// Checks `flags` against what `keyword` accepts.
///
/// # Errors
/// Unknown flags, unsupported flags, a missing value, a repeated
/// single-valued flag, a bad boolean.
pub(crate) fn check(src: &Source<'_>, keyword: &str, flags: Vec<Flag>) -> Result<FlagSet, Error> {
    let accepted = accepted(keyword);
    let mut set = FlagSet::default();
    for flag in flags {
        if unsupported(keyword).contains(&flag.name.as_str()) {
            return Err(src.error(
                ErrorKind::Unsupported,
                flag.span.clone(),
                format!("{keyword} --{} is not supported yet", flag.name),
            ));
        }
        let Some(&(_, arity)) = accepted.iter().find(|(n, _)| *n == flag.name) else {
            let help = if accepted.is_empty() {
                format!("{keyword} takes no flags")
            } else {
                let names: Vec<String> = accepted.iter().map(|(n, _)| format!("--{n}")).collect();
                format!("{keyword} accepts {}", names.join(", "))
            };
            return Err(src
                .error(
                    ErrorKind::UnknownFlag,
                    flag.span.clone(),
                    format!("unknown flag: {}", flag.name),
                )
                .with_help(help));
        };
        match arity {
            Arity::Bool => {
                if let Some(v) = &flag.value {
                    if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                        return Err(src.error(
                            ErrorKind::InvalidValue,
                            flag.span.clone(),
                            format!("expecting boolean value for flag {}, not: {v}", flag.name),
                        ));
                    }
                }
            }
            Arity::One | Arity::Many => {
                if flag.value.is_none() {
                    return Err(src.error(
                        ErrorKind::Syntax,
                        flag.span.clone(),
                        format!("missing a value on flag: {}", flag.name),
                    ));
                }
            }
        }
        let slot = set.flags.entry(flag.name.clone()).or_default();
        if arity != Arity::Many && !slot.is_empty() {
            return Err(src.error(
                ErrorKind::Syntax,
                flag.span.clone(),
                format!("duplicate flag specified: {}", flag.name),
            ));
        }
        slot.push(flag);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(name: &str, value: Option<&str>) -> Flag {
        Flag {
            name: name.to_string(),
            value: value.map(str::to_string),
            span: 0..1,
        }
    }

    fn err(keyword: &str, flags: Vec<Flag>) -> String {
        let src = Source {
            file: "D",
            text: "x",
        };
        check(&src, keyword, flags)
            .unwrap_err()
            .message()
            .to_string()
    }

    #[test]
    fn table() {
        let cases: Vec<(&str, Vec<Flag>, &str)> = vec![
            (
                "COPY",
                vec![flag("frobnicate", Some("1"))],
                "unknown flag: frobnicate",
            ),
            ("ENV", vec![flag("x", None)], "unknown flag: x"),
            (
                "RUN",
                vec![flag("device", Some("x"))],
                "RUN --device is not supported yet",
            ),
            (
                "COPY",
                vec![flag("from", None)],
                "missing a value on flag: from",
            ),
            (
                "COPY",
                vec![flag("from", Some("a")), flag("from", Some("b"))],
                "duplicate flag specified: from",
            ),
            (
                "COPY",
                vec![flag("link", Some("yes"))],
                "expecting boolean value for flag link, not: yes",
            ),
        ];
        for (kw, flags, want) in cases {
            assert_eq!(err(kw, flags), want);
        }
    }

    #[test]
    fn accepted_flags() {
        let src = Source {
            file: "D",
            text: "x",
        };
        let mut set = check(
            &src,
            "COPY",
            vec![
                flag("link", None),
                flag("exclude", Some("a")),
                flag("exclude", Some("b")),
            ],
        )
        .unwrap();
        assert_eq!(set.bool("link"), Some(true));
        assert_eq!(set.many("exclude").len(), 2);
        assert_eq!(set.one("from"), None);
    }
}
