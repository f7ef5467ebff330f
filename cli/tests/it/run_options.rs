//! `bake run` options: env, workdir, user, volumes, exit codes.

use crate::harness::{build_case, scratch_dir, setup};

#[test]
fn image_defaults_apply_and_flags_override_them() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    build_case(&bake, "run-options", "opts:1", &base, &[]);
    let out = bake.ok(&["run", "--rm", "opts:1"]);
    assert_eq!(out.stdout, "user=1000 cwd=/srv env=yes\n");

    let host = tempfile::tempdir_in(scratch_dir()).unwrap();
    std::fs::write(host.path().join("f"), "from-host").unwrap();
    let volume = format!("{}:/mnt", host.path().display());
    let out = bake.ok(&[
        "run",
        "--rm",
        "-e",
        "K=V",
        "-w",
        "/tmp",
        "-u",
        "0",
        "-v",
        &volume,
        "opts:1",
        "sh",
        "-c",
        "echo $K $(pwd) $(id -u) $(cat /mnt/f) $FROM_IMAGE; echo written > /mnt/g",
    ]);
    assert_eq!(out.stdout, "V /tmp 0 from-host yes\n");
    assert_eq!(
        std::fs::read_to_string(host.path().join("g")).unwrap(),
        "written\n"
    );

    let ro = format!("{}:/mnt:ro", host.path().display());
    let out = bake.run(&[
        "run",
        "--rm",
        "-u",
        "0",
        "-v",
        &ro,
        "opts:1",
        "sh",
        "-c",
        "echo x > /mnt/h",
    ]);
    assert_ne!(out.code, 0, "a read-only volume was writable:\n{out}");
    assert!(!host.path().join("h").exists());
}

#[test]
fn docker_exit_codes_for_missing_and_non_executable_commands() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    build_case(&bake, "run-options", "opts:1", &base, &[]);
    assert_eq!(
        bake.run(&["run", "--rm", "opts:1", "no-such-command"]).code,
        127
    );
    assert_eq!(
        bake.run(&["run", "--rm", "opts:1", "/etc/passwd"]).code,
        126
    );
    // pid 1 of a pid namespace ignores signals it sends itself (as in Docker
    // without --init); the kernel's SIGKILL at the CPU limit does reach it
    let killed = bake.run(&[
        "run",
        "--rm",
        "opts:1",
        "sh",
        "-c",
        "ulimit -t 1; while :; do :; done",
    ]);
    assert_eq!(killed.code, 137, "{killed}");
}

#[test]
fn the_container_cannot_see_host_files_or_processes() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    build_case(&bake, "run-options", "opts:1", &base, &[]);
    let marker = tempfile::NamedTempFile::new_in(scratch_dir()).unwrap();
    let script = format!(
        "test -e {} && echo host-visible; echo pid=$$; ls /proc | grep -c '^[0-9]'",
        marker.path().display()
    );
    let out = bake.ok(&["run", "--rm", "-u", "0", "opts:1", "sh", "-c", &script]);
    assert!(!out.stdout.contains("host-visible"), "{out}");
    assert!(
        out.stdout.starts_with("pid=1\n"),
        "not in a pid namespace:\n{out}"
    );
    let procs: u32 = out.stdout.lines().nth(1).unwrap().trim().parse().unwrap();
    assert!(procs <= 3, "host processes visible ({procs}):\n{out}");
}
