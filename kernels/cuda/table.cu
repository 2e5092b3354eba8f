/* table.cu — the CUDA backend's table (kernels/backend.h, dsv3_backend_cuda): memory and
 * weight binding from memory.cu, products and elementwise operations from ops.cu (mla_store
 * too), attention from mla.cu, routing and experts from moe.cu. Kept apart so the files below
 * it never call each other in a circle (tests/layers.py). */
#include "kernels/cuda/cuda_internal.cuh"

namespace {

const dsv3_backend table = {
    /* name */ "cuda",
    /* is_host */ 0,
    dsv3_cuda_alloc,
    dsv3_cuda_free,
    dsv3_cuda_upload,
    dsv3_cuda_download,
    dsv3_cuda_stats,
    dsv3_cuda_bind,
    dsv3_cuda_unbind,
    dsv3_cuda_matmul,
    dsv3_cuda_matmul_many,
    dsv3_cuda_matmul_t,
    dsv3_cuda_row,
    dsv3_cuda_rmsnorm,
    dsv3_cuda_rope,
    dsv3_cuda_silu_mul,
    dsv3_cuda_mla_attend,
    dsv3_cuda_embed,
    dsv3_cuda_add,
    dsv3_cuda_copy2d,
    dsv3_cuda_mla_store,
    dsv3_cuda_mla_attend_chunk,
    dsv3_cuda_mla_naive,
    dsv3_cuda_moe_route,
    dsv3_cuda_moe_experts,
};

} // namespace

extern "C" const dsv3_backend *dsv3_backend_cuda(void) {
    return &table;
}
