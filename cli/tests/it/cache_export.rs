//! `--cache-to` / `--cache-from`: a fresh store that imports a cache builds
//! with every step CACHED, fetching only the final image's layers; `mode`
//! picks which stages are exported; registry, inline and local caches;
//! `cache-mounts=true` carries `RUN --mount=type=cache` contents across.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::harness::{base_arg, build_case, layer_steps, scratch_dir, setup, Bake, Output};

/// `SOURCE_DATE_EPOCH`, so two stores make the same image id.
const EPOCH: &str = "SOURCE_DATE_EPOCH=0";

fn cache_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("bake-it-cache-")
        .tempdir_in(scratch_dir())
        .unwrap()
}

/// Builds an already prepared context with extra flags; plain progress,
/// the image id written to `iid` in the store's root.
fn build(bake: &Bake, ctx: &Path, tag: &str, base: &str, extra: &[&str]) -> (Output, String) {
    let [a, b] = base_arg(base);
    let iid = bake.root().join("iid");
    let iid_s = iid.to_str().unwrap().to_string();
    let mut args = vec![
        "build",
        "--progress=plain",
        "-t",
        tag,
        &a,
        &b,
        "--build-arg",
        EPOCH,
        "--iidfile",
        &iid_s,
    ];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    let out = bake.ok(&args);
    let id = std::fs::read_to_string(&iid).unwrap();
    (out, id)
}

/// The diff ids of image `id` in `bake`'s store.
fn diff_ids(bake: &Bake, id: &str) -> Vec<String> {
    let hex = id.trim().strip_prefix("sha256:").unwrap();
    let config = std::fs::read(bake.root().join("blobs/sha256").join(hex)).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&config).unwrap();
    v["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

/// The layer descriptors of the cache manifest in a local cache layout.
fn cache_layers(dir: &Path) -> Vec<serde_json::Value> {
    let blob = |d: &str| {
        dir.join("blobs/sha256")
            .join(d.strip_prefix("sha256:").unwrap())
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(m)).unwrap()).unwrap();
    manifest["layers"].as_array().unwrap().clone()
}

fn all_cached(out: &Output) {
    let steps = layer_steps(&out.stderr);
    assert!(steps.len() >= 4, "expected the RUN/COPY steps in:\n{out}");
    for (num, instr, cached) in &steps {
        assert!(cached, "step #{num} {instr} was not CACHED:\n{out}");
    }
}

fn step<'a>(
    steps: &'a [(String, String, bool)],
    prefix: &str,
    out: &Output,
) -> &'a (String, String, bool) {
    steps
        .iter()
        .find(|s| s.1.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` step in:\n{out}"))
}

#[test]
fn a_fresh_store_with_a_local_cache_rebuilds_everything_cached() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let cache = cache_dir();
    let to = format!("type=local,dest={},mode=max", cache.path().display());
    let (ctx, first) = build_case(
        &bake,
        "two-stage",
        "app:1",
        &base,
        &["--build-arg", EPOCH, "--cache-to", &to],
    );
    assert!(first.stderr.contains("exported cache to"), "{first}");
    let first_id = bake.ok(&["images", "-q", "--no-trunc", "app:1"]).stdout;

    let fresh = Bake::new();
    let from = format!("type=local,src={}", cache.path().display());
    let (second, id) = build(&fresh, ctx.path(), "app:1", &base, &["--cache-from", &from]);
    all_cached(&second);
    assert_eq!(
        id.trim(),
        first_id.trim(),
        "the image id changed:\n{second}"
    );
    let run = fresh.ok(&["run", "--rm", "app:1"]);
    assert_eq!(run.stdout, "built by RUN\nhello from the context\n");

    // Only the final image's layers were fetched: the builder stage's own
    // layers (in the cache with mode=max) are not in the fresh store.
    only_final_layers_fetched(&fresh, &id, &cache_layers(cache.path()));
}

/// Asserts that of the cache's `layers`, those not in image `id` were not
/// fetched into `bake`'s store (and that there were some).
fn only_final_layers_fetched(bake: &Bake, id: &str, layers: &[serde_json::Value]) {
    let finals = diff_ids(bake, id);
    let mut skipped = 0;
    for l in layers {
        let diff = l["annotations"]["containerd.io/uncompressed"]
            .as_str()
            .unwrap();
        let digest = l["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap();
        if finals.iter().any(|d| d == diff) {
            continue;
        }
        skipped += 1;
        let fetched = bake.root().join("blobs/sha256").join(digest).exists();
        assert!(
            !fetched,
            "builder-stage layer {diff} was fetched into the fresh store"
        );
    }
    assert!(
        skipped >= 2,
        "the max cache should hold the builder stage's layers"
    );
}

#[test]
fn skopeo_reads_the_local_cache_layout() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let cache = cache_dir();
    let to = format!("type=local,dest={}", cache.path().display());
    build_case(&bake, "two-stage", "app:1", &base, &["--cache-to", &to]);
    let out = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}", cache.path().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo rejected the layout: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.buildkit.cacheconfig.v0"
    );
    // The config is BuildKit's cacheconfig: layers with parents, records
    // with our keys pointing at layers.
    let digest = manifest["config"]["digest"].as_str().unwrap();
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            cache
                .path()
                .join("blobs/sha256")
                .join(digest.strip_prefix("sha256:").unwrap()),
        )
        .unwrap(),
    )
    .unwrap();
    let layers = config["layers"].as_array().unwrap();
    assert_eq!(layers[0]["parent"], -1, "{config}");
    let records = config["records"].as_array().unwrap();
    assert!(!records.is_empty());
    for r in records {
        assert!(r["digest"].as_str().unwrap().starts_with("blake3:"), "{r}");
        let top = r["layers"][0]["layer"].as_u64().unwrap() as usize;
        assert!(top < layers.len());
    }
}

#[test]
fn mode_min_leaves_the_builder_stage_out_and_max_keeps_it() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let min = cache_dir();
    let max = cache_dir();
    let to_min = format!("type=local,dest={}", min.path().display());
    let to_max = format!("type=local,dest={},mode=max", max.path().display());
    let (ctx, _) = build_case(
        &bake,
        "two-stage",
        "app:1",
        &base,
        &[
            "--build-arg",
            EPOCH,
            "--cache-to",
            &to_min,
            "--cache-to",
            &to_max,
        ],
    );
    for (dir, builder_cached) in [(&min, false), (&max, true)] {
        let fresh = Bake::new();
        let from = format!("type=local,src={}", dir.path().display());
        let (out, _) = build(&fresh, ctx.path(), "app:1", &base, &["--cache-from", &from]);
        let steps = layer_steps(&out.stderr);
        for builder in ["COPY greeting.txt", "RUN echo", "RUN mkdir"] {
            assert_eq!(
                step(&steps, builder, &out).2,
                builder_cached,
                "{builder} with {}:\n{out}",
                if builder_cached { "max" } else { "min" }
            );
        }
        // The final stage's steps are in both.
        assert!(step(&steps, "COPY --from=build", &out).2, "{out}");
        let run = fresh.ok(&["run", "--rm", "app:1"]);
        assert_eq!(run.stdout, "built by RUN\nhello from the context\n");
    }
}

#[test]
fn a_registry_cache_round_trips() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let host = base.split('/').next().unwrap();
    let cache_ref = format!("{host}/cache/app:buildcache");
    let to = format!("type=registry,ref={cache_ref},mode=max");
    let (ctx, first) = build_case(
        &bake,
        "two-stage",
        "app:1",
        &base,
        &["--build-arg", EPOCH, "--cache-to", &to],
    );
    assert!(first.stderr.contains("exported cache to"), "{first}");
    let first_id = bake.ok(&["images", "-q", "--no-trunc", "app:1"]).stdout;

    let fresh = Bake::new();
    let from = format!("type=registry,ref={cache_ref}");
    let (second, id) = build(&fresh, ctx.path(), "app:1", &base, &["--cache-from", &from]);
    all_cached(&second);
    assert_eq!(id.trim(), first_id.trim());
    let run = fresh.ok(&["run", "--rm", "app:1"]);
    assert_eq!(run.stdout, "built by RUN\nhello from the context\n");
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{cache_ref}"))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    only_final_layers_fetched(&fresh, &id, manifest["layers"].as_array().unwrap());
}

#[test]
fn an_inline_cache_in_a_pushed_image_is_read_back() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let host = base.split('/').next().unwrap();
    let image = format!("{host}/app/inline:1");
    let (ctx, _) = build_case(
        &bake,
        "two-stage",
        &image,
        &base,
        &["--build-arg", EPOCH, "--cache-to", "type=inline", "--push"],
    );
    let fresh = Bake::new();
    let (out, _) = build(
        &fresh,
        ctx.path(),
        "app:2",
        &base,
        &["--cache-from", &image],
    );
    let steps = layer_steps(&out.stderr);
    // Inline caches are mode=min: the final stage's steps hit.
    assert!(step(&steps, "COPY --from=build", &out).2, "{out}");
    let run = fresh.ok(&["run", "--rm", "app:2"]);
    assert_eq!(run.stdout, "built by RUN\nhello from the context\n");
}

/// A context with just a Dockerfile.
fn dockerfile_context(text: &str) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("bake-it-ctx-")
        .tempdir_in(scratch_dir())
        .unwrap();
    std::fs::write(dir.path().join("Dockerfile"), text).unwrap();
    dir
}

#[test]
fn cache_mount_contents_travel_with_cache_mounts_true() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let writer = dockerfile_context(
        "ARG BASE\nFROM ${BASE}\n\
         RUN --mount=type=cache,id=pkgs,target=/var/cache/pkgs \
         echo downloaded > /var/cache/pkgs/pkg.txt\n\
         RUN --mount=type=cache,id=owned,target=/c,uid=1000,gid=1000,mode=0700 \
         touch /c/f\n",
    );
    let cache = cache_dir();
    let to = format!(
        "type=local,dest={},cache-mounts=true",
        cache.path().display()
    );
    build(
        &bake,
        writer.path(),
        "writer:1",
        &base,
        &["--cache-to", &to],
    );

    let reader = dockerfile_context(
        "ARG BASE\nFROM ${BASE}\n\
         RUN --mount=type=cache,id=pkgs,target=/var/cache/pkgs \
         cat /var/cache/pkgs/pkg.txt > /seen.txt\n\
         RUN --mount=type=cache,id=owned,target=/c,uid=1000,gid=1000,mode=0700 \
         stat -c '%u:%g %a' /c >> /seen.txt && ls /c >> /seen.txt\n\
         CMD [\"cat\", \"/seen.txt\"]\n",
    );
    let from = format!("type=local,src={}", cache.path().display());
    let fresh = Bake::new();
    let (out, _) = build(
        &fresh,
        reader.path(),
        "reader:1",
        &base,
        &["--cache-from", &from],
    );
    assert!(out.stderr.contains("restored cache mount `pkgs`"), "{out}");
    // The restored directories keep their owner and mode.
    assert_eq!(
        fresh.ok(&["run", "--rm", "reader:1"]).stdout,
        "downloaded\n1000:1000 700\nf\n"
    );

    // Without cache-mounts=true nothing of the mount is exported.
    let plain = cache_dir();
    let to = format!("type=local,dest={}", plain.path().display());
    build(
        &bake,
        writer.path(),
        "writer:1",
        &base,
        &["--cache-to", &to],
    );
    let other = Bake::new();
    let from = format!("type=local,src={}", plain.path().display());
    let [a, b] = base_arg(&base);
    let out = other.run(&[
        "build",
        "--progress=plain",
        "-t",
        "reader:1",
        &a,
        &b,
        "--cache-from",
        &from,
        reader.path().to_str().unwrap(),
    ]);
    assert_ne!(
        out.code, 0,
        "cat of a file that was not restored succeeded:\n{out}"
    );
}

#[test]
fn a_tampered_cache_mount_blob_in_a_local_cache_is_refused_by_digest() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let writer = dockerfile_context(
        "ARG BASE\nFROM ${BASE}\n\
         RUN --mount=type=cache,id=pkgs,target=/var/cache/pkgs \
         echo downloaded > /var/cache/pkgs/pkg.txt\n",
    );
    let cache = cache_dir();
    let to = format!(
        "type=local,dest={},cache-mounts=true",
        cache.path().display()
    );
    build(
        &bake,
        writer.path(),
        "writer:1",
        &base,
        &["--cache-to", &to],
    );
    // Swap the mount's blob for a well-formed gzip tar with other content:
    // only its digest can tell.
    let layers = cache_layers(cache.path());
    let mount = layers
        .iter()
        .find(|l| l["annotations"]["dev.bake.cache-mount.id"] == "pkgs")
        .unwrap_or_else(|| panic!("no cache-mount layer in {layers:?}"));
    let digest = mount["digest"].as_str().unwrap().to_string();
    let blob = cache
        .path()
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap());
    let forged = cache_dir();
    std::fs::write(forged.path().join("pkg.txt"), "tampered\n").unwrap();
    let tar = Command::new("tar")
        .arg("-czf")
        .arg(&blob)
        .arg("-C")
        .arg(forged.path())
        .arg("pkg.txt")
        .status()
        .unwrap();
    assert!(tar.success());

    let reader = dockerfile_context(
        "ARG BASE\nFROM ${BASE}\n\
         RUN --mount=type=cache,id=pkgs,target=/var/cache/pkgs \
         (cat /var/cache/pkgs/pkg.txt 2>/dev/null || echo empty) > /seen.txt\n\
         CMD [\"cat\", \"/seen.txt\"]\n",
    );
    let from = format!("type=local,src={}", cache.path().display());
    let fresh = Bake::new();
    let (out, _) = build(
        &fresh,
        reader.path(),
        "reader:1",
        &base,
        &["--cache-from", &from],
    );
    // Reported by digest, not restored, and the build goes on without it
    // (as any cache mount that cannot be restored).
    assert!(
        out.stderr.contains("WARNING")
            && out.stderr.contains(&digest)
            && out.stderr.contains("does not match its content"),
        "{out}"
    );
    assert!(!out.stderr.contains("restored cache mount"), "{out}");
    assert_eq!(fresh.ok(&["run", "--rm", "reader:1"]).stdout, "empty\n");
}

#[test]
fn a_malformed_cache_to_is_a_clear_error() {
    let bake = Bake::new();
    for (spec, want) in [
        ("type=local", "type=local needs dest=DIR"),
        ("type=s3,bucket=x", "not supported"),
        ("type=local,dest=/x,mode=everything", "mode=everything"),
    ] {
        let out = bake.run(&["build", "--cache-to", spec, "."]);
        assert_ne!(out.code, 0, "{spec} was accepted:\n{out}");
        assert!(
            out.stderr.contains("invalid --cache-to") && out.stderr.contains(want),
            "{spec}: unclear error:\n{out}"
        );
    }
}

#[test]
fn a_missing_cache_from_warns_and_the_build_proceeds() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let host = base.split('/').next().unwrap();
    let missing: PathBuf = scratch_dir().join("bake-it-no-such-cache");
    let from_dir = format!("type=local,src={}", missing.display());
    let from_ref = format!("type=registry,ref={host}/no/such:cache");
    let (_, out) = build_case(
        &bake,
        "two-stage",
        "app:1",
        &base,
        &["--cache-from", &from_dir, "--cache-from", &from_ref],
    );
    assert!(
        out.stderr.contains("WARNING") && out.stderr.contains("bake-it-no-such-cache"),
        "{out}"
    );
    assert!(out.stderr.contains("no/such"), "{out}");
    let run = bake.ok(&["run", "--rm", "app:1"]);
    assert_eq!(run.stdout, "built by RUN\nhello from the context\n");
}

/// Rewrites a bake cache layout into BuildKit's default form: an index
/// listing the layer blobs and the cacheconfig, `sha256:` record digests
/// (BuildKit's key space) and no layer annotations in the config.
fn as_buildkit_index_cache(bake_cache: &Path, out: &Path) {
    let blobs = out.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for e in std::fs::read_dir(bake_cache.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), blobs.join(e.file_name())).unwrap();
    }
    let read = |d: &str| {
        let bytes = std::fs::read(blobs.join(d.strip_prefix("sha256:").unwrap())).unwrap();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    };
    let put = |v: &serde_json::Value| {
        let bytes = serde_json::to_vec(v).unwrap();
        let out = Command::new("sha256sum")
            .arg("-")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(&bytes)?;
                c.wait_with_output()
            })
            .unwrap();
        let hex = String::from_utf8(out.stdout).unwrap()[..64].to_string();
        std::fs::write(blobs.join(&hex), &bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bake_cache.join("index.json")).unwrap()).unwrap();
    let manifest = read(top["manifests"][0]["digest"].as_str().unwrap());
    let mut config = read(manifest["config"]["digest"].as_str().unwrap());
    for l in config["layers"].as_array_mut().unwrap() {
        l.as_object_mut().unwrap().remove("annotations");
    }
    for r in config["records"].as_array_mut().unwrap() {
        let d = r["digest"].as_str().unwrap().replace("blake3:", "sha256:");
        r["digest"] = serde_json::Value::String(d);
    }
    let (config_digest, config_size) = put(&config);
    let mut entries = manifest["layers"].as_array().unwrap().clone();
    entries.push(serde_json::json!({
        "mediaType": "application/vnd.buildkit.cacheconfig.v0",
        "digest": config_digest,
        "size": config_size,
    }));
    let (index_digest, index_size) = put(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }));
    std::fs::write(
        out.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": index_digest,
                "size": index_size,
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }],
        }))
        .unwrap(),
    )
    .unwrap();
    std::fs::write(out.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

#[test]
fn a_buildkit_shaped_cache_is_parsed_but_its_keys_never_match() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let cache = cache_dir();
    let to = format!("type=local,dest={},mode=max", cache.path().display());
    let (ctx, _) = build_case(&bake, "two-stage", "app:1", &base, &["--cache-to", &to]);
    let buildkit = cache_dir();
    as_buildkit_index_cache(cache.path(), buildkit.path());

    let fresh = Bake::new();
    let from = format!("type=local,src={}", buildkit.path().display());
    let (out, _) = build(&fresh, ctx.path(), "app:1", &base, &["--cache-from", &from]);
    assert!(!out.stderr.contains("WARNING"), "{out}");
    let parsed = out
        .stderr
        .lines()
        .find_map(|l| l.split(": ").last()?.strip_suffix(" records"))
        .unwrap_or_else(|| panic!("no record count in:\n{out}"));
    assert!(parsed.parse::<usize>().unwrap() >= 4, "{out}");
    for (num, instr, cached) in layer_steps(&out.stderr) {
        assert!(!cached, "step #{num} {instr} hit a foreign key:\n{out}");
    }
}

#[test]
fn a_runner_that_imports_and_exports_passes_the_whole_cache_on() {
    // The usual CI line: --cache-from the last run, --cache-to the next.
    // Steps that were hits and never unpacked are exported from the
    // imported cache's blobs.
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let first = cache_dir();
    let to = format!("type=local,dest={},mode=max", first.path().display());
    let (ctx, _) = build_case(
        &bake,
        "two-stage",
        "app:1",
        &base,
        &["--build-arg", EPOCH, "--cache-to", &to],
    );
    let second = cache_dir();
    let runner = Bake::new();
    let from = format!("type=local,src={}", first.path().display());
    let to = format!("type=local,dest={},mode=max", second.path().display());
    let (out, id) = build(
        &runner,
        ctx.path(),
        "app:1",
        &base,
        &["--cache-from", &from, "--cache-to", &to],
    );
    all_cached(&out);
    assert_eq!(
        cache_layers(second.path()).len(),
        cache_layers(first.path()).len(),
        "{out}"
    );

    let next = Bake::new();
    let from = format!("type=local,src={}", second.path().display());
    let (out, next_id) = build(&next, ctx.path(), "app:1", &base, &["--cache-from", &from]);
    all_cached(&out);
    assert_eq!(next_id, id);
}
