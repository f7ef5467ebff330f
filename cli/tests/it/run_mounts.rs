//! `RUN --mount=type=bind,rw` (writes discarded) and `type=cache`
//! (persistent, `sharing=locked|private`, seeded with `from=`).

use crate::cache_flags::{build, context_with};
use crate::harness::setup;

#[test]
fn writes_to_a_rw_bind_mount_are_discarded() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let df = "ARG BASE\n\
        FROM $BASE AS src\n\
        RUN mkdir /data && echo orig > /data/f\n\
        FROM $BASE\n\
        RUN --mount=type=bind,from=src,source=/data,target=/mnt,rw echo changed > /mnt/f && echo new > /mnt/g && cat /mnt/f > /seen\n\
        RUN --mount=type=bind,from=src,source=/data,target=/mnt cat /mnt/f > /after && test ! -e /mnt/g\n\
        RUN --mount=type=bind,target=/ctx,rw echo x > /ctx/written && cat /ctx/hello.txt > /ctx-seen\n\
        RUN --mount=type=bind,target=/ctx sh -c 'if echo y > /ctx/ro; then echo writable; else echo read-only; fi' > /ro 2>/dev/null\n";
    let ctx = context_with(&[("Dockerfile", df), ("hello.txt", "hello\n")]);
    build(&bake, ctx.path(), "bind:1", &base, &[]);
    let out = bake.ok(&[
        "run",
        "--rm",
        "bind:1",
        "cat",
        "/seen",
        "/after",
        "/ctx-seen",
        "/ro",
    ]);
    assert_eq!(out.stdout, "changed\norig\nhello\nread-only\n");
    assert!(
        !ctx.path().join("written").exists(),
        "a rw bind wrote into the context"
    );
    assert!(!ctx.path().join("ro").exists());
    let out = bake.ok(&[
        "run",
        "--rm",
        "bind:1",
        "sh",
        "-c",
        "test -e /mnt || test -e /ctx && echo present || echo absent",
    ]);
    assert_eq!(out.stdout, "absent\n");
}

#[test]
fn cache_mounts_persist_lock_isolate_and_seed() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let df = "ARG BASE\n\
        FROM $BASE AS seed\n\
        RUN mkdir -p /s && echo seeded > /s/f\n\
        FROM $BASE AS a\n\
        RUN --mount=type=cache,id=count,target=/c,sharing=locked n=$(cat /c/n 2>/dev/null || echo 0); sleep 0.3; echo $((n+1)) > /c/n\n\
        RUN --mount=type=cache,id=who,target=/c,sharing=private echo a > /c/who; sleep 0.5; cat /c/who > /who\n\
        FROM $BASE AS b\n\
        RUN --mount=type=cache,id=count,target=/c,sharing=locked : b; n=$(cat /c/n 2>/dev/null || echo 0); sleep 0.3; echo $((n+1)) > /c/n\n\
        RUN --mount=type=cache,id=who,target=/c,sharing=private echo b > /c/who; sleep 0.5; cat /c/who > /who\n\
        FROM $BASE\n\
        COPY --from=a /who /who-a\n\
        COPY --from=b /who /who-b\n\
        RUN --mount=type=cache,id=count,target=/c,sharing=locked cat /c/n > /count\n\
        RUN --mount=type=cache,id=seeded,target=/c,from=seed,source=/s cat /c/f > /seed\n";
    let ctx = context_with(&[("Dockerfile", df)]);
    build(&bake, ctx.path(), "cm:1", &base, &["--jobs", "4"]);
    let out = bake.ok(&[
        "run", "--rm", "cm:1", "cat", "/who-a", "/who-b", "/count", "/seed",
    ]);
    // locked: the two increments did not overlap; private: each RUN saw
    // its own write.
    assert_eq!(out.stdout, "a\nb\n2\nseeded\n");
    // The cache outlives the build: a rebuild without the cache counts on.
    build(
        &bake,
        ctx.path(),
        "cm:2",
        &base,
        &["--jobs", "4", "--no-cache"],
    );
    let out = bake.ok(&["run", "--rm", "cm:2", "cat", "/count"]);
    assert_eq!(out.stdout, "4\n");
    // Cache contents are never in a layer.
    let out = bake.ok(&[
        "run",
        "--rm",
        "cm:2",
        "sh",
        "-c",
        "test -e /c && echo present || echo absent",
    ]);
    assert_eq!(out.stdout, "absent\n");
}
