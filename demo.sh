#!/usr/bin/env bash
# demo.sh — builds and runs bake's offline demo (testdata/demo): a multi-stage
# Dockerfile whose base is made FROM scratch out of the machine's static
# busybox, so no registry and no network are involved. Needs root.
set -euo pipefail
cd "$(dirname "$0")"
if [[ $(id -u) != 0 ]]; then
  echo "demo.sh: bake needs root for now (namespaces, overlayfs): run it with sudo" >&2
  exit 1
fi
# What the demo needs from Debian: a static busybox for its base, and
# libseccomp-dev, which building bake needs (the runner links libseccomp).
missing=()
if ! command -v busybox >/dev/null || ldd "$(command -v busybox)" >/dev/null 2>&1; then
  missing+=(busybox-static)
fi
if ! dpkg-query -W -f='${Status}' libseccomp-dev 2>/dev/null | grep -q 'install ok installed'; then
  missing+=(libseccomp-dev)
fi
if ((${#missing[@]})); then
  echo "demo.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
cp "$(command -v busybox)" testdata/demo/busybox
cargo build --release -q -p bake
export BAKE_ROOT=${BAKE_ROOT:-/var/tmp/bake-demo}
target/release/bake build -t bake-demo:latest testdata/demo
target/release/bake images
target/release/bake run --rm bake-demo:latest
