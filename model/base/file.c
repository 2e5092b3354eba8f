/* file.c — regular files opened without blocking (see file.h). */
#include "model/base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *kind(mode_t m) {
    if (S_ISFIFO(m)) return "a FIFO, not a regular file";
    if (S_ISSOCK(m)) return "a socket, not a regular file";
    if (S_ISCHR(m)) return "a character device, not a regular file";
    if (S_ISBLK(m)) return "a block device, not a regular file";
    if (S_ISDIR(m)) return "a directory, not a regular file";
    return "not a regular file";
}

int dsv3_file_open_regular(const char *path, const char **what) {
    *what = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return -1;
    if (!S_ISREG(sb.st_mode)) {
        *what = kind(sb.st_mode);
        errno = EINVAL;
        return -1;
    }
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENXIO || errno == ENODEV) *what = "not a regular file"; /* swapped in */
        return -1;
    }
    if (fstat(fd, &sb) != 0) {
        const int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        *what = kind(sb.st_mode);
        close(fd);
        errno = EINVAL;
        return -1;
    }
    const int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

FILE *dsv3_file_fopen_regular(const char *path, const char **what) {
    const int fd = dsv3_file_open_regular(path, what);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) close(fd);
    return f;
}
