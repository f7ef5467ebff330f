//! Escape attempts, run by `bake run` and by a RUN step of a build (the same
//! sandbox): each must fail, for the reason the sandbox gives (a missing path,
//! a missing capability, a read-only mount, a nodev root), not by accident.

use std::path::Path;

use crate::harness::{scratch_dir, setup, Bake};
use crate::run_flags::build_inline;

/// The attempts. Each `check NAME CMD…` prints `BLOCKED NAME: <why>` when the
/// command fails and `ESCAPED NAME: <output>` when it succeeds; `$1` is a host file,
/// `$2` a host pid.
const SCRIPT: &str = r#"
check() {
  name=$1; shift
  if out=$("$@" 2>&1); then
    echo "ESCAPED $name: $out" | tr '\n' ' '; echo
  else
    echo "BLOCKED $name: $(echo "$out" | tr '\n' ' ' | tr 'A-Z' 'a-z')"
  fi
}
check host-file cat "$1"
check host-pid kill -0 "$2"
check ptrace-host-pid nsenter -t "$2" -m true
check host-processes sh -c 'n=$(ls /proc | grep -c "^[0-9]"); echo "$n pids"; [ "$n" -gt 10 ]'
check mount sh -c 'mkdir -p /tmp/m && mount -t tmpfs x /tmp/m'
check unshare unshare -m true
check proc-sys sh -c 'echo evil > /proc/sys/kernel/hostname'
check sysrq sh -c 'echo h > /proc/sysrq-trigger'
check sys-write sh -c 'touch /sys/evil'
check insmod sh -c 'echo junk > /tmp/x.ko && insmod /tmp/x.ko'
check cap-sys-module sh -c 'eff=$(grep CapEff /proc/self/status | cut -f2); echo "capeff $eff"; [ $(( 0x$eff >> 16 & 1 )) = 1 ]'
check raw-device sh -c 'mknod /tmp/sda b 8 0 && head -c 512 /tmp/sda > /dev/null'
check dev-nodes sh -c 'extra=$(ls /dev | grep -vxE "null|zero|full|random|urandom|tty|ptmx|pts|shm|mqueue|fd|stdin|stdout|stderr|console"); echo "extra: $extra"; [ -n "$extra" ]'
"#;

/// (name, what the failure must say: one of `|`-separated alternatives). Kernels
/// without module support (ENOSYS, "does not support") or without magic SysRq (no
/// /proc/sysrq-trigger) fail those two for that reason; `cap-sys-module` still checks
/// that the capability is gone.
const EXPECTED: [(&str, &str); 14] = [
    ("host-file", "no such file or directory"),
    ("host-pid", "no such process"),
    ("ptrace-host-pid", "no such file or directory"),
    ("host-processes", " pids"),
    ("mount", "permission denied"),
    ("unshare", "operation not permitted"),
    ("proc-sys", "read-only file system"),
    ("sysrq", "read-only file system|nonexistent directory"),
    ("sys-write", "read-only file system"),
    ("insmod", "operation not permitted|kernel does not support"),
    ("cap-sys-module", "capeff 00000000a80425fb"),
    ("raw-device", "permission denied"),
    ("dev-nodes", "extra: "),
    // listed last: its output comes from the run/build, not the script
    ("host-path-untouched", ""),
];

/// Asserts that every attempt in `output` was blocked for the expected reason.
fn assert_all_blocked(output: &str, context: &str) {
    assert!(!output.contains("ESCAPED"), "{context}:\n{output}");
    for (name, why) in &EXPECTED[..EXPECTED.len() - 1] {
        let line = output
            .lines()
            .find(|l| l.contains(&format!("BLOCKED {name}: ")))
            .unwrap_or_else(|| panic!("{context}: no result for {name}:\n{output}"));
        assert!(
            why.split('|').any(|w| line.contains(w)),
            "{context}: {name} failed for another reason: {line}"
        );
    }
}

/// A host file the container must not read, and a host path it must not create.
struct HostBait {
    marker: tempfile::NamedTempFile,
    host_only: std::path::PathBuf,
}

impl HostBait {
    fn new() -> HostBait {
        let marker = tempfile::NamedTempFile::new_in(scratch_dir()).unwrap();
        std::fs::write(marker.path(), "host secret").unwrap();
        let host_only = scratch_dir().join(format!(
            "bake-escape-{}",
            marker.path().file_name().unwrap().to_str().unwrap()
        ));
        HostBait { marker, host_only }
    }

    fn assert_untouched(&self) {
        for p in [
            self.host_only.clone(),
            self.host_only.with_extension("hosts"),
        ] {
            assert!(
                !p.exists(),
                "the container created {} on the host",
                p.display()
            );
        }
        assert_eq!(
            std::fs::read_to_string(self.marker.path()).unwrap(),
            "host secret"
        );
    }
}

/// Builds the escape image: the script, plus an absolute symlink to a host-only path
/// where mounts will go (`/link`). With `run_script`, a RUN step runs
/// the attempts during the build and its output is returned.
fn build_escape_image(bake: &Bake, base: &str, bait: &HostBait, run_script: bool) -> String {
    let host_only = bait.host_only.display().to_string();
    let script_cmd = if run_script {
        "RUN printf '%s' \"$SCRIPT\" > /escape.sh && sh /escape.sh \"$MARKER\" \"$HOSTPID\"\n"
    } else {
        "RUN printf '%s' \"$SCRIPT\" > /escape.sh\n"
    };
    let df = format!(
        "ARG BASE\nFROM $BASE\nARG SCRIPT\nARG MARKER\nARG HOSTPID\n\
         RUN ln -s {host_only} /link\n\
         {script_cmd}"
    );
    let marker = format!("MARKER={}", bait.marker.path().display());
    let pid = format!("HOSTPID={}", std::process::id());
    let script = format!("SCRIPT={SCRIPT}");
    let out = build_inline(
        bake,
        &df,
        "escape:1",
        base,
        &[
            "--no-cache",
            "--build-arg",
            &marker,
            "--build-arg",
            &pid,
            "--build-arg",
            &script,
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    out.stderr + &out.stdout
}

#[test]
fn nothing_escapes_bake_run() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let bait = HostBait::new();
    build_escape_image(&bake, &base, &bait, false);
    let marker = bait.marker.path().display().to_string();
    let pid = std::process::id().to_string();
    let out = bake.ok(&["run", "--rm", "escape:1", "sh", "/escape.sh", &marker, &pid]);
    assert_all_blocked(&out.stdout, "bake run");
    // The same as a non-root user.
    let out = bake.ok(&[
        "run",
        "--rm",
        "-u",
        "1000",
        "escape:1",
        "sh",
        "/escape.sh",
        &marker,
        &pid,
    ]);
    assert!(
        !out.stdout.contains("ESCAPED"),
        "as uid 1000:\n{}",
        out.stdout
    );
    bait.assert_untouched();
}

#[test]
fn nothing_escapes_a_run_step() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let bait = HostBait::new();
    let log = build_escape_image(&bake, &base, &bait, true);
    assert_all_blocked(&log, "RUN");
    bait.assert_untouched();
}

#[test]
fn volumes_cannot_reach_host_paths_through_dotdot_or_image_symlinks() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let bait = HostBait::new();
    build_escape_image(&bake, &base, &bait, false);
    let host = tempfile::tempdir_in(scratch_dir()).unwrap();
    let host_only = bait.host_only.display().to_string();

    // `..` in the container path is clamped at the container's root.
    let dotdot = format!("{}:/../../../..{host_only}", host.path().display());
    let out = bake.ok(&[
        "run",
        "--rm",
        "-v",
        &dotdot,
        "escape:1",
        "sh",
        "-c",
        &format!("echo dotdot > {host_only}/f"),
    ]);
    assert_eq!(out.code, 0);
    assert_eq!(
        std::fs::read_to_string(host.path().join("f")).unwrap(),
        "dotdot\n"
    );
    bait.assert_untouched();

    // /link is an absolute symlink in the image to a host-only path. Mount targets are
    // resolved beneath the container's root (openat2 RESOLVE_IN_ROOT), where that path
    // does not exist: the run is refused, and nothing is created on the host.
    for target in ["/link/sub", "/link"] {
        let spec = format!("{}:{target}", host.path().display());
        let out = bake.run(&["run", "--rm", "-v", &spec, "escape:1", "true"]);
        assert_eq!(out.code, 125, "{out}");
        assert!(
            out.stderr.contains("creating mount point") || out.stderr.contains("bind-mounting"),
            "{out}"
        );
        bait.assert_untouched();
    }

    // A relative or `..`-laden host source is refused, not resolved against the cwd.
    let rel = bake.run(&["run", "--rm", "-v", "../../etc:/mnt", "escape:1", "true"]);
    assert_eq!(rel.code, 125, "{rel}");
    assert!(Path::new(&host_only).parent().unwrap().exists());
}
