/* fuzz_wire.c — libFuzzer target for the Jupyter message parser (jupyter/wire.c).
 *
 * Input: one mode byte, then frames separated by 0xFF bytes (0xFF never occurs in UTF-8, so
 * every valid JSON text can still be a frame). Mode bit 0: a signing key is set; bit 1: with a
 * key, the fuzzer signs the four JSON frames after the first "<IDS|MSG>" itself, so the JSON
 * checks behind the signature are reached too. Invariants: a parsed message has string
 * msg_type and msg_id and four JSON objects; re-encoding it gives valid UTF-8 frames that
 * parse again (round trip); the UTF-8 helpers agree with each other on any bytes.
 * Build and run: scripts/fuzz.sh 10 fuzz_wire.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jupyter/wire.h"

enum { MAX_FRAMES = 64 };

static void utf8_invariants(const char *s, size_t n) {
    size_t cps = dsv3_wire_byte_to_cp(s, n, n);
    for (size_t cp = 0; cp <= cps; cp += 1 + cp / 8) {
        size_t b = dsv3_wire_cp_to_byte(s, n, cp);
        if (b > n || dsv3_wire_byte_to_cp(s, n, b) != cp) __builtin_trap();
    }
    size_t len = 0;
    char *clean = dsv3_wire_utf8_sanitize(s, n, &len);
    if (clean && !dsv3_wire_utf8_valid(clean, len)) __builtin_trap();
    if (clean && dsv3_wire_utf8_valid(s, n) && (len != n || memcmp(clean, s, n))) __builtin_trap();
    free(clean);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int keyed = data[0] & 1, self_sign = data[0] & 2;
    const char *body = (const char *)data + 1;
    size_t n = size - 1;
    utf8_invariants(body, n);

    dsv3_wire_frame frames[MAX_FRAMES];
    size_t nf = 0, start = 0;
    for (size_t i = 0; i <= n && nf < MAX_FRAMES; i++)
        if (i == n || (unsigned char)body[i] == 0xFF) {
            frames[nf++] = (dsv3_wire_frame){body + start, i - start};
            start = i + 1;
        }

    dsv3_wire_auth a;
    dsv3_err err;
    if (dsv3_wire_auth_init(&a, "fuzz-key", keyed ? 8 : 0, "hmac-sha256", &err) != DSV3_OK)
        return 0;
    char sig[65];
    if (keyed && self_sign)
        for (size_t d = 0; d < nf; d++)
            if (frames[d].len == 9 && !memcmp(frames[d].data, DSV3_WIRE_DELIM, 9)) {
                if (nf - d - 1 >= 5) {
                    dsv3_wire_sign(sig, &a, &frames[d + 2]);
                    frames[d + 1] = (dsv3_wire_frame){sig, 64};
                }
                break;
            }

    dsv3_wire_msg m;
    if (dsv3_wire_parse(&m, &a, frames, nf, &err) == DSV3_OK) {
        if (!m.msg_type || !m.msg_id || !cJSON_IsObject(m.header) || !cJSON_IsObject(m.parent) ||
            !cJSON_IsObject(m.metadata) || !cJSON_IsObject(m.content))
            __builtin_trap();
        dsv3_wire_out out;
        if (dsv3_wire_encode(&out, &a, m.ids, m.n_ids, m.header, m.parent, m.metadata, m.content,
                             &err) == DSV3_OK) {
            for (size_t i = m.n_ids + 2; i < out.n; i++)
                if (!dsv3_wire_utf8_valid(out.frames[i].data, out.frames[i].len)) __builtin_trap();
            /* its signature is the HMAC of what it carries (replays aside, as when the input
             * was already compact JSON), and it parses again */
            char want[65];
            dsv3_wire_sign(want, &a, &out.frames[m.n_ids + 2]);
            if (out.frames[m.n_ids + 1].len != strlen(want) ||
                memcmp(out.frames[m.n_ids + 1].data, want, strlen(want)))
                __builtin_trap();
            dsv3_wire_auth plain;
            if (dsv3_wire_auth_init(&plain, "", 0, NULL, &err) != DSV3_OK) __builtin_trap();
            dsv3_wire_msg again;
            if (dsv3_wire_parse(&again, &plain, out.frames, out.n, &err) != DSV3_OK)
                __builtin_trap();
            dsv3_wire_auth_fini(&plain);
            if (strcmp(again.msg_type, m.msg_type) || again.n_ids != m.n_ids) __builtin_trap();
            dsv3_wire_msg_fini(&again);
            dsv3_wire_out_fini(&out);
        }
        dsv3_wire_msg_fini(&m);
    }
    dsv3_wire_auth_fini(&a);
    return 0;
}
