/*
 * ipc.c — the clock and the control socket between parent and workers:
 * whole messages ({type, len} then the payload), blocking I/O, retried on
 * EINTR and short transfers.
 */
#include "bench.h"

#include <errno.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int ipc_send(int fd, uint32_t type, const void *a, size_t alen, const void *b, size_t blen,
             const void *c, size_t clen) {
    msg_hdr h = {.type = type, .len = (uint32_t)(alen + blen + clen)};
    struct iovec iov[4] = {
        {.iov_base = &h, .iov_len = sizeof h},
        {.iov_base = (void *)a, .iov_len = alen},
        {.iov_base = (void *)b, .iov_len = blen},
        {.iov_base = (void *)c, .iov_len = clen},
    };
    struct iovec *v = iov;
    int cnt = 4;
    while (cnt > 0) {
        ssize_t n = writev(fd, v, cnt);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        size_t left = (size_t)n;
        while (cnt > 0 && left >= v->iov_len) {
            left -= v->iov_len;
            v++;
            cnt--;
        }
        if (cnt > 0) {
            v->iov_base = (char *)v->iov_base + left;
            v->iov_len -= left;
        }
    }
    return 0;
}

int ipc_read_all(int fd, void *buf, size_t len) {
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
