# oracle: BuildKit lower-cases stage names; buildah 1.28 does not
FROM localhost:5000/library/busybox:latest AS mixedcase
RUN echo mixed > /m.txt
FROM mixedcase AS child
RUN cat /m.txt > /child.txt
FROM localhost:5000/library/busybox:latest
COPY --from=mixedcase /m.txt /
COPY --from=child /child.txt /
