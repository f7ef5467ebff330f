//! How pulls and pushes show progress: per-layer bars (bytes, total, rate)
//! on a terminal — checked under a pty made by `script` — and plain lines
//! carrying the size moved otherwise.

use std::process::Command;

use crate::harness::{setup, Bake};

/// Runs `bake ARGS…` on a pty (`script -qec`); returns (success, what the
/// terminal showed).
fn on_a_terminal(bake: &Bake, args: &str) -> (bool, String) {
    let command = format!("{} {args}", env!("CARGO_BIN_EXE_bake"));
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("BAKE_ROOT", bake.root())
        .env("COLUMNS", "120")
        .output()
        .expect("run script (util-linux)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn bars_on_a_terminal_lines_with_sizes_elsewhere() {
    let Some((reg, base, _bake)) = setup() else {
        return;
    };
    // Not a terminal: docker's lines, the finishing ones with the size.
    let piped = Bake::new();
    let out = piped.ok(&["pull", &base]);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains(": Download complete ") && l.ends_with("MB")),
        "{out}"
    );

    // A terminal: bars drawn with cursor movements, bytes and totals.
    let tty = Bake::new();
    let (ok, screen) = on_a_terminal(&tty, &format!("pull {base}"));
    assert!(ok, "{screen}");
    assert!(!screen.contains("panicked"), "{screen}");
    assert!(screen.contains("Downloaded newer image"), "{screen}");
    assert!(screen.contains('\u{1b}'), "no terminal drawing: {screen:?}");
    assert!(screen.contains("MiB/"), "no byte counts: {screen:?}");

    let name = format!("{}/tty/app:1", reg.addr);
    tty.ok(&["tag", &base, &name]);
    let (ok, screen) = on_a_terminal(&tty, &format!("push --progress=tty {name}"));
    assert!(ok, "{screen}");
    assert!(!screen.contains("panicked"), "{screen}");
    assert!(screen.contains("1: digest: sha256:"), "{screen}");
}
