/* wire.h — Jupyter messages on the wire: framing, HMAC-SHA256 signing and parsing.
 *
 * Owns the byte-level format of docs/ARCHITECTURE.md, "Jupyter kernel protocol": the routing
 * identities, the "<IDS|MSG>" delimiter, the hex signature over header ‖ parent_header ‖ metadata ‖
 * content, and the four JSON frames. It signs and verifies with libsodium (constant-time
 * comparison), rejects replayed signatures, parses the JSON into cJSON objects and serialises them
 * back as valid UTF-8. It knows nothing of sockets (jupyter/server) or of what a message means
 * (jupyter/handlers): frames come in and go out as plain byte arrays.
 * Thread rules: a dsv3_wire_auth may be shared by threads (its replay history is locked);
 * messages and frame lists belong to one thread.
 */
#ifndef DSV3_JUPYTER_WIRE_H
#define DSV3_JUPYTER_WIRE_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "model/base/status.h"

#define DSV3_WIRE_DELIM "<IDS|MSG>"
#define DSV3_WIRE_PROTOCOL_VERSION "5.3"

/* One frame of a multipart message: a view of bytes the caller owns. */
typedef struct {
    const void *data;
    size_t len;
} dsv3_wire_frame;

/* Signatures remembered to reject replays: two generations of DSV3_WIRE_REPLAY_GEN entries
 * each (a full generation becomes the old one), so at least the last DSV3_WIRE_REPLAY_GEN
 * accepted signatures are always known. */
#define DSV3_WIRE_REPLAY_GEN 16384

/* The connection's signing key and replay history. */
typedef struct {
    unsigned char *key;   /* key bytes (the connection file's string, not decoded); NULL if empty */
    size_t key_len;       /* 0: signing disabled, signatures are "" and not checked */
    pthread_mutex_t lock; /* guards the replay tables */
    unsigned char (*seen[2])[32]; /* 2 open-addressed tables of 2*GEN binary digests */
    size_t seen_n;                /* entries in seen[0], the current generation */
} dsv3_wire_auth;

/* Sets up signing with key (key_len bytes; 0 disables signing) and scheme, which must be
 * "hmac-sha256" (NULL or "" also mean it). Returns DSV3_OK, DSV3_EUNSUPPORTED for another
 * scheme, DSV3_ENOMEM. On failure *a needs no fini. */
dsv3_status dsv3_wire_auth_init(dsv3_wire_auth *a, const char *key, size_t key_len,
                                const char *scheme, dsv3_err *err);
/* Wipes the key (sodium_memzero) and frees the tables; NULL is a no-op. */
void dsv3_wire_auth_fini(dsv3_wire_auth *a);

/* hex = lowercase hex HMAC-SHA256 of the four parts concatenated, NUL-terminated (64 chars);
 * "" when signing is disabled. */
void dsv3_wire_sign(char hex[65], const dsv3_wire_auth *a, const dsv3_wire_frame parts[4]);

/* A parsed message. Identities are copies of the routing frames before the delimiter. */
typedef struct {
    size_t n_ids;
    dsv3_wire_frame *ids; /* n_ids malloc'd copies (data malloc'd), or NULL */
    cJSON *header;        /* JSON object */
    cJSON *parent;        /* parent_header, JSON object */
    cJSON *metadata;      /* JSON object */
    cJSON *content;       /* JSON object */
    const char *msg_type; /* header.msg_type, points into header */
    const char *msg_id;   /* header.msg_id, points into header */
} dsv3_wire_msg;

/* Parses and verifies the n frames of a received message into *msg. Steps: find the first
 * "<IDS|MSG>" frame (EPROTO if none); require at least 5 frames after it (EPROTO); when a key
 * is set, require a 64-byte signature equal, in constant time, to the HMAC of the four JSON
 * frames (EPROTO "bad signature"), then reject a signature seen before (EPROTO "duplicate
 * signature") and remember it; require each JSON frame to be valid UTF-8 and a JSON object
 * (EFORMAT), and the header to hold string msg_type and msg_id (EFORMAT). Frames after the
 * four JSON frames (buffers) are ignored. Nothing is parsed before the signature checks out.
 * On failure *msg is zeroed and needs no fini; err says why. */
dsv3_status dsv3_wire_parse(dsv3_wire_msg *msg, dsv3_wire_auth *a, const dsv3_wire_frame *frames,
                            size_t n, dsv3_err *err);
/* Frees what dsv3_wire_parse made; NULL or a zeroed message is a no-op. */
void dsv3_wire_msg_fini(dsv3_wire_msg *msg);

/* A message to send: all frames, malloc'd, in order. */
typedef struct {
    size_t n;
    dsv3_wire_frame
        *frames; /* identities, delimiter, signature, header, parent, metadata, content */
} dsv3_wire_out;

/* Serialises and signs a message: ids (may be NULL), then the delimiter, the signature and the
 * four JSON objects (parent and metadata may be NULL for {}). JSON is printed compactly and
 * any invalid UTF-8 inside strings becomes U+FFFD before signing. Returns DSV3_OK or
 * DSV3_ENOMEM (then *out is zeroed). */
dsv3_status dsv3_wire_encode(dsv3_wire_out *out, const dsv3_wire_auth *a,
                             const dsv3_wire_frame *ids, size_t n_ids, const cJSON *header,
                             const cJSON *parent, const cJSON *metadata, const cJSON *content,
                             dsv3_err *err);
void dsv3_wire_out_fini(dsv3_wire_out *out);

/* A new header object {msg_id, msg_type, username, session, date, version}: msg_id is
 * "<session>_<counter>", date is UTC ISO 8601 with microseconds and "Z". NULL on ENOMEM. */
cJSON *dsv3_wire_header_new(const char *session, const char *msg_type, uint64_t counter);

/* A random UUID4 string (36 chars + NUL), from libsodium's randombytes. */
void dsv3_wire_uuid(char out[37]);

/* ---- UTF-8 helpers (Jupyter counts cursor positions in code points) ---- */

/* 1 if s[0..n) is valid UTF-8 (no overlongs, surrogates, or code points past U+10FFFF). */
int dsv3_wire_utf8_valid(const char *s, size_t n);
/* Byte offset of code point index cp in s (clamped to n); invalid bytes count as one each. */
size_t dsv3_wire_cp_to_byte(const char *s, size_t n, size_t cp);
/* Number of code points in s[0..byte) (byte clamped to n). */
size_t dsv3_wire_byte_to_cp(const char *s, size_t n, size_t byte);
/* A malloc'd NUL-terminated copy of s[0..n) with each invalid byte replaced by U+FFFD and NUL
 * bytes kept; *out_len gets its length (may be NULL). NULL on ENOMEM. */
char *dsv3_wire_utf8_sanitize(const char *s, size_t n, size_t *out_len);

#endif
