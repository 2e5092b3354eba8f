/* fuzz_safetensors.c — libFuzzer target for the safetensors header validator.
 *
 * Feeds the input to dsv3_st_open_memory as a whole safetensors image. When the image is
 * accepted, every tensor's first and last byte is read: safetensors.h promises that an accepted
 * file's tensors lie inside the image (or an aligned copy), so ASan must stay quiet.
 * Build and run: scripts/fuzz.sh.
 */
#include <stddef.h>
#include <stdint.h>

#include "model/run/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dsv3_st_file *f = NULL;
    dsv3_err err;
    if (dsv3_st_open_memory(&f, data, size, "fuzz.safetensors", &err) != DSV3_OK) return 0;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < dsv3_st_count(f); i++) {
        const dsv3_st_tensor *t = dsv3_st_at(f, i);
        if (dsv3_st_find(f, t->name) == NULL) __builtin_trap(); /* every tensor is findable */
        if (t->nbytes == 0) continue;
        const uint8_t *b = t->data;
        sink ^= b[0];
        sink ^= b[t->nbytes - 1];
    }
    (void)sink;
    dsv3_st_close(f);
    return 0;
}
