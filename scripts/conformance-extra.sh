#!/usr/bin/env bash
# conformance-extra.sh — run the shared conformance runner over bake's own
# extra cases (testdata/conformance-extra/, see its README.md).
#
#   scripts/conformance-extra.sh bake [BAKE_BINARY] [CASE...]   judge a bake binary
#                                       (default target/debug/bake); exit 1 on any FAIL
#   scripts/conformance-extra.sh buildah [CASE...]              re-record the oracle with
#                                       buildah into testdata/conformance-extra/expected/
#                                       (overrides/ and oracle.Dockerfile corrections applied)
#
# CASE: a case directory name or its number prefix (025, 095-copy-multi-source-file-dest).
# Not part of `cargo test`: it needs root, buildah (for re-recording), skopeo, umoci,
# jq, python3, curl and a registry on 127.0.0.1:5000 holding the busybox base, which
# the shared runner's own scripts provide:
#   (cd "$RUNNER_DIR" && setup/registry.sh start && setup/base-images.sh busybox)
#
# Env:
#   RUNNER_DIR   the shared runner (default /work/shared/conformance); nothing is
#                written there
#   OUT_DIR      bake results (default /var/tmp/conformance-extra/out)
#   WORK_DIR     scratch (default /var/tmp/conformance-extra/work-<kind>)
#   BAKE_ROOT    the store bake builds in (default: a fresh one per run, removed
#                afterwards, so that no cache record made by another binary can
#                stand in for the behaviour of the one being judged)
#   RAW_DIR      buildah's unedited results (default /var/tmp/conformance-extra/buildah-raw)
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
EXTRA=$HERE/testdata/conformance-extra
RUNNER_DIR=${RUNNER_DIR:-/work/shared/conformance}
SCRATCH=/var/tmp/conformance-extra

usage() { sed -n '2,25p' "$0" >&2; exit 2; }

[[ -x $RUNNER_DIR/run.sh ]] || { echo "conformance-extra: no runner at $RUNNER_DIR/run.sh (set RUNNER_DIR)" >&2; exit 2; }
kind=${1:-}; [[ -n $kind ]] || usage; shift

export CASES_DIR=$EXTRA/cases EXPECTED_DIR=$EXTRA/expected OVERRIDES_DIR=$EXTRA/overrides
export WORK_DIR=${WORK_DIR:-$SCRATCH/work-$kind}
case $kind in
  bake)
    bake=$HERE/target/debug/bake
    if [[ $# -gt 0 && ( $1 == */* || -x $1 ) ]]; then bake=$1; shift; fi
    [[ -x $bake ]] || { echo "conformance-extra: no bake binary at $bake (cargo build -p bake)" >&2; exit 2; }
    export OUT_DIR=${OUT_DIR:-$SCRATCH/out}
    if [[ -z ${BAKE_ROOT:-} ]]; then
      mkdir -p "$SCRATCH"
      BAKE_ROOT=$(mktemp -d "$SCRATCH/bake-store.XXXXXX")
      export BAKE_ROOT
      trap 'rm -rf "$BAKE_ROOT"' EXIT
    fi
    "$RUNNER_DIR/run.sh" bake "$bake" "$@" ;;
  buildah)
    export RAW_DIR=${RAW_DIR:-$SCRATCH/buildah-raw}
    mkdir -p "$RAW_DIR"
    exec "$RUNNER_DIR/run.sh" buildah "$@" ;;
  *) usage ;;
esac
