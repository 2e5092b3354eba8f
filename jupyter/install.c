/* install.c — `dsv3 kernel install`: writes the kernelspec (see install.h).
 *
 * Sections: the logo (pixels, then a minimal PNG encoder: stored deflate blocks, CRC-32 and
 * Adler-32 written out here, so no zlib) → paths → kernel.json → the command.
 */
#define _GNU_SOURCE
#include "jupyter/install.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- logo ------------------ */

/* 5x7 glyphs of "V3", one row per byte, bit 4 = leftmost column. */
static const uint8_t glyph_v[7] = {0x11, 0x11, 0x11, 0x11, 0x0A, 0x0A, 0x04};
static const uint8_t glyph_3[7] = {0x1E, 0x01, 0x01, 0x0E, 0x01, 0x01, 0x1E};

/* White "V3" on a rounded blue square, transparent corners. */
static void draw_logo(uint8_t *rgba, int size) {
    const int r = size / 5, scale = size / 16 > 0 ? size / 16 : 1;
    const int text_w = 11 * scale, text_h = 7 * scale;
    const int x0 = (size - text_w) / 2, y0 = (size - text_h) / 2;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            uint8_t *p = rgba + 4 * ((size_t)y * (size_t)size + (size_t)x);
            int cx = x < r ? r - x : x >= size - r ? x - (size - r - 1) : 0;
            int cy = y < r ? r - y : y >= size - r ? y - (size - r - 1) : 0;
            int inside = cx * cx + cy * cy <= r * r;
            p[0] = 0x4D, p[1] = 0x6B, p[2] = 0xFE, p[3] = inside ? 0xFF : 0x00;
            int gx = (x - x0) / scale, gy = (y - y0) / scale;
            if (x >= x0 && y >= y0 && gx < 11 && gy < 7 && gx != 5) {
                const uint8_t *g = gx < 5 ? glyph_v : glyph_3;
                int col = gx < 5 ? gx : gx - 6;
                if (g[gy] & (0x10 >> col)) p[0] = p[1] = p[2] = 0xFF;
            }
        }
}

static uint32_t crc32_of(const uint8_t *p, size_t n, uint32_t crc) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

/* Appends chunk type+data with its length and CRC at out[*at]. */
static void chunk(uint8_t *out, size_t *at, const char type[4], const uint8_t *data, size_t n) {
    put32(out + *at, (uint32_t)n);
    memcpy(out + *at + 4, type, 4);
    if (n) memcpy(out + *at + 8, data, n);
    put32(out + *at + 8 + n, crc32_of(out + *at + 4, n + 4, 0));
    *at += 12 + n;
}

int dsv3_kernel_logo_png(uint8_t **png, size_t *len, int size) {
    *png = NULL;
    *len = 0;
    if (size < 8 || size > 256) return -1;
    const size_t row = 1 + 4 * (size_t)size, raw_n = row * (size_t)size;
    const size_t blocks = (raw_n + 65534) / 65535;
    const size_t z_n = 2 + raw_n + 5 * blocks + 4;
    uint8_t *rgba = malloc(4 * (size_t)size * (size_t)size), *raw = malloc(raw_n), *z = malloc(z_n);
    uint8_t *out = malloc(8 + 25 + 12 + z_n + 12);
    if (!rgba || !raw || !z || !out) {
        free(rgba), free(raw), free(z), free(out);
        return -1;
    }
    draw_logo(rgba, size);
    for (int y = 0; y < size; y++) { /* filter type 0 (none) per row */
        raw[(size_t)y * row] = 0;
        memcpy(raw + (size_t)y * row + 1, rgba + (size_t)y * 4 * (size_t)size, 4 * (size_t)size);
    }
    /* zlib stream: header, stored blocks (BTYPE 00), Adler-32 */
    size_t zi = 0;
    z[zi++] = 0x78, z[zi++] = 0x01;
    for (size_t off = 0; off < raw_n; off += 65535) {
        size_t n = raw_n - off < 65535 ? raw_n - off : 65535;
        z[zi++] = off + n == raw_n ? 1 : 0;
        z[zi++] = (uint8_t)n, z[zi++] = (uint8_t)(n >> 8);
        z[zi++] = (uint8_t)~n, z[zi++] = (uint8_t)(~n >> 8);
        memcpy(z + zi, raw + off, n);
        zi += n;
    }
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < raw_n; i++) {
        a = (a + raw[i]) % 65521;
        b = (b + a) % 65521;
    }
    put32(z + zi, (b << 16) | a);
    zi += 4;
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    uint8_t ihdr[13];
    put32(ihdr, (uint32_t)size);
    put32(ihdr + 4, (uint32_t)size);
    ihdr[8] = 8, ihdr[9] = 6, ihdr[10] = 0, ihdr[11] = 0, ihdr[12] = 0; /* 8-bit RGBA */
    size_t at = 0;
    memcpy(out, sig, 8);
    at = 8;
    chunk(out, &at, "IHDR", ihdr, sizeof ihdr);
    chunk(out, &at, "IDAT", z, zi);
    chunk(out, &at, "IEND", NULL, 0);
    free(rgba), free(raw), free(z);
    *png = out;
    *len = at;
    return 0;
}

/* ---------------------------------------------------------------- paths ----------------- */

/* mkdir -p; 0 or -1 with errno. */
static int mkdirs(const char *path) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* The data dir of --user (docs/ARCHITECTURE.md, "Jupyter kernel protocol"). */
static int user_data_dir(char *out, size_t cap) {
    const char *jd = getenv("JUPYTER_DATA_DIR"), *xdg = getenv("XDG_DATA_HOME"),
               *home = getenv("HOME");
    int n;
    if (jd && *jd)
        n = snprintf(out, cap, "%s", jd);
    else if (xdg && *xdg)
        n = snprintf(out, cap, "%s/jupyter", xdg);
    else if (home && *home)
        n = snprintf(out, cap, "%s/.local/share/jupyter", home);
    else
        return -1;
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* dsv3-kernel next to the running binary. */
static int default_kernel_path(char *out, size_t cap) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return -1;
    self[n] = 0;
    int k = snprintf(out, cap, "%s/dsv3-kernel", dirname(self));
    return k > 0 && (size_t)k < cap ? 0 : -1;
}

static int write_file(const char *dir, const char *name, const void *data, size_t n) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "dsv3 kernel install: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int ok = fwrite(data, 1, n, f) == n;
    ok &= fclose(f) == 0;
    if (!ok) fprintf(stderr, "dsv3 kernel install: %s: write failed\n", path);
    return ok ? 0 : -1;
}

/* ---------------------------------------------------------------- kernel.json ----------- */

static char *kernel_json(const char *kernel, const char *display_name, const char *mode) {
    cJSON *j = cJSON_CreateObject();
    cJSON *argv = cJSON_AddArrayToObject(j, "argv");
    cJSON_AddItemToArray(argv, cJSON_CreateString(kernel));
    cJSON_AddItemToArray(argv, cJSON_CreateString("-f"));
    cJSON_AddItemToArray(argv, cJSON_CreateString("{connection_file}"));
    cJSON_AddStringToObject(j, "display_name", display_name);
    cJSON_AddStringToObject(j, "language", "lua");
    cJSON_AddStringToObject(j, "interrupt_mode", mode);
    cJSON_AddObjectToObject(j, "env");
    cJSON_AddObjectToObject(j, "metadata");
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    return s;
}

/* ---------------------------------------------------------------- command --------------- */

static int usage(FILE *to, int rc) {
    fprintf(to,
            "usage: dsv3 kernel install [--user | --prefix DIR] [--name NAME]\n"
            "                           [--display-name TEXT] [--interrupt-mode signal|message]\n"
            "                           [--kernel PATH]\n"
            "Installs the Jupyter kernelspec of dsv3-kernel (default: /usr/local/share/jupyter;\n"
            "--user: your Jupyter data dir; --prefix DIR: DIR/share/jupyter).\n");
    return rc;
}

static int valid_name(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '.' || *s == '_'))
            return 0;
    return 1;
}

int dsv3_kernel_cmd(int argc, char **argv) {
    if (argc < 1 || strcmp(argv[0], "install")) {
        if (argc >= 1 && (!strcmp(argv[0], "-h") || !strcmp(argv[0], "--help")))
            return usage(stdout, 0);
        return usage(stderr, 2);
    }
    const char *prefix = NULL, *name = "dsv3", *display = "dsv3 (Lua)", *mode = "signal";
    const char *kernel_arg = NULL;
    int user = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--user"))
            user = 1;
        else if (!strcmp(a, "--prefix") && v)
            prefix = argv[++i];
        else if (!strcmp(a, "--name") && v)
            name = argv[++i];
        else if (!strcmp(a, "--display-name") && v)
            display = argv[++i];
        else if (!strcmp(a, "--interrupt-mode") && v)
            mode = argv[++i];
        else if (!strcmp(a, "--kernel") && v)
            kernel_arg = argv[++i];
        else if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return usage(stdout, 0);
        else
            return usage(stderr, 2);
    }
    if (user && prefix) {
        fprintf(stderr, "dsv3 kernel install: --user and --prefix exclude each other\n");
        return 2;
    }
    if (!valid_name(name)) {
        fprintf(stderr, "dsv3 kernel install: --name \"%s\": use letters, digits, - . _\n", name);
        return 2;
    }
    if (strcmp(mode, "signal") && strcmp(mode, "message")) {
        fprintf(stderr, "dsv3 kernel install: --interrupt-mode must be signal or message\n");
        return 2;
    }
    char kernel[PATH_MAX], base[PATH_MAX], dir[PATH_MAX + 300];
    if (kernel_arg) {
        if (!realpath(kernel_arg, kernel)) {
            fprintf(stderr, "dsv3 kernel install: --kernel %s: %s\n", kernel_arg, strerror(errno));
            return 1;
        }
    } else if (default_kernel_path(kernel, sizeof kernel) != 0) {
        fprintf(stderr, "dsv3 kernel install: cannot find the dsv3 binary's directory\n");
        return 1;
    }
    if (access(kernel, X_OK) != 0)
        fprintf(stderr,
                "dsv3 kernel install: warning: %s is not an executable (build dsv3-kernel)\n",
                kernel);
    if (user) {
        if (user_data_dir(base, sizeof base) != 0) {
            fprintf(stderr,
                    "dsv3 kernel install: --user: no HOME, XDG_DATA_HOME or JUPYTER_DATA_DIR\n");
            return 1;
        }
    } else {
        snprintf(base, sizeof base, "%s/share/jupyter", prefix ? prefix : "/usr/local");
    }
    snprintf(dir, sizeof dir, "%s/kernels/%s", base, name);
    if (mkdirs(dir) != 0) {
        fprintf(stderr, "dsv3 kernel install: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char *json = kernel_json(kernel, display, mode);
    int rc = json ? write_file(dir, "kernel.json", json, strlen(json)) : -1;
    free(json);
    for (int size = 32; size <= 64 && rc == 0; size *= 2) {
        uint8_t *png;
        size_t n;
        char fname[64];
        snprintf(fname, sizeof fname, "logo-%dx%d.png", size, size);
        rc = dsv3_kernel_logo_png(&png, &n, size) == 0 ? write_file(dir, fname, png, n) : -1;
        free(png);
    }
    if (rc != 0) return 1;
    printf("%s\n", dir);
    return 0;
}
