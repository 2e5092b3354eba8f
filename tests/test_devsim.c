/* test_devsim.c — backend memory (docs/ARCHITECTURE.md, "Backend memory") proven with the
 * simulated device: devsim computes the same bytes as fast on every checkpoint variant (logits,
 * MTP logits, both attention forms, generation with and without MTP, routing records), a
 * probe-free decode step moves exactly the ids up and the logits down, the probes (capture,
 * lens, effect, attention) give fast's bytes too, each probe adds one
 * download per recorded point, bias edits reach the device, devsim memory cannot be touched
 * from the host (the child that tries dies of SIGSEGV), a host pointer handed to a devsim
 * operation aborts, training refuses devsim, and a run outlives no backend switch. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/runner.h"
#include "tests/models.h"
#include "tests/backends.h"

#include "model/run/forward.h"
#include "model/run/generate.h"
#include "model/run/mtp.h"
#include "model/train/trainable.h"
#include "probes/attention.h"
#include "probes/capture.h"
#include "probes/effect.h"
#include "probes/lens.h"

/* Floats appended to one array (for a byte comparison of probe results). */
typedef struct {
    float *v;
    int64_t n, cap;
} flat;
static void put(flat *f, const void *p, size_t bytes) {
    const int64_t k = (int64_t)(bytes / 4);
    if (f->n + k > f->cap) {
        f->cap = 2 * (f->n + k);
        f->v = realloc(f->v, (size_t)f->cap * 4);
    }
    memcpy(f->v + f->n, p, bytes);
    f->n += k;
}
static int test_devsim_equals_fast_on_every_variant(void) {
    const dsv3_backend *fast = dsv3_backend_fast(), *dev = dsv3_backend_devsim();
    for (size_t i = 0; i < N_BACKEND_VARIANTS; i++) {
        dsv3_model *m = open_model(gen(backend_variants[i].name, backend_variants[i].args));
        CHECK(m, "%s: model", backend_variants[i].name);
        const dsv3_config *c = dsv3_model_config(m);
        const int64_t V = c->vocab_size;
        int32_t ids[T];
        for (int64_t t = 0; t < T; t++) ids[t] = (int32_t)(test_u64() % (uint64_t)V);
        for (int form = 0; form < 2; form++) {
            const dsv3_attn_form af = form ? DSV3_ATTN_NAIVE : DSV3_ATTN_ABSORBED;
            float *a = calloc((size_t)(T * V), 4), *b = calloc((size_t)(T * V), 4);
            float *am = calloc((size_t)(T * V), 4), *bm = calloc((size_t)(T * V), 4);
            CHECK(!forward_all(m, fast, ids, af, a, am) && !forward_all(m, dev, ids, af, b, bm), "%s: forward",
                  backend_variants[i].name);
            CHECK(!memcmp(a, b, (size_t)(T * V) * 4), "%s/%s: devsim logits differ from fast", backend_variants[i].name,
                  form ? "naive" : "absorbed");
            CHECK(!memcmp(am, bm, (size_t)(T * V) * 4), "%s/%s: devsim MTP logits differ from fast",
                  backend_variants[i].name, form ? "naive" : "absorbed");
            free(a), free(b), free(am), free(bm);
        }
        route_log rf, rd;
        CHECK(!routes_of(m, fast, ids, &rf) && !routes_of(m, dev, ids, &rd), "%s: routes", backend_variants[i].name);
        double worst;
        CHECK(routes_agree(&rf, &rd, 0.0, &worst), "%s: devsim routing records differ from fast",
              backend_variants[i].name);
        route_log_free(&rf), route_log_free(&rd);
        for (int mode = 0; mode < 4; mode++) {
            const int mtp = mode & 1, greedy = !(mode & 2);
            if (mtp && !dsv3_model_has_mtp(m)) continue;
            int32_t x[16], y[16];
            int64_t nx, ny;
            CHECK(!gen_ids(m, fast, ids, mtp, greedy, x, &nx) && !gen_ids(m, dev, ids, mtp, greedy, y, &ny),
                  "%s: generate", backend_variants[i].name);
            CHECK(nx == ny && !memcmp(x, y, (size_t)nx * 4), "%s: devsim generation (mtp %d, greedy %d) differs",
                  backend_variants[i].name, mtp, greedy);
        }
        dsv3_model_close(m);
    }
    return 0;
}

/* Counters of one call of dsv3_forward for n tokens after a prefill of 5. */
static int one_step(dsv3_model *m, const dsv3_hooks *h, int64_t n, int last_only, dsv3_transfer_stats *d) {
    const dsv3_backend *be = dsv3_model_backend(m);
    const dsv3_config *c = dsv3_model_config(m);
    dsv3_err err;
    dsv3_run *r;
    dsv3_run_opts o = {.max_seq = 16};
    if (dsv3_run_new(&r, m, &o, &err)) return 1;
    int32_t ids[8] = {3, 1, 4, 1, 5, 9, 2, 6};
    float *lg = malloc((size_t)(8 * c->vocab_size) * 4);
    int bad = dsv3_forward(r, ids, 5, lg, 1, NULL, &err) != DSV3_OK;
    dsv3_run_set_hooks(r, h);
    dsv3_transfer_stats s0, s1;
    be->stats(&s0);
    bad = bad || dsv3_forward(r, ids + 5, n, lg, last_only, NULL, &err) != DSV3_OK;
    be->stats(&s1);
    *d = (dsv3_transfer_stats){s1.uploads - s0.uploads, s1.downloads - s0.downloads,
                               s1.upload_bytes - s0.upload_bytes, s1.download_bytes - s0.download_bytes};
    free(lg);
    dsv3_run_free(r);
    return bad;
}

static void on_point(void *ud, dsv3_point p, int64_t layer, int64_t pos0, int64_t n, int64_t dim, const float *x) {
    (void)p, (void)layer, (void)pos0;
    double *sum = ud;
    for (int64_t i = 0; i < n * dim; i++) *sum += x[i]; /* host memory: readable */
}
static void on_attn(void *ud, int64_t layer, int64_t head, int64_t pos, int64_t Tn, const float *p) {
    (void)layer, (void)head, (void)pos;
    double *sum = ud;
    for (int64_t t = 0; t < Tn; t++) *sum += p[t];
}
static void count_route(void *ud, const dsv3_route_event *ev) {
    (void)ev;
    ++*(int64_t *)ud;
}

static int test_devsim_transfers_of_a_decode_step(void) {
    dsv3_model *m = open_model(gen("bf16", "--dtype bf16 --seed 2"));
    CHECK(m, "model");
    CHECK(!dsv3_model_set_backend(m, dsv3_backend_devsim(), NULL), "devsim");
    const dsv3_config *c = dsv3_model_config(m);
    const int64_t V = c->vocab_size, L = c->num_hidden_layers, H = c->hidden_size;
    int64_t n_moe = 0;
    for (int64_t l = 0; l < L; l++) n_moe += dsv3_model_bias(m, l) != NULL;
    dsv3_transfer_stats d;
    /* probe-free: the id up, the logits down, nothing else */
    CHECK(!one_step(m, NULL, 1, 1, &d), "step");
    printf("  decode step: %lld up (%lld B), %lld down (%lld B)\n", (long long)d.uploads,
           (long long)d.upload_bytes, (long long)d.downloads, (long long)d.download_bytes);
    CHECK(d.uploads == 1 && d.upload_bytes == 4, "uploads %lld (%lld B), want 1 (4 B)", (long long)d.uploads,
          (long long)d.upload_bytes);
    CHECK(d.downloads == 1 && d.download_bytes == V * 4, "downloads %lld (%lld B), want 1 (%lld B)",
          (long long)d.downloads, (long long)d.download_bytes, (long long)(V * 4));
    /* three tokens, all logits: still one transfer each way */
    CHECK(!one_step(m, NULL, 3, 0, &d), "step");
    CHECK(d.uploads == 1 && d.upload_bytes == 12 && d.downloads == 1 && d.download_bytes == 3 * V * 4,
          "3-token step: %lld up, %lld down (%lld B)", (long long)d.uploads, (long long)d.downloads,
          (long long)d.download_bytes);
    /* the routing probe: one more download per MoE layer, the records of every token */
    int64_t events = 0;
    dsv3_hooks h = {.ud = &events, .route = count_route};
    CHECK(!one_step(m, &h, 3, 1, &d), "step");
    const dsv3_route_params p = {.experts = c->n_routed_experts, .groups = c->n_group, .k = c->num_experts_per_tok};
    CHECK(events == 3 * n_moe && d.uploads == 1 && d.downloads == 1 + n_moe &&
              d.download_bytes == V * 4 + n_moe * 3 * dsv3_route_record_floats(&p) * 4,
          "route probe: %lld events, %lld downloads (%lld B) for %lld MoE layers", (long long)events,
          (long long)d.downloads, (long long)d.download_bytes, (long long)n_moe);
    /* activations at every point: one download per point and block, data readable */
    double sum = 0;
    h = (dsv3_hooks){.ud = &sum, .point = on_point};
    CHECK(!one_step(m, &h, 2, 1, &d), "step");
    CHECK(d.downloads == 1 + 5 * L + 1, "point probe: %lld downloads, want %lld", (long long)d.downloads,
          (long long)(1 + 5 * L + 1));
    CHECK(d.download_bytes == (V + 4 * L * 2 * H + L * 2 * c->kv_lora_rank + 2 * H) * 4, "point probe bytes %lld",
          (long long)d.download_bytes);
    /* MTP speculative decoding: the hidden states stay on the device — every download is a
     * logits row set (one per forward and MTP pass, one for the prefill), uploads are ids */
    {
        dsv3_run *r;
        dsv3_err err;
        dsv3_run_opts ro = {.max_seq = 64};
        CHECK(!dsv3_run_new(&r, m, &ro, &err), "%s", err.msg);
        const int32_t prompt[6] = {3, 1, 4, 1, 5, 9};
        int32_t out[16];
        int64_t n_out;
        dsv3_gen_opts g = {.max_new_tokens = 16, .use_mtp = 1, .eos_id = -1};
        g.sample.greedy = 1;
        dsv3_gen_stats st;
        CHECK(!dsv3_generate(r, prompt, 6, &g, out, &n_out, &st, &err), "%s", err.msg);
        dsv3_run_free(r);
        printf("  MTP generation: %lld up (%lld B), %lld down, %lld forwards + %lld MTP passes\n",
               (long long)st.device.uploads, (long long)st.device.upload_bytes, (long long)st.device.downloads,
               (long long)st.forward_passes, (long long)st.mtp_passes);
        CHECK(st.device.downloads == 1 + st.forward_passes + st.mtp_passes, "MTP: %lld downloads",
              (long long)st.device.downloads);
        CHECK(st.device.upload_bytes <= 4 * (2 * 6 + 4 * (st.forward_passes + st.mtp_passes)) &&
                  st.device.upload_bytes < H * 4,
              "MTP: %lld bytes uploaded: more than ids", (long long)st.device.upload_bytes);
    }
    /* attention probabilities of one head: one download per query */
    sum = 0;
    h = (dsv3_hooks){.ud = &sum, .attn = on_attn, .attn_layer = 1, .attn_head = 0};
    CHECK(!one_step(m, &h, 2, 1, &d), "step");
    CHECK(d.downloads == 1 + 2 && fabs(sum - 2.0) < 1e-4, "attn probe: %lld downloads, probabilities sum %.6f",
          (long long)d.downloads, sum);
    dsv3_model_close(m);
    return 0;
}

static int test_devsim_bias_edit_routes_as_fast(void) {
    dsv3_model *a = open_model(gen("bf16", "--dtype bf16 --seed 2")), *b = open_model(gen("bf16", "--dtype bf16 --seed 2"));
    CHECK(a && b, "models");
    CHECK(!dsv3_model_set_backend(b, dsv3_backend_devsim(), NULL), "devsim");
    const dsv3_config *c = dsv3_model_config(a);
    const int64_t li = c->first_k_dense_replace, E = c->n_routed_experts;
    int32_t ids[T];
    for (int64_t t = 0; t < T; t++) ids[t] = (int32_t)(test_u64() % (uint64_t)c->vocab_size);
    route_log r0, ra, rb;
    CHECK(!routes_of(b, dsv3_backend_devsim(), ids, &r0), "routes");
    float *edit = malloc((size_t)E * 4);
    for (int64_t e = 0; e < E; e++) edit[e] = dsv3_model_bias(a, li)[e] + (e == 1 ? 2.0f : 0.0f);
    CHECK(!dsv3_model_set_bias(a, li, edit, NULL) && !dsv3_model_set_bias(b, li, edit, NULL), "set_bias");
    CHECK(!routes_of(a, dsv3_backend_fast(), ids, &ra) && !routes_of(b, dsv3_backend_devsim(), ids, &rb), "routes");
    double worst;
    CHECK(routes_agree(&ra, &rb, 0.0, &worst), "after the edit devsim routes differently from fast");
    CHECK(!routes_agree(&r0, &rb, 0.0, &worst), "the bias edit did not reach devsim");
    dsv3_model_bias_reset(b, -1);
    route_log rr;
    CHECK(!routes_of(b, dsv3_backend_devsim(), ids, &rr), "routes");
    CHECK(routes_agree(&rr, &r0, 0.0, &worst), "bias_reset did not reach devsim");
    free(edit), route_log_free(&r0), route_log_free(&ra), route_log_free(&rb), route_log_free(&rr);
    dsv3_model_close(a);
    dsv3_model_close(b);
    return 0;
}

/* Runs fn in a child; its termination signal (0 when it exits). */
static int child_signal(void (*fn)(void)) {
    fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL); /* the fault itself, not a sanitizer's report of it */
        signal(SIGBUS, SIG_DFL);
        fn();
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}
static void touch_device_memory(void) {
    const dsv3_backend *be = dsv3_backend_devsim();
    float *p = be->alloc(64);
    be->upload(p, (float[]){1, 2}, 8); /* through the interface: fine */
    volatile float v = p[0];            /* from the host: must fault */
    (void)v;
}
static void pass_host_pointer(void) {
    const dsv3_backend *be = dsv3_backend_devsim();
    float *d = be->alloc(64), host[16] = {0};
    if (!freopen("/dev/null", "w", stderr)) return;
    be->add(d, host, 16); /* a host array where device memory belongs: must abort */
}

static int test_devsim_memory_is_out_of_the_hosts_reach(void) {
    const dsv3_backend *be = dsv3_backend_devsim();
    CHECK(!be->is_host && !strcmp(be->name, "devsim") && dsv3_backend_by_name("devsim") == be, "devsim by name");
    float in[5] = {1, 2, 3, 4, 5}, out[5] = {0};
    float *d = be->alloc(sizeof in), *e = be->alloc(sizeof in);
    be->upload(d, in, sizeof in);
    be->upload(e, in, sizeof in);
    be->add(d, e, 5);
    be->download(out, d, sizeof out);
    be->free(d);
    be->free(e);
    CHECK(out[0] == 2 && out[4] == 10, "add on devsim: %g %g", out[0], out[4]);
    int sig = child_signal(touch_device_memory);
    CHECK(sig == SIGSEGV || sig == SIGBUS, "reading devsim memory from the host gave signal %d, not SIGSEGV", sig);
    sig = child_signal(pass_host_pointer);
    CHECK(sig == SIGABRT, "a host pointer given to devsim gave signal %d, not SIGABRT", sig);
    return 0;
}

static int test_training_and_stale_runs_refuse_devsim(void) {
    dsv3_model *m = open_model(gen("bf16", "--dtype bf16 --seed 2"));
    CHECK(m, "model");
    dsv3_err err;
    dsv3_run *r;
    dsv3_run_opts o = {.max_seq = 8};
    CHECK(!dsv3_run_new(&r, m, &o, &err), "%s", err.msg);
    CHECK(!dsv3_model_set_backend(m, dsv3_backend_devsim(), &err), "%s", err.msg);
    int32_t ids[2] = {1, 2};
    CHECK(dsv3_forward(r, ids, 2, NULL, 0, NULL, &err) == DSV3_EINVAL && strstr(err.msg, "backend changed"),
          "a run made under fast used after the switch: %s", err.msg);
    dsv3_run_free(r);
    dsv3_trainable *tm;
    CHECK(dsv3_trainable_new(&tm, m, 1, 4, &err) == DSV3_EUNSUPPORTED && strstr(err.msg, "devsim"),
          "training on devsim: %s", err.msg);
    CHECK(!dsv3_model_set_backend(m, dsv3_backend_cpu(), &err), "%s", err.msg); /* and back to host */
    CHECK(!dsv3_trainable_new(&tm, m, 1, 4, &err), "%s", err.msg);
    dsv3_trainable_free(tm);
    dsv3_model_close(m);
    return 0;
}

/* capture (every point), lens, effect (an expert disabled everywhere) and one attention head on
 * backend be, flattened in that order. */
static int probes_of(dsv3_model *m, const dsv3_backend *be, const int32_t *ids, flat *f) {
    dsv3_err err;
    if (dsv3_model_set_backend(m, be, &err)) return 1;
    const dsv3_config *c = dsv3_model_config(m);
    *f = (flat){0};
    dsv3_capture cap;
    dsv3_capture_opts co = {.layers = NULL};
    for (int p = 0; p < DSV3_POINT_COUNT; p++) co.points[p] = 1;
    if (dsv3_capture_run(&cap, m, ids, T, &co, NULL, &err)) return printf("  %s\n", err.msg), 1;
    for (int64_t i = 0; i < cap.n; i++) put(f, cap.t[i].v, (size_t)(T * cap.t[i].dim) * 4);
    dsv3_capture_fini(&cap);
    dsv3_lens lens;
    if (dsv3_lens_compute(&lens, m, ids, T, T - 1, 5, NULL, &err)) return printf("  %s\n", err.msg), 1;
    for (int64_t i = 0; i < lens.n_layers * lens.k; i++) {
        float v[2] = {(float)lens.top[i].id, (float)lens.top[i].prob};
        put(f, v, sizeof v);
    }
    dsv3_lens_fini(&lens);
    const int64_t E = c->n_routed_experts;
    unsigned char *off = calloc((size_t)((c->num_hidden_layers + 1) * E), 1);
    for (int64_t l = 0; l <= c->num_hidden_layers; l++) off[l * E + 1] = 1;
    dsv3_interventions iv = {.disabled = off, .forced_pos = -1};
    dsv3_effect ef;
    const dsv3_status st = dsv3_effect_measure(&ef, m, ids, T, &iv, NULL, &err);
    free(off);
    if (st) return printf("  %s\n", err.msg), 1;
    for (int64_t t = 0; t < T; t++) {
        float v[2] = {(float)ef.kl[t], ef.top1_changed[t]};
        put(f, v, sizeof v);
    }
    dsv3_effect_fini(&ef);
    dsv3_attention at;
    if (dsv3_attention_pattern(&at, m, ids, T, 1, 0, NULL, &err)) return printf("  %s\n", err.msg), 1;
    put(f, at.p, (size_t)(T * T) * 4);
    dsv3_attention_fini(&at);
    return 0;
}

static int test_devsim_probes_equal_fast(void) {
    dsv3_model *m = open_model(gen("fp8_ragged", "--dtype fp8 --seed 5"));
    CHECK(m, "model");
    int32_t ids[T];
    for (int64_t t = 0; t < T; t++) ids[t] = (int32_t)(test_u64() % (uint64_t)dsv3_model_config(m)->vocab_size);
    flat a, b;
    CHECK(!probes_of(m, dsv3_backend_fast(), ids, &a) && !probes_of(m, dsv3_backend_devsim(), ids, &b), "probes");
    CHECK(a.n > 0 && a.n == b.n && !memcmp(a.v, b.v, (size_t)a.n * 4),
          "capture/lens/effect/attention on devsim differ from fast");
    free(a.v), free(b.v);
    dsv3_model_close(m);
    return 0;
}

static const dsv3_test tests[] = {
    {"test_devsim_probes_equal_fast", test_devsim_probes_equal_fast},
    {"test_devsim_equals_fast_on_every_variant", test_devsim_equals_fast_on_every_variant},
    {"test_devsim_transfers_of_a_decode_step", test_devsim_transfers_of_a_decode_step},
    {"test_devsim_bias_edit_routes_as_fast", test_devsim_bias_edit_routes_as_fast},
    {"test_devsim_memory_is_out_of_the_hosts_reach", test_devsim_memory_is_out_of_the_hosts_reach},
    {"test_training_and_stale_runs_refuse_devsim", test_training_and_stale_runs_refuse_devsim},
};

int main(int argc, char **argv) {
    dsv3_test_fresh_seed();
    return DSV3_RUN_TESTS_IN_TMPDIR("devsim", tests, argc, argv);
}
