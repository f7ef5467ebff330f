//! Container lifecycle: `run -d`, `ps`, `logs`, `exec`, `stop`, `wait`, `rm`,
//! `start`, and containers kept after a foreground run.

use std::time::{Duration, Instant};

use crate::harness::{setup, Bake};

/// Polls `bake logs CTR` until it contains `text` (the container is asynchronous; the
/// deadline only bounds a hang, it asserts no timing).
pub fn logs_contain(bake: &Bake, ctr: &str, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = bake.ok(&["logs", ctr]);
        if out.stdout.contains(text) || Instant::now() > deadline {
            return out.stdout;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_detached_container_runs_until_stopped_and_is_removed_with_its_dirs() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    bake.ok(&["pull", "-q", &base]);
    let out = bake.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        &base,
        "sh",
        "-c",
        "echo data > /shared; echo up; sleep 300; echo never",
    ]);
    let id = out.stdout.trim().to_string();
    assert_eq!(id.len(), 64, "{out}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{out}");
    let dir = bake.root().join("containers").join(&id);
    assert!(dir.join("upper").is_dir() && dir.join("config.json").is_file());

    assert_eq!(logs_contain(&bake, "web", "up"), "up\n");

    let ps = bake.ok(&["ps"]);
    let line = ps
        .stdout
        .lines()
        .find(|l| l.contains("web"))
        .unwrap_or_else(|| panic!("{ps}"));
    assert!(line.starts_with(&id[..12]), "{ps}");
    assert!(line.contains(" Up "), "{ps}");
    assert!(ps.stdout.starts_with("CONTAINER ID"), "{ps}");
    assert_eq!(bake.ok(&["ps", "-q"]).stdout, format!("{}\n", &id[..12]));

    // exec joins the container: its filesystem, its pid namespace, its hostname.
    let seen = bake.ok(&["exec", "web", "cat", "/shared"]);
    assert_eq!(seen.stdout, "data\n");
    let pid1 = bake.ok(&[
        "exec",
        &id[..12],
        "sh",
        "-c",
        "tr '\\0' ' ' < /proc/1/cmdline; echo; hostname",
    ]);
    assert_eq!(
        pid1.stdout,
        format!(
            "sh -c echo data > /shared; echo up; sleep 300; echo never \n{}\n",
            &id[..12]
        )
    );
    let whoami = bake.ok(&[
        "exec",
        "-u",
        "1000",
        "-w",
        "/tmp",
        "-e",
        "X=1",
        "web",
        "sh",
        "-c",
        "echo $(id -u) $(pwd) $X",
    ]);
    assert_eq!(whoami.stdout, "1000 /tmp 1\n");
    assert_eq!(bake.run(&["exec", "web", "no-such-cmd"]).code, 127);

    // sh as pid 1 ignores SIGTERM: stop escalates to SIGKILL after the timeout.
    bake.ok(&["stop", "-t", "1", "web"]);
    let ps = bake.ok(&["ps"]);
    assert!(!ps.stdout.contains("web"), "{ps}");
    let all = bake.ok(&["ps", "-a"]);
    let line = all
        .stdout
        .lines()
        .find(|l| l.contains("web"))
        .unwrap_or_else(|| panic!("{all}"));
    assert!(
        line.contains("Exited (137)") || line.contains("Exited (143)"),
        "{all}"
    );
    let code = bake.ok(&["wait", "web"]).stdout;
    assert!(code == "137\n" || code == "143\n", "{code}");
    assert!(bake.run(&["exec", "web", "true"]).code != 0);

    // start runs it again on the same layer.
    bake.ok(&["start", "web"]);
    let seen = bake.ok(&["exec", "web", "cat", "/shared"]);
    assert_eq!(seen.stdout, "data\n");
    let busy = bake.run(&["rm", "web"]);
    assert_ne!(busy.code, 0, "a running container was removed:\n{busy}");
    assert!(busy.stderr.contains("running"), "{busy}");
    bake.ok(&["rm", "-f", "web"]);
    assert!(!dir.exists(), "the container's directory is left behind");
    assert!(!bake.ok(&["ps", "-a"]).stdout.contains("web"));
    assert_ne!(bake.run(&["logs", "web"]).code, 0);
}

#[test]
fn a_foreground_container_is_kept_unless_rm_and_kill_delivers_signals() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    bake.ok(&["pull", "-q", &base]);
    let out = bake.run(&["run", "--name", "kept", &base, "sh", "-c", "exit 3"]);
    assert_eq!(out.code, 3, "{out}");
    let all = bake.ok(&["ps", "-a"]);
    let line = all
        .stdout
        .lines()
        .find(|l| l.contains("kept"))
        .unwrap_or_else(|| panic!("{all}"));
    assert!(line.contains("Exited (3)"), "{all}");
    assert!(line.contains("\"sh -c exit 3\""), "{all}");
    assert_eq!(bake.ok(&["wait", "kept"]).stdout, "3\n");
    let taken = bake.run(&["run", "--name", "kept", &base, "true"]);
    assert_ne!(taken.code, 0, "{taken}");
    assert!(taken.stderr.contains("already in use"), "{taken}");

    bake.ok(&["run", "--rm", "--name", "gone", &base, "true"]);
    assert!(!bake.ok(&["ps", "-a"]).stdout.contains("gone"));
    bake.ok(&["rm", "kept"]);
    // (`.removing-<id>`: a removed container whose files are deleted in the background)
    let left: Vec<_> = std::fs::read_dir(bake.root().join("containers"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // A generated name; --init forwards TERM to a shell that traps it.
    let id = bake.ok(&[
        "run",
        "-d",
        "--init",
        &base,
        "sh",
        "-c",
        "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 1; done",
    ]);
    let id = id.stdout.trim();
    let name_line = bake.ok(&["ps"]).stdout;
    let name = name_line
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    assert!(name.contains('_'), "not a generated name: {name_line}");
    assert_eq!(logs_contain(&bake, &name, "ready"), "ready\n");
    bake.ok(&["kill", "-s", "TERM", &name]);
    assert_eq!(bake.ok(&["wait", id]).stdout, "7\n");
    assert_eq!(bake.ok(&["logs", "--tail", "1", id]).stdout, "got-term\n");

    // -d --rm: the supervisor removes the container when it exits.
    let id = bake
        .ok(&["run", "-d", "--rm", &base, "true"])
        .stdout
        .trim()
        .to_string();
    let dir = bake.root().join("containers").join(&id);
    let deadline = Instant::now() + Duration::from_secs(60);
    while dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!dir.exists(), "-d --rm left {}", dir.display());
}
