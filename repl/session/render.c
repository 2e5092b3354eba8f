/* render.c — text, HTML and JSON renderings of session values (see render.h).
 *
 * Output is built in a growable C buffer boxed in a userdata (so a Lua error raised half-way,
 * by a __tostring or an allocation, frees it through __gc), and pushed as one Lua string at the
 * end. Every piece of user text goes through add_escaped, the one escaping function.
 */
#include "repl/session/render.h"

#include <lauxlib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/base/utf8.h"
#include "repl/session/luax.h"

/* Metatables of the values made by lua_api.c (its MT_* names). */
#define MT_INFO "dsv3.info"
#define MT_TOKENS "dsv3.tokens"
#define MT_GEN "dsv3.gen"
#define MT_LOGITS "dsv3.logits"
#define MT_BUF "dsv3.render.buf"

enum { MAX_DEPTH = 32, MAX_ROWS = 500, MAX_COLS = 16, MAX_TOKENS_SHOWN = 200 };

static const char *const mimes[DSV3_RENDER_FORMS] = {"text/plain", "text/html", "image/svg+xml",
                                                     "application/json"};

const char *dsv3_render_mime(dsv3_render_form form) {
    return (unsigned)form < DSV3_RENDER_FORMS ? mimes[form] : NULL;
}

int dsv3_render_form_of(const char *mime) {
    for (int i = 0; mime && i < DSV3_RENDER_FORMS; i++)
        if (!strcmp(mime, mimes[i])) return i;
    return -1;
}

/* ---------------------------------------------------------------- output buffer -------- */

typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static int sbuf_gc(lua_State *L) {
    sbuf *b = luaL_checkudata(L, 1, MT_BUF);
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
    return 0;
}

/* Pushes a new empty buffer box. */
static sbuf *sbuf_push(lua_State *L) {
    sbuf *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    if (luaL_newmetatable(L, MT_BUF)) {
        lua_pushcfunction(L, sbuf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return b;
}

static void add(lua_State *L, sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t nc = (b->n + n + 1) * 2;
        char *np = realloc(b->p, nc);
        if (!np) luaL_error(L, "render: out of memory");
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void adds(lua_State *L, sbuf *b, const char *s) {
    add(L, b, s, strlen(s));
}

static void addf(lua_State *L, sbuf *b, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void addf(lua_State *L, sbuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k > 0) add(L, b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

/* ---------------------------------------------------------------- escaping ------------- */


/* The one escaping function. HTML: & < > " ' become entities. JSON (string body, without
 * the quotes): " \ and control characters are escaped. Both: invalid UTF-8 bytes become
 * U+FFFD, so the output is always valid UTF-8. */
static void add_escaped(lua_State *L, sbuf *b, const char *str, size_t n, dsv3_render_form form) {
    const unsigned char *s = (const unsigned char *)str;
    size_t run = 0; /* start of the pending run of bytes copied as they are */
    for (size_t i = 0; i < n;) {
        const char *rep = NULL;
        char tmp[8];
        size_t len = dsv3_utf8_seq_len(s + i, n - i);
        if (!len)
            rep = "\xEF\xBF\xBD";
        else if (form == DSV3_RENDER_HTML) {
            switch (s[i]) {
            case '&':
                rep = "&amp;";
                break;
            case '<':
                rep = "&lt;";
                break;
            case '>':
                rep = "&gt;";
                break;
            case '"':
                rep = "&quot;";
                break;
            case '\'':
                rep = "&#39;";
                break;
            }
        } else if (form == DSV3_RENDER_JSON) {
            if (s[i] == '"')
                rep = "\\\"";
            else if (s[i] == '\\')
                rep = "\\\\";
            else if (s[i] == '\n')
                rep = "\\n";
            else if (s[i] == '\t')
                rep = "\\t";
            else if (s[i] == '\r')
                rep = "\\r";
            else if (s[i] < 0x20 || s[i] == 0x7F) {
                snprintf(tmp, sizeof tmp, "\\u%04x", s[i]);
                rep = tmp;
            }
        }
        if (rep) {
            add(L, b, str + run, i - run);
            adds(L, b, rep);
            i += len ? len : 1;
            run = i;
        } else {
            i += len;
        }
    }
    add(L, b, str + run, n - run);
}

/* tostring(value at idx), escaped for form. */
static void add_value(lua_State *L, sbuf *b, int idx, dsv3_render_form form) {
    size_t n;
    const char *s = luaL_tolstring(L, idx, &n);
    add_escaped(L, b, s, n, form);
    lua_pop(L, 1);
}

/* ---------------------------------------------------------------- value helpers -------- */

static int has_mt(lua_State *L, int idx, const char *name) {
    if (!lua_getmetatable(L, idx)) return 0;
    luaL_getmetatable(L, name);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}

static int has_any_mt(lua_State *L, int idx) {
    if (!lua_getmetatable(L, idx)) return 0;
    lua_pop(L, 1);
    return 1;
}

static int is_scalar(int t) {
    return t == LUA_TNUMBER || t == LUA_TSTRING || t == LUA_TBOOLEAN;
}

static lua_Integer int_field(lua_State *L, int idx, const char *k) {
    lua_getfield(L, idx, k);
    lua_Integer v = lua_tointeger(L, -1);
    lua_pop(L, 1);
    return v;
}

static lua_Number num_field(lua_State *L, int idx, const char *k) {
    lua_getfield(L, idx, k);
    lua_Number v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

/* A number as a table cell: integers exactly, floats with 4 significant digits. */
static void add_number(lua_State *L, sbuf *b, int idx) {
    if (lua_isinteger(L, idx))
        addf(L, b, "%lld", (long long)lua_tointeger(L, idx));
    else
        addf(L, b, "%.4g", (double)lua_tonumber(L, idx));
}

static void add_summary(lua_State *L, sbuf *b, int idx, lua_Integer items);

/* A value as an HTML table cell: numbers as add_number, tables and values of other modules
 * as their one-line summary. */
static void add_cell(lua_State *L, sbuf *b, int idx) {
    int t = lua_type(L, idx);
    if (t == LUA_TNUMBER) {
        add_number(L, b, idx);
    } else if (is_scalar(t) || t == LUA_TNIL) {
        add_value(L, b, idx, DSV3_RENDER_HTML);
    } else {
        idx = lua_absindex(L, idx);
        sbuf *tmp = sbuf_push(L);
        add_summary(L, tmp, idx, 8);
        add_escaped(L, b, tmp->p ? tmp->p : "", tmp->n, DSV3_RENDER_HTML);
        lua_pop(L, 1);
    }
}

static void add_human(lua_State *L, sbuf *b, double v) {
    if (v >= 1e9)
        addf(L, b, "%.2fB", v / 1e9);
    else if (v >= 1e6)
        addf(L, b, "%.2fM", v / 1e6);
    else if (v >= 1e3)
        addf(L, b, "%.1fK", v / 1e3);
    else
        addf(L, b, "%.0f", v);
}

/* Sorted string keys of the table at idx, pushed as a new array table; returns their count,
 * or -1 (nothing pushed) if the table has a key that is not a string. */
static int sorted_keys(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    lua_newtable(L);
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 2);
            return -1;
        }
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, ++n);
    }
    /* insertion sort: tables here are small (records, rows) */
    for (int i = 2; i <= n; i++) {
        for (int j = i; j > 1; j--) {
            lua_rawgeti(L, -1, j - 1);
            lua_rawgeti(L, -2, j);
            int swap = strcmp(lua_tostring(L, -2), lua_tostring(L, -1)) > 0;
            if (swap) {
                lua_rawseti(L, -3, j - 1);
                lua_rawseti(L, -2, j);
            } else {
                lua_pop(L, 2);
                break;
            }
        }
    }
    return n;
}

/* Number of entries of the table at idx if they are exactly 1..n (n >= 1), else 0. */
static lua_Integer array_len(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
            lua_pop(L, 1);
            return 0;
        }
        count++;
    }
    return count == n ? n : 0;
}

/* 1 if the table at idx has only string keys (at least one) and scalar values. */
static int is_record(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int ok = lua_type(L, -2) == LUA_TSTRING && is_scalar(lua_type(L, -1));
        lua_pop(L, 1);
        if (!ok) {
            lua_pop(L, 1);
            return 0;
        }
        n++;
    }
    return n > 0;
}

/* ---------------------------------------------------------------- plain tables --------- */

/* What the API returns as plain Lua tables (r:token(2), bias(1), capture(...), norms(), ...)
 * is shown as a grid of one-line cells: arrays of records as rows under their field names,
 * arrays of arrays of numbers as a matrix, records as key/value rows, and anything nested
 * deeper summarised in its cell ("{16 items}"). Text aligns the grid in columns, HTML makes
 * a table of it; both go through the same grid, so they show the same thing. */

enum { CELL_ITEMS = 8, LINE_ITEMS = 32, CELL_BYTES = 60 };

static int is_plain(lua_State *L, int idx) {
    return lua_type(L, idx) == LUA_TTABLE && !has_any_mt(L, idx);
}

/* 1 if the value at idx is a plain table with keys but no array part 1..n. */
static int is_map(lua_State *L, int idx) {
    if (!is_plain(L, idx)) return 0;
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    if (!lua_next(L, idx)) return 0;
    lua_pop(L, 2);
    return array_len(L, idx) == 0;
}

/* A number as text: integers exactly, floats with 4 significant digits. */
static void add_num(lua_State *L, sbuf *b, int idx) {
    if (lua_isinteger(L, idx))
        addf(L, b, "%lld", (long long)lua_tointeger(L, idx));
    else
        addf(L, b, "%.4g", (double)lua_tonumber(L, idx));
}

/* 1 if every entry 1..n of the array at idx is a scalar (number, string, boolean). */
static int all_scalars(lua_State *L, int idx, lua_Integer n) {
    for (lua_Integer i = 1; i <= n; i++) {
        int t = lua_rawgeti(L, idx, i);
        lua_pop(L, 1);
        if (!is_scalar(t)) return 0;
    }
    return 1;
}

/* The value at idx in one line: scalars as they are (floats at 4 digits), short arrays of
 * scalars inline ("{6, 7, 15, 14}"), other tables by their size, values of other modules by
 * the first line of their text, cut to CELL_BYTES. */
static void add_summary(lua_State *L, sbuf *b, int idx, lua_Integer items) {
    idx = lua_absindex(L, idx);
    int t = lua_type(L, idx);
    if (t == LUA_TNUMBER) {
        add_num(L, b, idx);
    } else if (t == LUA_TTABLE && !has_any_mt(L, idx)) {
        lua_Integer n = array_len(L, idx);
        if (n > 0 && all_scalars(L, idx, n)) {
            adds(L, b, "{");
            for (lua_Integer i = 1; i <= n && i <= items; i++) {
                if (i > 1) adds(L, b, ", ");
                lua_rawgeti(L, idx, i);
                add_summary(L, b, -1, 0);
                lua_pop(L, 1);
            }
            if (n > items) addf(L, b, ", … %lld items", (long long)n);
            adds(L, b, "}");
        } else if (n > 0) {
            addf(L, b, "{%lld items}", (long long)n);
        } else {
            int k = 0;
            lua_pushnil(L);
            while (lua_next(L, idx)) lua_pop(L, 1), k++;
            if (k) addf(L, b, "{%d field%s}", k, k == 1 ? "" : "s");
            else adds(L, b, "{}");
        }
    } else {
        size_t n;
        const char *s = luaL_tolstring(L, idx, &n);
        const char *nl = memchr(s, '\n', n);
        size_t cut = nl ? (size_t)(nl - s) : n;
        if (cut > CELL_BYTES) {
            cut = CELL_BYTES;
            while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--; /* whole characters */
        }
        add(L, b, s, cut);
        if (cut < n) adds(L, b, " …");
        lua_pop(L, 1);
    }
}

/* Appends the summary of the value at idx as a new string to the array at row. */
static void grid_cell(lua_State *L, int row, int idx) {
    idx = lua_absindex(L, idx);
    sbuf *b = sbuf_push(L);
    add_summary(L, b, idx, CELL_ITEMS);
    lua_pushlstring(L, b->p ? b->p : "", b->n);
    lua_rawseti(L, row, (lua_Integer)lua_rawlen(L, row) + 1);
    lua_pop(L, 1);
}

static void grid_text_cell(lua_State *L, int row, const char *s) {
    lua_pushstring(L, s);
    lua_rawseti(L, row, (lua_Integer)lua_rawlen(L, row) + 1);
}

/* Pushes the keys of the table at idx, sorted by their text, as an array. */
static void push_sorted_keys(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    lua_newtable(L);
    int keys = lua_gettop(L), n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, ++n);
    }
    for (int i = 2; i <= n; i++) /* insertion sort; integer keys numerically, before strings */
        for (int j = i; j > 1; j--) {
            lua_rawgeti(L, keys, j - 1);
            lua_rawgeti(L, keys, j);
            int swap;
            if (lua_type(L, -2) == LUA_TNUMBER && lua_type(L, -1) == LUA_TNUMBER)
                swap = lua_compare(L, -1, -2, LUA_OPLT);
            else if (lua_type(L, -2) == LUA_TNUMBER || lua_type(L, -1) == LUA_TNUMBER)
                swap = lua_type(L, -2) != LUA_TNUMBER;
            else {
                const char *x = luaL_tolstring(L, -2, NULL), *y = luaL_tolstring(L, -2, NULL);
                swap = strcmp(x, y) > 0;
                lua_pop(L, 2);
            }
            if (!swap) {
                lua_pop(L, 2);
                break;
            }
            lua_rawseti(L, keys, j - 1);
            lua_rawseti(L, keys, j);
        }
}

/* Pushes the grid of the plain table at idx: {rows..., head = 1 (row 1 is a header),
 * more = rows left out}, every cell a string, the first column the row's index or key. */
static void push_grid(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    lua_newtable(L);
    int g = lua_gettop(L);
    lua_Integer n = array_len(L, idx), shown = n < MAX_ROWS ? n : MAX_ROWS;
    int records = n > 0, matrix = n > 0;
    lua_Integer width = 0;
    for (lua_Integer i = 1; i <= n && (records || matrix); i++) {
        lua_rawgeti(L, idx, i);
        lua_Integer m = is_plain(L, -1) ? array_len(L, -1) : 0;
        records = records && m == 0 && is_map(L, -1);
        matrix = matrix && m > 0 && m <= MAX_COLS && all_scalars(L, lua_gettop(L), m);
        if (m > width) width = m;
        lua_pop(L, 1);
    }
    if (records) { /* columns: the union of the records' keys */
        lua_newtable(L);
        int set = lua_gettop(L);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            lua_pushnil(L);
            while (lua_next(L, -2)) {
                lua_pop(L, 1);
                lua_pushvalue(L, -1);
                lua_pushboolean(L, 1);
                lua_rawset(L, set);
            }
            lua_pop(L, 1);
        }
        push_sorted_keys(L, set);
        int cols = lua_gettop(L);
        lua_Integer nc = (lua_Integer)lua_rawlen(L, cols);
        if (nc > MAX_COLS) nc = MAX_COLS;
        lua_newtable(L);
        grid_text_cell(L, lua_gettop(L), "#");
        for (lua_Integer c = 1; c <= nc; c++) {
            lua_rawgeti(L, cols, c);
            grid_cell(L, cols + 1, -1);
            lua_pop(L, 1);
        }
        lua_rawseti(L, g, 1);
        for (lua_Integer i = 1; i <= shown; i++) {
            lua_newtable(L);
            int row = lua_gettop(L);
            lua_pushinteger(L, i);
            grid_cell(L, row, -1);
            lua_pop(L, 1);
            lua_rawgeti(L, idx, i);
            for (lua_Integer c = 1; c <= nc; c++) {
                lua_rawgeti(L, cols, c);
                lua_rawget(L, -2);
                if (lua_isnil(L, -1)) grid_text_cell(L, row, "");
                else grid_cell(L, row, -1);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
            lua_rawseti(L, g, i + 1);
        }
        lua_pop(L, 2);
        lua_pushboolean(L, 1);
        lua_setfield(L, g, "head");
    } else if (matrix) { /* rows of numbers under their column index */
        lua_newtable(L);
        grid_text_cell(L, lua_gettop(L), "");
        for (lua_Integer c = 1; c <= width; c++) {
            lua_pushinteger(L, c);
            grid_cell(L, g + 1, -1);
            lua_pop(L, 1);
        }
        lua_rawseti(L, g, 1);
        for (lua_Integer i = 1; i <= shown; i++) {
            lua_newtable(L);
            int row = lua_gettop(L);
            lua_pushinteger(L, i);
            grid_cell(L, row, -1);
            lua_pop(L, 1);
            lua_rawgeti(L, idx, i);
            for (lua_Integer c = 1; c <= width; c++) {
                lua_rawgeti(L, -1, c);
                if (lua_isnil(L, -1)) grid_text_cell(L, row, "");
                else grid_cell(L, row, -1);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
            lua_rawseti(L, g, i + 1);
        }
        lua_pushboolean(L, 1);
        lua_setfield(L, g, "head");
    } else { /* key (or index) and value */
        push_sorted_keys(L, idx);
        int keys = lua_gettop(L);
        lua_Integer nk = (lua_Integer)lua_rawlen(L, keys);
        shown = nk < MAX_ROWS ? nk : MAX_ROWS;
        n = nk;
        for (lua_Integer i = 1; i <= shown; i++) {
            lua_newtable(L);
            int row = lua_gettop(L);
            lua_rawgeti(L, keys, i);
            grid_cell(L, row, -1);
            lua_rawget(L, idx);
            grid_cell(L, row, -1);
            lua_pop(L, 1);
            lua_rawseti(L, g, i);
        }
        lua_pop(L, 1);
    }
    lua_pushinteger(L, n - shown);
    lua_setfield(L, g, "more");
}

/* Display width of UTF-8 text: its code points. */
static size_t text_width(const char *s, size_t n) {
    size_t w = 0;
    for (size_t i = 0; i < n; i++) w += ((unsigned char)s[i] & 0xC0) != 0x80;
    return w;
}

static int looks_numeric(const char *s) {
    if (*s == '-') s++;
    return (*s >= '0' && *s <= '9') || (*s == '.' && s[1] >= '0' && s[1] <= '9');
}

/* The plain table at idx as text: an array of scalars on one line ("{1, 2, 3}", the first
 * LINE_ITEMS), anything else as its grid in aligned columns. */
static void plain_text(lua_State *L, sbuf *b, int idx) {
    idx = lua_absindex(L, idx);
    lua_Integer n = array_len(L, idx);
    if (n > 0 && all_scalars(L, idx, n)) {
        add_summary(L, b, idx, LINE_ITEMS);
        return;
    }
    if (n == 0) {
        lua_pushnil(L);
        if (!lua_next(L, idx)) {
            adds(L, b, "{}");
            return;
        }
        lua_pop(L, 2);
    }
    push_grid(L, idx);
    int g = lua_gettop(L);
    lua_Integer rows = (lua_Integer)lua_rawlen(L, g);
    size_t width[MAX_COLS + 2] = {0};
    for (lua_Integer r = 1; r <= rows; r++) {
        lua_rawgeti(L, g, r);
        lua_Integer nc = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer c = 1; c <= nc && c <= MAX_COLS + 1; c++) {
            size_t len;
            lua_rawgeti(L, -1, c);
            const char *s = lua_tolstring(L, -1, &len);
            size_t w = text_width(s, len);
            if (w > width[c]) width[c] = w;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    for (lua_Integer r = 1; r <= rows; r++) {
        lua_rawgeti(L, g, r);
        lua_Integer nc = (lua_Integer)lua_rawlen(L, -1);
        size_t pending = 0; /* spaces owed before the next cell (no trailing blanks) */
        for (lua_Integer c = 1; c <= nc && c <= MAX_COLS + 1; c++) {
            size_t len;
            lua_rawgeti(L, -1, c);
            const char *s = lua_tolstring(L, -1, &len);
            size_t pad = width[c] - text_width(s, len);
            int right = c > 1 && looks_numeric(s);
            if (right) pending += pad;
            for (size_t k = 0; k < pending; k++) add(L, b, " ", 1);
            add(L, b, s, len);
            pending = (right ? 0 : pad) + 2;
            lua_pop(L, 1);
        }
        if (r < rows) add(L, b, "\n", 1);
        lua_pop(L, 1);
    }
    lua_Integer more = int_field(L, g, "more");
    if (more > 0) addf(L, b, "\n… %lld more", (long long)more);
    lua_pop(L, 1);
}

/* The plain table at idx as an HTML table of its grid (an array of scalars: one row). */
static void plain_html(lua_State *L, sbuf *b, int idx) {
    idx = lua_absindex(L, idx);
    lua_Integer n = array_len(L, idx);
    if (n > 0 && n <= LINE_ITEMS && all_scalars(L, idx, n)) {
        adds(L, b, "<table class=\"dsv3-array\"><tr>");
        for (lua_Integer i = 1; i <= n; i++) addf(L, b, "<th>%lld</th>", (long long)i);
        adds(L, b, "</tr><tr>");
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            adds(L, b, "<td>");
            add_cell(L, b, -1);
            adds(L, b, "</td>");
            lua_pop(L, 1);
        }
        adds(L, b, "</tr></table>");
        return;
    }
    push_grid(L, idx);
    int g = lua_gettop(L);
    lua_getfield(L, g, "head");
    int head = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_Integer rows = (lua_Integer)lua_rawlen(L, g);
    adds(L, b, "<table class=\"dsv3-rows\">");
    for (lua_Integer r = 1; r <= rows; r++) {
        lua_rawgeti(L, g, r);
        lua_Integer nc = (lua_Integer)lua_rawlen(L, -1);
        adds(L, b, "<tr>");
        for (lua_Integer c = 1; c <= nc; c++) {
            size_t len;
            lua_rawgeti(L, -1, c);
            const char *s = lua_tolstring(L, -1, &len);
            int th = (head && r == 1) || c == 1;
            adds(L, b, th ? "<th style=\"text-align:left\">" : "<td>");
            add_escaped(L, b, s, len, DSV3_RENDER_HTML);
            adds(L, b, th ? "</th>" : "</td>");
            lua_pop(L, 1);
        }
        adds(L, b, "</tr>");
        lua_pop(L, 1);
    }
    lua_Integer more = int_field(L, g, "more");
    if (more > 0) addf(L, b, "<tr><td colspan=\"%d\">… %lld more</td></tr>", MAX_COLS + 1, (long long)more);
    adds(L, b, "</table>");
    lua_pop(L, 1);
}

/* ---------------------------------------------------------------- HTML ----------------- */

static void row2(lua_State *L, sbuf *b, const char *key, int vidx) {
    adds(L, b, "<tr><th style=\"text-align:left\">");
    add_escaped(L, b, key, strlen(key), DSV3_RENDER_HTML);
    adds(L, b, "</th><td style=\"text-align:left\">");
    add_cell(L, b, vidx);
    adds(L, b, "</td></tr>");
}

static void info_html(lua_State *L, sbuf *b, int idx) {
    static const char *const keys[] = {"vocab_size",
                                       "hidden_size",
                                       "layers",
                                       "dense_layers",
                                       "moe_layers",
                                       "heads",
                                       "q_lora_rank",
                                       "kv_lora_rank",
                                       "qk_nope_head_dim",
                                       "qk_rope_head_dim",
                                       "v_head_dim",
                                       "routed_experts",
                                       "experts_per_token",
                                       "groups",
                                       "topk_group",
                                       "shared_experts",
                                       "max_position_embeddings",
                                       "mtp",
                                       "yarn",
                                       "file_bytes",
                                       "cache_bytes_per_token",
                                       "mha_cache_bytes_per_token",
                                       NULL};
    static const char *const pk[] = {
        "embed", "attention", "dense_ffn", "routed_experts", "shared_experts", "router",
        "norms", "lm_head",   "mtp",       "total",          "active",         NULL};
    adds(L, b, "<table class=\"dsv3-info\"><caption>model ");
    lua_getfield(L, idx, "dir");
    add_value(L, b, -1, DSV3_RENDER_HTML);
    lua_pop(L, 1);
    adds(L, b, "</caption>");
    for (int i = 0; keys[i]; i++) {
        lua_getfield(L, idx, keys[i]);
        if (!lua_isnil(L, -1)) row2(L, b, keys[i], -1);
        lua_pop(L, 1);
    }
    adds(L, b, "</table>");
    lua_getfield(L, idx, "params");
    if (lua_istable(L, -1)) {
        adds(L, b,
             "<table class=\"dsv3-params\"><caption>parameters</caption>"
             "<tr><th>component</th><th>params</th><th>exact</th></tr>");
        for (int i = 0; pk[i]; i++) {
            lua_getfield(L, -1, pk[i]);
            if (lua_isinteger(L, -1)) {
                long long v = (long long)lua_tointeger(L, -1);
                addf(L, b, "<tr><th style=\"text-align:left\">%s</th><td>", pk[i]);
                add_human(L, b, (double)v);
                addf(L, b, "</td><td>%lld</td></tr>", v);
            }
            lua_pop(L, 1);
        }
        adds(L, b, "</table>");
    }
    lua_pop(L, 1);
}

static void tokens_html(lua_State *L, sbuf *b, int idx) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    lua_getfield(L, idx, "text"); /* readable labels; older tables have only pieces */
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_getfield(L, idx, "pieces");
    }
    int pieces = lua_istable(L, -1);
    addf(L, b,
         "<table class=\"dsv3-tokens\"><caption>%lld "
         "tokens</caption><tr><th>#</th><th>id</th>%s</tr>",
         (long long)n, pieces ? "<th>text</th>" : "");
    for (lua_Integer i = 1; i <= n && i <= MAX_TOKENS_SHOWN; i++) {
        lua_rawgeti(L, idx, i);
        addf(L, b, "<tr><td>%lld</td><td>", (long long)i);
        add_cell(L, b, -1);
        adds(L, b, "</td>");
        lua_pop(L, 1);
        if (pieces) {
            lua_rawgeti(L, -1, i);
            adds(L, b, "<td><code>");
            if (!lua_isnil(L, -1)) add_value(L, b, -1, DSV3_RENDER_HTML);
            adds(L, b, "</code></td>");
            lua_pop(L, 1);
        }
        adds(L, b, "</tr>");
    }
    if (n > MAX_TOKENS_SHOWN)
        addf(L, b, "<tr><td colspan=\"3\">… %lld more</td></tr>",
             (long long)(n - MAX_TOKENS_SHOWN));
    adds(L, b, "</table>");
    lua_pop(L, 1);
}

static void gen_html(lua_State *L, sbuf *b, int idx) {
    lua_getfield(L, idx, "streamed");
    const int streamed = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, idx, "text");
    if (lua_type(L, -1) == LUA_TSTRING && !streamed) { /* streamed text is shown once */
        adds(L, b, "<pre class=\"dsv3-gen\">");
        add_value(L, b, -1, DSV3_RENDER_HTML);
        adds(L, b, "</pre>");
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "stats");
    if (lua_istable(L, -1)) {
        int st = lua_gettop(L);
        adds(L, b, "<table class=\"dsv3-gen-stats\"><caption>generation</caption>");
        addf(L, b, "<tr><th style=\"text-align:left\">prompt tokens</th><td>%lld</td></tr>",
             (long long)int_field(L, st, "prompt_tokens"));
        addf(L, b, "<tr><th style=\"text-align:left\">new tokens</th><td>%lld</td></tr>",
             (long long)int_field(L, st, "tokens"));
        addf(L, b, "<tr><th style=\"text-align:left\">tokens/s</th><td>%.1f</td></tr>",
             (double)num_field(L, st, "tokens_per_second"));
        addf(L, b, "<tr><th style=\"text-align:left\">prefill</th><td>%.3f s</td></tr>",
             (double)num_field(L, st, "prefill_seconds"));
        addf(L, b, "<tr><th style=\"text-align:left\">decode</th><td>%.3f s</td></tr>",
             (double)num_field(L, st, "decode_seconds"));
        lua_Integer d = int_field(L, st, "drafted"), a = int_field(L, st, "accepted");
        if (d > 0)
            addf(L, b,
                 "<tr><th style=\"text-align:left\">MTP accepted</th><td>%lld / %lld "
                 "(%.1f%%)</td></tr>",
                 (long long)a, (long long)d, 100.0 * (double)a / (double)d);
        lua_getfield(L, idx, "interrupted");
        if (lua_toboolean(L, -1))
            adds(L, b, "<tr><th style=\"text-align:left\">interrupted</th><td>yes</td></tr>");
        lua_pop(L, 1);
        adds(L, b, "</table>");
    }
    lua_pop(L, 1);
}

/* Calls method name of the value at idx with integer arguments; leaves nres results. */
static void call_method(lua_State *L, int idx, const char *name, int nargs, const lua_Integer *args,
                        int nres) {
    lua_getfield(L, idx, name);
    lua_pushvalue(L, idx);
    for (int i = 0; i < nargs; i++)
        lua_pushinteger(L, args[i]);
    lua_call(L, nargs + 1, nres);
}

/* A token as an HTML cell body: its readable label (the `text` field of the table at idx, or
 * the id when there is none) in <code>, the id in a tooltip, and after the label too when the
 * session shows ids (show_ids). */
static void token_cell(lua_State *L, sbuf *b, int idx) {
    const lua_Integer id = int_field(L, idx, "id");
    lua_getfield(L, idx, "text");
    addf(L, b, "<code title=\"id %lld\">", (long long)id);
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t n;
        const char *t = lua_tolstring(L, -1, &n);
        add_escaped(L, b, t, n, DSV3_RENDER_HTML);
        if (dsv3_session_of(L) && dsv3_session_of(L)->show_ids) addf(L, b, "/%lld", (long long)id);
    } else {
        addf(L, b, "%lld", (long long)id);
    }
    adds(L, b, "</code>");
    lua_pop(L, 1);
}

/* A top-k table {{id=, text=, logit=, prob=}, ...} as table cells "text (p)". */
static void top_cells(lua_State *L, sbuf *b, int top) {
    lua_Integer k = (lua_Integer)lua_rawlen(L, top);
    for (lua_Integer i = 1; i <= k; i++) {
        lua_rawgeti(L, top, i);
        adds(L, b, "<td>");
        token_cell(L, b, lua_gettop(L));
        addf(L, b, " <small>(%.3f)</small></td>", (double)num_field(L, -1, "prob"));
        lua_pop(L, 1);
    }
}

static void logits_html(lua_State *L, sbuf *b, int idx) {
    call_method(L, idx, "shape", 0, NULL, 2);
    lua_Integer T = lua_tointeger(L, -2), V = lua_tointeger(L, -1);
    lua_pop(L, 2);
    addf(L, b,
         "<table class=\"dsv3-logits\"><caption>logits [%lld × %lld], top-5 next tokens "
         "(prob)</caption>"
         "<tr><th>pos</th><th>1</th><th>2</th><th>3</th><th>4</th><th>5</th></tr>",
         (long long)T, (long long)V);
    for (lua_Integer t = T > 8 ? T - 7 : 1; t <= T; t++) {
        lua_Integer args[2] = {t, 5};
        call_method(L, idx, "top", 2, args, 1);
        addf(L, b, "<tr><th>%lld</th>", (long long)t);
        top_cells(L, b, lua_gettop(L));
        adds(L, b, "</tr>");
        lua_pop(L, 1);
    }
    adds(L, b, "</table>");
}

static void progress_html(lua_State *L, sbuf *b, int idx) {
    double done = (double)num_field(L, idx, "done"), total = (double)num_field(L, idx, "total");
    addf(L, b, "<div class=\"dsv3-progress\"><progress value=\"%g\" max=\"%g\"></progress> %g / %g",
         done, total > 0 ? total : 1, done, total);
    lua_getfield(L, idx, "label");
    if (lua_type(L, -1) == LUA_TSTRING) {
        adds(L, b, " ");
        add_value(L, b, -1, DSV3_RENDER_HTML);
    }
    lua_pop(L, 1);
    adds(L, b, "</div>");
}

/* A record (string keys, scalar values) as two columns, keys sorted. */
static void record_html(lua_State *L, sbuf *b, int idx) {
    int n = sorted_keys(L, idx);
    adds(L, b, "<table class=\"dsv3-record\">");
    for (int i = 1; i <= n && i <= MAX_ROWS; i++) {
        lua_rawgeti(L, -1, i);
        lua_pushvalue(L, -1);
        lua_rawget(L, idx);
        row2(L, b, lua_tostring(L, -2), -1);
        lua_pop(L, 2);
    }
    adds(L, b, "</table>");
    lua_pop(L, 1);
}

/* An array of records (top-k tables, chat history, ...) as rows; columns are the sorted union
 * of the record keys. Returns 0 (nothing added) if it is not one. */
static int records_html(lua_State *L, sbuf *b, int idx) {
    lua_Integer n = array_len(L, idx);
    if (n < 1) return 0;
    lua_newtable(L); /* set of column names */
    int cols = lua_gettop(L);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        int ok = lua_type(L, -1) == LUA_TTABLE && !has_any_mt(L, -1) && is_record(L, -1);
        if (ok) {
            lua_pushnil(L);
            while (lua_next(L, -2)) {
                lua_pop(L, 1);
                lua_pushvalue(L, -1);
                lua_pushboolean(L, 1);
                lua_rawset(L, cols);
            }
        }
        lua_pop(L, 1);
        if (!ok) {
            lua_pop(L, 1);
            return 0;
        }
    }
    int nc = sorted_keys(L, cols);
    if (nc > MAX_COLS) {
        lua_pop(L, 2);
        return 0;
    }
    int names = lua_gettop(L);
    adds(L, b, "<table class=\"dsv3-rows\"><tr><th>#</th>");
    for (int c = 1; c <= nc; c++) {
        lua_rawgeti(L, names, c);
        adds(L, b, "<th>");
        add_value(L, b, -1, DSV3_RENDER_HTML);
        adds(L, b, "</th>");
        lua_pop(L, 1);
    }
    adds(L, b, "</tr>");
    for (lua_Integer i = 1; i <= n && i <= MAX_ROWS; i++) {
        lua_rawgeti(L, idx, i);
        addf(L, b, "<tr><td>%lld</td>", (long long)i);
        for (int c = 1; c <= nc; c++) {
            lua_rawgeti(L, names, c);
            lua_rawget(L, -2);
            adds(L, b, "<td>");
            if (!lua_isnil(L, -1)) add_cell(L, b, -1);
            adds(L, b, "</td>");
            lua_pop(L, 1);
        }
        adds(L, b, "</tr>");
        lua_pop(L, 1);
    }
    if (n > MAX_ROWS)
        addf(L, b, "<tr><td colspan=\"%d\">… %lld more</td></tr>", nc + 1,
             (long long)(n - MAX_ROWS));
    adds(L, b, "</table>");
    lua_pop(L, 2);
    return 1;
}

static int html(lua_State *L, sbuf *b, int idx) {
    int t = lua_type(L, idx);
    if (t == LUA_TUSERDATA && has_mt(L, idx, MT_LOGITS)) {
        logits_html(L, b, idx);
        return 1;
    }
    if (t != LUA_TTABLE) return 0;
    if (has_mt(L, idx, MT_INFO))
        info_html(L, b, idx);
    else if (has_mt(L, idx, MT_TOKENS))
        tokens_html(L, b, idx);
    else if (has_mt(L, idx, MT_GEN))
        gen_html(L, b, idx);
    else if (has_mt(L, idx, DSV3_RENDER_MT_PROGRESS))
        progress_html(L, b, idx);
    else if (has_any_mt(L, idx))
        return 0; /* another kind of value: its __tostring renders it */
    else if (is_record(L, idx))
        record_html(L, b, idx);
    else if (!records_html(L, b, idx))
        plain_html(L, b, idx);
    return 1;
}

/* ---------------------------------------------------------------- JSON ----------------- */

static int json(lua_State *L, sbuf *b, int idx, int depth);

static void json_string(lua_State *L, sbuf *b, const char *s, size_t n) {
    adds(L, b, "\"");
    add_escaped(L, b, s, n, DSV3_RENDER_JSON);
    adds(L, b, "\"");
}

/* The array part 1..n of the table at idx as a JSON array. */
static int json_array(lua_State *L, sbuf *b, int idx, lua_Integer n, int depth) {
    adds(L, b, "[");
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1) adds(L, b, ",");
        lua_rawgeti(L, idx, i);
        int ok = json(L, b, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
        if (!ok) return 0;
    }
    adds(L, b, "]");
    return 1;
}

static int json_table(lua_State *L, sbuf *b, int idx, int depth) {
    if (has_mt(L, idx, MT_TOKENS)) { /* ids + pieces, not a mixed table */
        adds(L, b, "{\"ids\":");
        if (!json_array(L, b, idx, (lua_Integer)lua_rawlen(L, idx), depth)) return 0;
        lua_getfield(L, idx, "pieces");
        int ok = 1;
        if (lua_istable(L, -1)) {
            adds(L, b, ",\"pieces\":");
            ok = json_array(L, b, lua_gettop(L), (lua_Integer)lua_rawlen(L, -1), depth);
        }
        lua_pop(L, 1);
        adds(L, b, "}");
        return ok;
    }
    lua_Integer n = array_len(L, idx);
    if (n > 0) return json_array(L, b, idx, n, depth);
    /* An object: integer keys become strings, other keys do not fit. Keys are sorted so that
     * the output does not depend on the table's hash order. */
    lua_newtable(L);
    int keys = lua_gettop(L), nk = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        int kt = lua_type(L, -1);
        if (kt != LUA_TSTRING && !(kt == LUA_TNUMBER && lua_isinteger(L, -1))) {
            lua_pop(L, 2);
            return 0;
        }
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, ++nk);
    }
    for (int i = 2; i <= nk; i++) /* insertion sort by the keys' text */
        for (int j = i; j > 1; j--) {
            lua_rawgeti(L, keys, j - 1);
            lua_rawgeti(L, keys, j);
            const char *x = luaL_tolstring(L, -2, NULL), *y = luaL_tolstring(L, -2, NULL);
            int swap = strcmp(x, y) > 0;
            lua_pop(L, 2);
            if (!swap) {
                lua_pop(L, 2);
                break;
            }
            lua_rawseti(L, keys, j - 1);
            lua_rawseti(L, keys, j);
        }
    adds(L, b, "{");
    for (int i = 1; i <= nk; i++) {
        if (i > 1) adds(L, b, ",");
        lua_rawgeti(L, keys, i);
        size_t kl;
        const char *k = luaL_tolstring(L, -1, &kl);
        json_string(L, b, k, kl);
        lua_pop(L, 1);
        adds(L, b, ":");
        lua_rawget(L, idx);
        int ok = json(L, b, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
        if (!ok) {
            lua_pop(L, 1);
            return 0;
        }
    }
    adds(L, b, "}");
    lua_pop(L, 1);
    return 1;
}

static int json(lua_State *L, sbuf *b, int idx, int depth) {
    if (depth > MAX_DEPTH) return 0; /* also ends cycles */
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        adds(L, b, "null");
        return 1;
    case LUA_TBOOLEAN:
        adds(L, b, lua_toboolean(L, idx) ? "true" : "false");
        return 1;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            addf(L, b, "%lld", (long long)lua_tointeger(L, idx));
        else if (isfinite(lua_tonumber(L, idx)))
            addf(L, b, "%.17g", (double)lua_tonumber(L, idx));
        else
            adds(L, b, "null"); /* JSON has no NaN or infinity */
        return 1;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        json_string(L, b, s, n);
        return 1;
    }
    case LUA_TTABLE:
        return json_table(L, b, idx, depth);
    default:
        return 0;
    }
}

/* ---------------------------------------------------------------- entry ---------------- */

/* A metamethod renderer: calls metatable field name of the value at idx with the value. Pushes
 * its result and returns 1 when that is a non-empty string; otherwise pushes nothing, returns 0. */
static int call_meta(lua_State *L, int idx, const char *name) {
    if (luaL_getmetafield(L, idx, name) == LUA_TNIL) return 0;
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
    if (lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) > 0) return 1;
    lua_pop(L, 1);
    return 0;
}

int dsv3_render_push(lua_State *L, int first, int n, dsv3_render_form form) {
    first = lua_absindex(L, first);
    if ((unsigned)form >= DSV3_RENDER_FORMS || (form != DSV3_RENDER_TEXT && n != 1)) return 0;
    luaL_checkstack(L, 2 * MAX_DEPTH + 20, "render: nesting too deep");
    static const char *const meta[DSV3_RENDER_FORMS] = {NULL, "__html", "__svg", "__json"};
    if (meta[form] && call_meta(L, first, meta[form])) return 1;
    if (form == DSV3_RENDER_HTML && call_meta(L, first, "__svg")) {
        /* a figure's HTML is its SVG inline: shown where image/svg+xml is not (exported HTML,
         * front ends that prefer text/html) */
        lua_pushliteral(L, "<div class=\"dsv3-figure\">");
        lua_insert(L, -2);
        lua_pushliteral(L, "</div>");
        lua_concat(L, 3);
        return 1;
    }
    int t = lua_type(L, first);
    if (form == DSV3_RENDER_SVG || (form == DSV3_RENDER_JSON && t != LUA_TTABLE) ||
        (form == DSV3_RENDER_HTML && t != LUA_TTABLE && !has_mt(L, first, MT_LOGITS)))
        return 0;
    int top = lua_gettop(L);
    sbuf *b = sbuf_push(L);
    int ok = 1;
    if (form == DSV3_RENDER_TEXT) {
        for (int i = 0; i < n; i++) {
            if (i) add(L, b, "\t", 1);
            if (is_plain(L, first + i)) {
                plain_text(L, b, first + i);
                continue;
            }
            size_t len;
            const char *str = luaL_tolstring(L, first + i, &len);
            add(L, b, str, len);
            lua_pop(L, 1);
        }
    } else if (form == DSV3_RENDER_HTML) {
        ok = html(L, b, first);
    } else {
        if (has_any_mt(L, first)) /* values of other modules keep their own form */
            ok = has_mt(L, first, MT_INFO) || has_mt(L, first, MT_TOKENS) ||
                 has_mt(L, first, MT_GEN) || has_mt(L, first, DSV3_RENDER_MT_PROGRESS);
        if (ok) ok = json(L, b, first, 0);
    }
    if (ok) lua_pushlstring(L, b->p ? b->p : "", b->n);
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
    if (ok)
        lua_replace(L, top + 1); /* the string takes the buffer's slot */
    else
        lua_settop(L, top);
    return ok;
}
