# oracle: buildah 1.28 lacks the POSIX no-colon forms (BuildKit has them since moby/buildkit#3611); literal results
FROM localhost:5000/library/busybox:latest
ENV R1=[value] R2=[] R3=[def]
ENV R4=[alt] R5=[alt] R6=[]
LABEL l1=[] l2=[x] l3=[y] l4=[]
