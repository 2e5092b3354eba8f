/* hooks.c — how the forward pass hands its data to probes (see forward.h, "probes: hooks"):
 * hooked arrays are host memory, so on a backend whose memory is elsewhere each hooked point
 * costs one download, and nothing when no hook is attached. The routing records' hook is in
 * moe.c, the attention probabilities' in mla.c. */
#include "model/run/model_internal.h"

/* Reports an activation to the point hook, if one is attached: downloaded first when backend
 * memory is not host memory (one download per hooked point). */
void dsv3_report_point(dsv3_run *r, dsv3_point p, int64_t li, int64_t pos0, int64_t n,
                       int64_t dim, const float *x) {
    if (!dsv3_hooked(r) || !r->hooks.point) return;
    if (!r->be->is_host) {
        r->be->download(r->host_stage, x, (size_t)(n * dim) * sizeof(float));
        x = r->host_stage;
    }
    r->hooks.point(r->hooks.ud, p, li, pos0, n, dim, x);
}
