//! The lint rules that need only the AST, checked over every stage (also
//! the ones the target does not need, as `docker build --check` does).
//! Messages are BuildKit's, word for word, so that users can search them.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::ast::{self, Dockerfile, Instruction, Kind};
use crate::error::{Source, Warning};
use crate::expand;
use crate::lower::{platform_args, BuildOptions};

/// Stage names BuildKit reserves.
const RESERVED_STAGE_NAMES: &[&str] = &["context", "scratch"];

/// Words in an ARG/ENV name that suggest a secret, and words that say it
/// is not one (BuildKit's lists; matched as `_`-separated words).
const SECRET_WORDS: &[&str] = &[
    "apikey",
    "auth",
    "credential",
    "credentials",
    "key",
    "password",
    "pword",
    "passwd",
    "secret",
    "token",
];
const NOT_SECRET_WORDS: &[&str] = &["public", "file", "version"];

/// Whether an ARG/ENV name looks like it holds a secret.
pub(super) fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let words: Vec<&str> = lower.split('_').collect();
    // BuildKit matches the token at the start or end of the name, or
    // between underscores: any `_`-separated word.
    let has = |list: &[&str]| words.iter().any(|w| list.contains(w));
    has(SECRET_WORDS) && !has(NOT_SECRET_WORDS)
}

/// The variables a word refers to, in order (found by running the real
/// expander with nothing defined, so quoting and escapes are honoured).
pub(super) fn referenced(text: &str, escape: char) -> Vec<String> {
    if !text.contains('$') {
        return Vec::new();
    }
    let names = RefCell::new(Vec::<String>::new());
    let _ = expand::word(text, escape, &|n| {
        let mut names = names.borrow_mut();
        if !names.iter().any(|x| x == n) {
            names.push(n.to_string());
        }
        None
    });
    names.into_inner()
}

/// A close name, for "did you mean" (case-insensitive equality first, then
/// a small edit distance).
pub(crate) fn suggest<'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        if c.eq_ignore_ascii_case(name) {
            return Some(c);
        }
        let d = crate::parser::distance(&name.to_ascii_lowercase(), &c.to_ascii_lowercase());
        let better = match best {
            None => true,
            Some((b, _)) => d < b,
        };
        if d <= 2 && d < name.len().max(1) && better {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Whether `s` is a valid image reference (`[host[:port]/]path[:tag][@digest]`),
/// loosely as the distribution reference grammar has it.
pub(super) fn valid_reference(s: &str) -> bool {
    if s.is_empty() || s.chars().any(char::is_whitespace) {
        return false;
    }
    let (name, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        let Some((algo, hex)) = d.split_once(':') else {
            return false;
        };
        if algo.is_empty() || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return false;
        }
    }
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (path, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return false;
        }
    }
    let mut parts: Vec<&str> = path.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains(['.', ':']) || first == "localhost" {
            let (host, port) = first.split_once(':').unwrap_or((first, ""));
            let host_ok = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            if !host_ok || !port.chars().all(|c| c.is_ascii_digit()) {
                return false;
            }
            parts.remove(0);
        }
    }
    parts.iter().all(|p| {
        !p.is_empty()
            && p.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && p.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
    })
}

/// What the checks remember about one stage.
struct StageState {
    name: Option<String>,
    workdir_set: bool,
    cmd: Option<usize>,
    entrypoint: Option<usize>,
    healthcheck: Option<usize>,
}

struct Checker<'a> {
    src: &'a Source<'a>,
    escape: char,
    out: Vec<Warning>,
}

impl Checker<'_> {
    fn warn(&mut self, code: &'static str, offset: usize, message: String) {
        self.out.push(self.src.warning(code, Some(offset), message));
    }
}

/// Runs every AST-only rule.
pub(super) fn check(df: &Dockerfile, src: &Source<'_>, opts: &BuildOptions) -> Vec<Warning> {
    let mut c = Checker {
        src,
        escape: df.directives.escape,
        out: Vec::new(),
    };
    casing(&mut c, &df.instructions);
    // Global ARGs: their names, and their values from defaults alone (what
    // InvalidDefaultArgInFrom judges).
    let platform = platform_args(&opts.platform);
    let mut meta_names: Vec<String> = platform.keys().cloned().collect();
    let mut defaults: BTreeMap<String, String> = platform.clone();
    let mut stages: Vec<StageState> = Vec::new();
    for ins in &df.instructions {
        let at = ins.span.start;
        match &ins.kind {
            Kind::From(from) => {
                let workdir_set = from_checks(&mut c, ins, from, &meta_names, &defaults, &stages);
                stages.push(StageState {
                    name: from.alias.as_ref().map(|a| a.text.to_ascii_lowercase()),
                    workdir_set,
                    cmd: None,
                    entrypoint: None,
                    healthcheck: None,
                });
            }
            Kind::Arg(decls) => {
                for d in decls {
                    if is_secret_name(&d.name) {
                        c.warn(
                            "SecretsUsedInArgOrEnv",
                            at,
                            format!(
                                "Do not use ARG or ENV instructions for sensitive data (ARG {:?})",
                                d.name
                            ),
                        );
                    }
                    if stages.is_empty() {
                        meta_names.retain(|n| n != &d.name);
                        meta_names.push(d.name.clone());
                        let value = d.default.as_deref().map(|t| {
                            expand::word(t, c.escape, &|n| defaults.get(n).cloned())
                                .unwrap_or_default()
                        });
                        match value {
                            Some(v) => defaults.insert(d.name.clone(), v),
                            None => defaults.remove(&d.name),
                        };
                    }
                }
            }
            Kind::Env(kvs) | Kind::Label(kvs) => {
                let keyword = ins.kind.keyword();
                if legacy_key_value(ins, kvs) {
                    c.warn(
                        "LegacyKeyValueFormat",
                        at,
                        format!("\"{keyword} key=value\" should be used instead of legacy \"{keyword} key value\" format"),
                    );
                }
                if matches!(ins.kind, Kind::Env(_)) {
                    for kv in kvs {
                        if is_secret_name(&kv.key) {
                            c.warn(
                                "SecretsUsedInArgOrEnv",
                                at,
                                format!("Do not use ARG or ENV instructions for sensitive data (ENV {:?})", kv.key),
                            );
                        }
                    }
                }
            }
            Kind::Maintainer(_) => c.warn(
                "MaintainerDeprecated",
                at,
                "Maintainer instruction is deprecated in favor of using label".to_string(),
            ),
            Kind::Expose(words) => {
                for w in words.iter().filter(|w| !w.text.contains('$')) {
                    let raw = &w.text;
                    let (ports, proto) = raw.rsplit_once('/').unwrap_or((raw, ""));
                    if proto != proto.to_ascii_lowercase() {
                        c.warn(
                            "ExposeProtoCasing",
                            at,
                            format!("Defined protocol '{raw}' in EXPOSE instruction should be lowercase"),
                        );
                    }
                    if ports.contains(':') {
                        c.warn(
                            "ExposeInvalidFormat",
                            at,
                            format!("EXPOSE instruction should not define an IP address or host-port mapping, found '{raw}'"),
                        );
                    }
                }
            }
            Kind::Workdir(w) => {
                if let Some(st) = stages.last_mut() {
                    let absolute = w.text.starts_with('/') || w.text.starts_with('$');
                    if !absolute && !st.workdir_set {
                        c.warn(
                            "WorkdirRelativePath",
                            at,
                            format!("Relative workdir {:?} can have unexpected results if the base image changes", w.text),
                        );
                    }
                    st.workdir_set = true;
                }
            }
            Kind::Cmd(_) | Kind::Entrypoint(_) | Kind::Healthcheck(_) => {
                if let Some(st) = stages.last_mut() {
                    let slot = match ins.kind {
                        Kind::Cmd(_) => &mut st.cmd,
                        Kind::Entrypoint(_) => &mut st.entrypoint,
                        _ => &mut st.healthcheck,
                    };
                    if let Some(previous) = slot.replace(at) {
                        let keyword = ins.kind.keyword();
                        c.warn(
                            "MultipleInstructionsDisallowed",
                            previous,
                            format!("Multiple {keyword} instructions should not be used in the same stage because only the last one will be used"),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    c.out
}

/// The FROM rules; returns whether the new stage starts with a WORKDIR set
/// (it does when its base is an earlier stage that set one).
fn from_checks(
    c: &mut Checker<'_>,
    ins: &Instruction,
    from: &ast::From,
    meta_names: &[String],
    defaults: &BTreeMap<String, String>,
    stages: &[StageState],
) -> bool {
    let at = ins.span.start;
    if let Some(alias) = &from.alias {
        let name = alias.text.to_ascii_lowercase();
        if alias.text != name {
            c.warn(
                "StageNameCasing",
                at,
                format!("Stage name '{}' should be lowercase", alias.text),
            );
        }
        let as_word = ins
            .args_text
            .split_whitespace()
            .rev()
            .nth(1)
            .unwrap_or("AS");
        let from_lower = ins.keyword != ins.keyword.to_ascii_uppercase();
        let as_ok = if from_lower {
            as_word == as_word.to_ascii_lowercase()
        } else {
            as_word == as_word.to_ascii_uppercase()
        };
        if !as_ok {
            c.warn(
                "FromAsCasing",
                at,
                format!(
                    "'{as_word}' and '{}' keywords' casing do not match",
                    ins.keyword
                ),
            );
        }
        if RESERVED_STAGE_NAMES.contains(&name.as_str()) {
            c.warn(
                "ReservedStageName",
                at,
                format!("Stage name should not use the same name as reserved stage {name:?}"),
            );
        }
        if stages
            .iter()
            .any(|s| s.name.as_deref() == Some(name.as_str()))
        {
            c.warn(
                "DuplicateStageName",
                at,
                format!("Duplicate stage name {name:?}, stage names should be unique"),
            );
        }
    }
    let mut words = vec![&from.image.text];
    if let Some(v) = from.platform.as_ref().and_then(|f| f.value.as_ref()) {
        words.push(v);
    }
    for text in words {
        for name in referenced(text, c.escape) {
            if meta_names.contains(&name) {
                continue;
            }
            let mut message = format!("FROM argument '{name}' is not declared");
            if let Some(s) = suggest(&name, meta_names.iter().map(String::as_str)) {
                message.push_str(&format!(" (did you mean {s}?)"));
            }
            c.warn("UndefinedArgInFrom", at, message);
        }
    }
    let image = &from.image.text;
    if image.contains('$') {
        let value =
            expand::word(image, c.escape, &|n| defaults.get(n).cloned()).unwrap_or_default();
        let names_stage = stages
            .iter()
            .any(|s| s.name.as_deref() == Some(value.to_ascii_lowercase().as_str()));
        if value.is_empty() || !(names_stage || valid_reference(&value)) {
            c.warn(
                "InvalidDefaultArgInFrom",
                at,
                format!(
                    "Default value for ARG {image} results in empty or invalid base image name"
                ),
            );
        }
    }
    if let Some(p) = from.platform.as_ref().and_then(|f| f.value.as_ref()) {
        if p == "$TARGETPLATFORM" || p == "${TARGETPLATFORM}" {
            c.warn(
                "RedundantTargetPlatform",
                at,
                format!("Setting platform to predefined {p} in FROM is redundant as this is the default behavior"),
            );
        } else if !p.contains('$') {
            // BuildKit allows a constant when the stage's name says which
            // platform it is for (`FROM --platform=linux/amd64 … AS build-amd64`).
            let named_for_it = from.alias.as_ref().is_some_and(|a| {
                let a = a.text.to_ascii_lowercase();
                p.split('/')
                    .take(2)
                    .any(|part| !part.is_empty() && a.contains(part))
            });
            if !named_for_it {
                c.warn(
                    "FromPlatformFlagConstDisallowed",
                    at,
                    format!("FROM --platform flag should not use constant value {p:?}"),
                );
            }
        }
    }
    // A stage built on an earlier stage inherits its WORKDIR.
    let base = image.to_ascii_lowercase();
    stages
        .iter()
        .rev()
        .find(|s| s.name.as_deref() == Some(base.as_str()))
        .is_some_and(|s| s.workdir_set)
}

/// `ENV k v` / `LABEL k v`: one pair whose key (the first word, as
/// written) is not followed by `=` in the text.
fn legacy_key_value(ins: &Instruction, kvs: &[ast::KeyValue]) -> bool {
    match kvs {
        [kv] => ins
            .args_text
            .strip_prefix(kv.key.as_str())
            .is_some_and(|rest| !rest.starts_with('=')),
        _ => false,
    }
}

/// ConsistentInstructionCasing: every keyword should follow the casing of
/// the majority (upper-case on a tie, as BuildKit decides).
fn casing(c: &mut Checker<'_>, instructions: &[Instruction]) {
    let (mut lower, mut upper) = (0usize, 0usize);
    for ins in instructions {
        if ins.keyword == ins.keyword.to_ascii_lowercase() {
            lower += 1;
        } else if ins.keyword == ins.keyword.to_ascii_uppercase() {
            upper += 1;
        }
    }
    let majority_lower = lower > upper;
    for ins in instructions {
        let ok = if majority_lower {
            ins.keyword == ins.keyword.to_ascii_lowercase()
        } else {
            ins.keyword == ins.keyword.to_ascii_uppercase()
        };
        if !ok {
            let casing = if majority_lower {
                "lowercase"
            } else {
                "uppercase"
            };
            c.warn(
                "ConsistentInstructionCasing",
                ins.span.start,
                format!(
                    "Command '{}' should match the case of the command majority ({casing})",
                    ins.keyword
                ),
            );
        }
    }
}
