/* A UDP echo server for tests/integration/test_network.py (busybox-static's nc has no
 * -u): udpecho PORT answers each datagram with "echo: " and the datagram, and prints
 * each one it got on stdout. Built static by the test and put into its image. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: udpecho PORT\n");
        return 2;
    }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    if (s < 0 || bind(s, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("udpecho");
        return 1;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    for (;;) {
        char buf[2048], out[2100];
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        ssize_t n = recvfrom(s, buf, sizeof buf - 1, 0, (struct sockaddr *)&peer, &len);
        if (n < 0)
            continue;
        buf[n] = 0;
        printf("got %s from %s\n", buf, inet_ntoa(peer.sin_addr));
        int m = snprintf(out, sizeof out, "echo: %s", buf);
        sendto(s, out, (size_t)m, 0, (struct sockaddr *)&peer, len);
    }
}
