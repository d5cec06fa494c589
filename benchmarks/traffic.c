/* UDP flood and counter for the dataplane benchmark: every packet is a new connection.
 *   traffic send DST DPORT SECONDS SRCBASE   raw socket, source port (and address) change
 *                                            with every packet; prints packets sent
 *   traffic recv PORT SECONDS                counts datagrams received; prints the count
 * Only ever run inside the benchmark's own network namespaces. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

int main(int argc, char **argv) {
    if (argc >= 5 && !strcmp(argv[1], "send")) {
        in_addr_t dst = inet_addr(argv[2]), base = ntohl(inet_addr(argv[5 < argc ? 5 : 2]));
        int dport = atoi(argv[3]);
        double secs = atof(argv[4]);
        int s = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
        if (s < 0) { perror("socket"); return 1; }
        static char pkts[BATCH][64];
        struct mmsghdr msgs[BATCH]; struct iovec iov[BATCH];
        struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = dst};
        memset(msgs, 0, sizeof msgs);
        unsigned long long sent = 0, i = 0;
        double end = now() + secs;
        while (now() < end) {
            for (int k = 0; k < BATCH; k++, i++) {
                struct iphdr *ip = (struct iphdr *)pkts[k];
                struct udphdr *udp = (struct udphdr *)(pkts[k] + 20);
                memset(pkts[k], 0, 64);
                ip->ihl = 5; ip->version = 4; ip->ttl = 64; ip->protocol = IPPROTO_UDP;
                ip->tot_len = htons(20 + 8 + 18);
                ip->saddr = htonl(base + (unsigned)(i / 64512) % 16384);
                ip->daddr = dst;
                udp->source = htons(1024 + i % 64512); udp->dest = htons(dport);
                udp->len = htons(8 + 18); udp->check = 0;
                iov[k].iov_base = pkts[k]; iov[k].iov_len = 20 + 8 + 18;
                msgs[k].msg_hdr.msg_iov = &iov[k]; msgs[k].msg_hdr.msg_iovlen = 1;
                msgs[k].msg_hdr.msg_name = &to; msgs[k].msg_hdr.msg_namelen = sizeof to;
            }
            int n = sendmmsg(s, msgs, BATCH, 0);
            if (n > 0) sent += n;
        }
        printf("%llu\n", sent);
        return 0;
    }
    if (argc >= 4 && !strcmp(argv[1], "recv")) {
        int s = socket(AF_INET, SOCK_DGRAM, 0), big = 1 << 24;
        setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
        if (bind(s, (struct sockaddr *)&a, sizeof a)) { perror("bind"); return 1; }
        printf("ready\n"); fflush(stdout);
        static char buf[BATCH][128];
        struct mmsghdr msgs[BATCH]; struct iovec iov[BATCH];
        memset(msgs, 0, sizeof msgs);
        for (int k = 0; k < BATCH; k++) { iov[k].iov_base = buf[k]; iov[k].iov_len = 128;
            msgs[k].msg_hdr.msg_iov = &iov[k]; msgs[k].msg_hdr.msg_iovlen = 1; }
        unsigned long long got = 0;
        double end = now() + atof(argv[3]);
        struct pollfd p = {.fd = s, .events = POLLIN};
        while (now() < end) {
            if (poll(&p, 1, 50) <= 0) continue;
            int n = recvmmsg(s, msgs, BATCH, MSG_DONTWAIT, NULL);
            if (n > 0) got += n;
        }
        printf("%llu\n", got);
        return 0;
    }
    fprintf(stderr, "usage: traffic send DST DPORT SECONDS SRCBASE | recv PORT SECONDS\n");
    return 2;
}
