/* status.c — formatting of error values (see status.h). */
#include "model/base/status.h"

#include <stdarg.h>
#include <stdio.h>

dsv3_status dsv3_errf(dsv3_err *err, dsv3_status st, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return st;
}

const char *dsv3_status_name(dsv3_status st) {
    static const char *const names[] = {"OK",     "EIO",    "EFORMAT", "ESHAPE",       "EDTYPE",
                                        "ENOMEM", "EINVAL", "EINTR",   "EUNSUPPORTED", "EPROTO"};
    if ((unsigned)st < sizeof names / sizeof names[0]) return names[st];
    return "EUNKNOWN";
}
