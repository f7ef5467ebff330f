#!/usr/bin/env bash
# startup.sh — `bake run --rm IMAGE true` latency: the median of N runs (default 20).
#
#   bench/startup.sh [BAKE_BINARY] [RUNS]
#
# Builds a one-file image (FROM scratch + a static busybox as /bin/true) into a
# private store, then times the runs with hyperfine when it is installed, else
# with a `date +%s%N` loop. Root only (bake needs it). Set BAKE_TIMING=1 to see
# where the time goes inside one run (the runner prints phase timings on stderr).
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
