//! Interop with the other OCI tools: podman runs what bake pushed, with the
//! output `bake run` gives; bake pulls and runs what podman built and
//! pushed, and what skopeo wrote as a docker-archive.
//!
//! podman gets a private configuration (`CONTAINERS_CONF`,
//! `CONTAINERS_STORAGE_CONF`): vfs storage in a temp dir, runc (crun
//! refuses this machine's hybrid cgroups), cgroupfs, file events, no
//! network, and rlimits no higher than this process's hard limits (there
//! is no CAP_SYS_RESOURCE to raise them).

use std::process::Command;

use tempfile::TempDir;

use crate::harness::{build_case, scratch_dir, setup, skip, Bake};

/// A podman with its own storage and settings, removed when dropped.
struct Podman {
    dir: TempDir,
}

impl Podman {
    /// `None` (after saying why) when podman is not installed.
    fn new() -> Option<Podman> {
        let found = Command::new("podman").arg("--version").output().is_ok();
        if skip(
            (!found).then(|| {
                "`podman` is not installed (scripts/install-deps.sh installs it)".to_string()
            }),
        ) {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("bake-it-podman-")
            .tempdir_in(scratch_dir())
            .unwrap();
        let hard = |resource, cap: u64| {
            rustix::process::getrlimit(resource)
                .maximum
                .map_or(cap, |m| m.min(cap))
        };
        let nofile = hard(rustix::process::Resource::Nofile, 1 << 20);
        let nproc = hard(rustix::process::Resource::Nproc, 32768);
        std::fs::write(
            dir.path().join("containers.conf"),
            format!(
                "[containers]\nlog_driver = \"k8s-file\"\nnetns = \"none\"\n\
                 default_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n\
                 [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
                 runtime = \"runc\"\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{0}/run\"\ngraphroot = \"{0}/root\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        Some(Podman { dir })
    }

    /// `podman ARGS…`; panics with its output unless it succeeds.
    fn ok(&self, args: &[&str]) -> String {
        let out = Command::new("podman")
            .args(args)
            .env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
            .env(
                "CONTAINERS_STORAGE_CONF",
                self.dir.path().join("storage.conf"),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "podman {args:?}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[test]
fn podman_runs_what_bake_pushed_with_the_same_output() {
    let Some((reg, base, bake)) = setup() else {
        return;
    };
    let Some(podman) = Podman::new() else {
        return;
    };
    let name = format!("{}/interop/app:1", reg.addr);
    build_case(&bake, "two-stage", &name, &base, &[]);
    bake.ok(&["push", &name]);
    let by_bake = bake.ok(&["run", "--rm", &name]).stdout;
    assert_eq!(by_bake, "built by RUN\nhello from the context\n");
    let by_podman = podman.ok(&["run", "--rm", "--tls-verify=false", &name]);
    assert_eq!(by_podman, by_bake);
    // The image's environment and working directory came across too.
    let env = podman.ok(&[
        "run",
        "--rm",
        "--tls-verify=false",
        &name,
        "sh",
        "-c",
        "echo $GREETING; pwd",
    ]);
    assert_eq!(env, "hello\n/app\n");
}

#[test]
fn bake_runs_what_podman_built_and_what_skopeo_archived() {
    let Some((reg, base, bake)) = setup() else {
        return;
    };
    let Some(podman) = Podman::new() else {
        return;
    };

    // podman builds (Docker schema 2 by default) and pushes.
    let ctx = tempfile::Builder::new()
        .prefix("bake-it-ctx-")
        .tempdir_in(scratch_dir())
        .unwrap();
    std::fs::write(
        ctx.path().join("Containerfile"),
        format!(
            "FROM {base}\nRUN echo made by podman > /made.txt\nENV WHO=podman\n\
             CMD [\"sh\", \"-c\", \"cat /made.txt; echo $WHO\"]\n"
        ),
    )
    .unwrap();
    let built = format!("{}/interop/podman-built:1", reg.addr);
    let ctx_path = ctx.path().to_str().unwrap();
    podman.ok(&[
        "build",
        "--tls-verify=false",
        "--network=none",
        "-t",
        &built,
        ctx_path,
    ]);
    podman.ok(&["push", "--tls-verify=false", &built]);
    bake.ok(&["pull", &built]);
    assert_eq!(
        bake.ok(&["run", "--rm", &built]).stdout,
        "made by podman\npodman\n"
    );

    // skopeo turns bake's OCI layout into a docker-archive; bake loads it,
    // and pulls it again after skopeo pushed the archive.
    let work = tempfile::Builder::new()
        .prefix("bake-it-skopeo-")
        .tempdir_in(scratch_dir())
        .unwrap();
    let archive = work.path().join("bb.tar");
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{built}"),
        &format!("docker-archive:{}:interop/archived:1", archive.display()),
    ]);
    let fresh = Bake::new();
    fresh.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(
        fresh.ok(&["run", "--rm", "interop/archived:1"]).stdout,
        "made by podman\npodman\n"
    );
    let pushed = format!("{}/interop/from-archive:1", reg.addr);
    skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &format!("docker-archive:{}", archive.display()),
        &format!("docker://{pushed}"),
    ]);
    let other = Bake::new();
    other.ok(&["pull", &pushed]);
    assert_eq!(
        other.ok(&["run", "--rm", &pushed]).stdout,
        "made by podman\npodman\n"
    );
}

fn skopeo(args: &[&str]) {
    let out = Command::new("skopeo").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
