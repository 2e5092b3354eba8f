/* npy.c — .npy writer (see npy.h). Header: magic, version 1.0, u16 length, a Python dict
 * literal padded with spaces and ended by '\n' so the data starts at a multiple of 64. */
#include "model/base/npy.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

dsv3_status dsv3_npy_write_f32(const char *path, const float *data, int ndim,
                               const int64_t *shape, dsv3_err *err) {
    if (ndim < 1 || ndim > 8) return dsv3_errf(err, DSV3_EINVAL, "npy: %s: ndim %d", path, ndim);
    char dict[512];
    int at = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        at += snprintf(dict + at, sizeof dict - (size_t)at, "%lld,%s", (long long)shape[i],
                       i + 1 < ndim ? " " : "");
        numel *= shape[i];
    }
    at += snprintf(dict + at, sizeof dict - (size_t)at, "), }");
    /* total = 10 (magic + version + len) + dict + pad + '\n', a multiple of 64 */
    int total = (10 + at + 1 + 63) / 64 * 64;
    int hlen = total - 10;
    char hdr[640];
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    hdr[8] = (char)(hlen & 0xff);
    hdr[9] = (char)(hlen >> 8);
    memcpy(hdr + 10, dict, (size_t)at);
    memset(hdr + 10 + at, ' ', (size_t)(hlen - at - 1));
    hdr[total - 1] = '\n';

    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return dsv3_errf(err, DSV3_EIO, "npy: %s: cannot create: %s", tmp, strerror(errno));
    int ok = fwrite(hdr, 1, (size_t)total, f) == (size_t)total &&
             fwrite(data, sizeof(float), (size_t)numel, f) == (size_t)numel;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return dsv3_errf(err, DSV3_EIO, "npy: %s: write failed: %s", path, strerror(e));
    }
    return DSV3_OK;
}
