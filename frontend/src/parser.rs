//! Logical lines → typed instructions.
//!
//! The grammar splits a line into keyword, flags and the rest; this module
//! picks the argument grammar of the instruction's family (exec/shell form,
//! `k=v` lists, plain word lists, a single string) and builds the typed
//! [`Instruction`].

use std::ops::Range;

use crate::ast::{
    Add, ArgDecl, Command, Copy, Flag, From, Healthcheck, Instruction, KeyValue, Kind, Onbuild,
    Paths, Run, Word,
};
use crate::error::{Error, ErrorKind, Source};
use crate::flags;
use crate::grammar;
use crate::logical_lines::LogicalLine;

/// Every instruction keyword.
pub(crate) const KEYWORDS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];

/// Edit distance, for did-you-mean suggestions.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest keyword, if it is close enough to be a typo.
pub(crate) fn suggest(word: &str) -> Option<&'static str> {
    let upper = word.to_ascii_uppercase();
    KEYWORDS
        .iter()
        .map(|k| (distance(&upper, k), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// One logical line being turned into an instruction.
struct Ctx<'a> {
    src: &'a Source<'a>,
    line: &'a LogicalLine,
    escape: char,
    keyword: String,
    /// The rest of the line (after flags), and where it starts in the line.
    rest: String,
    rest_start: usize,
    /// Span of the keyword, for errors about the whole instruction.
    keyword_span: Range<usize>,
}

impl Ctx<'_> {
    fn err(&self, kind: ErrorKind, span: Range<usize>, msg: impl Into<String>) -> Error {
        self.src.error(kind, span, msg)
    }

    fn whole_err(&self, msg: impl Into<String>) -> Error {
        self.err(ErrorKind::Syntax, self.keyword_span.clone(), msg)
    }

    /// A word from a range in `rest`.
    fn word(&self, r: Range<usize>) -> Word {
        Word {
            text: self.rest[r.clone()].to_string(),
            span: self
                .line
                .source_span(self.rest_start + r.start..self.rest_start + r.end),
        }
    }

    fn rest_word(&self) -> Word {
        self.word(0..self.rest.len())
    }

    fn escaped_words(&self) -> Vec<Word> {
        grammar::escaped_words(&self.rest, self.escape)
            .into_iter()
            .map(|r| self.word(r))
            .collect()
    }

    fn plain_words(&self) -> Vec<Word> {
        grammar::plain_words(&self.rest)
            .into_iter()
            .map(|r| self.word(r))
            .collect()
    }

    /// JSON array or whitespace-separated words (COPY, ADD, VOLUME).
    fn json_or_words(&self) -> Vec<Word> {
        if self.rest.starts_with('[') {
            if let Some(items) = grammar::json_array(&self.rest) {
                let span = self.rest_word().span;
                return items
                    .into_iter()
                    .map(|text| Word {
                        text,
                        span: span.clone(),
                    })
                    .collect();
            }
        }
        self.plain_words()
    }

    fn command(&self) -> Command {
        if self.rest.starts_with('[') {
            if let Some(items) = grammar::json_array(&self.rest) {
                return Command::Exec(items);
            }
        }
        Command::Shell(self.rest.clone())
    }

    /// ENV and LABEL: `k=v k2="v 2"` or the legacy `k v with spaces`.
    fn key_values(&self) -> Result<Vec<KeyValue>, Error> {
        let words = self.escaped_words();
        let Some(first) = words.first() else {
            return Err(self.whole_err(format!("{} requires at least one argument", self.keyword)));
        };
        if !first.text.contains('=') {
            let value = self.rest[first.text.len()..].trim_start();
            if value.is_empty() {
                return Err(self.whole_err(format!("{} must have two arguments", self.keyword)));
            }
            return Ok(vec![KeyValue {
                key: first.text.clone(),
                value: value.to_string(),
                span: self.rest_word().span,
            }]);
        }
        words
            .into_iter()
            .map(|w| {
                let Some((k, v)) = w.text.split_once('=') else {
                    return Err(self.err(
                        ErrorKind::Syntax,
                        w.span.clone(),
                        format!(
                            "Syntax error - can't find = in \"{}\". Must be of the form: name=value",
                            w.text
                        ),
                    ));
                };
                if k.is_empty() {
                    return Err(self.err(
                        ErrorKind::Syntax,
                        w.span.clone(),
                        format!("{} names can not be blank", self.keyword),
                    ));
                }
                Ok(KeyValue {
                    key: k.to_string(),
                    value: v.to_string(),
                    span: w.span,
                })
            })
            .collect()
    }

    fn paths(&self) -> Result<Paths, Error> {
        let mut words = self.json_or_words();
        if words.len() < 2 {
            return Err(self.whole_err(format!(
                "{} requires at least two arguments, but only one was provided. Destination could not be determined.",
                self.keyword
            )));
        }
        let dest = words.pop().expect("two words");
        Ok(Paths {
            sources: words,
            dest,
            heredocs: self.line.heredocs.clone(),
        })
    }

    fn from(&self, flags: &mut flags::FlagSet) -> Result<From, Error> {
        let words = self.plain_words();
        let (image, alias) = match words.len() {
            1 => (words[0].clone(), None),
            3 if words[1].text.eq_ignore_ascii_case("as") => {
                (words[0].clone(), Some(words[2].clone()))
            }
            _ => return Err(self.whole_err("FROM requires either one or three arguments")),
        };
        Ok(From {
            image,
            alias,
            platform: flags.one("platform"),
        })
    }

    fn args(&self) -> Result<Vec<ArgDecl>, Error> {
        let words = self.escaped_words();
        if words.is_empty() {
            return Err(self.whole_err("ARG requires at least one argument"));
        }
        words
            .into_iter()
            .map(|w| {
                let (name, default) = match w.text.split_once('=') {
                    Some((n, d)) => (n.to_string(), Some(d.to_string())),
                    None => (w.text.clone(), None),
                };
                if name.is_empty() {
                    return Err(self.err(ErrorKind::Syntax, w.span, "ARG names can not be blank"));
                }
                Ok(ArgDecl {
                    name,
                    default,
                    span: w.span,
                })
            })
            .collect()
    }

    fn healthcheck(&self, mut flags: flags::FlagSet) -> Result<Healthcheck, Error> {
        let kind_end = self
            .rest
            .find(char::is_whitespace)
            .unwrap_or(self.rest.len());
        let kind = &self.rest[..kind_end];
        if kind.eq_ignore_ascii_case("NONE") {
            if kind_end != self.rest.len() {
                return Err(self.whole_err("HEALTHCHECK NONE takes no arguments"));
            }
            return Ok(Healthcheck::None);
        }
        if !kind.eq_ignore_ascii_case("CMD") {
            return Err(self.err(
                ErrorKind::Syntax,
                self.word(0..kind_end).span,
                format!(
                    "Unknown type \"{}\" in HEALTHCHECK (try CMD)",
                    kind.to_ascii_uppercase()
                ),
            ));
        }
        let body = self.rest[kind_end..].trim_start();
        if body.is_empty() {
            return Err(self.whole_err("Missing command after HEALTHCHECK CMD"));
        }
        let sub = Ctx {
            rest: body.to_string(),
            rest_start: self.rest_start + self.rest.len() - body.len(),
            keyword: self.keyword.clone(),
            keyword_span: self.keyword_span.clone(),
            ..*self
        };
        let mut all = Vec::new();
        for name in [
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ] {
            all.extend(flags.one(name));
        }
        Ok(Healthcheck::Check {
            command: sub.command(),
            flags: all,
        })
    }

    fn onbuild(&self) -> Result<Onbuild, Error> {
        let sub = sub_line(
            self.line,
            self.rest_start,
            self.rest_start + self.rest.len(),
        );
        let trigger = instruction(self.src, &sub, self.escape)?;
        let kw = trigger.kind.keyword();
        if matches!(kw, "ONBUILD" | "FROM" | "MAINTAINER") {
            return Err(self.err(
                ErrorKind::Syntax,
                trigger.span.clone(),
                format!("{kw} isn't allowed as an ONBUILD trigger"),
            ));
        }
        Ok(Onbuild {
            expression: self.rest.clone(),
            trigger: Box::new(trigger),
        })
    }
}

/// The part `start..end` of a logical line, as a line of its own.
fn sub_line(line: &LogicalLine, start: usize, end: usize) -> LogicalLine {
    let mut segments: Vec<(usize, usize)> = vec![(0, line.source_offset(start))];
    for &(t, s) in &line.segments {
        if t > start && t < end {
            segments.push((t - start, s));
        }
    }
    LogicalLine {
        first_line: line.first_line,
        text: line.text[start..end].to_string(),
        segments,
        heredocs: Vec::new(),
        end: line.end,
    }
}

/// Parses one logical line.
///
/// # Errors
/// Unknown instruction or flag, wrong arguments for the instruction.
pub(crate) fn instruction(
    src: &Source<'_>,
    line: &LogicalLine,
    escape: char,
) -> Result<Instruction, Error> {
    let start = line.source_offset(0);
    let Some(g) = grammar::line(&line.text) else {
        return Err(src.error(
            ErrorKind::Syntax,
            start..line.end,
            "cannot parse instruction",
        ));
    };
    let keyword_span = line.source_span(g.keyword_range.clone());
    let upper = g.keyword.to_ascii_uppercase();
    if !KEYWORDS.contains(&upper.as_str()) {
        let mut msg = format!("unknown instruction: {}", g.keyword);
        if let Some(s) = suggest(&g.keyword) {
            msg.push_str(&format!(" (did you mean {s}?)"));
        }
        return Err(src.error(ErrorKind::UnknownInstruction, keyword_span, msg));
    }
    let raw: Vec<Flag> = g
        .flags
        .iter()
        .map(|f| Flag {
            name: f.name.clone(),
            value: f.value.clone(),
            span: line.source_span(f.range.clone()),
        })
        .collect();
    let mut flags = flags::check(src, &upper, raw)?;
    let ctx = Ctx {
        src,
        line,
        escape,
        keyword: upper.clone(),
        rest: g.rest.clone(),
        rest_start: g.rest_range.start,
        keyword_span: keyword_span.clone(),
    };
    if ctx.rest.is_empty() {
        return Err(ctx.whole_err(format!("{upper} requires at least one argument")));
    }
    let kind = match upper.as_str() {
        "FROM" => Kind::From(ctx.from(&mut flags)?),
        "RUN" => Kind::Run(Run {
            command: ctx.command(),
            heredocs: line.heredocs.clone(),
            mounts: flags.many("mount"),
            network: flags.one("network"),
            security: flags.one("security"),
        }),
        "CMD" => Kind::Cmd(ctx.command()),
        "ENTRYPOINT" => Kind::Entrypoint(ctx.command()),
        "LABEL" => Kind::Label(ctx.key_values()?),
        "ENV" => Kind::Env(ctx.key_values()?),
        "MAINTAINER" => Kind::Maintainer(ctx.rest.clone()),
        "EXPOSE" => Kind::Expose(ctx.plain_words()),
        "VOLUME" => {
            let words = ctx.json_or_words();
            if words.is_empty() {
                return Err(ctx.whole_err("VOLUME requires at least one argument"));
            }
            Kind::Volume(words)
        }
        "USER" => Kind::User(ctx.rest_word()),
        "WORKDIR" => Kind::Workdir(ctx.rest_word()),
        "STOPSIGNAL" => Kind::Stopsignal(ctx.rest_word()),
        "ARG" => Kind::Arg(ctx.args()?),
        "SHELL" => match grammar::json_array(&ctx.rest) {
            Some(items) if !items.is_empty() => Kind::Shell(items),
            _ => return Err(ctx.whole_err("SHELL requires the arguments to be in JSON form")),
        },
        "COPY" => Kind::Copy(Copy {
            paths: ctx.paths()?,
            from: flags.one("from"),
            chown: flags.one("chown"),
            chmod: flags.one("chmod"),
            link: flags.bool("link").unwrap_or(false),
            parents: flags.bool("parents").unwrap_or(false),
            exclude: flags.many("exclude"),
        }),
        "ADD" => Kind::Add(Add {
            paths: ctx.paths()?,
            chown: flags.one("chown"),
            chmod: flags.one("chmod"),
            link: flags.bool("link").unwrap_or(false),
            checksum: flags.one("checksum"),
            keep_git_dir: flags.bool("keep-git-dir").unwrap_or(false),
            unpack: flags.bool("unpack"),
            exclude: flags.many("exclude"),
        }),
        "HEALTHCHECK" => Kind::Healthcheck(ctx.healthcheck(flags)?),
        "ONBUILD" => Kind::Onbuild(ctx.onbuild()?),
        _ => unreachable!("keyword list checked above"),
    };
    // The keyword is on the line's first physical line (unless it is an
    // ONBUILD trigger after a continuation): count from that line's start
    // instead of from the top of the file, which made parsing quadratic.
    let (first_no, first_start) = line.first_line;
    let before = src.text.get(first_start..keyword_span.start);
    let (line_no, column) = match before {
        Some(b) if first_no > 0 && !b.contains('\n') => (first_no, b.chars().count() + 1),
        _ => src.position(keyword_span.start),
    };
    Ok(Instruction {
        keyword: g.keyword,
        text: line.text.trim_end().to_string(),
        args_text: g.rest,
        span: keyword_span.start..line.end,
        line: line_no,
        column,
        kind,
    })
}

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;
