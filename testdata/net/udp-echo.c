/* udp-echo.c PORT: answers every UDP datagram on PORT with "echo:" + the datagram.
 * The ports tests build it static (`cc -static`), since busybox's nc has no UDP. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(argc > 1 ? atoi(argv[1]) : 5353);
    if (s < 0 || bind(s, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("udp-echo");
        return 1;
    }
    for (;;) {
        char buf[1024] = "echo:";
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        ssize_t n = recvfrom(s, buf + 5, sizeof buf - 5, 0, (struct sockaddr *)&peer, &len);
        if (n > 0)
            sendto(s, buf, (size_t)n + 5, 0, (struct sockaddr *)&peer, len);
    }
}
