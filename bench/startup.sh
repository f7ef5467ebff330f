#!/usr/bin/env bash
# startup.sh — `bake run --rm IMAGE true` latency: the median of N runs (default 20),
# beside the same image started by other runtimes on this machine.
#
#   bench/startup.sh [BAKE_BINARY] [RUNS]
#
# Builds a one-file image (FROM scratch + a static busybox as /bin/true) into a
# private store, then times the runs with hyperfine when it is installed, else
# with a `date +%s%N` loop. Root only (bake needs it). Set BAKE_TIMING=1 to see
# where the time goes inside one run (the runner prints phase timings on stderr).
#
# Then, for whichever is installed: `runc run` and `crun run` of an OCI bundle
# made from the same image (`bake save --format oci-dir` + `umoci unpack`, no
# network namespace, as `bake run` defaults to the host network), and `podman
# run --rm --network host` of the image loaded with `podman load` (runtime runc:
# crun fails on this host's hybrid cgroups; run ../shared/bench/setup-buildah.sh first).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bake=${1:-$here/target/release/bake}
runs=${2:-20}
[[ -x $bake ]] || { echo "startup.sh: $bake not found (cargo build --release -p bake)" >&2; exit 1; }
busybox=$(command -v busybox) || { echo "startup.sh: busybox not found (apt-get install busybox-static)" >&2; exit 1; }
work=$(mktemp -d /var/tmp/bake-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
export BAKE_ROOT=$work/store
mkdir -p "$work/ctx"
cp "$busybox" "$work/ctx/busybox"
printf 'FROM scratch\nCOPY busybox /bin/true\n' >"$work/ctx/Dockerfile"
"$bake" build -q -t bench:true "$work/ctx" >/dev/null
"$bake" run --rm bench:true /bin/true # warm up (page cache, store)

if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/h.json" \
    "$bake run --rm bench:true /bin/true" >&2
  median=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["results"][0]["median"]*1000,1))' "$work/h.json")
else
  times=()
  for _ in $(seq "$runs"); do
    t0=$(date +%s%N)
    "$bake" run --rm bench:true /bin/true
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000 )))
  done
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.1f", m / 1000}')
fi
echo "bake run --rm IMAGE true: median ${median} ms over ${runs} runs (target <= 30 ms)"

# median_ms CMD…: the median wall time of $runs runs of CMD (after one warm-up).
median_ms() {
  "$@" >/dev/null 2>&1 || { echo FAIL; return; }
  local t=()
  for _ in $(seq "$runs"); do
    local t0 t1
    t0=$(date +%s%N); "$@" >/dev/null 2>&1 || { echo FAIL; return; }; t1=$(date +%s%N)
    t+=($(( (t1 - t0) / 1000 )))
  done
  printf '%s\n' "${t[@]}" | sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.1f", m / 1000}'
}
ratio() { python3 -c 'import sys; a,b=sys.argv[1:]; print("-" if "FAIL" in (a,b) else f"{float(b)/float(a):.1f}x bake")' "$1" "$2"; }

if command -v umoci >/dev/null && { command -v runc >/dev/null || command -v crun >/dev/null; }; then
  "$bake" save --format oci-dir -o "$work/layout" bench:true
  umoci unpack --image "$work/layout:true" "$work/bundle" >/dev/null 2>&1 ||
    umoci unpack --image "$work/layout:latest" "$work/bundle" >/dev/null
  # The image's process, no tty, and the host network (as bake run's default).
  python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["args"] = ["/bin/true"]
c["process"]["terminal"] = False
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
json.dump(c, open(p, "w"))
PY
  n=0
  if command -v runc >/dev/null; then
    run_runc() { n=$((n + 1)); runc run --bundle "$work/bundle" "bench-$$-$n"; }
    m=$(median_ms run_runc)
    echo "runc run of a prepared bundle: median ${m} ms ($(ratio "$median" "$m"))"
  fi
  if command -v crun >/dev/null; then
    # crun refuses hybrid cgroups ("drop all controllers from cgroupv2"):
    # where the host has them, it runs in a mount namespace without the
    # cgroup2 mount, which adds the unshare to its time.
    crun_cmd() { crun run --bundle "$work/bundle" "bench-$$-$1"; }
    run_crun() {
      n=$((n + 1))
      if mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then
        unshare -m --propagation private sh -c "umount /sys/fs/cgroup/unified && crun run --bundle '$work/bundle' bench-$$-$n"
      else
        crun_cmd "$n"
      fi
    }
    m=$(median_ms run_crun)
    echo "crun run of a prepared bundle: median ${m} ms ($(ratio "$median" "$m"))"
  fi
fi
if command -v podman >/dev/null; then
  "$bake" save -o "$work/image.tar" bench:true
  if podman load -q -i "$work/image.tar" >/dev/null 2>&1; then
    m=$(median_ms podman run --rm --network host --runtime runc bench:true /bin/true)
    echo "podman run --rm IMAGE true:   median ${m} ms ($(ratio "$median" "$m"))"
    podman rmi -f bench:true >/dev/null 2>&1 || true
  else
    echo "podman: could not load the image (see ../shared/bench/setup-buildah.sh)"
  fi
fi
