//! `bake pause` / `bake unpause` (the cgroup freezer) and `bake commit` of a running
//! container, which freezes it while its changes are copied (`--pause`, default on).

use std::time::{Duration, Instant};

use crate::harness::{setup, Bake};
use crate::ports::RemoveOnDrop;

/// A shell loop that writes an ever-growing counter to /counter.
const COUNT: &str = "i=0; while true; do i=$((i+1)); echo $i > /counter; sleep 0.05; done";

/// The host pid of the container's pid 1 (from its state file).
fn pid1(bake: &Bake, id: &str) -> u32 {
    let state = bake.root().join("containers").join(id).join("state.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    json["pid"].as_u64().unwrap() as u32
}

/// The counter, read through the container's root as the host sees it.
fn counter(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/root/counter"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits (bounded) until the counter differs from `from`; returns whether it did.
fn moves_from(pid: u32, from: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if counter(pid) != from {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The `bake ps` line of container `name`.
fn ps_line(bake: &Bake, name: &str) -> String {
    let ps = bake.ok(&["ps"]).stdout;
    ps.lines()
        .find(|l| l.trim_end().ends_with(name))
        .unwrap_or_else(|| panic!("no {name} in ps:\n{ps}"))
        .to_string()
}

/// Starts the counting container `name`; returns (id, host pid of its pid 1) once the
/// counter runs.
fn start_counter(bake: &Bake, base: &str, name: &str) -> (String, u32) {
    let id = bake
        .ok(&["run", "-d", "--name", name, base, "sh", "-c", COUNT])
        .stdout
        .trim()
        .to_string();
    let pid = pid1(bake, &id);
    assert!(moves_from(pid, 0), "the counter never started");
    (id, pid)
}

/// The freezer cgroup directory (v1) or cgroup (v2) host pid `pid` is in, as a path
/// under /sys/fs/cgroup.
fn freezer_dir(pid: u32) -> std::path::PathBuf {
    let listing = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let (mount, path) = listing
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == "freezer")
                .then(|| ("/sys/fs/cgroup/freezer", path.to_string()))
        })
        .or_else(|| {
            listing.lines().find_map(|l| {
                l.strip_prefix("0::")
                    .map(|p| ("/sys/fs/cgroup", p.to_string()))
            })
        })
        .unwrap();
    std::path::Path::new(mount).join(path.trim_start_matches('/'))
}

#[test]
fn pause_freezes_every_process_and_unpause_thaws_them() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    bake.ok(&["pull", "-q", &base]);
    let _cleanup = RemoveOnDrop(&bake, "counting");
    let (_id, pid) = start_counter(&bake, &base, "counting");

    assert_eq!(bake.ok(&["pause", "counting"]).stdout, "counting\n");
    let frozen_in = freezer_dir(pid);
    let line = ps_line(&bake, "counting");
    assert!(line.contains("(Paused)"), "{line}");
    let inspect: serde_json::Value =
        serde_json::from_str(&bake.ok(&["inspect", "counting"]).stdout).unwrap();
    let state = &inspect[0]["State"];
    assert_eq!(state["Status"], "paused", "{state}");
    assert_eq!(
        (&state["Running"], &state["Paused"]),
        (&true.into(), &true.into())
    );
    let before = counter(pid);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(counter(pid), before, "the counter moved while paused");

    let exec = bake.run(&["exec", "counting", "true"]);
    assert_ne!(exec.code, 0, "{exec}");
    assert!(
        exec.stderr
            .contains("is paused, unpause the container before exec"),
        "{exec}"
    );
    let again = bake.run(&["pause", "counting"]);
    assert!(again.stderr.contains("already paused"), "{again}");

    assert_eq!(bake.ok(&["unpause", "counting"]).stdout, "counting\n");
    assert!(
        moves_from(pid, before),
        "the counter did not move after unpause"
    );
    assert!(!ps_line(&bake, "counting").contains("Paused"));
    let again = bake.run(&["unpause", "counting"]);
    assert!(again.stderr.contains("is not paused"), "{again}");
    // The cgroup made for the pause is gone with it, unless it is the container's own.
    if frozen_in
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("bake-pause-"))
    {
        assert!(!frozen_in.exists(), "{} left behind", frozen_in.display());
    }
    bake.ok(&["exec", "counting", "true"]);

    // A paused container can still be stopped: it is thawed to take the signal.
    bake.ok(&["pause", "counting"]);
    bake.ok(&["stop", "-t", "1", "counting"]);
    let ps = bake.ok(&["ps", "-a"]).stdout;
    let line = ps.lines().find(|l| l.contains("counting")).unwrap();
    assert!(line.contains("Exited"), "{ps}");
    assert!(!frozen_in.exists(), "{} left behind", frozen_in.display());
    let not_running = bake.run(&["pause", "counting"]);
    assert!(
        not_running.stderr.contains("is not running"),
        "{not_running}"
    );
}

#[test]
fn commit_of_a_running_container_freezes_it_and_leaves_it_running() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    bake.ok(&["pull", "-q", &base]);
    let _cleanup = RemoveOnDrop(&bake, "busy");
    let (_id, pid) = start_counter(&bake, &base, "busy");

    let id = bake.ok(&["commit", "busy", "snap:1"]).stdout;
    assert!(id.trim().starts_with("sha256:"), "{id}");
    // Thawed again: running, not paused, still counting.
    let line = ps_line(&bake, "busy");
    assert!(line.contains("Up") && !line.contains("Paused"), "{line}");
    assert!(
        moves_from(pid, counter(pid)),
        "the counter stopped after commit"
    );
    let out = bake.ok(&["run", "--rm", "snap:1", "cat", "/counter"]);
    assert!(
        out.stdout.trim().parse::<u64>().is_ok_and(|n| n > 0),
        "{out}"
    );

    // --pause=false copies it running; -p is --pause.
    bake.ok(&["commit", "--pause=false", "busy", "snap:2"]);
    let out = bake.ok(&["run", "--rm", "snap:2", "cat", "/counter"]);
    assert!(
        out.stdout.trim().parse::<u64>().is_ok_and(|n| n > 0),
        "{out}"
    );
    bake.ok(&["commit", "-p", "busy", "snap:3"]);
    assert!(!ps_line(&bake, "busy").contains("Paused"));

    // A paused container stays paused through a commit.
    bake.ok(&["pause", "busy"]);
    bake.ok(&["commit", "busy", "snap:4"]);
    assert!(ps_line(&bake, "busy").contains("(Paused)"));
    bake.ok(&["unpause", "busy"]);
    bake.ok(&["rm", "-f", "busy"]);
}

/// Whether the cgroup of host pid `pid` is frozen right now (v1 `freezer.state`,
/// v2 `cgroup.events`).
fn frozen_now(pid: u32) -> bool {
    let dir = freezer_dir(pid);
    std::fs::read_to_string(dir.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
        || std::fs::read_to_string(dir.join("cgroup.events"))
            .is_ok_and(|s| s.lines().any(|l| l == "frozen 1"))
}

#[test]
fn ctrl_c_during_commit_leaves_the_container_thawed() {
    use std::os::unix::process::ExitStatusExt;
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    bake.ok(&["pull", "-q", &base]);
    let _cleanup = RemoveOnDrop(&bake, "bulky");
    // A 200 MB file in the writable layer keeps the copy (and the freeze) going for a
    // while, so that the signal lands while the container is frozen.
    let script = format!("dd if=/dev/zero of=/big bs=1M count=200 2>/dev/null; {COUNT}");
    let id = bake
        .ok(&["run", "-d", "--name", "bulky", &base, "sh", "-c", &script])
        .stdout
        .trim()
        .to_string();
    let pid = pid1(&bake, &id);
    assert!(moves_from(pid, 0), "the counter never started");

    let mut commit = bake
        .cmd()
        .args(["commit", "bulky", "interrupted:1"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut signalled = false;
    while Instant::now() < deadline {
        if commit.try_wait().unwrap().is_some() {
            break;
        }
        if frozen_now(pid) {
            // SAFETY: kill(2) of our own child.
            unsafe { libc::kill(commit.id() as i32, libc::SIGINT) };
            signalled = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let status = commit.wait().unwrap();
    if signalled {
        // Ctrl-C was held back until the container was thawed, then took effect.
        assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
    } else {
        eprintln!("skipped: the commit ended before its freeze was seen ({status:?})");
    }
    assert!(!frozen_now(pid), "the container was left frozen");
    assert!(!ps_line(&bake, "bulky").contains("Paused"));
    assert!(moves_from(pid, counter(pid)), "the counter stopped");
}

/// A paused container that dies without `bake unpause` (on cgroup v2 a frozen process
/// dies of SIGKILL; here the test thaws the cgroup behind bake's back and kills it) must
/// not leave its `bake-pause-*` cgroup behind: its supervisor removes it.
#[test]
fn a_container_that_dies_paused_leaves_no_cgroup_behind() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    bake.ok(&["pull", "-q", &base]);
    let _cleanup = RemoveOnDrop(&bake, "doomed");
    let (_id, pid) = start_counter(&bake, &base, "doomed");
    bake.ok(&["pause", "doomed"]);
    let frozen_in = freezer_dir(pid);
    if !frozen_in
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("bake-pause-"))
    {
        eprintln!("skipped: the container is frozen in a cgroup of its own");
        return;
    }
    let (file, thawed) = if frozen_in.join("freezer.state").exists() {
        ("freezer.state", "THAWED")
    } else {
        ("cgroup.freeze", "0")
    };
    std::fs::write(frozen_in.join(file), thawed).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !bake
        .ok(&["ps", "-a"])
        .stdout
        .lines()
        .any(|l| l.contains("doomed") && l.contains("Exited"))
    {
        assert!(Instant::now() < deadline, "the container did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!frozen_in.exists(), "{} left behind", frozen_in.display());
}
