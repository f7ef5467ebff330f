//! `bake du`, `bake prune`, `bake fsck`, and the crash test: SIGKILL at
//! seeded random moments never leaves damage `fsck` can see.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::{base_arg, build_case, context, setup, Bake};

const RESULT: &str = "built by RUN\nhello from the context\n";

fn du(bake: &Bake) -> serde_json::Value {
    serde_json::from_str(&bake.ok(&["du", "--json"]).stdout).unwrap()
}

/// The biggest blob in the store (a layer).
fn biggest_blob(bake: &Bake) -> PathBuf {
    let dir = PathBuf::from(
        bake.cmd()
            .get_envs()
            .find(|(k, _)| *k == "BAKE_ROOT")
            .and_then(|(_, v)| v)
            .unwrap(),
    )
    .join("blobs/sha256");
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap()
}

#[test]
fn du_prune_and_fsck() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    build_case(&bake, "two-stage", "app:1", &base, &[]);
    let before = du(&bake);
    assert_eq!(before["images"]["count"], 2, "{before}"); // app:1 and the base
    assert!(
        before["snapshots"]["count"].as_u64().unwrap() >= 4,
        "{before}"
    );
    assert!(
        before["build_cache"]["count"].as_u64().unwrap() >= 1,
        "{before}"
    );

    // Nothing a tag needs goes, even with --all.
    bake.ok(&["prune", "--all"]);
    assert_eq!(bake.ok(&["run", "--rm", "app:1"]).stdout, RESULT);
    let after = du(&bake);
    assert!(
        after["snapshots"]["count"].as_u64() < before["snapshots"]["count"].as_u64(),
        "the build stage's snapshots should be gone: {before} → {after}"
    );
    assert_eq!(after["build_cache"]["count"], 0, "{after}");

    // An untagged image goes.
    bake.ok(&["rmi", "app:1"]);
    let out = bake.ok(&["prune"]);
    assert!(out.stdout.contains("Total reclaimed space"), "{out}");
    assert_eq!(du(&bake)["images"]["count"], 1);

    // fsck: clean, then a flipped byte is found, repaired, and gone.
    bake.ok(&["fsck"]);
    let blob = biggest_blob(&bake);
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::set_permissions(&blob, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(&blob, bytes).unwrap();
    let out = bake.run(&["fsck"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("damaged: blob"), "{out}");
    bake.ok(&["fsck", "--repair"]);
    bake.ok(&["fsck"]);
    // The base's snapshot is intact: it still builds and runs.
    build_case(&bake, "two-stage", "app:2", &base, &[]);
    assert_eq!(bake.ok(&["run", "--rm", "app:2"]).stdout, RESULT);
}

/// xorshift64: reproducible "random" moments from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn sigkill_at_random_moments_never_damages_the_store() {
    let Some((reg, base, bake)) = setup() else {
        return;
    };
    let seed = std::env::var("BAKE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    let iterations: usize = std::env::var("BAKE_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let mut rng = Rng(seed);
    let remote = format!("{}/crash/app:1", reg.addr);
    let (ctx, _) = build_case(&bake, "two-stage", &remote, &base, &[]);
    bake.ok(&["push", &remote]);
    let ctx_path = ctx.path().to_str().unwrap().to_string();
    let [ba, bb] = base_arg(&base);

    for i in 0..iterations {
        let op = rng.next() % 4;
        let delay = Duration::from_millis(rng.next() % 1500);
        let tag = format!("app:crash{i}");
        let args: Vec<String> = match op {
            0 => [
                "build",
                "--no-cache",
                "--progress=plain",
                "-t",
                &tag,
                &ba,
                &bb,
                &ctx_path,
            ]
            .map(String::from)
            .to_vec(),
            1 => {
                let target = format!("{}/crash/app:{i}", reg.addr);
                bake.ok(&["tag", &remote, &target]);
                [
                    "push",
                    "--compression",
                    "zstd",
                    "--force-compression",
                    &target,
                ]
                .map(String::from)
                .to_vec()
            }
            2 => {
                // Make the pull do real work: forget the image first.
                bake.ok(&["rmi", &remote]);
                bake.ok(&["prune", "--all"]);
                vec!["pull".into(), remote.clone()]
            }
            _ => {
                let _ = bake.run(&["rmi", &remote]);
                vec!["prune".into(), "--all".into()]
            }
        };
        let mut child = bake
            .cmd()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let fsck = bake.run(&["fsck"]);
        assert_eq!(
            fsck.code,
            0,
            "iteration {i} (seed {seed:#x}): `bake {}` killed after {delay:?} left damage:\n{fsck}",
            args.join(" ")
        );
        if bake
            .run(&["images", "-q", &remote])
            .stdout
            .trim()
            .is_empty()
        {
            bake.ok(&["pull", &remote]);
        }
    }
    // And the next build succeeds and runs.
    let ctx2 = context("two-stage");
    let ctx2 = ctx2.path().to_str().unwrap().to_string();
    bake.ok(&[
        "build",
        "--progress=plain",
        "-t",
        "app:after",
        &ba,
        &bb,
        &ctx2,
    ]);
    assert_eq!(bake.ok(&["run", "--rm", "app:after"]).stdout, RESULT);
}
