#!/usr/bin/env bash
# bench/push.sh — push/pull throughput to a local registry and layer
# compression throughput, for a ~1 GB one-layer image shaped like
# ../shared/bench b4 (500 MiB urandom + 500 MiB log-like text).
#
# Prints wall times and bytes/s for: bake push (gzip, the layer compressed
# on the way), an unchanged re-push (every blob skipped by HEAD), bake push
# --compression zstd, bake pull into an empty store, skopeo copy of the
# same gzip blobs from an OCI layout (the reference), and gzip/zstd of the
# layer tar by bake (`save --format oci-archive`, compress + store the blob)
# beside `pigz` and `zstd -T0`. Peak RSS of bake push from /usr/bin/time.
# Each push also prints CPU seconds (bake's user+sys from /usr/bin/time,
# the registry's from /proc/PID/stat): on a shared machine they move far
# less than wall time. "upload only" pushes the already-compressed blobs
# to a second, empty registry: the registry's ingest floor, which no
# compressor change can beat.
# Needs root, docker-registry, skopeo, umoci, busybox (install-deps.sh),
# optionally pigz and zstd. Env: BAKE (skip the release build), WORK
# (default /var/tmp/bake-bench-push; ~12 GB free needed, removed at the
# end unless KEEP=1).
set -euo pipefail
repo=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
if [[ -z ${BAKE:-} ]]; then
  (cd "$repo" && cargo build --release -p bake --quiet)
  BAKE=$repo/target/release/bake
fi
work=${WORK:-/var/tmp/bake-bench-push}
rm -rf "$work"; mkdir -p "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
cat > "$work/registry.yml" <<YML
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: $reg}
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
regpid=$!
# The upload-only registry: same disk, empty.
port2=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg2=127.0.0.1:$port2
sed -e "s|$work/registry|$work/registry2|" -e "s|$reg|$reg2|" "$work/registry.yml" > "$work/registry2.yml"
docker-registry serve "$work/registry2.yml" >"$work/registry2.log" 2>&1 &
reg2pid=$!
# The work dir grows to ~12 GB (three stores, two registries, tars):
# removed on exit unless KEEP=1.
trap 'kill $regpid $reg2pid 2>/dev/null || true; wait 2>/dev/null; [[ -n ${KEEP:-} ]] || rm -rf "$work"' EXIT
for p in $port $port2; do
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done
done

bash "$repo/testdata/fixtures/busybox-image.sh" "$work/busybox" >/dev/null
skopeo copy --quiet --dest-tls-verify=false "oci:$work/busybox:latest" "docker://$reg/library/busybox:latest"

mkdir -p "$work/ctx"
cat > "$work/ctx/Dockerfile" <<'DF'
ARG BASE
FROM ${BASE}
RUN dd if=/dev/urandom of=/random.bin bs=1M count=500 2>/dev/null && awk 'BEGIN { for (i = 0; i < 11000; i++) printf "2024-01-01T%02d:%02d:%02d.%03dZ INFO [worker-%02d] GET /api/v1/items/%d status=%d bytes=%d dur_ms=%d\n", (i/3600)%24, (i/60)%60, i%60, (i*7)%1000, i%16, i*7919%100003, (i%23 ? 200 : 404), (i*131)%65536, (i*17)%997 }' > /tmp/chunk && i=0 && while [ $i -lt 500 ]; do cat /tmp/chunk; i=$((i+1)); done | head -c 524288000 > /text.log && rm /tmp/chunk
DF
export BAKE_ROOT=$work/store
img=$reg/bench/b4:gzip
"$BAKE" build -q -t "$img" --build-arg "BASE=$reg/library/busybox:latest" "$work/ctx" >/dev/null

now() { date +%s.%N; }
regcpu() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }
# pushcpu REGPID ARGS…: runs `bake push ARGS…`; sets secs, rss_mb, and cpu
# ("bake X s + registry Y s CPU").
pushcpu() {
  local pid=$1 t0 t1 c0 c1 u s m; shift
  c0=$(regcpu "$pid"); t0=$(now)
  /usr/bin/time -f '%U %S %M' -o "$work/time" "$BAKE" push "$@" >/dev/null
  t1=$(now); c1=$(regcpu "$pid")
  read -r u s m < "$work/time"
  secs=$(python3 -c "print($t1-$t0)"); rss_mb=$((m / 1024))
  cpu=$(python3 -c "print(f'bake {$u+$s:.2f} s + registry {$c1-$c0:.2f} s CPU')")
}
rate() { python3 -c "import sys; b,t=float(sys.argv[1]),float(sys.argv[2]); print(f'{t:7.2f} s  {b/t/1e6:8.1f} MB/s')" "$1" "$2"; }
timed() { local t0; t0=$(now); "$@" >/dev/null; python3 -c "import sys; print(float(sys.argv[2])-float(sys.argv[1]))" "$t0" "$(now)"; }

"$BAKE" save -o "$work/image.tar" "$img"
layer=$(tar -tf "$work/image.tar" | grep layer.tar | tail -1)
tar -xf "$work/image.tar" -C "$work" "$layer"
raw=$(stat -c %s "$work/$layer")
echo "image: $img, top layer $raw bytes uncompressed"

"$BAKE" tag "$img" "$reg/bench/push:gzip"
pushcpu $regpid "$reg/bench/push:gzip"
gz=$(skopeo inspect --raw --tls-verify=false "docker://$reg/bench/push:gzip" | python3 -c 'import json,sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))')
echo "bake push gzip (first push of the image, compresses):"
echo "  $(rate "$gz" "$secs")   peak RSS $rss_mb MB   ($gz bytes sent; $cpu)"
t=$(timed "$BAKE" push "$reg/bench/push:gzip")
echo "bake re-push unchanged:           $(printf '%7.2f s' "$t")"
"$BAKE" tag "$img" "$reg/bench/push:zstd"
pushcpu $regpid --compression zstd "$reg/bench/push:zstd"
zs=$(skopeo inspect --raw --tls-verify=false "docker://$reg/bench/push:zstd" | python3 -c 'import json,sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))')
echo "bake push zstd (compresses):      $(rate "$zs" "$secs")   peak RSS $rss_mb MB   ($cpu)"
"$BAKE" tag "$img" "$reg2/bench/push:gzip"
"$BAKE" tag "$img" "$reg2/bench/push:zstd"
pushcpu $reg2pid "$reg2/bench/push:gzip"
echo "upload only, gzip blobs (empty registry): $(rate "$gz" "$secs")   ($cpu)"
pushcpu $reg2pid --compression zstd "$reg2/bench/push:zstd"
echo "upload only, zstd blobs (empty registry): $(rate "$zs" "$secs")   ($cpu)"
t=$(timed env BAKE_ROOT="$work/store2" "$BAKE" pull "$reg/bench/push:gzip")
echo "bake pull gzip into empty store:  $(rate "$gz" "$t")   (download + verify + unpack)"
"$BAKE" save --format oci-dir -o "$work/layout" "$reg/bench/push:gzip"
t=$(timed skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:gzip" "docker://$reg/bench/skopeo:gzip")
echo "skopeo copy of the same blobs:    $(rate "$gz" "$t")"

echo "layer compression of the $raw-byte tar:"
t=$(timed env BAKE_ROOT="$work/store3" "$BAKE" load -i "$work/image.tar")
t=$(timed env BAKE_ROOT="$work/store3" "$BAKE" save --format oci-archive --compression gzip -o /dev/null "$img")
echo "  bake gzip (save oci-archive):   $(rate "$raw" "$t")"
t=$(timed env BAKE_ROOT="$work/store3" "$BAKE" save --format oci-archive --compression zstd --force-compression -o /dev/null "$img")
echo "  bake zstd (save oci-archive):   $(rate "$raw" "$t")"
if command -v pigz >/dev/null; then
  t=$(timed sh -c "pigz -6 -c '$work/$layer' > /dev/null")
  echo "  pigz -6:                        $(rate "$raw" "$t")"
fi
if command -v zstd >/dev/null; then
  t=$(timed sh -c "zstd -q -3 -T0 -c '$work/$layer' > /dev/null")
  echo "  zstd -3 -T0:                    $(rate "$raw" "$t")"
fi
