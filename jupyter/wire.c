/* wire.c — framing, signing and parsing of Jupyter messages (see wire.h;
 * docs/ARCHITECTURE.md, "Jupyter kernel protocol").
 *
 * Verification happens on the raw received bytes before any JSON is parsed: a forged or
 * replayed message costs one HMAC and is never looked at further.
 */
#define _GNU_SOURCE
#include "jupyter/wire.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "model/base/utf8.h"

/* ---------------------------------------------------------------- UTF-8 ---------------- */

int dsv3_wire_utf8_valid(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t k = dsv3_utf8_seq_len((const unsigned char *)s + i, n - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

size_t dsv3_wire_cp_to_byte(const char *s, size_t n, size_t cp) {
    size_t i = 0;
    for (size_t c = 0; c < cp && i < n; c++) {
        size_t k = dsv3_utf8_seq_len((const unsigned char *)s + i, n - i);
        i += k ? k : 1;
    }
    return i;
}

size_t dsv3_wire_byte_to_cp(const char *s, size_t n, size_t byte) {
    if (byte > n) byte = n;
    size_t cp = 0;
    for (size_t i = 0; i < byte; cp++) {
        size_t k = dsv3_utf8_seq_len((const unsigned char *)s + i, n - i);
        i += k ? k : 1;
    }
    return cp;
}

char *dsv3_wire_utf8_sanitize(const char *s, size_t n, size_t *out_len) {
    size_t bad = 0;
    for (size_t i = 0; i < n;) {
        size_t k = dsv3_utf8_seq_len((const unsigned char *)s + i, n - i);
        if (!k) bad++;
        i += k ? k : 1;
    }
    char *out = malloc(n + 2 * bad + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = dsv3_utf8_seq_len((const unsigned char *)s + i, n - i);
        if (k) {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    out[o] = 0;
    if (out_len) *out_len = o;
    return out;
}

/* ---------------------------------------------------------------- signing -------------- */

dsv3_status dsv3_wire_auth_init(dsv3_wire_auth *a, const char *key, size_t key_len,
                                const char *scheme, dsv3_err *err) {
    memset(a, 0, sizeof *a);
    if (scheme && *scheme && strcmp(scheme, "hmac-sha256"))
        return dsv3_errf(err, DSV3_EUNSUPPORTED,
                         "wire: signature_scheme \"%s\": only hmac-sha256 is supported", scheme);
    if (sodium_init() < 0) return dsv3_errf(err, DSV3_EUNSUPPORTED, "wire: libsodium cannot start");
    if (key_len) {
        a->key = malloc(key_len);
        a->seen[0] = calloc(2 * DSV3_WIRE_REPLAY_GEN, 32);
        a->seen[1] = calloc(2 * DSV3_WIRE_REPLAY_GEN, 32);
        if (!a->key || !a->seen[0] || !a->seen[1]) {
            free(a->key);
            free(a->seen[0]);
            free(a->seen[1]);
            memset(a, 0, sizeof *a);
            return dsv3_errf(err, DSV3_ENOMEM, "wire: out of memory for the replay history");
        }
        memcpy(a->key, key, key_len);
        a->key_len = key_len;
    }
    pthread_mutex_init(&a->lock, NULL);
    return DSV3_OK;
}

void dsv3_wire_auth_fini(dsv3_wire_auth *a) {
    if (!a) return;
    if (a->key) sodium_memzero(a->key, a->key_len);
    free(a->key);
    free(a->seen[0]);
    free(a->seen[1]);
    pthread_mutex_destroy(&a->lock);
    memset(a, 0, sizeof *a);
}

static void hmac(unsigned char mac[32], const dsv3_wire_auth *a, const dsv3_wire_frame parts[4]) {
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, a->key, a->key_len);
    for (int i = 0; i < 4; i++)
        crypto_auth_hmacsha256_update(&st, parts[i].data, parts[i].len);
    crypto_auth_hmacsha256_final(&st, mac);
}

void dsv3_wire_sign(char hex[65], const dsv3_wire_auth *a, const dsv3_wire_frame parts[4]) {
    hex[0] = 0;
    if (!a->key_len) return;
    unsigned char mac[32];
    hmac(mac, a, parts);
    sodium_bin2hex(hex, 65, mac, sizeof mac);
}

/* ---------------------------------------------------------------- replay history ------- */

static const unsigned char zero_digest[32];

/* Slot of d in table t (open addressing over 2*GEN slots; the digest is uniformly random, so
 * its first bytes are the hash). Returns the slot holding d or the first empty one. */
static size_t slot_of(unsigned char (*t)[32], const unsigned char d[32]) {
    const size_t cap = 2 * DSV3_WIRE_REPLAY_GEN;
    size_t h = ((size_t)d[0] | (size_t)d[1] << 8 | (size_t)d[2] << 16 | (size_t)d[3] << 24) % cap;
    while (memcmp(t[h], zero_digest, 32) && memcmp(t[h], d, 32))
        h = (h + 1) % cap;
    return h;
}

/* 1 if d was seen (reject), else remembers it and returns 0. */
static int seen_before(dsv3_wire_auth *a, const unsigned char d[32]) {
    pthread_mutex_lock(&a->lock);
    int dup = 0;
    for (int g = 0; g < 2 && !dup; g++)
        dup = !memcmp(a->seen[g][slot_of(a->seen[g], d)], d, 32);
    if (!dup) {
        if (a->seen_n == DSV3_WIRE_REPLAY_GEN) { /* the current generation becomes the old one */
            unsigned char(*old)[32] = a->seen[1];
            a->seen[1] = a->seen[0];
            a->seen[0] = old;
            memset(old, 0, 2 * DSV3_WIRE_REPLAY_GEN * 32);
            a->seen_n = 0;
        }
        memcpy(a->seen[0][slot_of(a->seen[0], d)], d, 32);
        a->seen_n++;
    }
    pthread_mutex_unlock(&a->lock);
    return dup;
}

/* ---------------------------------------------------------------- parse ---------------- */

static const char *const part_names[4] = {"header", "parent_header", "metadata", "content"};

static cJSON *parse_object(const dsv3_wire_frame *f, int which, dsv3_err *err) {
    if (!dsv3_wire_utf8_valid(f->data, f->len)) {
        dsv3_errf(err, DSV3_EFORMAT, "wire: %s: not valid UTF-8", part_names[which]);
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(f->data, f->len, &end, 0);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        dsv3_errf(err, DSV3_EFORMAT, "wire: %s: not a JSON object", part_names[which]);
        return NULL;
    }
    /* only whitespace may follow the object */
    for (const char *p = end; p && p < (const char *)f->data + f->len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(j);
            dsv3_errf(err, DSV3_EFORMAT, "wire: %s: trailing bytes after the JSON object",
                      part_names[which]);
            return NULL;
        }
    return j;
}

dsv3_status dsv3_wire_parse(dsv3_wire_msg *msg, dsv3_wire_auth *a, const dsv3_wire_frame *frames,
                            size_t n, dsv3_err *err) {
    memset(msg, 0, sizeof *msg);
    size_t d = 0;
    const size_t dl = sizeof DSV3_WIRE_DELIM - 1;
    while (d < n && !(frames[d].len == dl && !memcmp(frames[d].data, DSV3_WIRE_DELIM, dl)))
        d++;
    if (d == n) return dsv3_errf(err, DSV3_EPROTO, "wire: no <IDS|MSG> delimiter in %zu frames", n);
    if (n - d - 1 < 5)
        return dsv3_errf(err, DSV3_EPROTO, "wire: %zu frames after <IDS|MSG>, need 5", n - d - 1);
    const dsv3_wire_frame *sig = &frames[d + 1], *parts = &frames[d + 2];
    if (a->key_len) {
        if (sig->len != 64)
            return dsv3_errf(err, DSV3_EPROTO, "wire: bad signature (length %zu)", sig->len);
        char want[65];
        dsv3_wire_sign(want, a, parts);
        if (sodium_memcmp(want, sig->data, 64) != 0)
            return dsv3_errf(err, DSV3_EPROTO, "wire: bad signature");
        unsigned char bin[32];
        if (sodium_hex2bin(bin, sizeof bin, sig->data, 64, NULL, NULL, NULL) != 0)
            return dsv3_errf(err, DSV3_EPROTO, "wire: bad signature (not hex)");
        if (seen_before(a, bin)) return dsv3_errf(err, DSV3_EPROTO, "wire: duplicate signature");
    }
    cJSON *j[4] = {0};
    for (int i = 0; i < 4; i++)
        if (!(j[i] = parse_object(&parts[i], i, err))) {
            for (int k = 0; k < i; k++)
                cJSON_Delete(j[k]);
            return DSV3_EFORMAT;
        }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j[0], "msg_type");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j[0], "msg_id");
    if (!cJSON_IsString(type) || !cJSON_IsString(id)) {
        for (int k = 0; k < 4; k++)
            cJSON_Delete(j[k]);
        return dsv3_errf(err, DSV3_EFORMAT, "wire: header: msg_type and msg_id must be strings");
    }
    if (d) {
        msg->ids = calloc(d, sizeof *msg->ids);
        for (size_t i = 0; msg->ids && i < d; i++) {
            void *copy = malloc(frames[i].len ? frames[i].len : 1);
            if (!copy) break;
            memcpy(copy, frames[i].data, frames[i].len);
            msg->ids[i] = (dsv3_wire_frame){copy, frames[i].len};
            msg->n_ids = i + 1;
        }
        if (msg->n_ids != d) {
            for (int k = 0; k < 4; k++)
                cJSON_Delete(j[k]);
            dsv3_wire_msg_fini(msg);
            return dsv3_errf(err, DSV3_ENOMEM, "wire: out of memory for identities");
        }
    }
    msg->header = j[0];
    msg->parent = j[1];
    msg->metadata = j[2];
    msg->content = j[3];
    msg->msg_type = type->valuestring;
    msg->msg_id = id->valuestring;
    return DSV3_OK;
}

void dsv3_wire_msg_fini(dsv3_wire_msg *msg) {
    if (!msg) return;
    for (size_t i = 0; i < msg->n_ids; i++)
        free((void *)msg->ids[i].data);
    free(msg->ids);
    cJSON_Delete(msg->header);
    cJSON_Delete(msg->parent);
    cJSON_Delete(msg->metadata);
    cJSON_Delete(msg->content);
    memset(msg, 0, sizeof *msg);
}

/* ---------------------------------------------------------------- encode --------------- */

/* Compact JSON of j ({} for NULL), with invalid UTF-8 replaced. */
static char *print_json(const cJSON *j, size_t *len) {
    if (!j) {
        char *e = strdup("{}");
        if (e) *len = 2;
        return e;
    }
    char *raw = cJSON_PrintUnformatted(j);
    if (!raw) return NULL;
    size_t n = strlen(raw);
    if (dsv3_wire_utf8_valid(raw, n)) {
        *len = n;
        return raw;
    }
    char *clean = dsv3_wire_utf8_sanitize(raw, n, len);
    cJSON_free(raw);
    return clean;
}

void dsv3_wire_out_fini(dsv3_wire_out *out) {
    if (!out) return;
    for (size_t i = 0; i < out->n; i++)
        free((void *)out->frames[i].data);
    free(out->frames);
    memset(out, 0, sizeof *out);
}

static void *dup_bytes(const void *p, size_t n) {
    void *d = malloc(n ? n : 1);
    if (d && n) memcpy(d, p, n);
    return d;
}

dsv3_status dsv3_wire_encode(dsv3_wire_out *out, const dsv3_wire_auth *a,
                             const dsv3_wire_frame *ids, size_t n_ids, const cJSON *header,
                             const cJSON *parent, const cJSON *metadata, const cJSON *content,
                             dsv3_err *err) {
    memset(out, 0, sizeof *out);
    out->frames = calloc(n_ids + 6, sizeof *out->frames);
    if (!out->frames) return dsv3_errf(err, DSV3_ENOMEM, "wire: out of memory");
    int ok = 1;
    for (size_t i = 0; i < n_ids && ok; i++) {
        out->frames[out->n] = (dsv3_wire_frame){dup_bytes(ids[i].data, ids[i].len), ids[i].len};
        ok = out->frames[out->n++].data != NULL;
    }
    const size_t dl = sizeof DSV3_WIRE_DELIM - 1;
    if (ok) {
        out->frames[out->n] = (dsv3_wire_frame){dup_bytes(DSV3_WIRE_DELIM, dl), dl};
        ok = out->frames[out->n++].data != NULL;
    }
    size_t sig_at = out->n++;
    const cJSON *parts[4] = {header, parent, metadata, content};
    for (int i = 0; i < 4 && ok; i++) {
        size_t len = 0;
        char *s = print_json(parts[i], &len);
        out->frames[out->n++] = (dsv3_wire_frame){s, len};
        ok = s != NULL;
    }
    char hex[65];
    if (ok) {
        dsv3_wire_sign(hex, a, &out->frames[sig_at + 1]);
        out->frames[sig_at] = (dsv3_wire_frame){dup_bytes(hex, strlen(hex)), strlen(hex)};
        ok = out->frames[sig_at].data != NULL;
    }
    if (!ok) {
        dsv3_wire_out_fini(out);
        return dsv3_errf(err, DSV3_ENOMEM, "wire: out of memory");
    }
    return DSV3_OK;
}

/* ---------------------------------------------------------------- headers -------------- */

void dsv3_wire_uuid(char out[37]) {
    unsigned char b[16];
    randombytes_buf(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

cJSON *dsv3_wire_header_new(const char *session, const char *msg_type, uint64_t counter) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char date[96], id[160];
    snprintf(date, sizeof date, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec);
    snprintf(id, sizeof id, "%.100s_%llu", session, (unsigned long long)counter);
    cJSON *h = cJSON_CreateObject();
    if (!h || !cJSON_AddStringToObject(h, "msg_id", id) ||
        !cJSON_AddStringToObject(h, "msg_type", msg_type) ||
        !cJSON_AddStringToObject(h, "username", "dsv3") ||
        !cJSON_AddStringToObject(h, "session", session) ||
        !cJSON_AddStringToObject(h, "date", date) ||
        !cJSON_AddStringToObject(h, "version", DSV3_WIRE_PROTOCOL_VERSION)) {
        cJSON_Delete(h);
        return NULL;
    }
    return h;
}
