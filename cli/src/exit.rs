//! Exit codes and error rendering: the one place where a failure becomes
//! text on stderr and a process status.
//!
//! Every command returns `anyhow::Result`; `main` hands an error here once.
//! Dockerfile errors are miette diagnostics and are drawn with the fancy
//! handler (file:line:col, the line, a caret); everything else is printed as
//! `error: <cause>: <cause>…`, ripgrep style, so a cause is never repeated
//! and never lost.

use std::fmt;
use std::io;
use std::process::ExitCode;

/// A failure that is drawn as a miette diagnostic rather than a cause chain
/// (the frontend's errors, which carry the Dockerfile source and a span).
pub struct Diagnosed(pub miette::Report);

impl fmt::Debug for Diagnosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Diagnosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Diagnosed {}

/// The exit status for a failure of a command other than `bake run`.
pub const FAILURE: u8 = 1;

/// `bake run`'s status for bake's own errors (Docker's convention: the
/// container's own codes keep their meaning).
pub const RUN_FAILURE: u8 = 125;

/// Whether the failure is a closed stdout (`bake images | head -1`), which
/// is how pipelines end and not an error.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        let kind = match (
            cause.downcast_ref::<io::Error>(),
            cause.downcast_ref::<serde_json::Error>(),
        ) {
            (Some(e), _) => Some(e.kind()),
            // serde_json's writers wrap the io::Error without exposing it as a source.
            (None, Some(e)) => e.io_error_kind(),
            (None, None) => None,
        };
        kind == Some(io::ErrorKind::BrokenPipe)
    })
}

/// The text printed for a failure: a diagnostic drawing, or `error: ` and
/// the cause chain on one line. `debug` adds the `Debug` form (which, for
/// anyhow, includes a backtrace when `RUST_BACKTRACE` asks for one).
pub fn render(err: &anyhow::Error, debug: bool) -> String {
    if let Some(diagnosed) = err.chain().find_map(|c| c.downcast_ref::<Diagnosed>()) {
        return format!("{:?}", diagnosed.0);
    }
    let chain: Vec<String> = err.chain().map(ToString::to_string).collect();
    let mut text = format!("error: {}", dedup_chain(&chain).join(": "));
    if debug {
        text.push_str(&format!("\n\n{err:?}"));
    }
    text
}

/// Drops causes whose text the previous message already ends with: many
/// library errors format their source into their own message (`#[error("…:
/// {source}")]`) and also return it from `source()`.
fn dedup_chain(chain: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for msg in chain {
        if out.last().is_some_and(|prev| prev.contains(msg.as_str())) {
            continue;
        }
        out.push(msg);
    }
    out
}

/// Reports a failure on stderr and returns the status to exit with:
/// 0 for a broken pipe, otherwise `code`.
pub fn fail(err: &anyhow::Error, code: u8, debug: bool) -> ExitCode {
    if is_broken_pipe(err) {
        return ExitCode::SUCCESS;
    }
    eprintln!("{}", render(err, debug));
    ExitCode::from(code)
}

/// The status `bake run` exits with for an error of its own: Docker's 126
/// and 127 when the runner could not execute or find the command, 125
/// otherwise.
pub fn run_code(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<bake_runner::Error>())
        .and_then(|e| u8::try_from(e.docker_code()).ok())
        .unwrap_or(RUN_FAILURE)
}

/// A container's exit converted to a process status (Docker's mapping,
/// 128+n for a signal), clamped to what a status can hold.
pub fn container_code(exit: &bake_runner::Exit) -> ExitCode {
    ExitCode::from(u8::try_from(exit.docker_code()).unwrap_or(RUN_FAILURE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_chain_is_printed_once_on_one_line() {
        let io = io::Error::new(io::ErrorKind::NotFound, "No such file or directory");
        let err = anyhow::Error::new(io).context("reading /ctx/Dockerfile");
        assert_eq!(
            render(&err, false),
            "error: reading /ctx/Dockerfile: No such file or directory"
        );
    }

    #[test]
    fn a_cause_already_in_its_parent_message_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("open /x: {source}")]
        struct Open {
            #[source]
            source: io::Error,
        }
        let err = anyhow::Error::new(Open {
            source: io::Error::new(io::ErrorKind::PermissionDenied, "denied"),
        });
        assert_eq!(render(&err, false), "error: open /x: denied");
    }

    #[test]
    fn a_broken_pipe_is_recognised_through_context() {
        let err = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe)).context("stdout");
        assert!(is_broken_pipe(&err));
        let json = serde_json::Error::io(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&anyhow::Error::new(json)));
        let other = anyhow::anyhow!("boom").context("x");
        assert!(!is_broken_pipe(&other));
    }

    #[test]
    fn diagnostics_are_drawn_by_miette() {
        let report = miette::miette!("unknown instruction");
        let err = anyhow::Error::new(Diagnosed(report)).context("parsing Dockerfile");
        let text = render(&err, false);
        assert!(text.contains("unknown instruction"), "{text}");
        assert!(!text.starts_with("error: parsing"), "{text}");
    }
}
