//! `bake build --check` and `# check=…;error=true`: BuildKit's lint rules,
//! reported the way `docker build --check` reports them.

use std::io::Write;

use anyhow::{bail, Result};
use bake_frontend::ast::Dockerfile;
use bake_frontend::ir::Definition;
use bake_frontend::{lint, BuildOptions, Warning};

use crate::exit::Diagnosed;

fn diagnosed(e: bake_frontend::Error) -> anyhow::Error {
    Diagnosed(miette::Report::new(e)).into()
}

/// Prints the lint warnings of a Dockerfile (no build) and fails when there
/// is any, or when the Dockerfile cannot be lowered (after printing what
/// the AST checks found).
pub fn report(
    ast: &Dockerfile,
    options: &BuildOptions,
    lowered: Result<(Definition, Vec<Warning>), bake_frontend::Error>,
) -> Result<()> {
    let config = lint::config(ast, options).map_err(diagnosed)?;
    let (warnings, error) = match lowered {
        Ok((_, w)) => (w, None),
        Err(e) => (lint::select(&config, lint::check(ast, options)), Some(e)),
    };
    let (lints, notices): (Vec<&Warning>, Vec<&Warning>) =
        warnings.iter().partition(|w| lint::is_lint(w));
    for w in notices {
        eprintln!("{w}");
    }
    let mut out = std::io::stdout().lock();
    for w in &lints {
        writeln!(out, "{}", render(ast, w))?;
    }
    match lints.len() {
        0 => writeln!(out, "Check complete, no warnings found.")?,
        1 => writeln!(out, "Check complete, 1 warning has been found!")?,
        n => writeln!(out, "Check complete, {n} warnings have been found!")?,
    }
    drop(out);
    if let Some(e) = error {
        return Err(diagnosed(e));
    }
    if !lints.is_empty() {
        bail!("lint check failed: {} warning(s)", lints.len());
    }
    Ok(())
}

/// Fails a build whose `# check=` says `error=true` and that has lint
/// warnings (they have been printed already).
pub fn enforce(ast: &Dockerfile, options: &BuildOptions, warnings: &[Warning]) -> Result<()> {
    let config = lint::config(ast, options).map_err(diagnosed)?;
    if let Some(message) = lint::violations(&config, warnings) {
        bail!(message);
    }
    Ok(())
}

/// One warning as `docker build --check` shows it: rule and URL, message,
/// position, and the line it is about.
fn render(ast: &Dockerfile, w: &Warning) -> String {
    let url = lint::rule_named(w.code)
        .map(|r| r.url())
        .unwrap_or_default();
    let mut text = format!(
        "WARNING: {} - {url}\n{}\n{}:{}:{}\n",
        w.code, w.message, w.file, w.line, w.column
    );
    if let Some(line) = ast.source.lines().nth(w.line.saturating_sub(1)) {
        text.push_str("--------------------\n");
        text.push_str(&format!(" {:>3} | >>> {line}\n", w.line));
        text.push_str("--------------------\n");
    }
    text
}
