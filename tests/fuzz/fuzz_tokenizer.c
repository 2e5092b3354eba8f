/* fuzz_tokenizer.c — libFuzzer target for model/text/tokenizer (and model/text/pretok).
 *
 * Each input is used three ways:
 *   1. As tokenizer.json text (if it holds a NUL byte, the part after the first NUL is
 *      tokenizer_config.json). A tokenizer that loads must then encode a few fixed texts and the
 *      input itself, decode the ids back to the same text, decode arbitrary ids, and render chat.
 *   2. As text for a fixed small tokenizer in the DeepSeek-V3 structure (built once, from code):
 *      valid UTF-8 must round-trip through encode/decode; invalid UTF-8 must give DSV3_EINVAL.
 *   3. As an array of int32 ids for that tokenizer's decode.
 * Any broken promise traps. Build (from the repository root):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. model/base/status.c model/text/chat.c \
 *       model/text/pretok.c model/text/tokenizer.c tests/fuzz/fuzz_tokenizer.c -lcjson -lpcre2-8 -lm \
 *       -o fuzz_tokenizer
 *   ./fuzz_tokenizer -max_total_time=20 -dict=tests/fuzz/tokenizer.dict CORPUS_COPY/
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/text/tokenizer.h"

/* Encodes and checks that decode gives the text back (for valid UTF-8) or EINVAL (invalid). */
static void round_trip(const dsv3_tokenizer *tok, const char *text, size_t len) {
    int32_t *ids = NULL;
    size_t n = 0;
    dsv3_err err;
    dsv3_status st = dsv3_tokenizer_encode(tok, &ids, &n, text, len, 0, &err);
    if (st == DSV3_EINVAL) {
        if (ids || n || !strstr(err.msg, "invalid UTF-8 at byte offset")) __builtin_trap();
        return;
    }
    if (st == DSV3_EUNSUPPORTED) return; /* PCRE2 gave up (match limit): allowed */
    if (st != DSV3_OK) __builtin_trap();
    char *back = NULL;
    size_t blen = 0;
    st = dsv3_tokenizer_decode(tok, &back, &blen, ids, n, 0, &err);
    /* Loaded tokenizers may drop characters their vocab lacks (HF does the same), so only the
     * fixed tokenizer (all 256 bytes present) promises an exact round trip; see the caller. */
    if (st != DSV3_OK || !back || back[blen] != '\0') __builtin_trap();
    free(back);
    free(ids);
}

static void exact_round_trip(const dsv3_tokenizer *tok, const char *text, size_t len) {
    int32_t *ids = NULL;
    size_t n = 0;
    dsv3_err err;
    dsv3_status st = dsv3_tokenizer_encode(tok, &ids, &n, text, len, 0, &err);
    if (st == DSV3_EINVAL) return;
    if (st != DSV3_OK) __builtin_trap();
    char *back = NULL;
    size_t blen = 0;
    if (dsv3_tokenizer_decode(tok, &back, &blen, ids, n, 0, &err) != DSV3_OK) __builtin_trap();
    if (blen != len || memcmp(back, text, len) != 0) __builtin_trap();
    free(back);
    free(ids);
}

static void decode_ids(const dsv3_tokenizer *tok, const uint8_t *data, size_t size) {
    size_t n = size / 4;
    if (n > 4096) n = 4096;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) return;
    int32_t v = dsv3_tokenizer_vocab_size(tok);
    for (size_t i = 0; i < n; i++) {
        int32_t x;
        memcpy(&x, data + 4 * i, 4);
        ids[i] = v > 0 && (x & 0x40000000) ? (int32_t)((uint32_t)x % (uint32_t)v) : x;
    }
    char *text = NULL;
    size_t len = 0;
    dsv3_err err;
    dsv3_status st = dsv3_tokenizer_decode(tok, &text, &len, ids, n, (int)(size & 1), &err);
    if (st == DSV3_OK && (!text || text[len] != '\0')) __builtin_trap();
    if (st != DSV3_OK && st != DSV3_EINVAL) __builtin_trap();
    free(text);
    free(ids);
}

/* The fixed tokenizer: BOS/EOS, 256 byte tokens, a few merges, V3 pre-tokenizer and specials. */
static dsv3_tokenizer *fixed_tokenizer(void) {
    static dsv3_tokenizer *tok;
    if (tok) return tok;
    static const char head[] =
        "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":["
        "{\"id\":0,\"content\":\"<｜begin▁of▁sentence｜>\",\"normalized\":false,\"special\":true},"
        "{\"id\":1,\"content\":\"<｜end▁of▁sentence｜>\",\"normalized\":false,\"special\":true},"
        "{\"id\":263,\"content\":\"<｜User｜>\",\"normalized\":true,\"special\":false},"
        "{\"id\":264,\"content\":\"<｜Assistant｜>\",\"normalized\":true,\"special\":false},"
        "{\"id\":265,\"content\":\"<m>\",\"single_word\":true," /* strip flags break round trips */
        "\"normalized\":false,\"special\":true}],"
        "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[]},"
        "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
        "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\p{N}{1,3}\"},\"behavior\":\"Isolated\"},"
        "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[一-龥぀-ゟ゠-ヿ]+\"},\"behavior\":"
        "\"Isolated\"},"
        "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[!\\\"#$%&'()*+,\\\\-./:;<=>?@\\\\[\\\\\\\\"
        "\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\\\p{L}\\\\p{P}\\\\p{S}]?[\\\\p{L}\\\\p{M}]+| ?[\\\\p{P}"
        "\\\\p{S}]+[\\r\\n]*|\\\\s*[\\r\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},\"behavior\":\"Isolated\"},"
        "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]},"
        "\"decoder\":{\"type\":\"ByteLevel\"},\"post_processor\":null,"
        "\"model\":{\"type\":\"BPE\",\"merges\":[\"Ġ t\",[\"h\",\"e\"],\"Ġt he\",\"1 2\",\"ä ½\"],"
        "\"vocab\":{\"<｜begin▁of▁sentence｜>\":0,\"<｜end▁of▁sentence｜>\":1";
    static const char tail[] = ",\"Ġt\":258,\"he\":259,\"Ġthe\":260,\"12\":261,\"ä½\":262}}}";
    char *json = malloc(sizeof head + 256 * 16 + sizeof tail);
    if (!json) abort();
    size_t n = 0;
    memcpy(json, head, sizeof head - 1);
    n += sizeof head - 1;
    for (unsigned b = 0; b < 256; b++) { /* docs/ARCHITECTURE.md, "Tokenizer" */
        unsigned cp = b, k = 0;
        if (!((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)) {
            for (unsigned x = 0; x < b; x++)
                k += !((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE);
            cp = 0x100 + k;
        }
        char ch[4] = {0};
        if (cp < 0x80)
            ch[0] = (char)cp;
        else
            ch[0] = (char)(0xC0 | cp >> 6), ch[1] = (char)(0x80 | (cp & 0x3F));
        n += (size_t)sprintf(json + n, ",\"%s%s\":%u", cp == '"' || cp == '\\' ? "\\" : "", ch,
                             2 + b);
    }
    memcpy(json + n, tail, sizeof tail);
    n += sizeof tail - 1;
    static const char config[] =
        "{\"add_bos_token\":true,\"bos_token\":\"<｜begin▁of▁sentence｜>\"}";
    dsv3_err err;
    if (dsv3_tokenizer_load_json(&tok, json, n, config, sizeof config - 1, &err) != DSV3_OK) {
        fprintf(stderr, "fuzz_tokenizer: fixed tokenizer: %s\n", err.msg);
        abort();
    }
    free(json);
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;

    /* 1. the input as tokenizer.json [\0 tokenizer_config.json] */
    const char *nul = memchr(text, '\0', size);
    size_t json_len = nul ? (size_t)(nul - text) : size;
    dsv3_tokenizer *tok = NULL;
    dsv3_err err;
    dsv3_status st = dsv3_tokenizer_load_json(&tok, text, json_len, nul ? nul + 1 : NULL,
                                              nul ? size - json_len - 1 : 0, &err);
    if ((st == DSV3_OK) != (tok != NULL)) __builtin_trap();
    if (tok) {
        static const char *const samples[] = {"Hello, world! 12345", "你好 こんにちは 😀",
                                              "<｜User｜>hi<｜Assistant｜>", " \t\r\n "};
        for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++)
            round_trip(tok, samples[i], strlen(samples[i]));
        round_trip(tok, text, size);
        decode_ids(tok, data, size);
        dsv3_chat_msg msgs[] = {{"system", "s"}, {"user", "u"}, {"assistant", "a"}};
        char *chat = NULL;
        if (dsv3_tokenizer_chat(tok, &chat, NULL, msgs, 3, 1, &err) != DSV3_OK) __builtin_trap();
        free(chat);
        dsv3_tokenizer_close(tok);
    } else if (st != DSV3_EFORMAT && st != DSV3_EUNSUPPORTED && st != DSV3_ENOMEM) {
        __builtin_trap();
    }

    /* 2. and 3. the input as text and as ids for the fixed tokenizer */
    const dsv3_tokenizer *fixed = fixed_tokenizer();
    exact_round_trip(fixed, text, size);
    decode_ids(fixed, data, size);
    return 0;
}
