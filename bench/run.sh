#!/usr/bin/env bash
# bench/run.sh [--buildah] [b1 b2 b3 b4]  — the issue-4 benchmarks in one command.
#
# Generates the build contexts with ../shared/bench/gen-contexts.sh (nothing is
# committed: b3 alone is 300 MB), builds bake in release mode, and prints, per
# benchmark, the median wall time of RUNS builds (default 5) for:
#   cold     an empty store (the base image is pulled from the local registry)
#   noop     nothing changed since the previous build
#   onefile  (b3 only) one small source file edited before each build
# plus bake's peak RSS for the cold build (from /usr/bin/time, when installed).
# With --buildah it runs ../shared/bench/compare.sh instead, which times bake
# and buildah alternately on the same contexts and prints the ratios (needs
# `apt-get install buildah runc` and ../shared/bench/setup-buildah.sh).
#
# Needs root and a registry with busybox at $REG (default localhost:5000, see
# ../shared/conformance/setup). Env: RUNS, CTX_DIR (default
# /var/tmp/bake-bench/ctx), BENCH_ROOT (bake's store, default
# /var/tmp/bake-bench/store), BENCH_DIR (default ../shared/bench), BAKE (skip
# the release build and use this binary).
set -euo pipefail
repo=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
shared=${BENCH_DIR:-$repo/../shared/bench}
buildah=0
if [[ ${1:-} == --buildah ]]; then buildah=1; shift; fi
benches=${*:-b1 b2 b3 b4}
RUNS=${RUNS:-5}
REG=${REG:-localhost:5000}
export CTX_DIR=${CTX_DIR:-/var/tmp/bake-bench/ctx}
root=${BENCH_ROOT:-/var/tmp/bake-bench/store}

if [[ -z ${BAKE:-} ]]; then
  (cd "$repo" && cargo build --release -p bake --quiet)
  BAKE=$repo/target/release/bake
fi
if [[ $buildah == 1 ]]; then
  exec bash "$shared/compare.sh" "$BAKE" $benches
fi

bash "$shared/gen-contexts.sh" >/dev/null
declare -A dir=([b1]=b1-small [b2]=b2-parallel [b3]=b3-monorepo [b4]=b4-layers)
for b in $benches; do
  sed -i "s#^FROM busybox\( \|\$\)#FROM $REG/library/busybox:latest\1#" "$CTX_DIR/${dir[$b]}/Dockerfile"
done

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
build() { BAKE_ROOT=$root "$BAKE" build -q -t "bench/$1" "$CTX_DIR/${dir[$1]}"; }
# time_build B: prints the wall seconds of one build (or FAIL).
time_build() {
  local s e
  s=$(now)
  build "$1" >/dev/null 2>"$root.log" || { echo FAIL; cat "$root.log" >&2; return; }
  e=$(now)
  printf '%.3f' "$(echo "$e - $s" | bc)"
}
# rss B: peak RSS in MB of a cold build, when GNU time is installed.
rss() {
  [[ -x /usr/bin/time ]] || { echo -; return; }
  rm -rf "$root"
  BAKE_ROOT=$root /usr/bin/time -f %M "$BAKE" build -q -t "bench/$1" "$CTX_DIR/${dir[$1]}" \
    2>&1 >/dev/null | tail -1 | awk '{printf "%.0f", $1/1024}'
}

printf '| %-12s | %9s | %s |\n' scenario median_s "runs (s)"
printf '|%s|%s|%s|\n' -------------- ----------- ----------
for b in $benches; do
  for sc in cold noop onefile; do
    [[ $sc == onefile && $b != b3 ]] && continue
    times=()
    [[ $sc != cold ]] && build "$b" >/dev/null
    for _ in $(seq 1 "$RUNS"); do
      case $sc in
        cold) rm -rf "$root" ;;
        onefile) bash "$shared/gen-contexts.sh" b3-touch ;;
      esac
      # Flush the previous build's writes first, so that its writeback does
      # not throttle this one (untimed).
      sync
      times+=("$(time_build "$b")")
    done
    m=$(printf '%s\n' "${times[@]}" | median)
    printf '| %-12s | %9s | %s |\n' "$b-$sc" "$m" "${times[*]}"
  done
  if [[ $b == b4 ]]; then
    printf '| %-12s | %9s | peak RSS of a cold build, MB |\n' "$b-rss" "$(rss "$b")"
  fi
done
rm -rf "$root" "$root.log"
