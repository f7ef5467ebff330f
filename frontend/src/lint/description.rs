//! `InvalidDefinitionDescription` (experimental in BuildKit, so off unless
//! `# check=experimental=InvalidDefinitionDescription|all`).
//!
//! `docker buildx build --call=outline|targets` shows the comment block
//! right above a `FROM … AS name` or an `ARG` as its description when the
//! comment starts with that name (`# VERSION sets the version`). BuildKit
//! warns when the *last* line of such a block (the one touching the
//! instruction) does not start with the stage name or one of the ARG's
//! keys. A blank line or an empty `#` line ends a block, so a comment that
//! is not meant as a description can be set apart that way. The parser
//! directives at the top of the file are not comments.

use crate::ast::{Dockerfile, Instruction, Kind};
use crate::error::{Source, Warning};

/// The rule's name.
pub(crate) const RULE: &str = "InvalidDefinitionDescription";

/// Directive names that BuildKit reads from the leading comments.
const DIRECTIVES: &[&str] = &["syntax", "escape", "check"];

/// Warnings for every FROM-with-a-name and ARG whose description comment
/// does not start with the name.
pub(super) fn check(df: &Dockerfile, src: &Source<'_>) -> Vec<Warning> {
    let text = df.source.strip_prefix('\u{feff}').unwrap_or(&df.source);
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut out = Vec::new();
    for ins in &df.instructions {
        let (keyword, keys): (&str, Vec<&str>) = match &ins.kind {
            Kind::From(f) => match &f.alias {
                Some(a) => ("FROM", vec![a.text.as_str()]),
                None => continue,
            },
            Kind::Arg(decls) => ("ARG", decls.iter().map(|d| d.name.as_str()).collect()),
            _ => continue,
        };
        if let Some(w) = judge(src, ins, keyword, &keys, &lines) {
            out.push(w);
        }
    }
    out
}

fn judge(
    src: &Source<'_>,
    ins: &Instruction,
    keyword: &str,
    keys: &[&str],
    lines: &[&str],
) -> Option<Warning> {
    let last = comment_block(lines, ins.line)?;
    let first_word = last.split(' ').next().unwrap_or("");
    if keys.contains(&first_word) {
        return None;
    }
    let example = match keys {
        [one] => *one,
        _ => "<arg_key>",
    };
    Some(src.warning(
        RULE,
        Some(ins.span.start),
        format!("Comment for {keyword} should follow the format: `# {example} <description>`"),
    ))
}

/// The last line of the comment block directly above 1-based `line`
/// (`#` and surrounding blanks removed), if there is one.
fn comment_block(lines: &[&str], line: usize) -> Option<String> {
    let mut block = Vec::new();
    let mut i = line.checked_sub(1)?;
    while i > 0 {
        let l = lines.get(i - 1)?.trim_start();
        let Some(comment) = l.strip_prefix('#') else {
            break;
        };
        let comment = comment.trim();
        if comment.is_empty() {
            break;
        }
        block.push((i, comment.to_string()));
        i -= 1;
    }
    // A block that reaches the top of the file starts with the parser
    // directives, which are not comments.
    if i == 0 {
        block.reverse();
        let directives = block.iter().take_while(|(_, c)| is_directive(c)).count();
        block.drain(..directives);
        block.reverse();
    }
    block.into_iter().next().map(|(_, c)| c)
}

fn is_directive(comment: &str) -> bool {
    comment.split_once('=').is_some_and(|(k, _)| {
        let k = k.trim();
        DIRECTIVES.iter().any(|d| d.eq_ignore_ascii_case(k))
    })
}
