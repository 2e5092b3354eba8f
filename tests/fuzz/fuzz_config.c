/* fuzz_config.c — libFuzzer target for config.json parsing and the derived RoPE numbers.
 *
 * Feeds the input to dsv3_config_parse (it need not be NUL-terminated). An accepted config must
 * be safe to derive from: dsv3_config_rope_inv_freq fills exactly qk_rope_head_dim/2 floats
 * (the buffer is sized so, to let ASan catch an overrun; skipped above 2^16 pairs to bound
 * memory) and dsv3_config_softmax_scale must be finite and positive.
 * Build and run: scripts/fuzz.sh.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "model/run/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dsv3_config c;
    dsv3_err err;
    if (dsv3_config_parse(&c, (const char *)data, size, "fuzz/config.json", &err) != DSV3_OK)
        return 0;
    int64_t half = c.qk_rope_head_dim / 2;
    if (half >= 1 && half <= ((int64_t)1 << 16)) {
        float *inv = malloc((size_t)half * sizeof *inv);
        if (inv) {
            dsv3_config_rope_inv_freq(&c, inv);
            volatile float sink = inv[0] + inv[half - 1];
            (void)sink;
            free(inv);
        }
    }
    double s = dsv3_config_softmax_scale(&c);
    if (!(s > 0) || isinf(s)) __builtin_trap(); /* a validated config gives a usable scale */
    volatile double a = dsv3_config_rope_attention_factor(&c);
    (void)a;
    return 0;
}
