/* capture.c — a descriptor caught in a pipe, emptied by a reader thread (see capture.h). */
#define _GNU_SOURCE
#include "jupyter/capture.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct dsv3_jcapture {
    int fd;              /* the captured descriptor */
    int saved;           /* a duplicate of what fd was before */
    int rd;              /* the pipe's read end, non-blocking (the write end is now fd) */
    pthread_t thread;    /* reader: empties rd every 50 ms or when it is readable */
    pthread_mutex_t lock; /* everything below */
    int hold;            /* 1: keep bytes in buf; 0: write them to saved */
    int stop;            /* 1: the reader ends */
    char *buf;           /* kept bytes (n of cap) */
    size_t n, cap;
};

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return;
        p += k;
        n -= (size_t)k;
    }
}

/* Reads what the pipe holds now; keeps or passes it on. Called with the lock held. */
static void pump(dsv3_jcapture *c) {
    char tmp[4096];
    for (;;) {
        ssize_t k = read(c->rd, tmp, sizeof tmp);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return;
        if (!c->hold) {
            write_all(c->saved, tmp, (size_t)k);
            continue;
        }
        if (c->n + (size_t)k > c->cap) {
            size_t nc = (c->n + (size_t)k) * 2;
            char *nb = realloc(c->buf, nc);
            if (!nb) { /* out of memory: the bytes go where they would have gone */
                write_all(c->saved, tmp, (size_t)k);
                continue;
            }
            c->buf = nb;
            c->cap = nc;
        }
        memcpy(c->buf + c->n, tmp, (size_t)k);
        c->n += (size_t)k;
    }
}

static void *reader(void *arg) {
    dsv3_jcapture *c = arg;
    for (;;) {
        struct pollfd p = {.fd = c->rd, .events = POLLIN};
        poll(&p, 1, 50);
        pthread_mutex_lock(&c->lock);
        pump(c);
        int stop = c->stop;
        pthread_mutex_unlock(&c->lock);
        if (stop) return NULL;
    }
}

dsv3_status dsv3_jcapture_open(dsv3_jcapture **out, int fd, dsv3_err *err) {
    *out = NULL;
    dsv3_jcapture *c = calloc(1, sizeof *c);
    if (!c) return dsv3_errf(err, DSV3_ENOMEM, "kernel: out of memory");
    int p[2] = {-1, -1};
    c->fd = fd;
    c->saved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (c->saved < 0 || pipe2(p, O_CLOEXEC) != 0) {
        int e = errno;
        if (c->saved >= 0) close(c->saved);
        free(c);
        return dsv3_errf(err, DSV3_EIO, "kernel: capturing descriptor %d: %s", fd, strerror(e));
    }
    c->rd = p[0];
    fcntl(c->rd, F_SETFL, fcntl(c->rd, F_GETFL) | O_NONBLOCK);
    pthread_mutex_init(&c->lock, NULL);
    if (dup2(p[1], fd) < 0 || pthread_create(&c->thread, NULL, reader, c) != 0) {
        int e = errno;
        dup2(c->saved, fd);
        close(p[0]);
        close(p[1]);
        close(c->saved);
        pthread_mutex_destroy(&c->lock);
        free(c);
        return dsv3_errf(err, DSV3_EIO, "kernel: capturing descriptor %d: %s", fd, strerror(e));
    }
    close(p[1]); /* fd is the write end now */
    *out = c;
    return DSV3_OK;
}

void dsv3_jcapture_hold(dsv3_jcapture *c, int on) {
    if (!c) return;
    pthread_mutex_lock(&c->lock);
    pump(c);
    if (!on && c->n) {
        write_all(c->saved, c->buf, c->n);
        c->n = 0;
    }
    c->hold = on;
    pthread_mutex_unlock(&c->lock);
}

size_t dsv3_jcapture_take(dsv3_jcapture *c, char **bytes) {
    *bytes = NULL;
    if (!c) return 0;
    pthread_mutex_lock(&c->lock);
    pump(c);
    size_t n = c->n;
    if (n) {
        *bytes = c->buf;
        c->buf = NULL;
        c->n = c->cap = 0;
    }
    pthread_mutex_unlock(&c->lock);
    return n;
}

void dsv3_jcapture_close(dsv3_jcapture *c) {
    if (!c) return;
    pthread_mutex_lock(&c->lock);
    pump(c);
    dup2(c->saved, c->fd); /* the pipe's last write end goes away with it */
    pump(c);
    if (c->n) write_all(c->saved, c->buf, c->n);
    c->stop = 1;
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    close(c->rd);
    close(c->saved);
    pthread_mutex_destroy(&c->lock);
    free(c->buf);
    free(c);
}
