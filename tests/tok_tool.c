/* tok_tool.c — command-line driver for model/tokenizer, used by tests/test_tokenizer_hf.sh and
 * scripts/bench-tokenizer.
 *
 *   tok_tool encode TOKENIZER CORPUS OUT [--add-special] [--roundtrip]
 *       CORPUS has one text per line, hex-encoded UTF-8. OUT gets one line per text: the ids
 *       separated by spaces, or "ERR <status> <message>". --roundtrip also checks that
 *       decode(encode(text)) == text and exits 1 if any text fails.
 *   tok_tool decode TOKENIZER IDS OUT [--skip-special]
 *       IDS has one id list per line (spaces between ids); OUT gets the hex of each decoded text,
 *       or "ERR <status> <message>".
 *   tok_tool bench TOKENIZER TEXTFILE [--chunk BYTES] [--min-seconds S]
 *       Encodes the file (whole, or in chunks of BYTES) repeatedly for at least S seconds
 *       (default 2) on this thread and prints "bytes=.. tokens=.. seconds=.. MB/s=..".
 *   tok_tool tokens TOKENIZER TEXT
 *       Prints each id and its piece for TEXT (a debugging aid).
 * TOKENIZER is a directory or a tokenizer.json path, as dsv3_tokenizer_open takes. */
#include "model/base/clock.h"
#include "model/text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int die(const char *what, const dsv3_err *err) {
    fprintf(stderr, "tok_tool: %s: %s\n", what, err ? err->msg : "");
    return 2;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes hex line[0..n) into out (capacity >= n/2); returns the byte count or -1. */
static long unhex(const char *line, size_t n, char *out) {
    if (n % 2) return -1;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hexval(line[i]), lo = hexval(line[i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i / 2] = (char)(hi << 4 | lo);
    }
    return (long)(n / 2);
}

static void put_hex(FILE *f, const char *s, size_t n) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        fputc(digits[c >> 4], f);
        fputc(digits[c & 15], f);
    }
    fputc('\n', f);
}

static int has_flag(int argc, char **argv, const char *flag) {
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], flag) == 0) return 1;
    return 0;
}

static const char *flag_value(int argc, char **argv, const char *flag) {
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], flag) == 0) return argv[i + 1];
    return NULL;
}

static int cmd_encode(dsv3_tokenizer *tok, const char *in_path, const char *out_path,
                      int add_special, int roundtrip) {
    FILE *in = fopen(in_path, "rb"), *out = fopen(out_path, "wb");
    if (!in || !out) {
        fprintf(stderr, "tok_tool: cannot open %s or %s\n", in_path, out_path);
        return 2;
    }
    char *line = NULL, *text = NULL;
    size_t cap = 0, text_cap = 0;
    ssize_t n;
    long lineno = 0, bad_roundtrip = 0;
    while ((n = getline(&line, &cap, in)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            n--;
        if ((size_t)n / 2 + 1 > text_cap) {
            text_cap = (size_t)n / 2 + 1;
            text = realloc(text, text_cap);
        }
        long len = unhex(line, (size_t)n, text);
        if (len < 0) {
            fprintf(stderr, "tok_tool: %s:%ld: bad hex\n", in_path, lineno);
            return 2;
        }
        int32_t *ids = NULL;
        size_t n_ids = 0;
        dsv3_err err = {{0}};
        dsv3_status st =
            dsv3_tokenizer_encode(tok, &ids, &n_ids, text, (size_t)len, add_special, &err);
        if (st) {
            fprintf(out, "ERR %s %s\n", dsv3_status_name(st), err.msg);
            continue;
        }
        for (size_t i = 0; i < n_ids; i++)
            fprintf(out, i ? " %d" : "%d", ids[i]);
        fputc('\n', out);
        if (roundtrip) {
            char *back = NULL;
            size_t back_len = 0;
            st = dsv3_tokenizer_decode(tok, &back, &back_len, ids, n_ids, add_special, &err);
            if (st || back_len != (size_t)len || memcmp(back, text, back_len) != 0) {
                if (bad_roundtrip++ < 5)
                    fprintf(stderr, "tok_tool: %s:%ld: decode(encode(text)) != text%s%s\n", in_path,
                            lineno, st ? ": " : "", st ? err.msg : "");
            }
            free(back);
        }
        free(ids);
    }
    free(line);
    free(text);
    fclose(in);
    fclose(out);
    if (roundtrip)
        fprintf(stderr, "tok_tool: round trip: %ld of %ld texts failed\n", bad_roundtrip, lineno);
    return bad_roundtrip ? 1 : 0;
}

static int cmd_decode(dsv3_tokenizer *tok, const char *in_path, const char *out_path,
                      int skip_special) {
    FILE *in = fopen(in_path, "rb"), *out = fopen(out_path, "wb");
    if (!in || !out) {
        fprintf(stderr, "tok_tool: cannot open %s or %s\n", in_path, out_path);
        return 2;
    }
    char *line = NULL;
    size_t cap = 0;
    int32_t *ids = NULL;
    size_t ids_cap = 0;
    while (getline(&line, &cap, in) >= 0) {
        size_t n_ids = 0;
        for (char *p = line, *end; *p && *p != '\n'; p = end) {
            long v = strtol(p, &end, 10);
            if (end == p) break;
            if (n_ids == ids_cap) {
                ids_cap = ids_cap ? ids_cap * 2 : 64;
                ids = realloc(ids, ids_cap * sizeof *ids);
            }
            ids[n_ids++] = (int32_t)v;
        }
        char *text = NULL;
        size_t len = 0;
        dsv3_err err = {{0}};
        dsv3_status st = dsv3_tokenizer_decode(tok, &text, &len, ids, n_ids, skip_special, &err);
        if (st) {
            fprintf(out, "ERR %s %s\n", dsv3_status_name(st), err.msg);
        } else {
            put_hex(out, text, len);
        }
        free(text);
    }
    free(line);
    free(ids);
    fclose(in);
    fclose(out);
    return 0;
}

static int cmd_bench(dsv3_tokenizer *tok, const char *path, size_t chunk, double min_s) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "tok_tool: cannot open %s\n", path);
        return 2;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    if (!text || fread(text, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "tok_tool: cannot read %s\n", path);
        return 2;
    }
    fclose(f);
    if (!chunk) chunk = (size_t)size;
    size_t bytes = 0, tokens = 0;
    double t0 = dsv3_now_s(), t;
    do {
        for (size_t off = 0; off < (size_t)size;) {
            size_t n = (size_t)size - off < chunk ? (size_t)size - off : chunk;
            /* keep chunks on character boundaries */
            while (off + n < (size_t)size && ((unsigned char)text[off + n] & 0xC0) == 0x80)
                n++;
            int32_t *ids = NULL;
            size_t n_ids = 0;
            dsv3_err err = {{0}};
            if (dsv3_tokenizer_encode(tok, &ids, &n_ids, text + off, n, 0, &err))
                return die("encode", &err);
            free(ids);
            bytes += n;
            tokens += n_ids;
            off += n;
        }
        t = dsv3_now_s() - t0;
    } while (t < min_s);
    printf("bytes=%zu tokens=%zu seconds=%.3f MB/s=%.2f bytes/token=%.2f\n", bytes, tokens, t,
           bytes / t / 1e6, tokens ? (double)bytes / tokens : 0.0);
    free(text);
    return 0;
}

static int cmd_tokens(dsv3_tokenizer *tok, const char *text) {
    int32_t *ids = NULL;
    size_t n = 0;
    dsv3_err err = {{0}};
    if (dsv3_tokenizer_encode(tok, &ids, &n, text, strlen(text), 0, &err))
        return die("encode", &err);
    for (size_t i = 0; i < n; i++)
        printf("%d\t%s\n", ids[i], dsv3_tokenizer_piece(tok, ids[i]));
    free(ids);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: tok_tool encode|decode|bench|tokens TOKENIZER ARGS... (see the "
                        "comment at the top of tests/tok_tool.c)\n");
        return 2;
    }
    dsv3_tokenizer *tok = NULL;
    dsv3_err err = {{0}};
    if (dsv3_tokenizer_open(&tok, argv[2], &err)) return die("open", &err);
    int rc = 2;
    if (strcmp(argv[1], "encode") == 0 && argc >= 5) {
        rc = cmd_encode(tok, argv[3], argv[4], has_flag(argc, argv, "--add-special"),
                        has_flag(argc, argv, "--roundtrip"));
    } else if (strcmp(argv[1], "decode") == 0 && argc >= 5) {
        rc = cmd_decode(tok, argv[3], argv[4], has_flag(argc, argv, "--skip-special"));
    } else if (strcmp(argv[1], "bench") == 0) {
        const char *chunk = flag_value(argc, argv, "--chunk");
        const char *min_s = flag_value(argc, argv, "--min-seconds");
        rc = cmd_bench(tok, argv[3], chunk ? (size_t)atol(chunk) : 0, min_s ? atof(min_s) : 2.0);
    } else if (strcmp(argv[1], "tokens") == 0) {
        rc = cmd_tokens(tok, argv[3]);
    } else {
        fprintf(stderr, "tok_tool: unknown command or missing arguments\n");
    }
    dsv3_tokenizer_close(tok);
    return rc;
}
