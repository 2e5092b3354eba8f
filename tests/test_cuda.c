/* test_cuda.c — the CUDA backend (kernels/cuda; docs/ARCHITECTURE.md, "CUDA backend").
 *
 * Without a usable GPU (this machine, CI) it checks what needs none and exits 77 (ctest:
 * skipped, never passed): the backend is registered as "cuda" exactly in builds with CUDA; the
 * cuBLASLt FP8 block-scaled descriptors and layouts of every linear of DeepSeek-V3 are
 * accepted at every token count of the benchmarks, with the scale counts of the stored layout;
 * binding a model to "cuda" fails with one clear line and leaves it working on its backend;
 * `dsv3 logits --backend cuda` prints one line and exits 1.
 *
 * With a GPU the same binary also compares cuda with fast on the tiny variants (bf16, fp8
 * ragged, sharded, q_proj, fp32 without MTP): logits and MTP logits in both attention forms
 * within LOGIT_TOL of the largest |logit| (FP32 everywhere, only the summation order differs),
 * greedy ids (plain and MTP) equal, routing records with the same experts and groups and scores
 * within ROUTE_TOL; the transfers of a decode step (the id up, the logits down); a bias edit
 * reaching the device; and device memory returned when the model closes. */
#include <sys/wait.h>

#include "tests/runner.h"
#include "tests/models.h"

#include "tests/backends.h"

#include "kernels/cuda/cuda.h"


/* Runs cmd; its exit status, with its stderr in err (one read). */
static int run_cmd(const char *cmd, char *err, size_t len) {
    char full[2048];
    snprintf(full, sizeof full, "%s 2>%s/cmd.err >/dev/null", cmd, tmpdir);
    const int st = system(full);
    char path[600];
    snprintf(path, sizeof path, "%s/cmd.err", tmpdir);
    size_t n = 0;
    char *s = test_read_file(path, &n);
    snprintf(err, len, "%s", s ? s : "");
    free(s);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* ---------------------------------------------------------------- without a GPU -------- */

static int test_cuda_is_registered_only_with_cuda(void) {
    const dsv3_backend *be = dsv3_backend_by_name("cuda");
#ifdef DSV3_HAVE_CUDA
    CHECK(be && be == dsv3_backend_cuda() && !strcmp(be->name, "cuda") && !be->is_host, "cuda by name");
    CHECK(be->bind && be->unbind, "cuda binds weights");
    CHECK(strstr(dsv3_backend_names(), "cuda") != NULL, "names: %s", dsv3_backend_names());
    /* every operation present */
    const void *ops[] = {(void *)be->alloc, (void *)be->free, (void *)be->upload, (void *)be->download,
                         (void *)be->stats, (void *)be->matmul, (void *)be->matmul_many, (void *)be->matmul_t,
                         (void *)be->row, (void *)be->rmsnorm, (void *)be->rope, (void *)be->silu_mul,
                         (void *)be->mla_attend, (void *)be->embed, (void *)be->add, (void *)be->copy2d,
                         (void *)be->mla_store, (void *)be->mla_attend_chunk, (void *)be->mla_naive,
                         (void *)be->moe_route, (void *)be->moe_experts};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) CHECK(ops[i], "operation %zu missing", i);
#else
    CHECK(!be, "a build without CUDA knows 'cuda'");
    CHECK(!strstr(dsv3_backend_names(), ", cuda") && strstr(dsv3_backend_names(), "-DDSV3_CUDA=ON"),
          "names: %s", dsv3_backend_names());
#endif
    return 0;
}

static int test_cuda_fp8_plans_of_deepseek_v3(void) {
#ifdef DSV3_HAVE_CUDA
    /* (out, in) of every linear of DeepSeek-V3 (q_a, q_b, kv_a, kv_b, o, dense gate/up/down,
     * expert gate/up/down, lm_head) and the benchmark shapes of issue 16. */
    static const int64_t shapes[][2] = {{1536, 7168},  {24576, 1536}, {576, 7168},   {32768, 512},
                                        {7168, 16384}, {18432, 7168}, {7168, 18432}, {2048, 7168},
                                        {7168, 2048},  {129280, 7168}, {4096, 7168}, {2112, 7168}};
    static const int64_t tokens[] = {1, 2, 64, 128, 4096};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (size_t j = 0; j < sizeof tokens / sizeof tokens[0]; j++) {
            const int64_t R = shapes[i][0], C = shapes[i][1], n = tokens[j];
            int64_t ws = 0, xs = 0;
            char why[256] = "";
            CHECK(!dsv3_cuda_fp8_plan(R, C, n, &ws, &xs, why, sizeof why), "[%lld, %lld] x %lld: %s", (long long)R,
                  (long long)C, (long long)n, why);
            CHECK(ws == ((R + 127) / 128) * ((C + 127) / 128) && xs == ((C + 127) / 128) * n,
                  "[%lld, %lld] x %lld: scales %lld, %lld", (long long)R, (long long)C, (long long)n, (long long)ws,
                  (long long)xs);
        }
    char why[256] = "";
    CHECK(dsv3_cuda_fp8_plan(100, 7, 1, NULL, NULL, why, sizeof why) && strstr(why, "multiple of 16"),
          "a ragged inner size accepted: %s", why);
#endif
    return 0;
}

static int test_cuda_without_a_device_says_so(void) {
    const char *dir = gen("bf16", "--dtype bf16 --seed 2");
    CHECK(dir, "model");
    char err[4096], cmd[1600];
    snprintf(cmd, sizeof cmd, "%.1000s logits %.500s --ids 1,2,3 --backend cuda", getenv("DSV3_BIN") ? getenv("DSV3_BIN") : "build/dsv3",
             dir);
    const int rc = run_cmd(cmd, err, sizeof err);
#ifdef DSV3_HAVE_CUDA
    if (dsv3_cuda_available(NULL, 0)) return 0; /* a device: the GPU tests below cover it */
    CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, "cuda: "), "--backend cuda without a device: rc %d, '%s'",
          rc, err);
    char why[512] = "";
    CHECK(!dsv3_cuda_available(why, sizeof why) && !strncmp(why, "cuda: ", 6) && !strchr(why, '\n'), "why: %s", why);
    dsv3_model *m = open_model(dir);
    CHECK(m, "open");
    dsv3_err e = {{0}};
    CHECK(dsv3_model_set_backend(m, dsv3_backend_cuda(), &e) != DSV3_OK && strstr(e.msg, "cuda: ") && !strchr(e.msg, '\n'),
          "binding to cuda without a device: '%s'", e.msg);
    CHECK(dsv3_model_backend(m) == dsv3_backend_fast(), "the model left its backend");
    const dsv3_backend *be = dsv3_backend_cuda();
    CHECK(be->alloc(64) == NULL, "alloc without a device");
    char desc[512];
    dsv3_cuda_describe(desc, sizeof desc);
    CHECK(!strcmp(desc, why), "describe: %s", desc);
    /* still a working model on fast */
    dsv3_run *r;
    dsv3_run_opts o = {.max_seq = 8};
    CHECK(!dsv3_run_new(&r, m, &o, &e), "%s", e.msg);
    const int32_t ids[3] = {1, 2, 3};
    float *lg = malloc((size_t)(3 * dsv3_model_config(m)->vocab_size) * 4);
    CHECK(dsv3_forward(r, ids, 3, lg, 0, NULL, &e) == DSV3_OK, "%s", e.msg);
    free(lg);
    dsv3_run_free(r);
    dsv3_model_close(m);
#else
    CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, "'cuda' is not one of"), "--backend cuda: rc %d, '%s'", rc,
          err);
#endif
    return 0;
}

/* ---------------------------------------------------------------- with a GPU ----------- */
#ifdef DSV3_HAVE_CUDA

static const double LOGIT_TOL = 1e-4;  /* max |cuda - fast| / max(1, max |fast|) */
static const double ROUTE_TOL = 1e-5;  /* scores and weights, absolute (they are in [0, 1] x scaling) */

/* max |a - b| / max(1, max |b|). */
static double logit_err(const float *a, const float *b, int64_t n) {
    double d = 0, mx = 1;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        mx = fmax(mx, fabs((double)b[i]));
    }
    return d / mx;
}

static int test_cuda_agrees_with_fast_on_every_variant(void) {
    const dsv3_backend *fast = dsv3_backend_fast(), *cu = dsv3_backend_cuda();
    for (size_t i = 0; i < N_BACKEND_VARIANTS; i++) {
        dsv3_model *m = open_model(gen(backend_variants[i].name, backend_variants[i].args));
        CHECK(m, "%s: model", backend_variants[i].name);
        const int64_t V = dsv3_model_config(m)->vocab_size;
        int32_t ids[T];
        for (int64_t t = 0; t < T; t++) ids[t] = (int32_t)(test_u64() % (uint64_t)V);
        for (int form = 0; form < 2; form++) {
            const dsv3_attn_form af = form ? DSV3_ATTN_NAIVE : DSV3_ATTN_ABSORBED;
            float *a = calloc((size_t)(T * V), 4), *b = calloc((size_t)(T * V), 4);
            float *am = calloc((size_t)(T * V), 4), *bm = calloc((size_t)(T * V), 4);
            CHECK(!forward_all(m, fast, ids, af, a, am) && !forward_all(m, cu, ids, af, b, bm), "%s: forward",
                  backend_variants[i].name);
            const double e = logit_err(b, a, T * V), em = logit_err(bm, am, (T - 1) * V);
            printf("  %s/%s: logits %.2e, MTP logits %.2e (relative to the largest)\n", backend_variants[i].name,
                   form ? "naive" : "absorbed", e, em);
            CHECK(e <= LOGIT_TOL && em <= LOGIT_TOL, "%s/%s: cuda logits off by %.3e, MTP %.3e", backend_variants[i].name,
                  form ? "naive" : "absorbed", e, em);
            free(a), free(b), free(am), free(bm);
        }
        route_log rf, rc;
        double worst = 0;
        CHECK(!routes_of(m, fast, ids, &rf) && !routes_of(m, cu, ids, &rc), "%s: routes", backend_variants[i].name);
        CHECK(routes_agree(&rf, &rc, ROUTE_TOL, &worst), "%s: cuda routing records differ from fast (scores off by %.3e)",
              backend_variants[i].name, worst);
        route_log_free(&rf), route_log_free(&rc);
        for (int mtp = 0; mtp < 2; mtp++) {
            if (mtp && !dsv3_model_has_mtp(m)) continue;
            int32_t x[16], y[16];
            int64_t nx, ny;
            CHECK(!gen_ids(m, fast, ids, mtp, 1, x, &nx) && !gen_ids(m, cu, ids, mtp, 1, y, &ny), "%s: generate",
                  backend_variants[i].name);
            CHECK(nx == ny && !memcmp(x, y, (size_t)nx * 4), "%s: cuda greedy ids (mtp %d) differ from fast",
                  backend_variants[i].name, mtp);
        }
        dsv3_model_close(m);
    }
    return 0;
}

static int test_cuda_transfers_of_a_decode_step(void) {
    dsv3_model *m = open_model(gen("bf16", "--dtype bf16 --seed 2"));
    CHECK(m, "model");
    dsv3_err err;
    CHECK(!dsv3_model_set_backend(m, dsv3_backend_cuda(), &err), "%s", err.msg);
    const dsv3_backend *be = dsv3_model_backend(m);
    const int64_t V = dsv3_model_config(m)->vocab_size;
    dsv3_run *r;
    dsv3_run_opts o = {.max_seq = 16};
    CHECK(!dsv3_run_new(&r, m, &o, &err), "%s", err.msg);
    int32_t ids[6] = {3, 1, 4, 1, 5, 9};
    float *lg = malloc((size_t)(6 * V) * 4);
    CHECK(dsv3_forward(r, ids, 5, lg, 1, NULL, &err) == DSV3_OK, "%s", err.msg);
    dsv3_transfer_stats s0, s1;
    be->stats(&s0);
    CHECK(dsv3_forward(r, ids + 5, 1, lg, 1, NULL, &err) == DSV3_OK, "%s", err.msg);
    be->stats(&s1);
    printf("  decode step: %lld up (%lld B), %lld down (%lld B)\n", (long long)(s1.uploads - s0.uploads),
           (long long)(s1.upload_bytes - s0.upload_bytes), (long long)(s1.downloads - s0.downloads),
           (long long)(s1.download_bytes - s0.download_bytes));
    CHECK(s1.uploads - s0.uploads == 1 && s1.upload_bytes - s0.upload_bytes == 4, "uploads of a decode step");
    CHECK(s1.downloads - s0.downloads == 1 && s1.download_bytes - s0.download_bytes == V * 4,
          "downloads of a decode step");
    free(lg);
    dsv3_run_free(r);
    uint64_t wb = 0, ab = 0;
    dsv3_cuda_memory(&wb, &ab);
    CHECK(wb >= dsv3_model_file_bytes(m), "bound %llu weight bytes for a %llu-byte checkpoint", (unsigned long long)wb,
          (unsigned long long)dsv3_model_file_bytes(m));
    dsv3_model_close(m);
    dsv3_cuda_memory(&wb, &ab);
    CHECK(wb == 0 && ab == 0, "after close: %llu weight bytes and %llu buffer bytes still on the device",
          (unsigned long long)wb, (unsigned long long)ab);
    return 0;
}

static int test_cuda_bias_edit_routes_as_fast(void) {
    dsv3_model *a = open_model(gen("bf16", "--dtype bf16 --seed 2")), *b = open_model(gen("bf16", "--dtype bf16 --seed 2"));
    CHECK(a && b, "models");
    const dsv3_config *c = dsv3_model_config(a);
    const int64_t li = c->first_k_dense_replace, E = c->n_routed_experts;
    int32_t ids[T];
    for (int64_t t = 0; t < T; t++) ids[t] = (int32_t)(test_u64() % (uint64_t)c->vocab_size);
    float *edit = malloc((size_t)E * 4);
    for (int64_t e = 0; e < E; e++) edit[e] = dsv3_model_bias(a, li)[e] + (e == 1 ? 2.0f : 0.0f);
    CHECK(!dsv3_model_set_backend(b, dsv3_backend_cuda(), NULL), "cuda");
    CHECK(!dsv3_model_set_bias(a, li, edit, NULL) && !dsv3_model_set_bias(b, li, edit, NULL), "set_bias");
    route_log ra, rb;
    double worst = 0;
    CHECK(!routes_of(a, dsv3_backend_fast(), ids, &ra) && !routes_of(b, dsv3_backend_cuda(), ids, &rb), "routes");
    CHECK(routes_agree(&ra, &rb, ROUTE_TOL, &worst), "after the edit cuda routes differently from fast");
    free(edit), route_log_free(&ra), route_log_free(&rb);
    dsv3_model_close(a);
    dsv3_model_close(b);
    return 0;
}
#endif

static const dsv3_test host_tests[] = {
    {"test_cuda_is_registered_only_with_cuda", test_cuda_is_registered_only_with_cuda},
    {"test_cuda_fp8_plans_of_deepseek_v3", test_cuda_fp8_plans_of_deepseek_v3},
    {"test_cuda_without_a_device_says_so", test_cuda_without_a_device_says_so},
};
#ifdef DSV3_HAVE_CUDA
static const dsv3_test gpu_tests[] = {
    {"test_cuda_agrees_with_fast_on_every_variant", test_cuda_agrees_with_fast_on_every_variant},
    {"test_cuda_transfers_of_a_decode_step", test_cuda_transfers_of_a_decode_step},
    {"test_cuda_bias_edit_routes_as_fast", test_cuda_bias_edit_routes_as_fast},
};
#endif

int main(int argc, char **argv) {
    dsv3_test_fresh_seed();
    if (test_tmpdir_make("cuda")) return 1;
    int rc = DSV3_RUN_TESTS(host_tests, argc, argv);
    char why[512] = "no CUDA in this build";
#ifdef DSV3_HAVE_CUDA
    if (!rc && dsv3_cuda_available(why, sizeof why)) {
        rc = DSV3_RUN_TESTS(gpu_tests, argc, argv);
        return test_run_and_clean(rc);
    }
#endif
    test_tmpdir_remove();
    if (rc) return rc;
    printf("skipped: the GPU tests need a device (%s)\n", why);
    return 77;
}
