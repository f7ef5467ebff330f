//! bake's Dockerfile frontend: reads a Dockerfile exactly as BuildKit does
//! and lowers it to the solver's IR.
//!
//! Two steps, usable separately:
//!
//! - [`parse`]: text → typed [`ast::Dockerfile`] (directives, a hand-written
//!   pre-pass for continuations and heredocs, then a pest grammar per
//!   instruction). Only syntax is checked here.
//! - [`lower`]: AST + build options → [`ir::Definition`] (the graph of the
//!   stages the target needs and the image config) plus warnings. Variable
//!   expansion, ARG scoping and stage resolution happen here, because they
//!   depend on `--build-arg`, `--target` and the base images.
//!
//! Errors carry positions and render with `miette`; see [`Error`].
#![deny(missing_docs)]

pub mod ast;
pub mod directives;
mod error;
pub mod expand;
mod flags;
mod grammar;
mod heredoc;
pub mod lint;
mod logical_lines;
mod lower;
mod parser;

pub use bake_solver::ir;
pub use error::{Error, ErrorKind, Span, Warning};
pub use lower::{lower, BuildOptions, ImageResolver, ResolvedImage};

/// Parses a Dockerfile. `file` is the name used in positions
/// (`Dockerfile:3:1: …`).
///
/// # Errors
/// Any syntax error: bad directive, unterminated heredoc, unknown
/// instruction or flag, wrong arguments for an instruction.
pub fn parse(source: &str, file: &str) -> Result<ast::Dockerfile, Error> {
    let src = error::Source { file, text: source };
    // A UTF-8 byte order mark is skipped, as BuildKit does.
    let start = if source.starts_with('\u{feff}') { 3 } else { 0 };
    let directives = directives::parse(&src, &source[start..], start)?;
    let mut warnings = Vec::new();
    let lines = logical_lines::split(&src, start, directives.escape, &mut warnings)?;
    let instructions = lines
        .iter()
        .map(|l| parser::instruction(&src, l, directives.escape))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ast::Dockerfile {
        file: file.to_string(),
        source: source.to_string(),
        directives,
        instructions,
        warnings,
    })
}
