//! BuildKit's Dockerfile lint rules ("build checks"), as data, and the
//! `# check=` configuration that selects them.
//!
//! A rule's name, description and documentation URL are data ([`RULES`]),
//! so that the cli can print them (`bake build --check`) and a
//! `# check=skip=…` directive can name them. The checks themselves live in
//! [`rules`] (the ones that need only the AST) and in the lowering (the ones
//! that need the base image's config or the ARG/ENV scope: `UndefinedVar`,
//! `JSONArgsRecommended`).

mod description;
pub(crate) mod platform;
mod rules;

pub(crate) use rules::suggest;

use std::collections::BTreeSet;

use crate::ast::Dockerfile;
use crate::error::{Error, ErrorKind, Source, Warning};
use crate::lower::BuildOptions;

/// One lint rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Stable name (`StageNameCasing`), as BuildKit names it.
    pub name: &'static str,
    /// What the rule asks for, in BuildKit's words.
    pub description: &'static str,
    /// Off unless `# check=experimental=<name>|all` turns it on.
    pub experimental: bool,
}

impl Rule {
    /// Docker's documentation page for the rule.
    pub fn url(&self) -> String {
        format!(
            "https://docs.docker.com/go/dockerfile/rule/{}/",
            kebab(self.name)
        )
    }
}

/// `JSONArgsRecommended` → `json-args-recommended`.
fn kebab(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower = i > 0 && chars[i - 1].is_ascii_lowercase();
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

const fn rule(name: &'static str, description: &'static str) -> Rule {
    Rule {
        name,
        description,
        experimental: false,
    }
}

/// Every rule bake checks, with BuildKit's descriptions.
pub const RULES: &[Rule] = &[
    rule("StageNameCasing", "Stage names should be lowercase"),
    rule(
        "FromAsCasing",
        "The 'as' keyword should match the case of the 'from' keyword",
    ),
    rule(
        "NoEmptyContinuation",
        "Empty continuation lines will become errors in a future release",
    ),
    rule(
        "ConsistentInstructionCasing",
        "All commands within the Dockerfile should use the same casing (either upper or lower)",
    ),
    rule("DuplicateStageName", "Stage names should be unique"),
    rule(
        "ReservedStageName",
        "Reserved words should not be used as stage names",
    ),
    rule(
        "JSONArgsRecommended",
        "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals",
    ),
    rule(
        "MaintainerDeprecated",
        "The MAINTAINER instruction is deprecated, use a label instead to define an image author",
    ),
    rule("UndefinedArgInFrom", "FROM command must use declared ARGs"),
    rule(
        "WorkdirRelativePath",
        "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes",
    ),
    rule("UndefinedVar", "Variables should be defined before their use"),
    rule(
        "MultipleInstructionsDisallowed",
        "Multiple instructions of the same type should not be used in the same stage",
    ),
    rule(
        "LegacyKeyValueFormat",
        "Legacy key/value format with whitespace separator should not be used",
    ),
    rule(
        "RedundantTargetPlatform",
        "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
    ),
    rule(
        "SecretsUsedInArgOrEnv",
        "Sensitive data should not be used in the ARG or ENV commands",
    ),
    rule(
        "InvalidDefaultArgInFrom",
        "Default value for global ARG results in an empty or invalid base image name",
    ),
    rule(
        "FromPlatformFlagConstDisallowed",
        "FROM --platform flag should not use a constant value",
    ),
    rule(
        "ExposeProtoCasing",
        "Protocol in EXPOSE instruction should be lowercase",
    ),
    rule(
        "ExposeInvalidFormat",
        "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release",
    ),
    Rule {
        name: "CopyIgnoredFile",
        description: "Attempting to Copy file that is excluded by .dockerignore",
        experimental: true,
    },
    rule(
        platform::RULE,
        "Base image platform does not match expected target platform",
    ),
    Rule {
        name: description::RULE,
        description: "Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.",
        experimental: true,
    },
];

/// The rule named `name` (exact, as BuildKit's names are).
pub fn rule_named(name: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.name == name)
}

/// What `# check=skip=…;error=…;experimental=…` (or the
/// `BUILDKIT_DOCKERFILE_CHECK` build arg, which wins) asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckConfig {
    /// `skip=all`.
    pub skip_all: bool,
    /// `skip=A,B`.
    pub skip: BTreeSet<String>,
    /// `error=true`: a build with lint warnings fails.
    pub error: bool,
    /// `experimental=all`.
    pub experimental_all: bool,
    /// `experimental=A,B`.
    pub experimental: BTreeSet<String>,
}

impl CheckConfig {
    /// Parses the value of a `# check=` directive.
    ///
    /// # Errors
    /// An unknown key or a value that is not a boolean for `error`.
    pub fn parse(text: &str) -> Result<CheckConfig, String> {
        let mut out = CheckConfig::default();
        for part in text.split(';') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let Some((key, value)) = part.split_once('=') else {
                return Err(format!("invalid check option {part:?}: expected key=value"));
            };
            let value = value.trim();
            let names = || {
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
                    .collect::<BTreeSet<_>>()
            };
            match key.trim().to_ascii_lowercase().as_str() {
                "skip" => {
                    let n = names();
                    out.skip_all = n.iter().any(|n| n.eq_ignore_ascii_case("all"));
                    out.skip = n;
                }
                "experimental" => {
                    let n = names();
                    out.experimental_all = n.iter().any(|n| n.eq_ignore_ascii_case("all"));
                    out.experimental = n;
                }
                "error" => {
                    out.error = parse_bool(value).ok_or_else(|| {
                        format!("invalid check option error={value:?}: expected true or false")
                    })?
                }
                other => {
                    return Err(format!(
                        "invalid check option {other:?}: expected skip, error or experimental"
                    ))
                }
            }
        }
        Ok(out)
    }

    /// Whether warnings of `rule` are reported.
    pub fn enabled(&self, rule: &Rule) -> bool {
        if rule.experimental {
            return self.experimental_all || self.experimental.contains(rule.name);
        }
        !self.skip_all && !self.skip.contains(rule.name)
    }
}

/// Go's `strconv.ParseBool`, which BuildKit uses for `error=`.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The build arg that overrides the `# check=` directive, as in BuildKit.
pub const CHECK_BUILD_ARG: &str = "BUILDKIT_DOCKERFILE_CHECK";

/// The lint configuration of a build: the `BUILDKIT_DOCKERFILE_CHECK`
/// build arg if given, else the `# check=` directive, else the defaults.
///
/// # Errors
/// A malformed configuration (the directive's errors point at it).
pub fn config(df: &Dockerfile, opts: &BuildOptions) -> Result<CheckConfig, Error> {
    let src = Source {
        file: &df.file,
        text: &df.source,
    };
    if let Some(v) = opts.build_args.get(CHECK_BUILD_ARG) {
        return CheckConfig::parse(v).map_err(|m| {
            src.error_at_file(ErrorKind::InvalidValue, format!("{CHECK_BUILD_ARG}: {m}"))
        });
    }
    match &df.directives.check {
        Some(text) => CheckConfig::parse(text)
            .map_err(|m| src.error_at_file(ErrorKind::Syntax, format!("# check= directive: {m}"))),
        None => Ok(CheckConfig::default()),
    }
}

/// Whether a warning comes from a lint rule (and so is subject to `skip`
/// and `error=true`), rather than being a plain notice such as an unused
/// build arg.
pub fn is_lint(warning: &Warning) -> bool {
    rule_named(warning.code).is_some()
}

/// The checks that need only the AST, over every stage (the ones that need
/// the base images run during [`crate::lower`]). Not filtered by the check
/// configuration; see [`select`].
pub fn check(df: &Dockerfile, opts: &BuildOptions) -> Vec<Warning> {
    let src = Source {
        file: &df.file,
        text: &df.source,
    };
    let mut out = df.warnings.clone();
    out.extend(rules::check(df, &src, opts));
    out.extend(description::check(df, &src));
    out
}

/// Drops the warnings of rules the configuration turns off and sorts the
/// rest by position (file-level notices first), without duplicates.
pub fn select(config: &CheckConfig, mut warnings: Vec<Warning>) -> Vec<Warning> {
    warnings.retain(|w| !matches!(rule_named(w.code), Some(r) if !config.enabled(r)));
    warnings.sort_by_key(|w| (w.line, w.column));
    warnings.dedup();
    warnings
}

/// The failure of a build whose configuration says `error=true` and that
/// has lint warnings, as BuildKit words it.
pub fn violations(config: &CheckConfig, warnings: &[Warning]) -> Option<String> {
    if !config.error {
        return None;
    }
    let mut names: Vec<&str> = warnings
        .iter()
        .filter(|w| is_lint(w))
        .map(|w| w.code)
        .collect();
    names.sort_unstable();
    names.dedup();
    (!names.is_empty()).then(|| format!("lint violation found for rules: {}", names.join(", ")))
}

#[cfg(test)]
mod tests;
