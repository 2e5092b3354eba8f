/* status.h — errors as values.
 *
 * Every library call that can fail returns a dsv3_status and fills a caller-owned dsv3_err
 * with one line of the form "module: where: why" (where = file, tensor, JSON key, ...).
 * The library never prints, exits or aborts on user input. Thread rules: none; a dsv3_err
 * belongs to its caller.
 */
#ifndef DSV3_STATUS_H
#define DSV3_STATUS_H

#include <stddef.h>

typedef enum {
    DSV3_OK = 0,
    DSV3_EIO,          /* open/read/mmap/write failed */
    DSV3_EFORMAT,      /* malformed file or message (bad JSON, bad header, truncated) */
    DSV3_ESHAPE,       /* a tensor or array has the wrong shape */
    DSV3_EDTYPE,       /* unknown or unexpected dtype */
    DSV3_ENOMEM,       /* allocation failed */
    DSV3_EINVAL,       /* bad argument or bad configuration value */
    DSV3_EINTR,        /* cancelled by the user */
    DSV3_EUNSUPPORTED, /* valid input that this build does not handle */
    DSV3_EPROTO,       /* protocol violation (Jupyter) */
} dsv3_status;

#define DSV3_ERR_LEN 1024

/* A caller-owned error message buffer. msg is "" until a call fails. */
typedef struct {
    char msg[DSV3_ERR_LEN];
} dsv3_err;

/* Formats the message into err (if err is not NULL) and returns st, so a failing
 * path can read `return dsv3_errf(err, DSV3_EFORMAT, "safetensors: %s: ...", path);`. */
dsv3_status dsv3_errf(dsv3_err *err, dsv3_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Short upper-case name of a status ("EFORMAT"); never NULL. */
const char *dsv3_status_name(dsv3_status st);

#endif
