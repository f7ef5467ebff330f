# oracle: BuildKit lower-cases stage names (AS Second == second); buildah 1.28 does not match them case-insensitively
FROM localhost:5000/library/busybox:latest AS first
RUN mkdir -p /out/sub && echo 1 > /out/one.txt && echo s > /out/sub/s.txt && echo x > /out/x.log
FROM localhost:5000/library/busybox:latest AS second
RUN echo 2 > /two.txt
FROM localhost:5000/library/busybox:latest
COPY --from=0 /out /from0
COPY --from=second /two.txt /
COPY --from=first /out/*.txt /wild/
COPY --from=1 /two.txt /by-index.txt
