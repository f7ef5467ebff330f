# oracle: buildah 1.28 has no COPY heredocs; the files BuildKit writes (0644, 0:0), made by RUN
FROM localhost:5000/library/busybox:latest
RUN printf 'hello world world\n' > /expanded.txt && printf 'hello $NAME\n' > /literal.txt && printf 'single $NAME\n' > /single.txt && mkdir /multi && printf 'first\n' > /multi/one.txt && printf 'second\n' > /multi/two.txt
