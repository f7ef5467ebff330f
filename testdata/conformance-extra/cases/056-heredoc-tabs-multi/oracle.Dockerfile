# oracle: buildah 1.28 has neither <<- nor COPY heredocs; the files BuildKit writes, made by RUN
FROM localhost:5000/library/busybox:latest
RUN echo tabbed > /tabbed.txt && echo aaa > /a.txt && echo bbb > /b.txt && printf '#!/bin/sh\necho hi\n' > /script.sh && chmod 0755 /script.sh && printf 'one\ntwo\n' > /stripped.txt
