//! Container commands beyond the basic lifecycle: `inspect CTR`, `diff`, `cp`,
//! `export`, `commit`, `restart`, `top`, named volumes, `exec` in the container's
//! cgroup, HEALTHCHECK, `--cpus`.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::harness::{scratch_dir, setup};
use crate::lifecycle::logs_contain;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// `tar -tf FILE` (or stdin when `file` is `-` and `input` is given), sorted.
fn tar_list(file: &str, input: Option<&[u8]>) -> Vec<String> {
    let mut child = Command::new("tar")
        .args(["-tf", file])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(bytes) = input {
        stdin.write_all(bytes).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "tar -t failed");
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    names.sort();
    names
}

#[test]
fn inspect_diff_cp_and_export_show_what_a_container_changed() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    bake.ok(&["pull", "-q", &base]);
    let host = tempfile::tempdir_in(scratch_dir()).unwrap();
    let secret_dir = host.path().join("secret-dir");
    std::fs::create_dir(&secret_dir).unwrap();
    std::fs::write(secret_dir.join("secret"), "host only\n").unwrap();
    let secret_dir = secret_dir.to_str().unwrap().to_string();
    let script = format!(
        "echo hi > /new.txt; rm /etc/group; mkdir -p /home/app/d; echo x > /home/app/d/f; \
         ln -s /etc /tmp/etc-link; ln -s {secret_dir} /escape; ln -s ../../../../../.. /up; \
         echo ready; exec sleep 300"
    );
    let id = bake
        .ok(&["run", "-d", "--name", "box", &base, "sh", "-c", &script])
        .stdout
        .trim()
        .to_string();
    logs_contain(&bake, "box", "ready");

    // inspect: containers first, docker's field names.
    let v = json(&bake.ok(&["inspect", "box"]).stdout);
    let c = &v[0];
    assert_eq!(c["Id"], id.as_str(), "{v}");
    assert_eq!(c["Name"], "/box");
    assert_eq!(c["State"]["Status"], "running");
    assert_eq!(c["State"]["Running"], true);
    assert!(c["State"]["Pid"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(c["State"]["FinishedAt"], "0001-01-01T00:00:00Z");
    assert_eq!(c["Config"]["Image"], base.as_str());
    assert_eq!(c["Config"]["Cmd"], serde_json::json!(["sh", "-c", script]));
    assert!(c["Config"]["Entrypoint"].is_null(), "{v}");
    assert!(c["Config"]["Env"][0].as_str().unwrap().starts_with("PATH="));
    // The image is still found by name, and --type narrows the search.
    let img = json(&bake.ok(&["inspect", &base]).stdout);
    assert!(img[0]["RootFS"]["Layers"].is_array(), "{img}");
    let wrong = bake.run(&["inspect", "--type", "image", "box"]);
    assert_ne!(wrong.code, 0, "{wrong}");
    assert!(wrong.stderr.contains("No such image: box"), "{wrong}");
    assert_ne!(bake.run(&["inspect", "--type", "container", &base]).code, 0);

    // diff: the overlay's upper dir, Docker's letters and order, no mount points.
    let diff = bake.ok(&["diff", "box"]).stdout;
    assert_eq!(
        diff,
        "A /escape\nC /etc\nD /etc/group\nC /home/app\nA /home/app/d\nA /home/app/d/f\n\
         A /new.txt\nC /tmp\nA /tmp/etc-link\nA /up\n",
        "bake diff box"
    );

    // cp out: a file, a directory to a new name, a tar on stdout.
    let out_file = host.path().join("out.txt");
    bake.ok(&["cp", "box:/new.txt", out_file.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "hi\n");
    let dcopy = host.path().join("dcopy");
    bake.ok(&["cp", "box:/home/app/d", dcopy.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(dcopy.join("f")).unwrap(), "x\n");
    let link = host.path().join("link");
    bake.ok(&["cp", "box:/tmp/etc-link", link.to_str().unwrap()]);
    assert_eq!(std::fs::read_link(&link).unwrap().to_str(), Some("/etc"));
    let streamed = bake
        .cmd()
        .args(["cp", "box:/home/app/d", "-"])
        .output()
        .unwrap();
    assert!(streamed.status.success());
    assert_eq!(tar_list("-", Some(&streamed.stdout)), ["d/", "d/f"]);
    // `SRC/.` into an existing directory: the contents, not the directory.
    let contents = host.path().join("contents");
    std::fs::create_dir(&contents).unwrap();
    bake.ok(&["cp", "box:/home/app/d/.", contents.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(contents.join("f")).unwrap(), "x\n");
    assert!(!contents.join("d").exists());
    // A directory onto an existing file is refused.
    let refused = bake.run(&["cp", "box:/home/app/d", out_file.to_str().unwrap()]);
    assert_ne!(refused.code, 0, "{refused}");

    // cp in: a file into a directory (trailing /), a directory into a directory,
    // a tar from stdin.
    let in_file = host.path().join("in.txt");
    std::fs::write(&in_file, "from host\n").unwrap();
    bake.ok(&["cp", in_file.to_str().unwrap(), "box:/tmp/"]);
    bake.ok(&["cp", contents.to_str().unwrap(), "box:/home/app"]);
    let listed = bake.ok(&["exec", "box", "cat", "/home/app/contents/f"]);
    assert_eq!(listed.stdout, "x\n");
    assert_eq!(
        bake.ok(&["exec", "box", "cat", "/tmp/in.txt"]).stdout,
        "from host\n"
    );
    let mut child = bake
        .cmd()
        .args(["cp", "-", "box:/root"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&streamed.stdout)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(bake.ok(&["exec", "box", "cat", "/root/d/f"]).stdout, "x\n");
    assert!(
        bake.run(&["cp", "box:/nope", out_file.to_str().unwrap()])
            .code
            != 0
    );

    // Symlinks planted in the container resolve inside it, never on the host.
    let planted = "box:/escape/planted";
    let refused = bake.run(&["cp", in_file.to_str().unwrap(), planted]);
    assert_ne!(refused.code, 0, "{refused}");
    bake.ok(&["exec", "box", "mkdir", "-p", &secret_dir]);
    bake.ok(&["cp", in_file.to_str().unwrap(), planted]);
    assert!(
        !std::path::Path::new(&secret_dir).join("planted").exists(),
        "bake cp wrote through a container symlink onto the host"
    );
    let inside = bake.ok(&["exec", "box", "cat", &format!("{secret_dir}/planted")]);
    assert_eq!(inside.stdout, "from host\n");
    let leak = host.path().join("leak");
    for src in [
        "box:/escape/secret".to_string(),
        format!("box:/up{secret_dir}/secret"),
    ] {
        let read = bake.run(&["cp", &src, leak.to_str().unwrap()]);
        assert_ne!(read.code, 0, "{src} was read from the host:\n{read}");
        assert!(!leak.exists());
    }

    // export: the merged file system, mount points empty.
    let tar = host.path().join("box.tar");
    bake.ok(&["export", "-o", tar.to_str().unwrap(), "box"]);
    let names = tar_list(tar.to_str().unwrap(), None);
    for want in [
        "new.txt",
        "home/app/d/f",
        "bin/busybox",
        "proc/",
        "etc/passwd",
        "etc/hosts",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    // The bind-mounted /etc/hosts is a mount point: written empty.
    let hosts = Command::new("tar")
        .args(["-xOf", tar.to_str().unwrap(), "etc/hosts"])
        .output()
        .unwrap();
    assert!(
        hosts.status.success() && hosts.stdout.is_empty(),
        "{hosts:?}"
    );
    assert!(!names.iter().any(|n| n == "etc/group"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("proc/1")), "{names:?}");

    // A stopped container: read through its overlay.
    bake.ok(&["stop", "-t", "1", "box"]);
    let again = host.path().join("again.txt");
    bake.ok(&["cp", "box:/new.txt", again.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&again).unwrap(), "hi\n");
    let stopped_tar = host.path().join("stopped.tar");
    bake.ok(&["export", "-o", stopped_tar.to_str().unwrap(), "box"]);
    assert!(tar_list(stopped_tar.to_str().unwrap(), None).contains(&"new.txt".to_string()));
    let v = json(&bake.ok(&["inspect", "box"]).stdout);
    assert_eq!(v[0]["State"]["Status"], "exited");
    assert_ne!(v[0]["State"]["FinishedAt"], "0001-01-01T00:00:00Z");
    bake.ok(&["rm", "box"]);
}

#[test]
fn commit_makes_an_image_that_runs_and_pushes() {
    let Some((reg, base, bake)) = setup() else {
        return;
    };
    bake.ok(&["pull", "-q", &base]);
    bake.ok(&[
        "run",
        "--name",
        "writer",
        &base,
        "sh",
        "-c",
        "echo committed > /data.txt; rm /etc/hostname",
    ]);
    let name = format!("{}/team/committed:1", reg.addr);
    let id = bake
        .ok(&[
            "commit",
            "--author",
            "Jane <jane@example.com>",
            "--message",
            "saved by a test",
            "--change",
            "CMD [\"cat\", \"/data.txt\"]",
            "--change",
            "ENV GREETING=hello",
            "-c",
            "WORKDIR /srv",
            "writer",
            &name,
        ])
        .stdout
        .trim()
        .to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(bake.ok(&["run", "--rm", &name]).stdout, "committed\n");
    let seen = bake.ok(&[
        "run",
        "--rm",
        &name,
        "sh",
        "-c",
        "echo $GREETING $(pwd); test -e /etc/hostname || echo gone",
    ]);
    assert_eq!(seen.stdout, "hello /srv\ngone\n");
    let v = json(&bake.ok(&["inspect", "--type", "image", &name]).stdout);
    let history = v[0]["OciConfig"]["history"].as_array().unwrap().clone();
    let last = history.last().unwrap();
    assert_eq!(last["comment"], "saved by a test", "{v}");
    assert_eq!(last["author"], "Jane <jane@example.com>");
    assert_eq!(v[0]["Author"], "Jane <jane@example.com>");
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    // Without --change, the image gets the container's command and environment.
    bake.ok(&[
        "run",
        "--name",
        "plain",
        "-e",
        "MODE=x",
        &base,
        "sh",
        "-c",
        "echo $MODE",
    ]);
    bake.ok(&["commit", "plain", "plain-image"]);
    assert_eq!(bake.ok(&["run", "--rm", "plain-image"]).stdout, "x\n");
    bake.ok(&["rm", "plain"]);
    let bad = bake.run(&["commit", "-c", "RUN true", "writer"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("RUN is not supported"), "{bad}");

    // Interop: pushed, then read by skopeo and unpacked by umoci.
    bake.ok(&["push", &name]);
    let work = tempfile::tempdir_in(scratch_dir()).unwrap();
    let layout = work.path().join("layout");
    let ok = Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{name}"))
        .arg(format!("oci:{}:x", layout.display()))
        .status()
        .unwrap();
    assert!(ok.success(), "skopeo copy failed");
    let bundle = work.path().join("bundle");
    let out = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:x", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/data.txt")).unwrap(),
        "committed\n"
    );
    assert!(!bundle.join("rootfs/etc/hostname").exists());
    assert!(bundle.join("rootfs/etc/passwd").exists());
    bake.ok(&["rm", "writer"]);
}

#[test]
fn restart_runs_again_and_top_lists_the_processes() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    bake.ok(&["pull", "-q", &base]);
    bake.ok(&["run", "-d", "--name", "sleeper", &base, "sleep", "300"]);
    let pid = |bake: &crate::harness::Bake| {
        json(&bake.ok(&["inspect", "sleeper"]).stdout)[0]["State"]["Pid"]
            .as_u64()
            .unwrap()
    };
    let first = pid(&bake);
    let top = bake.ok(&["top", "sleeper"]).stdout;
    let mut lines = top.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["PID", "USER", "TIME", "COMMAND"], "{top}");
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[0], first.to_string(), "{top}");
    assert_eq!(row[1], "root", "{top}");
    assert_eq!(&row[3..], ["sleep", "300"], "{top}");
    assert!(lines.next().is_none(), "{top}");

    bake.ok(&["restart", "-t", "1", "sleeper"]);
    let second = pid(&bake);
    assert_ne!(first, second, "restart kept the old process");
    let v = json(&bake.ok(&["inspect", "sleeper"]).stdout);
    assert_eq!(v[0]["State"]["Status"], "running", "{v}");
    bake.ok(&["rm", "-f", "sleeper"]);
    assert_ne!(bake.run(&["top", "sleeper"]).code, 0);
}

#[test]
fn named_volumes_keep_data_across_containers() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    bake.ok(&["pull", "-q", &base]);
    bake.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        &base,
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    let seen = bake.ok(&["run", "--rm", "-v", "data:/data", &base, "cat", "/data/f"]);
    assert_eq!(seen.stdout, "kept\n");
    let data = bake.root().join("volumes/data/_data");
    assert_eq!(std::fs::read_to_string(data.join("f")).unwrap(), "kept\n");
    // --mount type=volume, read-only.
    let ro = "type=volume,src=data,dst=/m,readonly";
    let seen = bake.ok(&["run", "--rm", "--mount", ro, &base, "cat", "/m/f"]);
    assert_eq!(seen.stdout, "kept\n");
    let write = bake.run(&["run", "--rm", "--mount", ro, &base, "touch", "/m/g"]);
    assert_ne!(write.code, 0, "wrote into a read-only volume:\n{write}");

    // First use of an empty volume copies the image's content, owner and mode.
    let seeded = bake.ok(&[
        "run",
        "--rm",
        "-v",
        "home:/home/app",
        &base,
        "sh",
        "-c",
        "stat -c '%u %a' /home/app; grep -c app /etc/passwd",
    ]);
    assert_eq!(seeded.stdout, "1000 755\n1\n");
    let etc = bake.ok(&[
        "run",
        "--rm",
        "-v",
        "etc:/etc",
        &base,
        "grep",
        "^app:",
        "/etc/passwd",
    ]);
    assert!(etc.stdout.starts_with("app:x:1000"), "{etc}");
    std::fs::write(bake.root().join("volumes/etc/_data/passwd"), "mine\n").unwrap();
    let etc = bake.ok(&["run", "--rm", "-v", "etc:/etc", &base, "cat", "/etc/passwd"]);
    assert_eq!(etc.stdout, "mine\n", "a used volume was seeded again");

    // Names are checked: nothing outside volumes/.
    for bad in ["..:/x", "../escape:/x", ".hidden:/x"] {
        let out = bake.run(&["run", "--rm", "-v", bad, &base, "true"]);
        assert_ne!(out.code, 0, "{bad}: {out}");
    }
    assert_ne!(bake.run(&["volume", "create", ".."]).code, 0);
    assert!(!bake.root().join("escape").exists());

    let ls = bake.ok(&["volume", "ls"]).stdout;
    assert_eq!(
        ls,
        "DRIVER    VOLUME NAME\nlocal     data\nlocal     etc\nlocal     home\n"
    );
    let v = json(&bake.ok(&["volume", "inspect", "data"]).stdout);
    assert_eq!(v[0]["Name"], "data");
    assert_eq!(v[0]["Mountpoint"], data.to_str().unwrap());

    // In use by a container: kept; an anonymous volume goes with its container.
    bake.ok(&[
        "run",
        "--name",
        "user",
        "-v",
        "data:/data",
        "-v",
        "/anon",
        &base,
        "sh",
        "-c",
        "echo a > /anon/x",
    ]);
    let v = json(&bake.ok(&["inspect", "user"]).stdout);
    let mounts = v[0]["Mounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["Type"] == "volume" && m["Name"] == "data"),
        "{v}"
    );
    let busy = bake.run(&["volume", "rm", "data"]);
    assert_ne!(busy.code, 0, "{busy}");
    assert!(busy.stderr.contains("in use"), "{busy}");
    bake.ok(&["rm", "-v", "user"]);
    assert!(data.join("f").exists(), "rm -v removed a named volume");
    let pruned = bake.ok(&["volume", "prune", "-f"]).stdout;
    assert!(pruned.ends_with("Total reclaimed volumes: 3\n"), "{pruned}");
    assert_eq!(bake.ok(&["volume", "ls", "-q"]).stdout, "");
}

#[test]
fn exec_runs_in_the_containers_cgroup() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    bake.ok(&["pull", "-q", &base]);
    bake.ok(&[
        "run",
        "-d",
        "--name",
        "limited",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        &base,
        "sleep",
        "300",
    ]);
    let pid1 = bake
        .ok(&["exec", "limited", "cat", "/proc/1/cgroup"])
        .stdout;
    let mine = bake
        .ok(&["exec", "limited", "cat", "/proc/self/cgroup"])
        .stdout;
    assert!(
        pid1.contains("bake-"),
        "the container has no cgroup of its own:\n{pid1}"
    );
    assert_eq!(mine, pid1, "exec is not in the container's cgroup");
    // The limit applies to exec'd processes: the container's pids.max is theirs.
    let line = mine
        .lines()
        .find(|l| l.contains(":pids:") || l.starts_with("0::"))
        .unwrap()
        .to_string();
    let path = line.splitn(3, ':').nth(2).unwrap();
    let max = if line.contains(":pids:") {
        std::fs::read_to_string(format!("/sys/fs/cgroup/pids{path}/pids.max"))
    } else {
        std::fs::read_to_string(format!("/sys/fs/cgroup{path}/pids.max"))
    };
    assert_eq!(max.unwrap().trim(), "50");
    bake.ok(&["rm", "-f", "limited"]);
}

/// Polls `bake ps -a` until the line of `name` contains `text` (the deadline only
/// bounds a hang; it asserts no timing).
fn ps_shows(bake: &crate::harness::Bake, name: &str, text: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let ps = bake.ok(&["ps", "-a"]).stdout;
        let line = ps
            .lines()
            .find(|l| l.ends_with(name))
            .unwrap_or("")
            .to_string();
        if line.contains(text) || std::time::Instant::now() > deadline {
            return line;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn healthchecks_run_in_the_background_and_show_in_ps_and_inspect() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    bake.ok(&["pull", "-q", &base]);
    bake.ok(&[
        "run",
        "-d",
        "--name",
        "probed",
        "--health-cmd",
        "test -f /tmp/ok || { echo not yet; exit 1; }",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        &base,
        "sleep",
        "300",
    ]);
    let line = ps_shows(&bake, "probed", "(unhealthy)");
    assert!(
        line.contains("Up ") && line.contains("(unhealthy)"),
        "{line}"
    );
    let v = json(&bake.ok(&["inspect", "probed"]).stdout);
    let health = &v[0]["State"]["Health"];
    assert_eq!(health["Status"], "unhealthy", "{v}");
    assert!(health["FailingStreak"].as_u64().unwrap() >= 2, "{v}");
    let last = health["Log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["ExitCode"], 1, "{v}");
    assert_eq!(last["Output"], "not yet\n", "{v}");

    bake.ok(&["exec", "probed", "touch", "/tmp/ok"]);
    let line = ps_shows(&bake, "probed", "(healthy)");
    assert!(line.contains("(healthy)"), "{line}");
    let v = json(&bake.ok(&["inspect", "probed"]).stdout);
    assert_eq!(v[0]["State"]["Health"]["FailingStreak"], 0, "{v}");

    // A probe that hangs is killed at its timeout and counts as a failure.
    bake.ok(&["rm", "-f", "probed"]);
    bake.ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--health-cmd",
        "sleep 30",
        "--health-interval",
        "100ms",
        "--health-timeout",
        "200ms",
        "--health-retries",
        "1",
        &base,
        "sleep",
        "300",
    ]);
    assert!(ps_shows(&bake, "slow", "(unhealthy)").contains("(unhealthy)"));
    let v = json(&bake.ok(&["inspect", "slow"]).stdout);
    let last = v[0]["State"]["Health"]["Log"][0].clone();
    assert_eq!(last["ExitCode"], -1, "{v}");
    assert!(last["Output"].as_str().unwrap().contains("timeout"), "{v}");
    bake.ok(&["rm", "-f", "slow"]);

    // The image's HEALTHCHECK, and --no-healthcheck.
    let ctx = tempfile::tempdir_in(scratch_dir()).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "ARG BASE\nFROM $BASE\nHEALTHCHECK --interval=200ms CMD [\"true\"]\n",
    )
    .unwrap();
    bake.ok(&[
        "build",
        "-q",
        "-t",
        "checked",
        "--build-arg",
        &format!("BASE={base}"),
        ctx.path().to_str().unwrap(),
    ]);
    bake.ok(&[
        "run",
        "-d",
        "--name",
        "fromimage",
        "checked",
        "sleep",
        "300",
    ]);
    assert!(ps_shows(&bake, "fromimage", "(healthy)").contains("(healthy)"));
    bake.ok(&[
        "run",
        "-d",
        "--name",
        "unchecked",
        "--no-healthcheck",
        "checked",
        "sleep",
        "300",
    ]);
    let v = json(&bake.ok(&["inspect", "unchecked"]).stdout);
    assert!(v[0]["State"].get("Health").is_none(), "{v}");
    assert!(!ps_shows(&bake, "unchecked", "Up").contains("health"));
    // restart brings a new monitor for the new run.
    bake.ok(&["restart", "-t", "1", "fromimage"]);
    assert!(ps_shows(&bake, "fromimage", "(healthy)").contains("(healthy)"));
    bake.ok(&["rm", "-f", "fromimage", "unchecked"]);
}

#[test]
fn cpus_set_a_cfs_quota() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    bake.ok(&["pull", "-q", &base]);
    bake.ok(&[
        "run", "-d", "--name", "capped", "--cpus", "0.5", &base, "sleep", "300",
    ]);
    let pid = json(&bake.ok(&["inspect", "capped"]).stdout)[0]["State"]["Pid"]
        .as_u64()
        .unwrap();
    let listing = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let v1 = listing.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
        ctrl.split(',')
            .any(|c| c == "cpu")
            .then(|| path.to_string())
    });
    match v1 {
        Some(path) => {
            let dir = format!("/sys/fs/cgroup/cpu{path}");
            let quota = std::fs::read_to_string(format!("{dir}/cpu.cfs_quota_us")).unwrap();
            let period = std::fs::read_to_string(format!("{dir}/cpu.cfs_period_us")).unwrap();
            assert_eq!((quota.trim(), period.trim()), ("50000", "100000"), "{dir}");
        }
        None => {
            let path = listing.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
            let max = std::fs::read_to_string(format!("/sys/fs/cgroup{path}/cpu.max")).unwrap();
            assert_eq!(max.trim(), "50000 100000");
        }
    }
    bake.ok(&["rm", "-f", "capped"]);
    for bad in ["0", "100000", "-1"] {
        let out = bake.run(&["run", "--rm", &format!("--cpus={bad}"), &base, "true"]);
        assert_ne!(out.code, 0, "--cpus {bad}: {out}");
    }
}
