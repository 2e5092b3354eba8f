/* tokenizer.c — byte-level BPE tokenizer (contract in tokenizer.h; facts in
 * docs/ARCHITECTURE.md, "Tokenizer").
 *
 * Owns the path text -> ids -> text for Hugging Face tokenizer.json files of the DeepSeek-V3
 * kind. The sections follow the data: utilities (buffers, hashing, UTF-8, the byte-level
 * alphabet) -> hash maps -> loading (JSON -> immutable tables) -> BPE merges -> added-token
 * matching -> encode -> decode; the regex pre-tokenizer splits live in pretok.c, the chat format
 * in chat.c.
 * Each step mirrors the HF Rust code (tokenizers: added_vocabulary.rs, models/bpe/word.rs
 * `merge_all`, decoders/byte_level.rs) closely enough to give the same ids, quirks included; the
 * quirks are noted where they appear.
 */
#define PCRE2_CODE_UNIT_WIDTH 8 /* for the single_word check only */
#include "model/text/tokenizer.h"

#include "model/base/file.h"
#include "model/base/strbuf.h"
#include "model/base/utf8.h"
#include "model/text/pretok.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    MAX_IDS = 1 << 21,     /* largest id + 1 we accept (V3: 128815); bounds the id table */
    CACHE_MAX_PIECE = 256, /* pre-tokens longer than this (bytes) are not cached */
};

/* ------------------------------------------------------------------------------------------------
 * Utilities: growable buffers, hashing, quoting for messages
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
} buf;

static bool buf_reserve(buf *b, size_t extra) {
    if (b->n + extra <= b->cap) return true;
    if (extra > SIZE_MAX / 4 - b->n) return false;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return false;
    b->p = p;
    b->cap = cap;
    return true;
}

static bool buf_put(buf *b, const void *s, size_t n) {
    if (!buf_reserve(b, n)) return false;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    return true;
}

typedef struct {
    int32_t *p;
    size_t n, cap;
} ivec;

static bool ivec_push(ivec *v, int32_t x) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        int32_t *p = realloc(v->p, cap * sizeof *p);
        if (!p) return false;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = x;
    return true;
}

/* Grows an array of `elem`-byte items to hold at least `need` items. */
static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    if (c > SIZE_MAX / elem) return false;
    void *q = realloc(*p, c * elem);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint64_t hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ULL;
    return mix64(h ^ n);
}

/* Writes a short, one-line, quoted rendering of s[0..n) for error messages: control bytes as
 * \xNN, cut after ~48 bytes. */
static const char *quote(char out[96], const char *s, size_t n) {
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool escape = c < 0x20 || c == 0x7f || c == '"' || c == '\\';
        /* cut on a character boundary after ~72 bytes, and always before the buffer fills:
         * o stays <= 86, so "..." + quote + NUL end by byte 91 */
        if ((o > 72 && (c & 0xC0) != 0x80) || o + (escape ? 4 : 1) > 86) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (escape) {
            o += (size_t)snprintf(out + o, 96 - o, "\\x%02X", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

/* ------------------------------------------------------------------------------------------------
 * UTF-8 and Unicode facts
 * ---------------------------------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence starting at s[0] (n >= 1 bytes available), or 0 if
 * it is ill-formed; then *bad is the length of its maximal valid prefix (>= 1), the unit that
 * Unicode's "substitution of maximal subparts" (and Rust's from_utf8_lossy) turns into one
 * U+FFFD. Overlongs, surrogates and values above U+10FFFF are ill-formed (Unicode table 3-7). */
static size_t utf8_next(const unsigned char *s, size_t n, size_t *bad) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c == 0xE0) {
        need = 3, lo = 0xA0;
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
        need = 3;
    } else if (c == 0xED) {
        need = 3, hi = 0x9F;
    } else if (c == 0xF0) {
        need = 4, lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
        need = 4;
    } else if (c == 0xF4) {
        need = 4, hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    for (size_t i = 1; i < need; i++) {
        if (i >= n) {
            *bad = i;
            return 0;
        }
        unsigned char d = s[i];
        bool ok = i == 1 ? (d >= lo && d <= hi) : (d >= 0x80 && d <= 0xBF);
        if (!ok) {
            *bad = i;
            return 0;
        }
    }
    return need;
}

/* Offset of the first ill-formed sequence in s[0..n), or n if s is valid UTF-8. */
static size_t utf8_check(const unsigned char *s, size_t n) {
    size_t i = 0, bad;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_next(s + i, n - i, &bad);
        if (!k) return i;
        i += k;
    }
    return n;
}

/* Code point of the valid sequence s[0..len). */
static uint32_t utf8_cp(const unsigned char *s, size_t len) {
    switch (len) {
    case 1:
        return s[0];
    case 2:
        return (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    case 3:
        return (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    default:
        return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
               (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
    }
}

static size_t utf8_put(unsigned char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Unicode White_Space, which is Rust's char::is_whitespace and regex `\s` (used by HF for the
 * added-token lstrip/rstrip rules). */
static bool is_white_space(uint32_t cp) {
    static const uint32_t ranges[][2] = {
        {0x09, 0x0D},     {0x20, 0x20},     {0x85, 0x85},     {0xA0, 0xA0},     {0x1680, 0x1680},
        {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (cp >= ranges[i][0] && cp <= ranges[i][1]) return true;
    return false;
}

/* Byte-level alphabet (docs/ARCHITECTURE.md, "Tokenizer"): bytes 0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF
 * stand for themselves; the other 68 bytes, in increasing order, map to U+0100.. U+0143. */
static uint32_t byte_to_cp(unsigned b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
    if (b <= 0x20) return 0x100 + b;             /* 0x00-0x20 -> 0..32 */
    if (b <= 0xA0) return 0x100 + 33 + b - 0x7F; /* 0x7F-0xA0 -> 33..66 */
    return 0x100 + 67;                           /* 0xAD */
}

/* Inverse of byte_to_cp; -1 for code points outside the alphabet. */
static int cp_to_byte(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    if (cp < 0x100 || cp > 0x143) return -1;
    uint32_t n = cp - 0x100;
    if (n <= 32) return (int)n;
    if (n <= 66) return (int)(0x7F + n - 33);
    return 0xAD;
}

/* ------------------------------------------------------------------------------------------------
 * Hash maps: string -> int32 (keys live in the tokenizer's arena) and uint64 -> (uint32, int32)
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    uint64_t hash;
    uint32_t off, len; /* key = arena[off .. off+len) */
    int32_t val;       /* -1: empty slot */
} smap_slot;

typedef struct {
    smap_slot *slot;
    size_t cap, n; /* cap is a power of two, n <= cap / 2 */
} smap;

static bool smap_init(smap *m, size_t expect) {
    size_t cap = 16;
    while (cap < 2 * expect + 16)
        cap *= 2;
    m->slot = malloc(cap * sizeof *m->slot);
    if (!m->slot) return false;
    for (size_t i = 0; i < cap; i++)
        m->slot[i].val = -1;
    m->cap = cap;
    m->n = 0;
    return true;
}

/* The slot holding key, or the empty slot where it would go. */
static smap_slot *smap_find(const smap *m, const char *arena, const char *key, size_t len,
                            uint64_t h) {
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        smap_slot *s = &m->slot[i];
        if (s->val < 0) return s;
        if (s->hash == h && s->len == len && memcmp(arena + s->off, key, len) == 0) return s;
    }
}

static int32_t smap_get(const smap *m, const char *arena, const char *key, size_t len) {
    if (!m->slot) return -1;
    return smap_find(m, arena, key, len, hash_bytes(key, len))->val;
}

typedef struct {
    uint64_t key;
    uint32_t a;
    int32_t b; /* -1: empty slot */
} umap_slot;

typedef struct {
    umap_slot *slot;
    size_t cap, n;
} umap;

static bool umap_init(umap *m, size_t expect) {
    size_t cap = 16;
    while (cap < 2 * expect + 16)
        cap *= 2;
    m->slot = malloc(cap * sizeof *m->slot);
    if (!m->slot) return false;
    for (size_t i = 0; i < cap; i++)
        m->slot[i].b = -1;
    m->cap = cap;
    m->n = 0;
    return true;
}

static umap_slot *umap_find(const umap *m, uint64_t key) {
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)mix64(key) & mask;; i = (i + 1) & mask) {
        umap_slot *s = &m->slot[i];
        if (s->b < 0 || s->key == key) return s;
    }
}

/* Inserts or overwrites key; the map must have been sized for all keys by umap_init. */
static void umap_set(umap *m, uint64_t key, uint32_t a, int32_t b) {
    umap_slot *s = umap_find(m, key);
    if (s->b < 0) m->n++;
    s->key = key;
    s->a = a;
    s->b = b;
}

/* ------------------------------------------------------------------------------------------------
 * The tokenizer
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    uint32_t piece, piece_len; /* arena offset/length of the string in tokenizer.json (NUL after) */
    uint32_t bytes, bytes_len; /* arena offset/length of the bytes it decodes to */
    uint8_t used;              /* the id has a token */
    uint8_t special;           /* added token with "special": true */
} tok_entry;

typedef struct {
    int32_t id;
    uint32_t off, len; /* content, in the arena */
    bool special, normalized, lstrip, rstrip, single_word;
} added_token;

struct dsv3_tokenizer {
    int32_t n_ids;  /* largest id + 1 */
    tok_entry *ent; /* (n_ids) */
    buf arena;      /* all strings: pieces, decoded bytes, added contents */

    smap vocab;           /* model.vocab: piece -> id */
    size_t n_vocab;       /* entries in model.vocab (HF's model vocab size) */
    umap merges;          /* key (left id << 32 | right id) -> a = rank, b = merged id */
    int32_t byte_id[256]; /* vocab id of the one-character piece for each byte, or -1 */
    int32_t unk_id;       /* model.unk_token id, or -1 */
    bool fuse_unk;        /* consecutive unknown characters give one unk */
    bool ignore_merges;   /* a pre-token that is a vocab entry maps to it directly */

    added_token *added; /* (n_added) in added_tokens order */
    size_t n_added;
    smap added_map;      /* content -> index into added[] */
    int32_t *node_term;  /* trie nodes: index into added[] of the token ending here, or -1 */
    size_t n_nodes;      /* nodes 0 and 1 are the roots of pass 0 (normalized=false) and 1 */
    umap edges;          /* key (node << 8 | byte) -> b = child node */
    bool first[2][256];  /* bytes that start some added token of pass 0 / pass 1 */
    size_t n_pass[2];    /* added tokens in each pass */
    pcre2_code *word_re; /* Rust regex `\w` (for single_word), or NULL if no token needs it */

    dsv3_pretok *pretok; /* the pre-tokenizer's Split steps (ByteLevel's GPT-2 split included) */

    bool add_bos, add_eos;  /* tokenizer_config.json add_bos_token / add_eos_token */
    int32_t bos_id, eos_id; /* config bos_token / eos_token ids, or -1 */
    int chat_kind;          /* DSV3_CHAT_*, CHAT_NONE (no chat_template) or CHAT_UNKNOWN */
    char chat_note[400];    /* CHAT_NONE: the warning; CHAT_UNKNOWN: the refusal */
};

enum { CHAT_NONE = -1, CHAT_UNKNOWN = -2 };

/* Records the template text found in src (a tokenizer_config.json chat_template or a
 * chat_template.jinja file): a known kind, or the refusal naming src. */
static void set_chat_template(dsv3_tokenizer *t, const char *tmpl, size_t len, const char *src,
                              const char *why) {
    t->chat_kind = tmpl ? dsv3_chat_identify(tmpl, len) : -1;
    if (t->chat_kind >= 0) return;
    uint64_t h = 1469598103934665603ull; /* FNV-1a, to tell templates apart in reports */
    for (size_t i = 0; tmpl && i < len; i++) h = (h ^ (unsigned char)tmpl[i]) * 1099511628211ull;
    t->chat_kind = CHAT_UNKNOWN;
    if (why)
        snprintf(t->chat_note, sizeof t->chat_note, "chat: %.200s: chat_template %s", src, why);
    else
        snprintf(t->chat_note, sizeof t->chat_note,
                 "chat: %.200s: the chat_template (%zu bytes, FNV-1a %016llx) is not one dsv3 "
                 "knows (deepseek-v3, deepseek-r1, deepseek-v3.1 exactly); refusing to guess its "
                 "format",
                 src, len, (unsigned long long)h);
}

/* ------------------------------------------------------------------------------------------------
 * Loading: JSON -> tables
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    dsv3_tokenizer *t;
    const char *src; /* file path or "<tokenizer.json>" for messages */
    dsv3_err *err;
} loader;

__attribute__((format(printf, 3, 4))) static dsv3_status lerr(const loader *L, dsv3_status st,
                                                              const char *fmt, ...) {
    char msg[800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dsv3_errf(L->err, st, "tokenizer: %s: %s", L->src, msg);
}

/* Appends s[0..n) plus a NUL to the arena; *off receives its offset. */
static dsv3_status arena_add(const loader *L, const void *s, size_t n, uint32_t *off) {
    buf *a = &L->t->arena;
    if (a->n + n + 1 > UINT32_MAX) return lerr(L, DSV3_ENOMEM, "strings exceed 4 GiB");
    *off = (uint32_t)a->n;
    if (!buf_put(a, s, n) || !buf_put(a, "", 1)) return lerr(L, DSV3_ENOMEM, "out of memory");
    return DSV3_OK;
}

static bool json_is_null(const cJSON *v) {
    return v == NULL || cJSON_IsNull(v);
}

/* Parses one JSON value filling all of json[0..len) (trailing whitespace allowed, as serde_json
 * does); NULL and an error message on failure. */
static cJSON *json_parse(const loader *L, const char *json, size_t len, dsv3_status *st) {
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!v) {
        *st = lerr(L, DSV3_EFORMAT, "invalid JSON near byte %zu",
                   end && end >= json ? (size_t)(end - json) : (size_t)0);
        return NULL;
    }
    size_t at = end && end >= json && end <= json + len ? (size_t)(end - json) : len;
    while (at < len &&
           (json[at] == ' ' || json[at] == '\t' || json[at] == '\n' || json[at] == '\r'))
        at++;
    if (at < len) {
        cJSON_Delete(v);
        *st = lerr(L, DSV3_EFORMAT, "invalid JSON: trailing data at byte %zu", at);
        return NULL;
    }
    return v;
}

/* Reads an id: a JSON integer in [0, MAX_IDS). */
static bool json_id(const cJSON *v, int32_t *id) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d < MAX_IDS) || floor(d) != d) return false;
    *id = (int32_t)d;
    return true;
}

/* Optional boolean member; *out keeps its default when absent or null. */
static dsv3_status json_bool(const loader *L, const cJSON *obj, const char *key, const char *path,
                             bool *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (json_is_null(v)) return DSV3_OK;
    if (!cJSON_IsBool(v))
        return lerr(L, DSV3_EFORMAT, "%s%s%s: expected true or false", path, *path ? "." : "", key);
    *out = cJSON_IsTrue(v);
    return DSV3_OK;
}

static const char *json_type_name(const cJSON *obj) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(ty) ? ty->valuestring : NULL;
}

/* Fills in what token id decodes to: the ByteLevel decoder maps each character back to its byte
 * if every character of the token is in the alphabet, else keeps the token's UTF-8 text. */
static dsv3_status entry_set(const loader *L, int32_t id, const char *s, size_t n) {
    dsv3_tokenizer *t = L->t;
    tok_entry *e = &t->ent[id];
    dsv3_status st = arena_add(L, s, n, &e->piece);
    if (st) return st;
    e->piece_len = (uint32_t)n;
    unsigned char tmp[256];
    unsigned char *bytes = n <= sizeof tmp ? tmp : malloc(n);
    if (!bytes) return lerr(L, DSV3_ENOMEM, "out of memory");
    size_t nb = 0, i = 0, bad;
    bool mapped = true;
    while (i < n) {
        size_t k = utf8_next((const unsigned char *)s + i, n - i, &bad);
        int b = k ? cp_to_byte(utf8_cp((const unsigned char *)s + i, k)) : -1;
        if (b < 0) {
            mapped = false;
            break;
        }
        bytes[nb++] = (unsigned char)b;
        i += k;
    }
    st = mapped ? arena_add(L, bytes, nb, &e->bytes) : arena_add(L, s, n, &e->bytes);
    e->bytes_len = (uint32_t)(mapped ? nb : n);
    if (bytes != tmp) free(bytes);
    e->used = 1;
    return st;
}

static dsv3_status load_normalizer(const loader *L, const cJSON *n, const char *path) {
    if (json_is_null(n)) return DSV3_OK;
    const char *type = json_type_name(n);
    if (!type) return lerr(L, DSV3_EFORMAT, "%s.type: missing", path);
    if (strcmp(type, "Sequence") != 0)
        return lerr(L, DSV3_EUNSUPPORTED,
                    "%s.type: \"%.40s\" not supported (only an empty Sequence)", path, type);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
    if (!cJSON_IsArray(list)) return lerr(L, DSV3_EFORMAT, "%s.normalizers: expected array", path);
    int i = 0;
    for (const cJSON *c = list->child; c; c = c->next, i++) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s.normalizers[%d]", path, i);
        dsv3_status st = load_normalizer(L, c, sub);
        if (st) return st;
    }
    return DSV3_OK;
}

/* The GPT-2 split that ByteLevel applies when use_regex is true (tokenizers byte_level.rs). */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static dsv3_status add_split_step(const loader *L, const char *pattern, size_t len, bool literal,
                                  dsv3_split_behavior behavior, bool invert, const char *path) {
    char where[400];
    snprintf(where, sizeof where, "%s: %s", L->src, path);
    return dsv3_pretok_add(L->t->pretok, pattern, len, literal, behavior, invert, where, L->err);
}

static dsv3_status load_split(const loader *L, const cJSON *p, const char *path) {
    static const struct {
        const char *name;
        dsv3_split_behavior behavior;
    } behaviors[] = {
        {"Removed", DSV3_SPLIT_REMOVED},
        {"Isolated", DSV3_SPLIT_ISOLATED},
        {"MergedWithPrevious", DSV3_SPLIT_MERGED_WITH_PREVIOUS},
        {"MergedWithNext", DSV3_SPLIT_MERGED_WITH_NEXT},
        {"Contiguous", DSV3_SPLIT_CONTIGUOUS},
    };
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
    const cJSON *rx = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    const cJSON *lit = cJSON_GetObjectItemCaseSensitive(pat, "String");
    const cJSON *src = cJSON_IsString(rx) ? rx : lit;
    if (!cJSON_IsObject(pat) || !cJSON_IsString(src))
        return lerr(L, DSV3_EFORMAT, "%s.pattern: expected {\"Regex\": ...} or {\"String\": ...}",
                    path);
    const cJSON *bh = cJSON_GetObjectItemCaseSensitive(p, "behavior");
    if (!cJSON_IsString(bh)) return lerr(L, DSV3_EFORMAT, "%s.behavior: expected a string", path);
    int behavior = -1;
    for (size_t i = 0; i < sizeof behaviors / sizeof behaviors[0]; i++)
        if (strcmp(bh->valuestring, behaviors[i].name) == 0) behavior = (int)behaviors[i].behavior;
    if (behavior < 0)
        return lerr(L, DSV3_EUNSUPPORTED, "%s.behavior: \"%.40s\" not supported", path,
                    bh->valuestring);
    bool invert = false;
    dsv3_status st = json_bool(L, p, "invert", path, &invert);
    if (st) return st;
    char where[300];
    snprintf(where, sizeof where, "%s.pattern.%s", path, src == rx ? "Regex" : "String");
    return add_split_step(L, src->valuestring, strlen(src->valuestring), src != rx,
                          (dsv3_split_behavior)behavior, invert, where);
}

/* Walks the pre_tokenizer tree; *byte_level is set once the ByteLevel step has been seen. */
static dsv3_status load_pretok(const loader *L, const cJSON *p, const char *path,
                               bool *byte_level) {
    const char *type = json_type_name(p);
    if (!type) return lerr(L, DSV3_EFORMAT, "%s.type: missing", path);
    if (*byte_level)
        return lerr(L, DSV3_EUNSUPPORTED, "%s: no step may follow the ByteLevel pre-tokenizer",
                    path);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(list))
            return lerr(L, DSV3_EFORMAT, "%s.pretokenizers: expected array", path);
        int i = 0;
        for (const cJSON *c = list->child; c; c = c->next, i++) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.pretokenizers[%d]", path, i);
            dsv3_status st = load_pretok(L, c, sub, byte_level);
            if (st) return st;
        }
        return DSV3_OK;
    }
    if (strcmp(type, "Split") == 0) return load_split(L, p, path);
    if (strcmp(type, "ByteLevel") == 0) {
        bool add_prefix_space = true, use_regex = true; /* HF defaults */
        dsv3_status st = json_bool(L, p, "add_prefix_space", path, &add_prefix_space);
        if (!st) st = json_bool(L, p, "use_regex", path, &use_regex);
        if (st) return st;
        if (add_prefix_space)
            return lerr(L, DSV3_EUNSUPPORTED, "%s.add_prefix_space: true is not supported", path);
        if (use_regex) {
            char sub[300];
            snprintf(sub, sizeof sub, "%s.use_regex", path);
            st = add_split_step(L, gpt2_pattern, sizeof gpt2_pattern - 1, false,
                                DSV3_SPLIT_ISOLATED, false, sub);
            if (st) return st;
        }
        *byte_level = true;
        return DSV3_OK;
    }
    return lerr(L, DSV3_EUNSUPPORTED,
                "%s.type: \"%.40s\" not supported (only Sequence, Split, ByteLevel)", path, type);
}

/* Reads model.vocab into the id table and the vocab map. */
static dsv3_status load_vocab(const loader *L, const cJSON *vocab) {
    dsv3_tokenizer *t = L->t;
    char q[96];
    for (const cJSON *c = vocab->child; c; c = c->next) {
        int32_t id;
        size_t n = strlen(c->string);
        if (!json_id(c, &id))
            return lerr(L, DSV3_EFORMAT, "model.vocab[%s]: id must be an integer in [0, %d)",
                        quote(q, c->string, n), MAX_IDS);
        if (utf8_check((const unsigned char *)c->string, n) != n)
            return lerr(L, DSV3_EFORMAT, "model.vocab[%s]: key is not valid UTF-8",
                        quote(q, c->string, n));
        uint64_t h = hash_bytes(c->string, n);
        smap_slot *s = smap_find(&t->vocab, t->arena.p, c->string, n, h);
        if (s->val >= 0)
            return lerr(L, DSV3_EFORMAT, "model.vocab: duplicate key %s", quote(q, c->string, n));
        if (t->ent[id].used) {
            char q2[96];
            return lerr(L, DSV3_EFORMAT, "model.vocab: id %d is given to both %s and %s", id,
                        quote(q, t->arena.p + t->ent[id].piece, t->ent[id].piece_len),
                        quote(q2, c->string, n));
        }
        dsv3_status st = entry_set(L, id, c->string, n);
        if (st) return st;
        *s = (smap_slot){h, t->ent[id].piece, (uint32_t)n, id};
        t->vocab.n++;
        t->n_vocab++;
    }
    return DSV3_OK;
}

/* Reads model.merges: rank = position (after dropping "#version" strings), pair -> merged id. */
static dsv3_status load_merges(const loader *L, const cJSON *merges) {
    dsv3_tokenizer *t = L->t;
    if (!umap_init(&t->merges, (size_t)cJSON_GetArraySize(merges)))
        return lerr(L, DSV3_ENOMEM, "out of memory");
    buf cat = {0};
    uint32_t rank = 0;
    int i = 0;
    dsv3_status st = DSV3_OK;
    char q[96];
    for (const cJSON *m = merges->child; m; m = m->next, i++) {
        const char *a, *b;
        size_t na, nb;
        if (cJSON_IsString(m)) {
            const char *s = m->valuestring;
            if (strncmp(s, "#version", 8) == 0) continue;
            const char *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                st = lerr(L, DSV3_EFORMAT,
                          "model.merges[%d]: %s is not two tokens split by one "
                          "space",
                          i, quote(q, s, strlen(s)));
                break;
            }
            a = s, na = (size_t)(sp - s), b = sp + 1, nb = strlen(b);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) {
            a = m->child->valuestring, na = strlen(a);
            b = m->child->next->valuestring, nb = strlen(b);
        } else {
            st = lerr(L, DSV3_EFORMAT, "model.merges[%d]: expected \"a b\" or [\"a\", \"b\"]", i);
            break;
        }
        int32_t ia = smap_get(&t->vocab, t->arena.p, a, na);
        int32_t ib = smap_get(&t->vocab, t->arena.p, b, nb);
        cat.n = 0;
        if (!buf_put(&cat, a, na) || !buf_put(&cat, b, nb)) {
            st = lerr(L, DSV3_ENOMEM, "out of memory");
            break;
        }
        int32_t im = smap_get(&t->vocab, t->arena.p, cat.p, cat.n);
        const char *missing = ia < 0 ? a : ib < 0 ? b : im < 0 ? cat.p : NULL;
        size_t nmissing = ia < 0 ? na : ib < 0 ? nb : cat.n;
        if (missing) {
            st = lerr(L, DSV3_EFORMAT, "model.merges[%d]: token %s is not in model.vocab", i,
                      quote(q, missing, nmissing));
            break;
        }
        /* HF collects the merges into a HashMap: a repeated pair keeps its last rank. */
        umap_set(&t->merges, (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib, rank++, im);
    }
    free(cat.p);
    return st;
}

static dsv3_status load_model(const loader *L, const cJSON *model) {
    dsv3_tokenizer *t = L->t;
    if (!cJSON_IsObject(model)) return lerr(L, DSV3_EFORMAT, "model: missing or not an object");
    const char *type = json_type_name(model);
    if (type && strcmp(type, "BPE") != 0)
        return lerr(L, DSV3_EUNSUPPORTED, "model.type: \"%.40s\" not supported (only BPE)", type);
    static const char *const must_be_null[] = {"dropout", "continuing_subword_prefix",
                                               "end_of_word_suffix"};
    for (size_t i = 0; i < sizeof must_be_null / sizeof must_be_null[0]; i++)
        if (!json_is_null(cJSON_GetObjectItemCaseSensitive(model, must_be_null[i])))
            return lerr(L, DSV3_EUNSUPPORTED, "model.%s: only null is supported", must_be_null[i]);
    bool byte_fallback = false;
    dsv3_status st = json_bool(L, model, "byte_fallback", "model", &byte_fallback);
    if (!st) st = json_bool(L, model, "fuse_unk", "model", &t->fuse_unk);
    if (!st) st = json_bool(L, model, "ignore_merges", "model", &t->ignore_merges);
    if (st) return st;
    if (byte_fallback) return lerr(L, DSV3_EUNSUPPORTED, "model.byte_fallback: true not supported");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsArray(merges))
        return lerr(L, DSV3_EFORMAT, "model.merges: missing or not an array");
    st = load_merges(L, merges);
    if (st) return st;
    for (unsigned b = 0; b < 256; b++) {
        unsigned char u[4];
        size_t n = utf8_put(u, byte_to_cp(b));
        t->byte_id[b] = smap_get(&t->vocab, t->arena.p, (const char *)u, n);
    }
    t->unk_id = -1;
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (!json_is_null(unk)) {
        char q[96];
        if (!cJSON_IsString(unk))
            return lerr(L, DSV3_EFORMAT, "model.unk_token: expected a string");
        t->unk_id = smap_get(&t->vocab, t->arena.p, unk->valuestring, strlen(unk->valuestring));
        if (t->unk_id < 0)
            return lerr(L, DSV3_EFORMAT, "model.unk_token: %s is not in model.vocab",
                        quote(q, unk->valuestring, strlen(unk->valuestring)));
    }
    return DSV3_OK;
}

/* Adds t->added[k] to the trie of its pass. */
static dsv3_status trie_add(const loader *L, size_t k) {
    dsv3_tokenizer *t = L->t;
    const added_token *a = &t->added[k];
    const unsigned char *s = (const unsigned char *)t->arena.p + a->off;
    int pass = a->normalized ? 1 : 0;
    size_t node = (size_t)pass;
    t->first[pass][s[0]] = true;
    t->n_pass[pass]++;
    for (size_t i = 0; i < a->len; i++) {
        uint64_t key = (uint64_t)node << 8 | s[i];
        umap_slot *e = umap_find(&t->edges, key);
        if (e->b >= 0) {
            node = (size_t)e->b;
            continue;
        }
        e->key = key;
        e->b = (int32_t)t->n_nodes;
        t->edges.n++;
        node = t->n_nodes++;
        t->node_term[node] = -1;
    }
    t->node_term[node] = (int32_t)k;
    return DSV3_OK;
}

/* Reads added_tokens (already counted), checks each id as HF would assign it, builds the tries. */
static dsv3_status load_added(const loader *L, const cJSON *list) {
    dsv3_tokenizer *t = L->t;
    size_t n = list ? (size_t)cJSON_GetArraySize(list) : 0, total_len = 0;
    for (const cJSON *c = list ? list->child : NULL; c; c = c->next) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(c, "content");
        if (cJSON_IsString(content)) total_len += strlen(content->valuestring);
    }
    t->added = calloc(n ? n : 1, sizeof *t->added);
    t->node_term = malloc((total_len + 2) * sizeof *t->node_term);
    if (!t->added || !t->node_term || !smap_init(&t->added_map, n) ||
        !umap_init(&t->edges, total_len))
        return lerr(L, DSV3_ENOMEM, "out of memory");
    t->node_term[0] = t->node_term[1] = -1;
    t->n_nodes = 2;
    int64_t max_added = -1; /* HF: largest id given to an added token so far */
    char q[96];
    int i = 0;
    for (const cJSON *c = list ? list->child : NULL; c; c = c->next, i++) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(c, "content");
        int32_t id;
        if (!cJSON_IsObject(c) || !cJSON_IsString(content))
            return lerr(L, DSV3_EFORMAT, "added_tokens[%d].content: expected a string", i);
        if (!json_id(cJSON_GetObjectItemCaseSensitive(c, "id"), &id))
            return lerr(L, DSV3_EFORMAT, "added_tokens[%d].id: expected an integer in [0, %d)", i,
                        MAX_IDS);
        const char *s = content->valuestring;
        size_t len = strlen(s);
        if (len == 0) return lerr(L, DSV3_EFORMAT, "added_tokens[%d].content: empty", i);
        if (utf8_check((const unsigned char *)s, len) != len)
            return lerr(L, DSV3_EFORMAT, "added_tokens[%d].content: not valid UTF-8", i);
        added_token a = {.id = id, .normalized = true}; /* HF AddedToken defaults */
        char path[64];
        snprintf(path, sizeof path, "added_tokens[%d]", i);
        dsv3_status st = json_bool(L, c, "special", path, &a.special);
        if (!st) st = json_bool(L, c, "normalized", path, &a.normalized);
        if (!st) st = json_bool(L, c, "lstrip", path, &a.lstrip);
        if (!st) st = json_bool(L, c, "rstrip", path, &a.rstrip);
        if (!st) st = json_bool(L, c, "single_word", path, &a.single_word);
        if (st) return st;
        uint64_t h = hash_bytes(s, len);
        smap_slot *slot = smap_find(&t->added_map, t->arena.p, s, len, h);
        if (slot->val >= 0)
            return lerr(L, DSV3_EFORMAT, "added_tokens[%d].content: %s appears twice", i,
                        quote(q, s, len));
        /* HF ignores the stored id: a token in the model vocab gets its vocab id, any other the
         * next free id. Files written by HF agree; others would encode differently, so refuse. */
        int32_t vid = smap_get(&t->vocab, t->arena.p, s, len);
        int64_t expect = vid;
        if (vid < 0)
            expect = max_added < 0                                           ? (int64_t)t->n_vocab
                     : (max_added >= (int64_t)t->n_vocab || t->n_vocab == 0) ? max_added + 1
                                                                             : (int64_t)t->n_vocab;
        if (expect != id)
            return lerr(L, DSV3_EFORMAT,
                        "added_tokens[%d].id: %d, but %s %s id %lld (ids must follow HF's "
                        "assignment)",
                        i, id, quote(q, s, len),
                        vid >= 0 ? "has model.vocab" : "would get the next free",
                        (long long)expect);
        if (id > max_added) max_added = id;
        if (vid < 0 && t->ent[id].used) {
            char q2[96];
            return lerr(L, DSV3_EFORMAT, "added_tokens[%d].id: %d is already the model token %s", i,
                        id, quote(q2, t->arena.p + t->ent[id].piece, t->ent[id].piece_len));
        }
        if (vid < 0) {
            st = entry_set(L, id, s, len);
            if (st) return st;
        }
        t->ent[id].special = a.special;
        a.off = t->ent[id].piece;
        a.len = (uint32_t)len;
        t->added[t->n_added] = a;
        slot = smap_find(&t->added_map, t->arena.p, s, len, h);
        *slot = (smap_slot){h, a.off, a.len, (int32_t)t->n_added};
        t->added_map.n++;
        st = trie_add(L, t->n_added++);
        if (st) return st;
    }
    return DSV3_OK;
}

/* tokenizer_config.json: a token given as "text" or {"content": "text", ...}. */
static dsv3_status load_config_token(const loader *L, const cJSON *cfg, const char *key,
                                     int32_t *id) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (json_is_null(v)) return DSV3_OK;
    if (!cJSON_IsString(v))
        return lerr(L, DSV3_EFORMAT, "%s: expected a string or {\"content\": ...}", key);
    *id = dsv3_tokenizer_token_id(L->t, v->valuestring);
    if (*id < 0) {
        char q[96];
        return lerr(L, DSV3_EFORMAT, "%s: %s is not a token", key,
                    quote(q, v->valuestring, strlen(v->valuestring)));
    }
    return DSV3_OK;
}

static dsv3_status load_config(const loader *L, const char *json, size_t len) {
    dsv3_status st = DSV3_OK;
    cJSON *cfg = json_parse(L, json, len, &st);
    if (!cfg) return st;
    if (!cJSON_IsObject(cfg)) st = lerr(L, DSV3_EFORMAT, "top level is not an object");
    if (!st) st = json_bool(L, cfg, "add_bos_token", "", &L->t->add_bos);
    if (!st) st = json_bool(L, cfg, "add_eos_token", "", &L->t->add_eos);
    if (!st) st = load_config_token(L, cfg, "bos_token", &L->t->bos_id);
    if (!st) st = load_config_token(L, cfg, "eos_token", &L->t->eos_id);
    if (!st && L->t->add_bos && L->t->bos_id < 0)
        st = lerr(L, DSV3_EFORMAT, "add_bos_token: true but there is no bos_token");
    if (!st && L->t->add_eos && L->t->eos_id < 0)
        st = lerr(L, DSV3_EFORMAT, "add_eos_token: true but there is no eos_token");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    if (!st && cJSON_IsArray(ct)) { /* [{"name": "default", "template": "..."}, ...] */
        const cJSON *c, *pick = NULL;
        cJSON_ArrayForEach(c, ct) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(c, "name");
            if (cJSON_IsString(nm) && strcmp(nm->valuestring, "default") == 0)
                pick = cJSON_GetObjectItemCaseSensitive(c, "template");
        }
        if (cJSON_IsString(pick))
            set_chat_template(L->t, pick->valuestring, strlen(pick->valuestring), L->src, NULL);
        else
            set_chat_template(L->t, NULL, 0, L->src, "is a list without a \"default\" template");
    } else if (!st && cJSON_IsString(ct)) {
        set_chat_template(L->t, ct->valuestring, strlen(ct->valuestring), L->src, NULL);
    } else if (!st && !json_is_null(ct)) {
        set_chat_template(L->t, NULL, 0, L->src, "is neither a string nor a list");
    }
    cJSON_Delete(cfg);
    return st;
}

static dsv3_status load_tokenizer_json(const loader *L, const cJSON *root) {
    dsv3_tokenizer *t = L->t;
    if (!cJSON_IsObject(root)) return lerr(L, DSV3_EFORMAT, "top level is not an object");
    static const char *const must_be_null[] = {"truncation", "padding"};
    for (size_t i = 0; i < 2; i++)
        if (!json_is_null(cJSON_GetObjectItemCaseSensitive(root, must_be_null[i])))
            return lerr(L, DSV3_EUNSUPPORTED, "%s: only null is supported", must_be_null[i]);
    dsv3_status st =
        load_normalizer(L, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "normalizer");
    if (st) return st;

    /* Size the id table from the largest id in model.vocab and added_tokens. */
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(vocab))
        return lerr(L, DSV3_EFORMAT, "model.vocab: missing or not an object");
    if (!json_is_null(added) && !cJSON_IsArray(added))
        return lerr(L, DSV3_EFORMAT, "added_tokens: expected an array");
    if (!cJSON_IsArray(added)) added = NULL;
    int32_t max_id = -1, id;
    size_t n_vocab = 0;
    for (const cJSON *c = vocab->child; c; c = c->next, n_vocab++)
        if (json_id(c, &id) && id > max_id) max_id = id;
    for (const cJSON *c = added ? added->child : NULL; c; c = c->next)
        if (json_id(cJSON_GetObjectItemCaseSensitive(c, "id"), &id) && id > max_id) max_id = id;
    t->n_ids = max_id + 1;
    t->ent = calloc((size_t)t->n_ids + 1, sizeof *t->ent);
    if (!t->ent || !smap_init(&t->vocab, n_vocab) || !buf_reserve(&t->arena, 16 * n_vocab + 64))
        return lerr(L, DSV3_ENOMEM, "out of memory");

    st = load_vocab(L, vocab);
    if (!st) st = load_model(L, model);
    if (!st) st = load_added(L, added);
    if (st) return st;

    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    bool byte_level = false;
    if (!json_is_null(pre)) st = load_pretok(L, pre, "pre_tokenizer", &byte_level);
    if (st) return st;
    if (!byte_level)
        return lerr(L, DSV3_EUNSUPPORTED, "pre_tokenizer: a ByteLevel step is required");

    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    const char *dtype = json_type_name(dec);
    if (!dtype || strcmp(dtype, "ByteLevel") != 0)
        return lerr(L, DSV3_EUNSUPPORTED, "decoder.type: \"%.40s\" not supported (only ByteLevel)",
                    dtype ? dtype : "null");
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    const char *ptype = json_type_name(post);
    if (!json_is_null(post) && (!ptype || strcmp(ptype, "ByteLevel") != 0))
        return lerr(L, DSV3_EUNSUPPORTED,
                    "post_processor.type: \"%.40s\" not supported (only null or ByteLevel)",
                    ptype ? ptype : "?");

    bool any_single_word = false;
    for (size_t k = 0; k < t->n_added; k++)
        any_single_word |= t->added[k].single_word;
    if (any_single_word) {
        /* Rust regex `\w`: Alphabetic, M, Nd, Pc, Join_Control. */
        static const char word[] = "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]";
        int code;
        PCRE2_SIZE at;
        t->word_re = pcre2_compile((PCRE2_SPTR)word, sizeof word - 1,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &code, &at, NULL);
        if (!t->word_re)
            return lerr(L, DSV3_EUNSUPPORTED,
                        "added_tokens: single_word needs "
                        "PCRE2 with Unicode properties");
    }
    return DSV3_OK;
}

/* Builds a tokenizer from the two JSON texts; src / cfg_src name them in messages. */
static dsv3_status load(dsv3_tokenizer **out, const char *json, size_t json_len, const char *src,
                        const char *cfg, size_t cfg_len, const char *cfg_src, dsv3_err *err) {
    *out = NULL;
    dsv3_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return dsv3_errf(err, DSV3_ENOMEM, "tokenizer: out of memory");
    t->bos_id = t->eos_id = t->unk_id = -1;
    t->chat_kind = CHAT_NONE;
    snprintf(t->chat_note, sizeof t->chat_note,
             "warning: %.200s has no chat_template; chatting in the DeepSeek-V3 format",
             cfg_src ? cfg_src : "the tokenizer");
    if (dsv3_pretok_new(&t->pretok, err)) {
        free(t);
        return DSV3_ENOMEM;
    }
    loader L = {t, src, err};
    dsv3_status st = DSV3_OK;
    cJSON *root = json_parse(&L, json, json_len, &st);
    if (root) {
        st = load_tokenizer_json(&L, root);
        cJSON_Delete(root);
    }
    if (!st && cfg) {
        loader C = {t, cfg_src, err};
        st = load_config(&C, cfg, cfg_len);
    }
    if (st) {
        dsv3_tokenizer_close(t);
        return st;
    }
    *out = t;
    return DSV3_OK;
}

dsv3_status dsv3_tokenizer_load_json(dsv3_tokenizer **out, const char *json, size_t json_len,
                                     const char *config_json, size_t config_len, dsv3_err *err) {
    if (!out || !json) return dsv3_errf(err, DSV3_EINVAL, "tokenizer: load_json: NULL argument");
    return load(out, json, json_len, "<tokenizer.json>", config_json, config_len,
                "<tokenizer_config.json>", err);
}

/* Reads a whole file; *data is malloc'd. A missing file is DSV3_EIO with errno ENOENT. */
static dsv3_status read_file(const char *path, char **data, size_t *len, int *errno_out,
                             dsv3_err *err) {
    *data = NULL;
    *len = 0;
    *errno_out = 0;
    const char *what;
    FILE *f = dsv3_file_fopen_regular(path, &what);
    if (!f) {
        *errno_out = errno;
        if (what) return dsv3_errf(err, DSV3_EIO, "tokenizer: %s: %s", path, what);
        return dsv3_errf(err, DSV3_EIO, "tokenizer: %s: %s", path, strerror(errno));
    }
    buf b = {0};
    char chunk[1 << 16];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (!buf_put(&b, chunk, n)) {
            fclose(f);
            free(b.p);
            return dsv3_errf(err, DSV3_ENOMEM, "tokenizer: %s: out of memory", path);
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b.p);
        return dsv3_errf(err, DSV3_EIO, "tokenizer: %s: read error", path);
    }
    *data = b.p ? b.p : malloc(1);
    *len = b.n;
    return *data ? DSV3_OK : dsv3_errf(err, DSV3_ENOMEM, "tokenizer: out of memory");
}

dsv3_status dsv3_tokenizer_open(dsv3_tokenizer **out, const char *path, dsv3_err *err) {
    if (!out || !path) return dsv3_errf(err, DSV3_EINVAL, "tokenizer: open: NULL argument");
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return dsv3_errf(err, DSV3_EIO, "tokenizer: %s: %s", path, strerror(errno));
    size_t plen = strlen(path);
    char *json_path = malloc(plen + 32), *cfg_path = malloc(plen + 32);
    if (!json_path || !cfg_path) {
        free(json_path);
        free(cfg_path);
        return dsv3_errf(err, DSV3_ENOMEM, "tokenizer: out of memory");
    }
    if (S_ISDIR(sb.st_mode)) {
        snprintf(json_path, plen + 32, "%s/tokenizer.json", path);
        snprintf(cfg_path, plen + 32, "%s/tokenizer_config.json", path);
    } else {
        memcpy(json_path, path, plen + 1);
        const char *slash = strrchr(path, '/');
        int dir_len = slash ? (int)(slash - path + 1) : 0;
        snprintf(cfg_path, plen + 32, "%.*stokenizer_config.json", dir_len, path);
    }
    if (S_ISDIR(sb.st_mode) && access(json_path, F_OK) != 0) {
        /* Kimi-K2 and Moonlight ship tiktoken.model (base64 ranks) and a split pattern in
         * their Python tokenizer code instead of tokenizer.json (docs/ARCHITECTURE.md,
         * "Family") */
        snprintf(cfg_path, plen + 32, "%s/tiktoken.model", path);
        const int tiktoken = access(cfg_path, F_OK) == 0;
        free(json_path);
        free(cfg_path);
        if (tiktoken)
            return dsv3_errf(err, DSV3_EUNSUPPORTED,
                             "tokenizer: %s/tiktoken.model: the tiktoken format (Kimi-K2, "
                             "Moonlight) is not supported; dsv3 reads tokenizer.json (byte-level "
                             "BPE) — pass token ids instead", path);
        return dsv3_errf(err, DSV3_EIO, "tokenizer: %s/tokenizer.json: %s", path, strerror(ENOENT));
    }
    char *json = NULL, *cfg = NULL;
    size_t json_len = 0, cfg_len = 0;
    int e;
    dsv3_status st = read_file(json_path, &json, &json_len, &e, err);
    if (!st) {
        st = read_file(cfg_path, &cfg, &cfg_len, &e, err);
        if (st && e == ENOENT) st = DSV3_OK; /* the config is optional */
    }
    dsv3_tokenizer *t = NULL;
    if (!st) st = load(&t, json, json_len, json_path, cfg, cfg_len, cfg_path, err);
    free(json);
    free(cfg);
    cfg = NULL;
    if (!st && t->chat_kind == CHAT_NONE) { /* newer exports: chat_template.jinja beside it */
        char *slash = strrchr(cfg_path, '/');
        size_t dir_len = slash ? (size_t)(slash - cfg_path + 1) : 0;
        snprintf(cfg_path + dir_len, plen + 32 - dir_len, "chat_template.jinja");
        dsv3_err ignored = {{0}};
        if (read_file(cfg_path, &cfg, &cfg_len, &e, &ignored) == DSV3_OK)
            set_chat_template(t, cfg, cfg_len, cfg_path, NULL);
        free(cfg);
    }
    free(json_path);
    free(cfg_path);
    *out = t;
    return st;
}

dsv3_status dsv3_tokenizer_open_dir(dsv3_tokenizer **out, const char *dir, dsv3_err *err) {
    if (!out || !dir) return dsv3_errf(err, DSV3_EINVAL, "tokenizer: open: NULL argument");
    *out = NULL;
    dsv3_strbuf b = {0};
    dsv3_strbuf_printf(&b, "%s/tokenizer.json", dir);
    char *json_path = dsv3_strbuf_finish(&b);
    if (!json_path) return dsv3_errf(err, DSV3_ENOMEM, "tokenizer: out of memory");
    const int present = access(json_path, F_OK) == 0;
    free(json_path);
    return present ? dsv3_tokenizer_open(out, dir, err) : DSV3_OK;
}

void dsv3_tokenizer_close(dsv3_tokenizer *t) {
    if (!t) return;
    dsv3_pretok_free(t->pretok);
    pcre2_code_free(t->word_re);
    free(t->ent);
    free(t->arena.p);
    free(t->vocab.slot);
    free(t->merges.slot);
    free(t->added);
    free(t->added_map.slot);
    free(t->node_term);
    free(t->edges.slot);
    free(t);
}

/* ------------------------------------------------------------------------------------------------
 * Lookups
 * ---------------------------------------------------------------------------------------------- */

int32_t dsv3_tokenizer_vocab_size(const dsv3_tokenizer *t) {
    return t ? t->n_ids : 0;
}

static const tok_entry *entry(const dsv3_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_ids || !t->ent[id].used) return NULL;
    return &t->ent[id];
}

const char *dsv3_tokenizer_piece(const dsv3_tokenizer *t, int32_t id) {
    const tok_entry *e = entry(t, id);
    return e ? t->arena.p + e->piece : NULL;
}

const char *dsv3_tokenizer_token_bytes(const dsv3_tokenizer *t, int32_t id, size_t *len) {
    const tok_entry *e = entry(t, id);
    *len = e ? e->bytes_len : 0;
    return e ? t->arena.p + e->bytes : NULL;
}

char *dsv3_tokenizer_label(const dsv3_tokenizer *t, int32_t id) {
    const tok_entry *e = entry(t, id);
    if (!e) return NULL;
    if (id == t->bos_id) return strdup("<bos>");
    if (id == t->eos_id) return strdup("<eos>");
    if (e->special) return strdup(t->arena.p + e->piece);
    return dsv3_utf8_visible(t->arena.p + e->bytes, e->bytes_len);
}

int32_t dsv3_tokenizer_token_id(const dsv3_tokenizer *t, const char *piece) {
    if (!t || !piece) return -1;
    size_t n = strlen(piece);
    int32_t k = smap_get(&t->added_map, t->arena.p, piece, n);
    if (k >= 0) return t->added[k].id;
    return smap_get(&t->vocab, t->arena.p, piece, n);
}

int dsv3_tokenizer_is_special(const dsv3_tokenizer *t, int32_t id) {
    const tok_entry *e = entry(t, id);
    return e ? e->special : 0;
}

int32_t dsv3_tokenizer_bos_id(const dsv3_tokenizer *t) {
    return t ? t->bos_id : -1;
}
int32_t dsv3_tokenizer_eos_id(const dsv3_tokenizer *t) {
    return t ? t->eos_id : -1;
}

int dsv3_tokenizer_adds_bos(const dsv3_tokenizer *t) {
    return t && t->add_bos && t->bos_id >= 0;
}

/* ------------------------------------------------------------------------------------------------
 * Encode state (one per call: the tokenizer itself stays read-only)
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    int32_t id;
    int32_t prev, next; /* neighbour symbol indices, -1 at the ends */
    uint32_t len;       /* bytes covered; 0 once merged into its left neighbour */
} bpe_sym;

typedef struct {
    uint32_t rank, pos;
    int32_t new_id;
} bpe_merge;

typedef struct {
    uint64_t hash;
    const char *key; /* points into the text being encoded; NULL: empty slot */
    uint32_t len;
    uint32_t n; /* ids */
    size_t ids; /* offset into cache_ids */
} cache_slot;

typedef struct {
    const dsv3_tokenizer *t;
    const char *text;
    dsv3_err *err;
    ivec out;
    dsv3_pretok_scratch *ps;
    bpe_sym *sym;
    size_t sym_cap;
    bpe_merge *heap;
    size_t heap_cap, heap_n;
    buf scratch;
    cache_slot *cache;
    size_t cache_cap, cache_n;
    ivec cache_ids;
} enc_ctx;

static void enc_free(enc_ctx *c) {
    dsv3_pretok_scratch_free(c->ps);
    free(c->out.p);
    free(c->sym);
    free(c->heap);
    free(c->scratch.p);
    free(c->cache);
    free(c->cache_ids.p);
}

static dsv3_status enc_nomem(enc_ctx *c) {
    return dsv3_errf(c->err, DSV3_ENOMEM, "tokenizer: encode: out of memory");
}

/* ------------------------------------------------------------------------------------------------
 * BPE (tokenizers models/bpe/word.rs `merge_all`): a min-heap of candidate merges ordered by
 * (rank, position). A popped candidate is skipped when its symbol was merged away, is last, or
 * the pair now there merges to a different id — HF compares only the merged id, so a stale
 * entry whose pair changed but still merges to the same id is applied; we do the same.
 * ---------------------------------------------------------------------------------------------- */

static bool merge_less(const bpe_merge *a, const bpe_merge *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(enc_ctx *c, bpe_merge m) {
    size_t i = c->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!merge_less(&m, &c->heap[p])) break;
        c->heap[i] = c->heap[p];
        i = p;
    }
    c->heap[i] = m;
}

static bpe_merge heap_pop(enc_ctx *c) {
    bpe_merge top = c->heap[0], last = c->heap[--c->heap_n];
    size_t i = 0, n = c->heap_n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const bpe_merge *best = &last;
        if (l < n && merge_less(&c->heap[l], best)) m = l, best = &c->heap[l];
        if (r < n && merge_less(&c->heap[r], best)) m = r;
        if (m == i) break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (n) c->heap[i] = last;
    return top;
}

/* Pushes the merge candidate for the pair starting at symbol pos, if there is one. */
static void push_pair(enc_ctx *c, int32_t pos) {
    const bpe_sym *s = c->sym;
    if (pos < 0 || s[pos].next < 0) return;
    uint64_t key = (uint64_t)(uint32_t)s[pos].id << 32 | (uint32_t)s[s[pos].next].id;
    const umap_slot *m = umap_find(&c->t->merges, key);
    if (m->b >= 0) heap_push(c, (bpe_merge){m->a, (uint32_t)pos, m->b});
}

static void bpe_add_sym(enc_ctx *c, size_t *n, int32_t id, uint32_t len) {
    c->sym[*n] = (bpe_sym){id, (int32_t)*n - 1, -1, len};
    if (*n) c->sym[*n - 1].next = (int32_t)*n;
    (*n)++;
}

/* Tokenizes one pre-token p[0..n) (raw bytes; the byte-level alphabet is implicit in byte_id)
 * and appends the ids to c->out. */
static dsv3_status bpe_piece(enc_ctx *c, const char *p, size_t n) {
    const dsv3_tokenizer *t = c->t;
    const unsigned char *u = (const unsigned char *)p;
    if (n == 1 && t->byte_id[u[0]] >= 0) /* fast path: no merge applies to one symbol */
        return ivec_push(&c->out, t->byte_id[u[0]]) ? DSV3_OK : enc_nomem(c);

    cache_slot *slot = NULL;
    uint64_t h = 0;
    if (n <= CACHE_MAX_PIECE) {
        h = hash_bytes(p, n);
        size_t mask = c->cache_cap - 1;
        for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
            slot = &c->cache[i];
            if (!slot->key) break;
            if (slot->hash == h && slot->len == n && memcmp(slot->key, p, n) == 0) {
                for (uint32_t k = 0; k < slot->n; k++)
                    if (!ivec_push(&c->out, c->cache_ids.p[slot->ids + k])) return enc_nomem(c);
                return DSV3_OK;
            }
        }
    }
    size_t out_start = c->out.n;

    int32_t direct = -1;
    if (t->ignore_merges) {
        c->scratch.n = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned char ch[4];
            if (!buf_put(&c->scratch, ch, utf8_put(ch, byte_to_cp(u[i])))) return enc_nomem(c);
        }
        direct = smap_get(&t->vocab, t->arena.p, c->scratch.p, c->scratch.n);
    }
    if (direct >= 0) {
        if (!ivec_push(&c->out, direct)) return enc_nomem(c);
    } else {
        if (!grow((void **)&c->sym, &c->sym_cap, n, sizeof *c->sym) ||
            !grow((void **)&c->heap, &c->heap_cap, 3 * n + 2, sizeof *c->heap))
            return enc_nomem(c);
        /* Initial symbols; characters missing from the vocab become unk (fused if fuse_unk) or
         * are dropped when there is no unk_token, as HF's merge_word does. */
        size_t ns = 0;
        uint32_t unk_len = 0;
        for (size_t i = 0; i < n; i++) {
            int32_t id = t->byte_id[u[i]];
            if (id >= 0) {
                if (unk_len) bpe_add_sym(c, &ns, t->unk_id, unk_len), unk_len = 0;
                bpe_add_sym(c, &ns, id, 1);
            } else if (t->unk_id >= 0) {
                if (unk_len && !t->fuse_unk) bpe_add_sym(c, &ns, t->unk_id, unk_len), unk_len = 0;
                unk_len++;
            }
        }
        if (unk_len) bpe_add_sym(c, &ns, t->unk_id, unk_len);

        c->heap_n = 0;
        for (size_t i = 0; i + 1 < ns; i++)
            push_pair(c, (int32_t)i);
        bpe_sym *s = c->sym;
        while (c->heap_n) {
            bpe_merge top = heap_pop(c);
            bpe_sym *cur = &s[top.pos];
            if (cur->len == 0 || cur->next < 0) continue;
            int32_t nx = cur->next;
            uint64_t key = (uint64_t)(uint32_t)cur->id << 32 | (uint32_t)s[nx].id;
            const umap_slot *m = umap_find(&t->merges, key);
            if (m->b != top.new_id) continue; /* expired (m->b is -1 when absent) */
            cur->id = top.new_id;
            cur->len += s[nx].len;
            cur->next = s[nx].next;
            s[nx].len = 0;
            if (cur->next >= 0) s[cur->next].prev = (int32_t)top.pos;
            push_pair(c, cur->prev);
            push_pair(c, (int32_t)top.pos);
        }
        for (size_t i = 0; i < ns; i++)
            if (s[i].len && !ivec_push(&c->out, s[i].id)) return enc_nomem(c);
    }

    if (slot) { /* remember the result for this pre-token */
        size_t cnt = c->out.n - out_start;
        slot->hash = h;
        slot->key = p;
        slot->len = (uint32_t)n;
        slot->n = (uint32_t)cnt;
        slot->ids = c->cache_ids.n;
        for (size_t k = 0; k < cnt; k++)
            if (!ivec_push(&c->cache_ids, c->out.p[out_start + k])) return enc_nomem(c);
        if (++c->cache_n * 2 > c->cache_cap) { /* rehash into twice the slots */
            size_t cap = c->cache_cap * 2;
            cache_slot *ns = calloc(cap, sizeof *ns);
            if (!ns) return enc_nomem(c);
            for (size_t i = 0; i < c->cache_cap; i++) {
                if (!c->cache[i].key) continue;
                size_t j = (size_t)c->cache[i].hash & (cap - 1);
                while (ns[j].key)
                    j = (j + 1) & (cap - 1);
                ns[j] = c->cache[i];
            }
            free(c->cache);
            c->cache = ns;
            c->cache_cap = cap;
        }
    }
    return DSV3_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Added tokens (tokenizers added_vocabulary.rs `find_matches`): pass 0 finds the tokens with
 * normalized=false in the whole text, pass 1 those with normalized=true in the gaps (the
 * normalizer is empty, so "normalized text" is the text). Each pass takes leftmost-longest
 * matches and resumes after the match as found; single_word drops a match touching a word
 * character, lstrip/rstrip widen it over adjacent White_Space. A match that starts inside the
 * previous token's rstrip span is emitted without a gap, as HF does.
 * ---------------------------------------------------------------------------------------------- */

/* True if the character ending at (or starting at) byte `at` of the text is a Rust `\w`. */
static bool word_char_at(const enc_ctx *c, size_t lo, size_t at, size_t hi, bool before) {
    const unsigned char *u = (const unsigned char *)c->text;
    size_t p = at;
    if (before) {
        if (at == lo) return false;
        p = at - 1;
        while (p > lo && (u[p] & 0xC0) == 0x80)
            p--;
    } else if (at >= hi) {
        return false;
    }
    size_t bad, k = utf8_next(u + p, hi - p, &bad);
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) return false;
    int rc = pcre2_match(c->t->word_re, u + p, k, 0, PCRE2_NO_UTF_CHECK, md, NULL);
    pcre2_match_data_free(md);
    return rc > 0;
}

static size_t ws_len_at(const unsigned char *u, size_t p, size_t hi) {
    size_t q = p, bad, k;
    while (q < hi && (k = utf8_next(u + q, hi - q, &bad)) && is_white_space(utf8_cp(u + q, k)))
        q += k;
    return q - p;
}

static size_t ws_start_before(const unsigned char *u, size_t lo, size_t p) {
    while (p > lo) {
        size_t q = p - 1, bad;
        while (q > lo && (u[q] & 0xC0) == 0x80)
            q--;
        size_t k = utf8_next(u + q, p - q, &bad);
        if (!k || !is_white_space(utf8_cp(u + q, k))) break;
        p = q;
    }
    return p;
}

/* Receives the pre-tokenizer's pieces. */
static dsv3_status emit_piece(void *ctx, size_t s, size_t e) {
    enc_ctx *c = ctx;
    return bpe_piece(c, c->text + s, e - s);
}

static dsv3_status added_pass(enc_ctx *c, int pass, size_t s, size_t e) {
    const dsv3_tokenizer *t = c->t;
    if (s == e) return DSV3_OK;
    if (pass == 2) return dsv3_pretok_split(t->pretok, c->ps, c->text, s, e, emit_piece, c, c->err);
    if (t->n_pass[pass] == 0) return added_pass(c, pass + 1, s, e);
    const unsigned char *u = (const unsigned char *)c->text;
    size_t start_offset = s, i = s;
    dsv3_status st;
    while (i < e) {
        size_t ms = i, me = 0;
        int32_t best = -1;
        for (; ms < e && best < 0; ms++) {
            if (!t->first[pass][u[ms]]) continue;
            size_t node = (size_t)pass;
            for (size_t k = ms; k < e; k++) {
                const umap_slot *ed = umap_find(&t->edges, (uint64_t)node << 8 | u[k]);
                if (ed->b < 0) break;
                node = (size_t)ed->b;
                if (t->node_term[node] >= 0) best = t->node_term[node], me = k + 1;
            }
        }
        if (best < 0) break;
        ms--; /* the loop stepped past the match start */
        i = me;
        const added_token *a = &t->added[best];
        if (a->single_word && (word_char_at(c, s, ms, e, true) || word_char_at(c, s, me, e, false)))
            continue;
        if (a->lstrip) {
            size_t ns = ws_start_before(u, s, ms);
            ms = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip) me += ws_len_at(u, me, e);
        if (start_offset < ms && (st = added_pass(c, pass + 1, start_offset, ms))) return st;
        if (!ivec_push(&c->out, a->id)) return enc_nomem(c);
        start_offset = me;
    }
    return start_offset < e ? added_pass(c, pass + 1, start_offset, e) : DSV3_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Encode
 * ---------------------------------------------------------------------------------------------- */

dsv3_status dsv3_tokenizer_encode(const dsv3_tokenizer *t, int32_t **ids, size_t *n_ids,
                                  const char *text, size_t len, int add_special, dsv3_err *err) {
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (!t || !ids || !n_ids || (!text && len))
        return dsv3_errf(err, DSV3_EINVAL, "tokenizer: encode: NULL argument");
    if (!text) text = "";
    size_t bad = utf8_check((const unsigned char *)text, len);
    if (bad != len)
        return dsv3_errf(err, DSV3_EINVAL, "tokenizer: encode: invalid UTF-8 at byte offset %zu",
                         bad);
    enc_ctx c = {.t = t, .text = text, .err = err};
    dsv3_status st = DSV3_OK;
    c.cache_cap = 1024;
    c.cache = calloc(c.cache_cap, sizeof *c.cache);
    if (!c.cache) st = enc_nomem(&c);
    if (!st) st = dsv3_pretok_scratch_new(&c.ps, t->pretok, err);
    if (!st && add_special && t->add_bos && !ivec_push(&c.out, t->bos_id)) st = enc_nomem(&c);
    if (!st) st = added_pass(&c, 0, 0, len);
    if (!st && add_special && t->add_eos && !ivec_push(&c.out, t->eos_id)) st = enc_nomem(&c);
    if (!st) {
        *ids = c.out.p;
        *n_ids = c.out.n;
        c.out.p = NULL;
    }
    enc_free(&c);
    return st;
}

/* ------------------------------------------------------------------------------------------------
 * Decode (tokenizers decoders/byte_level.rs, then String::from_utf8_lossy)
 * ---------------------------------------------------------------------------------------------- */

dsv3_status dsv3_tokenizer_decode(const dsv3_tokenizer *t, char **text, size_t *len,
                                  const int32_t *ids, size_t n_ids, int skip_special,
                                  dsv3_err *err) {
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!t || !text || !len || (!ids && n_ids))
        return dsv3_errf(err, DSV3_EINVAL, "tokenizer: decode: NULL argument");
    buf raw = {0}, out = {0};
    for (size_t i = 0; i < n_ids; i++) {
        const tok_entry *e = entry(t, ids[i]);
        if (!e) {
            free(raw.p);
            return dsv3_errf(err, DSV3_EINVAL,
                             "tokenizer: decode: id %d at position %zu is not a token (vocab "
                             "size %d)",
                             ids[i], i, t->n_ids);
        }
        if (skip_special && e->special) continue;
        if (!buf_put(&raw, t->arena.p + e->bytes, e->bytes_len)) goto nomem;
    }
    if (!buf_reserve(&out, raw.n + raw.n / 2 + 1)) goto nomem;
    const unsigned char *u = (const unsigned char *)raw.p;
    for (size_t i = 0, bad; i < raw.n;) {
        size_t k = utf8_next(u + i, raw.n - i, &bad);
        if (k) {
            if (!buf_put(&out, u + i, k)) goto nomem;
            i += k;
        } else {
            if (!buf_put(&out, "\xEF\xBF\xBD", 3)) goto nomem; /* U+FFFD */
            i += bad;
        }
    }
    if (!buf_put(&out, "", 1)) goto nomem;
    free(raw.p);
    *text = out.p;
    *len = out.n - 1;
    return DSV3_OK;
nomem:
    free(raw.p);
    free(out.p);
    return dsv3_errf(err, DSV3_ENOMEM, "tokenizer: decode: out of memory");
}

/* ------------------------------------------------------------------------------------------------
 * Chat format: model/text/chat.c renders it; the tokenizer supplies the BOS string.
 * ---------------------------------------------------------------------------------------------- */

int dsv3_tokenizer_chat_kind(const dsv3_tokenizer *t) { return t ? t->chat_kind : CHAT_NONE; }

const char *dsv3_tokenizer_chat_warning(const dsv3_tokenizer *t) {
    return t && t->chat_kind == CHAT_NONE ? t->chat_note : NULL;
}

dsv3_status dsv3_tokenizer_chat_think(const dsv3_tokenizer *t, int think, char **text,
                                      size_t *len, const dsv3_chat_msg *msgs, size_t n_msgs,
                                      int add_generation_prompt, dsv3_err *err) {
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!t) return dsv3_errf(err, DSV3_EINVAL, "tokenizer: chat: NULL argument");
    if (t->chat_kind == CHAT_UNKNOWN) return dsv3_errf(err, DSV3_EUNSUPPORTED, "%s", t->chat_note);
    const char *bos = t->bos_id >= 0 ? dsv3_tokenizer_piece(t, t->bos_id) : "";
    const int kind = t->chat_kind >= 0 ? t->chat_kind : DSV3_CHAT_V3;
    return dsv3_chat_render_kind(kind, think, text, len, bos, msgs, n_msgs, add_generation_prompt,
                                 err);
}

dsv3_status dsv3_tokenizer_chat(const dsv3_tokenizer *t, char **text, size_t *len,
                                const dsv3_chat_msg *msgs, size_t n_msgs, int add_generation_prompt,
                                dsv3_err *err) {
    return dsv3_tokenizer_chat_think(t, -1, text, len, msgs, n_msgs, add_generation_prompt, err);
}
