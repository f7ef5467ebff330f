# oracle: buildah 1.28 has no ADD --checksum; the checksum matches, so the result is the plain ADD
FROM localhost:5000/library/busybox:latest
ADD http://127.0.0.1:5000/v2/ /v2.json
