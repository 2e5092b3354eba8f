/* backend.c — the backends by name (see kernels/backend.h): one table of the names a front end
 * may pass to --backend or backend(). It sits above the backends, so kernels/cpu's reference
 * and optimised backends do not know each other's names (the optimised one may still call the
 * reference kernels; the reference calls nothing of it). */
#include <stddef.h>
#include <string.h>

#include "kernels/backend.h"

static const struct {
    const char *name;
    const dsv3_backend *(*get)(void);
} backends[] = {
    {"ref", dsv3_backend_cpu},
    {"cpu", dsv3_backend_cpu},
    {"fast", dsv3_backend_fast},
    {"devsim", dsv3_backend_devsim},
#ifdef DSV3_HAVE_CUDA
    {"cuda", dsv3_backend_cuda},
#endif
};

const dsv3_backend *dsv3_backend_by_name(const char *name) {
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (!strcmp(name, backends[i].name)) return backends[i].get();
    return NULL;
}

const char *dsv3_backend_names(void) {
#ifdef DSV3_HAVE_CUDA
    return "fast, ref, devsim, cuda";
#else
    return "fast, ref, devsim (this build has no cuda: configure with -DDSV3_CUDA=ON)";
#endif
}
