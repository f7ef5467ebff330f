#!/usr/bin/env bash
# install-deps.sh — the Debian packages bake's tests and demo use, on a fresh
# machine: the CNCF registry (docker-registry) the tests push to, the static
# busybox the base-image fixture and the demo are made of, and the OCI tools
# the tests check images with (skopeo, umoci, oci-image-tool, podman + runc),
# git and zstd for ADD sources, slirp4netns for published ports, openssl for
# the token-auth test registry, and libseccomp-dev, which building bake needs
# (the runner links libseccomp); debootstrap only for the debian base image of
# scripts/conformance-extra.sh. Idempotent; needs root.
set -euo pipefail
pkgs=(docker-registry openssl podman runc busybox-static skopeo umoci oci-image-tool jq curl python3 git tar zstd util-linux iproute2 ca-certificates slirp4netns libseccomp-dev uidmap debootstrap)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# the registry package ships a service we do not want running on :5000
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi
echo "install-deps: ok ($(docker-registry --version 2>/dev/null | head -n1); $(skopeo --version); $(umoci --version))" >&2
