//! End-to-end tests of `run()` and `mount_overlay()`.

use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;

use bake_runner::{mount_overlay, run, Error, Exit, MountSpec, Network, Stdio};

use crate::fixture::{lower, run_piped, Fixture};
use crate::Test;

pub const TESTS: &[Test] = &[
    ("echo_output_is_piped", echo_output_is_piped),
    (
        "stdout_and_stderr_are_separate",
        stdout_and_stderr_are_separate,
    ),
    ("exit_code_is_propagated", exit_code_is_propagated),
    ("death_by_signal_is_reported", death_by_signal_is_reported),
    (
        "writes_and_deletes_land_in_upper",
        writes_and_deletes_land_in_upper,
    ),
    (
        "mount_point_stubs_do_not_remain",
        mount_point_stubs_do_not_remain,
    ),
    (
        "pid_namespace_makes_command_pid_1",
        pid_namespace_makes_command_pid_1,
    ),
    ("hostname_and_etc_hosts", hostname_and_etc_hosts),
    ("named_user_is_resolved", named_user_is_resolved),
    (
        "capabilities_are_cut_to_default",
        capabilities_are_cut_to_default,
    ),
    (
        "unknown_user_is_a_clear_error",
        unknown_user_is_a_clear_error,
    ),
    ("missing_command_is_not_found", missing_command_is_not_found),
    (
        "non_executable_is_not_executable",
        non_executable_is_not_executable,
    ),
    ("cwd_is_created", cwd_is_created),
    ("env_defaults_path_and_home", env_defaults_path_and_home),
    ("bind_mounts_ro_and_rw", bind_mounts_ro_and_rw),
    ("tmpfs_mount", tmpfs_mount),
    ("readonly_rootfs", readonly_rootfs),
    ("network_none_sees_only_lo", network_none_sees_only_lo),
    ("host_root_is_not_visible", host_root_is_not_visible),
    ("dev_has_minimal_nodes", dev_has_minimal_nodes),
    ("proc_and_sys_are_locked_down", proc_and_sys_are_locked_down),
    (
        "scratch_rootfs_without_lowers",
        scratch_rootfs_without_lowers,
    ),
    ("null_stdio", null_stdio),
    (
        "sigterm_is_forwarded_to_the_container",
        sigterm_is_forwarded_to_the_container,
    ),
    ("parallel_runs", parallel_runs),
    (
        "tty_is_the_controlling_terminal",
        tty_is_the_controlling_terminal,
    ),
    ("mount_overlay_views", mount_overlay_views),
];

fn echo_output_is_piped() {
    let fx = Fixture::new();
    assert_eq!(run_piped(&fx.plan(&["echo", "hi"])).ok(), "hi\n");
}

fn stdout_and_stderr_are_separate() {
    let fx = Fixture::new();
    let out = run_piped(&fx.plan(&["sh", "-c", "echo out; echo err >&2"]));
    assert_eq!(out.stderr, "err\n");
    assert_eq!(out.ok(), "out\n");
}

fn exit_code_is_propagated() {
    let fx = Fixture::new();
    let out = run_piped(&fx.plan(&["sh", "-c", "exit 3"]));
    assert_eq!(out.exit.unwrap(), Exit::Code(3));
}

fn death_by_signal_is_reported() {
    // pid 1 of a pid namespace ignores the signals it has no handler for, even its own
    // `kill -9 $$` (as under Docker without --init). The kernel's own SIGKILL at the
    // hard CPU limit is forced, so it shows the path: the supervisor re-raises it.
    let fx = Fixture::new();
    let out = run_piped(&fx.plan(&["sh", "-c", "ulimit -t 1; while :; do :; done"]));
    let exit = out.exit.unwrap();
    assert_eq!(exit, Exit::Signal(9));
    assert_eq!(exit.docker_code(), 137);
}

fn writes_and_deletes_land_in_upper() {
    let fx = Fixture::new();
    run_piped(&fx.plan(&["sh", "-c", "echo new > /newfile && rm /lowerfile"])).ok();
    let upper = fx.upper();
    assert_eq!(
        std::fs::read_to_string(upper.join("newfile")).unwrap(),
        "new\n"
    );
    let wh = std::fs::symlink_metadata(upper.join("lowerfile")).unwrap();
    assert!(wh.file_type().is_char_device(), "whiteout is a char device");
    assert_eq!(wh.rdev(), 0);
    assert!(lower().join("lowerfile").exists(), "the lower is untouched");
}

fn mount_point_stubs_do_not_remain() {
    let fx = Fixture::new();
    run_piped(&fx.plan(&[
        "sh",
        "-c",
        "test -d /proc/1 && test -e /etc/hosts && test -c /dev/null",
    ]))
    .ok();
    assert_eq!(fx.upper_entries(), Vec::<String>::new());
}

fn pid_namespace_makes_command_pid_1() {
    let fx = Fixture::new();
    assert_eq!(run_piped(&fx.plan(&["sh", "-c", "echo $$"])).ok(), "1\n");
}

fn hostname_and_etc_hosts() {
    let fx = Fixture::new();
    let mut plan = fx.plan(&[
        "sh",
        "-c",
        "hostname; cat /etc/hosts; test -f /etc/resolv.conf",
    ]);
    plan.hosts = vec![("db".into(), "10.1.2.3".into())];
    let out = run_piped(&plan).ok();
    assert!(out.starts_with("bake-test\n"), "{out}");
    assert!(out.contains("127.0.0.1\tlocalhost bake-test\n"), "{out}");
    assert!(out.contains("10.1.2.3\tdb\n"), "{out}");
}

fn named_user_is_resolved() {
    let fx = Fixture::new();
    let mut plan = fx.plan(&["sh", "-c", "id -u; id -g; id -G; echo $HOME"]);
    plan.user = "app".into();
    assert_eq!(run_piped(&plan).ok(), "1000\n1000\n1000 10\n/home/app\n");
    plan.user = "1000:10".into();
    assert_eq!(run_piped(&plan).ok(), "1000\n10\n10\n/home/app\n");
}

fn capabilities_are_cut_to_default() {
    let fx = Fixture::new();
    let caps = |plan: &bake_runner::Plan| {
        run_piped(plan)
            .ok()
            .lines()
            .filter(|l| l.starts_with("Cap") || l.starts_with("NoNewPrivs"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
    };
    let mut plan = fx.plan(&["cat", "/proc/self/status"]);
    let root = caps(&plan);
    assert!(
        root.contains(&"CapEff: 00000000a80425fb".to_string()),
        "{root:?}"
    );
    assert!(
        root.contains(&"CapBnd: 00000000a80425fb".to_string()),
        "{root:?}"
    );
    assert!(root.contains(&"NoNewPrivs: 1".to_string()), "{root:?}");
    plan.user = "app".into();
    let app = caps(&plan);
    assert!(
        app.contains(&"CapEff: 0000000000000000".to_string()),
        "{app:?}"
    );
    assert!(
        app.contains(&"CapPrm: 0000000000000000".to_string()),
        "{app:?}"
    );
    plan.user = String::new();
    plan.privileged = true;
    let all = caps(&plan);
    assert!(
        !all.contains(&"CapEff: 00000000a80425fb".to_string()),
        "{all:?}"
    );
    assert!(all.contains(&"NoNewPrivs: 0".to_string()), "{all:?}");
}

fn unknown_user_is_a_clear_error() {
    let fx = Fixture::new();
    let mut plan = fx.plan(&["true"]);
    plan.user = "nobody".into();
    let err = run_piped(&plan).exit.unwrap_err();
    assert!(
        matches!(err, Error::UserNotFound(ref u) if u == "nobody"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "unable to find user nobody: no matching entries in passwd file"
    );
}

fn missing_command_is_not_found() {
    let fx = Fixture::new();
    let err = run_piped(&fx.plan(&["nope"])).exit.unwrap_err();
    assert!(
        matches!(err, Error::NotFound(ref c) if c == "nope"),
        "{err:?}"
    );
    assert_eq!(err.docker_code(), 127);
    let err = run_piped(&fx.plan(&["/no/such"])).exit.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
}

fn non_executable_is_not_executable() {
    let fx = Fixture::new();
    let err = run_piped(&fx.plan(&["/notexec"])).exit.unwrap_err();
    assert!(matches!(err, Error::NotExecutable(_)), "{err:?}");
    assert_eq!(err.docker_code(), 126);
}

fn cwd_is_created() {
    let fx = Fixture::new();
    let mut plan = fx.plan(&["pwd"]);
    plan.cwd = "/work/dir".into();
    assert_eq!(run_piped(&plan).ok(), "/work/dir\n");
    assert!(fx.upper().join("work/dir").is_dir());
}

fn env_defaults_path_and_home() {
    let fx = Fixture::new();
    let mut plan = fx.plan(&["sh", "-c", "echo $PATH; echo $HOME; echo $FOO"]);
    plan.env = vec!["FOO=bar".into()];
    assert_eq!(
        run_piped(&plan).ok(),
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/root\nbar\n"
    );
}

fn bind_mounts_ro_and_rw() {
    let fx = Fixture::new();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("in"), "from host\n").unwrap();
    let mut plan = fx.plan(&[
        "sh",
        "-c",
        "cat /ro/in; if echo x > /ro/f; then echo wrote; fi; echo y > /rw/out",
    ]);
    plan.mounts = vec![
        MountSpec::Bind {
            source: host.path().into(),
            target: "/ro".into(),
            readonly: true,
        },
        MountSpec::Bind {
            source: host.path().into(),
            target: "/mnt/deep/rw".into(),
            readonly: false,
        },
    ];
    plan.cwd = "/mnt/deep".into();
    plan.args[2] =
        "cat /ro/in; if echo x > /ro/f 2>/dev/null; then echo wrote; fi; echo y > rw/out".into();
    assert_eq!(run_piped(&plan).ok(), "from host\n");
    assert!(!host.path().join("f").exists());
    assert_eq!(
        std::fs::read_to_string(host.path().join("out")).unwrap(),
        "y\n"
    );
    // /mnt/deep is the cwd (kept, like runc); the mount points are stubs and go.
    assert_eq!(fx.upper_entries(), vec!["mnt", "mnt/deep"]);
}

fn tmpfs_mount() {
    let fx = Fixture::new();
    let mut plan = fx.plan(&[
        "sh",
        "-c",
        "echo x > /cache/f && grep ' /cache ' /proc/mounts",
    ]);
    plan.mounts = vec![MountSpec::Tmpfs {
        target: "/cache".into(),
        size: Some(1 << 20),
    }];
    let out = run_piped(&plan).ok();
    assert!(out.starts_with("tmpfs /cache tmpfs rw"), "{out}");
    assert!(out.contains("size=1024k"), "{out}");
    assert_eq!(fx.upper_entries(), Vec::<String>::new());
}

fn readonly_rootfs() {
    let fx = Fixture::new();
    let mut plan = fx.plan(&[
        "sh",
        "-c",
        "touch /x 2>/dev/null && echo wrote; echo ok > /dev/shm/y && cat /dev/shm/y",
    ]);
    plan.readonly_rootfs = true;
    assert_eq!(run_piped(&plan).ok(), "ok\n");
    assert!(!fx.upper().join("x").exists());
}

fn network_none_sees_only_lo() {
    let fx = Fixture::new();
    let mut plan = fx.plan(&[
        "sh",
        "-c",
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; ip link show lo | grep -c UP",
    ]);
    plan.network = Network::None;
    assert_eq!(run_piped(&plan).ok(), "lo\n1\n");
}

fn host_root_is_not_visible() {
    let fx = Fixture::new();
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("marker");
    std::fs::write(&marker, "host").unwrap();
    let script = format!("test -e {} && echo visible; ls /", marker.display());
    let out = run_piped(&fx.plan(&["sh", "-c", &script])).ok();
    assert!(!out.contains("visible"), "{out}");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["bin", "dev", "etc", "lowerfile", "notexec", "proc", "sys"]
    );
}

fn dev_has_minimal_nodes() {
    let fx = Fixture::new();
    let out = run_piped(&fx.plan(&["sh", "-c", "ls /dev; echo x > /dev/null; head -c 4 /dev/zero | wc -c; readlink /dev/ptmx; readlink /dev/fd"])).ok();
    let words: Vec<&str> = out.split_whitespace().collect();
    for name in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx", "fd", "stdin",
        "stdout", "stderr",
    ] {
        assert!(words.contains(&name), "{name} missing in {out}");
    }
    assert!(out.ends_with("4\npts/ptmx\n/proc/self/fd\n"), "{out}");
}

fn scratch_rootfs_without_lowers() {
    let fx = Fixture::new();
    // The busybox binary comes in through a bind mount: the rootfs itself is empty.
    let mut plan = fx.plan(&[
        "/bb/busybox",
        "sh",
        "-c",
        "/bb/busybox echo > /made; /bb/busybox ls /",
    ]);
    plan.rootfs.lowers.clear();
    plan.mounts = vec![MountSpec::Bind {
        source: lower().join("bin"),
        target: "/bb".into(),
        readonly: true,
    }];
    let out = run_piped(&plan).ok();
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["bb", "dev", "etc", "made", "proc", "sys"]
    );
    assert_eq!(fx.upper_entries(), vec!["made"]);
}

fn null_stdio() {
    let fx = Fixture::new();
    let mut called = false;
    let exit = run(
        &fx.plan(&["sh", "-c", "echo hidden; read x; exit 4"]),
        Stdio::Null,
        &mut |_, _| called = true,
    );
    assert_eq!(exit.unwrap(), Exit::Code(4));
    assert!(!called);
}

fn mount_overlay_views() {
    let top = tempfile::tempdir().unwrap();
    std::fs::write(top.path().join("lowerfile"), "top\n").unwrap();
    std::fs::write(top.path().join("only-top"), "").unwrap();
    let target = tempfile::tempdir().unwrap();
    let layers = vec![top.path().to_path_buf(), lower().to_path_buf()];
    {
        let view = mount_overlay(&layers, None, target.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(view.target().join("lowerfile")).unwrap(),
            "top\n"
        );
        assert!(view.target().join("bin/busybox").exists());
        assert!(
            std::fs::write(view.target().join("new"), "").is_err(),
            "read-only"
        );
    }
    assert!(!target.path().join("bin").exists(), "unmounted on drop");
    // One lower, no upper: a read-only bind.
    {
        let view = mount_overlay(&layers[..1], None, target.path()).unwrap();
        assert!(view.target().join("only-top").exists());
        assert!(std::fs::write(view.target().join("new"), "").is_err());
    }
    // With an upper: writes land there.
    let fx = Fixture::new();
    {
        let work = fx.dir.path().join("work");
        let upper = fx.upper();
        let view = mount_overlay(&layers, Some((&upper, &work)), target.path()).unwrap();
        std::fs::write(view.target().join("new"), "n").unwrap();
        std::fs::remove_file(view.target().join("only-top")).unwrap();
        view.finish().unwrap(); // a copied view (BAKE_SNAPSHOTTER=copy) syncs here
    }
    assert_eq!(fx.upper_entries(), vec!["new", "only-top"]);
    // Nothing at all: an empty read-only dir.
    {
        let view = mount_overlay(&[], None, target.path()).unwrap();
        assert_eq!(std::fs::read_dir(view.target()).unwrap().count(), 0);
        assert!(std::fs::write(view.target().join("new"), "").is_err());
    }
}

fn tty_is_the_controlling_terminal() {
    use std::os::fd::AsRawFd;
    // Tty mode copies to and from this process's own stdin/stdout: point them at
    // /dev/null and a file for the duration (the tests run on one thread).
    let fx = Fixture::new();
    let out_file = tempfile::tempfile().unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let saved_in = rustix::io::dup(rustix::stdio::stdin()).unwrap();
    let saved_out = rustix::io::dup(rustix::stdio::stdout()).unwrap();
    // SAFETY: dup2 onto 0 and 1 while no other thread uses them.
    let exit = unsafe {
        libc::dup2(null.as_raw_fd(), 0);
        libc::dup2(out_file.as_raw_fd(), 1);
        let exit = run(
            &fx.plan(&[
                "sh",
                "-c",
                "tty; test -t 0 && test -t 1 && test -t 2 && echo all-tty; ls -l /proc/self/fd/0",
            ]),
            Stdio::Tty,
            &mut |_, _| {},
        );
        libc::dup2(saved_in.as_raw_fd(), 0);
        libc::dup2(saved_out.as_raw_fd(), 1);
        exit
    };
    assert_eq!(exit.unwrap(), Exit::Code(0));
    let out = std::fs::read_to_string(format!("/proc/self/fd/{}", out_file.as_raw_fd())).unwrap();
    assert!(out.contains("/dev/pts/0\r\n"), "{out:?}");
    assert!(out.contains("all-tty"), "{out:?}");
}

/// The pids of this process's sandbox supervisors.
fn supervisors() -> Vec<i32> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(1));
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if ppid == Some(me.as_str())
            && String::from_utf8_lossy(&cmdline).contains(bake_runner::SANDBOX_ARG)
        {
            out.push(pid);
        }
    }
    out
}

fn sigterm_is_forwarded_to_the_container() {
    let fx = Fixture::new();
    let plan = fx.plan(&[
        "sh",
        "-c",
        "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done",
    ]);
    let killer = std::thread::spawn(|| {
        for _ in 0..100 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if let [pid] = supervisors()[..] {
                std::thread::sleep(std::time::Duration::from_millis(300));
                rustix::process::kill_process(
                    rustix::process::Pid::from_raw(pid).unwrap(),
                    rustix::process::Signal::TERM,
                )
                .unwrap();
                return;
            }
        }
        panic!("no supervisor found");
    });
    let out = run_piped(&plan);
    killer.join().unwrap();
    assert_eq!(out.stdout, "ready\ngot-term\n");
    assert_eq!(out.exit.unwrap(), Exit::Code(7));
}

fn parallel_runs() {
    let fixtures: Vec<Fixture> = (0..4).map(|_| Fixture::new()).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = fixtures
            .iter()
            .enumerate()
            .map(|(i, fx)| {
                scope.spawn(move || {
                    let script = format!("echo {i} > /n; cat /n");
                    run_piped(&fx.plan(&["sh", "-c", &script])).ok()
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), format!("{i}\n"));
        }
    });
    for fx in &fixtures {
        assert_eq!(fx.upper_entries(), vec!["n"]);
    }
}

fn proc_and_sys_are_locked_down() {
    let fx = Fixture::new();
    let script = "wc -c < /proc/timer_list; grep -E ' /proc/sys | /sys ' /proc/mounts | cut -d' ' -f2,4 | cut -d, -f1";
    let out = run_piped(&fx.plan(&["sh", "-c", script])).ok();
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "/sys", "ro", "/proc/sys", "ro"]
    );
    let mut plan = fx.plan(&["sh", "-c", script]);
    plan.privileged = true;
    let out = run_piped(&plan).ok();
    assert!(out.contains("/sys rw"), "{out}");
}
