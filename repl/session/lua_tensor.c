/* lua_tensor.c — the tensor value (contract in lua_tensor.h; the maths in model/base/tensor.c).
 *
 * Index base: rows and columns are 1-based here, as everywhere in Lua (negative counts from the
 * end); model/base/tensor.h is 0-based. Every operation returns a new tensor (a copy): no value
 * shares memory with another. An operand where a tensor is expected may also be a number (a
 * [1 x 1] tensor, broadcast), a list {a, b, ...} (one row) or a table of rows {{...}, {...}}.
 */
#define _GNU_SOURCE
#include "repl/session/lua_tensor.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/base/npy.h"
#include "model/base/tensor.h"
#include "probes/render/render.h"

#define MT_TENSOR DSV3_LUA_MT_TENSOR

/* ---------------------------------------------------------------- values --------------- */

dsv3_ltensor *dsv3_lua_push_tensor(lua_State *L, int64_t rows, int64_t cols, float *v) {
    dsv3_ltensor *t = lua_newuserdatauv(L, sizeof *t, 0);
    memset(t, 0, sizeof *t);
    t->rows = rows;
    t->cols = cols;
    t->v = v;
    luaL_setmetatable(L, MT_TENSOR);
    return t;
}

/* Pushes the result of a model/base/tensor call (it takes out's data), or raises its error. */
static dsv3_ltensor *push_result(lua_State *L, dsv3_status st, dsv3_tensor *out, const dsv3_err *err) {
    if (st) {
        dsv3_lua_error(L, err);
        return NULL;
    }
    return dsv3_lua_push_tensor(L, out->rows, out->cols, out->v);
}

static void free_labels(char **l, int64_t n) {
    if (l)
        for (int64_t i = 0; i < n; i++) free(l[i]);
    free(l);
}

/* A copy of labels [from, from + n), or NULL (no labels, or out of memory: figures go without). */
static char **copy_labels(char *const *l, int64_t from, int64_t n) {
    if (!l || n <= 0) return NULL;
    char **c = calloc((size_t)n, sizeof *c);
    for (int64_t i = 0; c && i < n; i++) c[i] = l[from + i] ? strdup(l[from + i]) : NULL;
    return c;
}

/* The tensor at idx; raises if its memory was released (a __gc called by hand). */
static dsv3_ltensor *check_tensor(lua_State *L, int idx) {
    dsv3_ltensor *t = luaL_checkudata(L, idx, MT_TENSOR);
    if (!t->v) luaL_error(L, "tensor is released");
    return t;
}

static dsv3_tensor view(const dsv3_ltensor *t) {
    return (dsv3_tensor){.rows = t->rows, .cols = t->cols, .v = t->v};
}

/* Builds a tensor from the table at idx ({a, b, ...}: one row; {{...}, {...}}: rows), pushed. */
static dsv3_ltensor *from_table(lua_State *L, int idx, const char *what) {
    idx = lua_absindex(L, idx);
    const lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    if (n < 1) luaL_error(L, "%s: an empty table is not a tensor", what);
    lua_rawgeti(L, idx, 1);
    const int nested = lua_type(L, -1) == LUA_TTABLE;
    const lua_Integer cols = nested ? (lua_Integer)lua_rawlen(L, -1) : n, rows = nested ? n : 1;
    lua_pop(L, 1);
    if (cols < 1) luaL_error(L, "%s: row 1 is empty", what);
    if (rows > (1 << 24) || cols > (1 << 24) || rows * cols > (1 << 28))
        luaL_error(L, "%s: table too large for a tensor", what);
    float *v = malloc((size_t)(rows * cols) * sizeof *v);
    if (!v) luaL_error(L, "out of memory");
    dsv3_ltensor *t = dsv3_lua_push_tensor(L, rows, cols, v); /* owns v from here */
    for (lua_Integer i = 0; i < rows; i++) {
        if (nested) {
            lua_rawgeti(L, idx, i + 1);
            if (lua_type(L, -1) != LUA_TTABLE || (lua_Integer)lua_rawlen(L, -1) != cols)
                luaL_error(L, "%s: row %d is not a list of %d numbers (the length of row 1)", what,
                           (int)i + 1, (int)cols);
        } else {
            lua_pushvalue(L, idx);
        }
        for (lua_Integer j = 0; j < cols; j++) {
            lua_rawgeti(L, -1, j + 1);
            int isnum;
            const lua_Number x = lua_tonumberx(L, -1, &isnum);
            if (!isnum)
                luaL_error(L, "%s: element [%d][%d] is a %s, not a number", what, (int)i + 1, (int)j + 1,
                           luaL_typename(L, -1));
            v[i * cols + j] = (float)x;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    return t;
}

/* The operand at idx as a tensor: a tensor as it is; a number, list or table of rows converted
 * (the converted tensor is pushed, so that its memory is collected). */
static dsv3_tensor operand(lua_State *L, int idx, const char *what) {
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER: {
        float *v = malloc(sizeof *v);
        if (!v) luaL_error(L, "out of memory");
        v[0] = (float)lua_tonumber(L, idx);
        return view(dsv3_lua_push_tensor(L, 1, 1, v));
    }
    case LUA_TTABLE: return view(from_table(L, idx, what));
    case LUA_TUSERDATA:
        if (luaL_testudata(L, idx, MT_TENSOR)) return view(check_tensor(L, idx));
        /* fall through */
    default:
        luaL_error(L, "%s: expected a tensor, a number or a table of numbers, got %s", what,
                   luaL_typename(L, idx));
        return (dsv3_tensor){0};
    }
}

/* ---------------------------------------------------------------- the existing methods - */

static int tensor_gc(lua_State *L) {
    dsv3_ltensor *t = luaL_checkudata(L, 1, MT_TENSOR);
    free(t->v);
    t->v = NULL;
    free(t->title);
    t->title = NULL;
    free_labels(t->row_labels, t->rows);
    free_labels(t->col_labels, t->cols);
    t->row_labels = t->col_labels = NULL;
    return 0;
}

static int tensor_shape(lua_State *L) {
    dsv3_ltensor *t = check_tensor(L, 1);
    lua_pushinteger(L, t->rows);
    lua_pushinteger(L, t->cols);
    return 2;
}

static int tensor_get(lua_State *L) {
    dsv3_ltensor *t = check_tensor(L, 1);
    lua_Integer i = luaL_checkinteger(L, 2), j = luaL_checkinteger(L, 3);
    luaL_argcheck(L, i >= 1 && i <= t->rows, 2, "row out of range");
    luaL_argcheck(L, j >= 1 && j <= t->cols, 3, "column out of range");
    lua_pushnumber(L, t->v[(i - 1) * t->cols + (j - 1)]);
    return 1;
}

static void push_floats(lua_State *L, const float *v, int64_t n) {
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushnumber(L, v[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

static int tensor_row(lua_State *L) {
    dsv3_ltensor *t = check_tensor(L, 1);
    lua_Integer i = luaL_checkinteger(L, 2);
    if (i < 0) i = t->rows + 1 + i;
    luaL_argcheck(L, i >= 1 && i <= t->rows, 2, "row out of range");
    push_floats(L, t->v + (i - 1) * t->cols, t->cols);
    return 1;
}

static int tensor_norms(lua_State *L) {
    dsv3_ltensor *t = check_tensor(L, 1);
    lua_createtable(L, (int)t->rows, 0);
    for (int64_t i = 0; i < t->rows; i++) {
        double s = 0;
        for (int64_t j = 0; j < t->cols; j++) s += (double)t->v[i * t->cols + j] * t->v[i * t->cols + j];
        lua_pushnumber(L, sqrt(s));
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int tensor_save(lua_State *L) {
    dsv3_ltensor *t = check_tensor(L, 1);
    const char *path = luaL_checkstring(L, 2);
    int64_t shape[2] = {t->rows, t->cols};
    dsv3_err err = {{0}};
    if (dsv3_npy_write_f32(path, t->v, 2, shape, &err)) return dsv3_lua_error(L, &err);
    return 0;
}

static int tensor_tostring(lua_State *L) {
    dsv3_ltensor *t = check_tensor(L, 1);
    dsv3_heatmap hm = {.v = t->v, .rows = t->rows, .cols = t->cols, .title = "tensor"};
    char head[96];
    snprintf(head, sizeof head, "tensor [%lld x %lld]", (long long)t->rows, (long long)t->cols);
    hm.title = head;
    char *s = t->rows <= 64 && t->cols <= 128 ? dsv3_render_heatmap_text(&hm) : NULL;
    lua_pushstring(L, s ? s : head);
    free(s);
    return 1;
}

static int tensor_svg(lua_State *L) {
    dsv3_ltensor *t = check_tensor(L, 1);
    char title[160];
    snprintf(title, sizeof title, "%s [%lld x %lld]", t->title ? t->title : "tensor", (long long)t->rows,
             (long long)t->cols);
    const int tok = t->row_labels != NULL;
    dsv3_heatmap hm = {.v = t->v, .rows = t->rows, .cols = t->cols,
                       .row_labels = (const char *const *)t->row_labels,
                       .col_labels = (const char *const *)t->col_labels,
                       .row_axis = tok ? "query" : "row", .col_axis = tok ? "key" : "column"};
    char *s = t->rows <= 512 && t->cols <= 512 ? dsv3_render_heatmaps_svg(&hm, 1, title) : NULL;
    lua_pushstring(L, s ? s : "");
    free(s);
    return 1;
}

/* ---------------------------------------------------------------- indexing, slicing ---- */

/* Copies rows [r0, r1) and columns [c0, c1) (0-based) with their labels and title, pushed. */
static int push_slice(lua_State *L, const dsv3_ltensor *t, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    dsv3_tensor in = view(t), out;
    dsv3_err err = {{0}};
    dsv3_ltensor *s = push_result(L, dsv3_tensor_slice(&in, r0, r1, c0, c1, &out, &err), &out, &err);
    s->row_labels = copy_labels(t->row_labels, r0, r1 - r0);
    s->col_labels = copy_labels(t->col_labels, c0, c1 - c0);
    s->title = t->title ? strdup(t->title) : NULL;
    return 1;
}

/* t[i]: row i as a tensor [1 x cols] (negative from the end; nil out of range, so that ipairs
 * stops); t.name: the method. */
static int tensor_index(lua_State *L) {
    dsv3_ltensor *t = check_tensor(L, 1);
    if (lua_type(L, 2) == LUA_TSTRING) {
        lua_pushvalue(L, 2);
        lua_rawget(L, lua_upvalueindex(1));
        return 1;
    }
    int isint;
    lua_Integer i = lua_tointegerx(L, 2, &isint);
    if (!isint || lua_type(L, 2) != LUA_TNUMBER) return 0;
    if (i < 0) i = t->rows + 1 + i;
    if (i < 1 || i > t->rows) return 0;
    return push_slice(L, t, i - 1, i, 0, t->cols);
}

static int tensor_len(lua_State *L) {
    lua_pushinteger(L, check_tensor(L, 1)->rows);
    return 1;
}

/* A 1-based inclusive bound at idx (negative from the end; def when absent) -> 1-based. */
static lua_Integer bound(lua_State *L, int idx, lua_Integer n, lua_Integer def) {
    lua_Integer b = luaL_optinteger(L, idx, def);
    return b < 0 ? n + 1 + b : b;
}

/* t:slice(r0, r1 [, c0, c1]): rows r0..r1 and columns c0..c1, inclusive and 1-based. */
static int tensor_slice(lua_State *L) {
    dsv3_ltensor *t = check_tensor(L, 1);
    const lua_Integer r0 = bound(L, 2, t->rows, 1), r1 = bound(L, 3, t->rows, t->rows);
    const lua_Integer c0 = bound(L, 4, t->cols, 1), c1 = bound(L, 5, t->cols, t->cols);
    if (r0 < 1 || r1 > t->rows || r1 < r0 - 1 || c0 < 1 || c1 > t->cols || c1 < c0 - 1)
        return luaL_error(L, "slice: rows %d..%d, columns %d..%d out of a tensor [%d x %d]", (int)r0,
                          (int)r1, (int)c0, (int)c1, (int)t->rows, (int)t->cols);
    return push_slice(L, t, r0 - 1, r1, c0 - 1, c1);
}

/* ---------------------------------------------------------------- arithmetic ----------- */

static int arith(lua_State *L, dsv3_tensor_op op) {
    lua_settop(L, 2);
    dsv3_tensor a = operand(L, 1, "tensor arithmetic"), b = operand(L, 2, "tensor arithmetic"), out;
    dsv3_err err = {{0}};
    push_result(L, dsv3_tensor_binop(op, &a, &b, &out, &err), &out, &err);
    return 1;
}
static int tensor_add(lua_State *L) { return arith(L, DSV3_TENSOR_ADD); }
static int tensor_sub(lua_State *L) { return arith(L, DSV3_TENSOR_SUB); }
static int tensor_mul(lua_State *L) { return arith(L, DSV3_TENSOR_MUL); }
static int tensor_div(lua_State *L) { return arith(L, DSV3_TENSOR_DIV); }

static int tensor_unm(lua_State *L) {
    lua_settop(L, 1);
    lua_pushnumber(L, -1);
    return arith(L, DSV3_TENSOR_MUL);
}

static int tensor_matmul(lua_State *L) {
    dsv3_ltensor *t = check_tensor(L, 1);
    dsv3_tensor a = view(t), b = operand(L, 2, "matmul"), out;
    dsv3_err err = {{0}};
    dsv3_ltensor *r = push_result(L, dsv3_tensor_matmul(&a, &b, &out, &err), &out, &err);
    r->row_labels = copy_labels(t->row_labels, 0, t->rows);
    return 1;
}

/* t:cos(u): row i of t with row i of u (or with u's one row) -> [rows x 1];
 * t:cos(u, "pairs") every row with every row -> [t.rows x u.rows]; t:cos() = t:cos(t, "pairs"). */
static int tensor_cos(lua_State *L) {
    dsv3_ltensor *t = check_tensor(L, 1);
    const int self = lua_isnoneornil(L, 2);
    static const char *const modes[] = {"rows", "pairs", NULL};
    const int pairs = self || luaL_checkoption(L, 3, "rows", modes) == 1;
    dsv3_tensor a = view(t), b = self ? a : operand(L, 2, "cos"), out;
    dsv3_err err = {{0}};
    dsv3_status st = pairs ? dsv3_tensor_cos_pairs(&a, &b, &out, &err) : dsv3_tensor_cos_rows(&a, &b, &out, &err);
    dsv3_ltensor *r = push_result(L, st, &out, &err);
    r->row_labels = copy_labels(t->row_labels, 0, t->rows);
    if (self) r->col_labels = copy_labels(t->row_labels, 0, t->rows);
    return 1;
}

/* t:sum([axis]) / t:mean([axis]): axis 1 over the rows -> [1 x cols], 2 over the columns ->
 * [rows x 1]; none: of everything, a number. */
static int reduce(lua_State *L, int mean) {
    dsv3_ltensor *t = check_tensor(L, 1);
    const lua_Integer axis = luaL_optinteger(L, 2, 0);
    luaL_argcheck(L, axis >= 0 && axis <= 2, 2, "axis 1 (over rows), 2 (over columns) or none (all)");
    dsv3_tensor a = view(t), out;
    dsv3_err err = {{0}};
    const int c_axis = (int)axis - 1; /* 0 rows, 1 columns, -1 all */
    dsv3_status st = mean ? dsv3_tensor_mean(&a, c_axis, &out, &err) : dsv3_tensor_sum(&a, c_axis, &out, &err);
    if (st) return dsv3_lua_error(L, &err);
    if (axis == 0) {
        lua_pushnumber(L, out.v[0]);
        dsv3_tensor_free(&out);
        return 1;
    }
    dsv3_ltensor *r = push_result(L, st, &out, &err);
    if (axis == 1) r->col_labels = copy_labels(t->col_labels, 0, t->cols);
    else r->row_labels = copy_labels(t->row_labels, 0, t->rows);
    return 1;
}
static int tensor_sum(lua_State *L) { return reduce(L, 0); }
static int tensor_mean(lua_State *L) { return reduce(L, 1); }

/* t:topk(k) -> values [rows x k], columns [rows x k] (1-based, as a tensor). */
static int tensor_topk(lua_State *L) {
    dsv3_ltensor *t = check_tensor(L, 1);
    const lua_Integer k = luaL_optinteger(L, 2, 5);
    dsv3_tensor a = view(t), vals;
    int64_t *idx = NULL;
    dsv3_err err = {{0}};
    dsv3_status st = dsv3_tensor_topk(&a, k, &vals, &idx, &err);
    if (st) return dsv3_lua_error(L, &err);
    float *cols = malloc((size_t)(vals.rows * vals.cols) * sizeof *cols + 1);
    if (!cols) {
        free(idx);
        dsv3_tensor_free(&vals);
        return luaL_error(L, "out of memory");
    }
    for (int64_t i = 0; i < vals.rows * vals.cols; i++) cols[i] = (float)(idx[i] + 1);
    free(idx);
    dsv3_lua_push_tensor(L, vals.rows, vals.cols, vals.v)->row_labels = copy_labels(t->row_labels, 0, t->rows);
    dsv3_lua_push_tensor(L, vals.rows, vals.cols, cols)->row_labels = copy_labels(t->row_labels, 0, t->rows);
    return 2;
}

/* t:argmax() -> {column of each row's largest value} (1-based integers). */
static int tensor_argmax(lua_State *L) {
    dsv3_ltensor *t = check_tensor(L, 1);
    dsv3_tensor a = view(t);
    int64_t *idx = dsv3_lua_alloc(L, (size_t)(t->rows > 0 ? t->rows : 1) * sizeof *idx);
    dsv3_err err = {{0}};
    if (dsv3_tensor_argmax(&a, idx, &err)) return dsv3_lua_error(L, &err);
    lua_createtable(L, (int)t->rows, 0);
    for (int64_t i = 0; i < t->rows; i++) {
        lua_pushinteger(L, idx[i] + 1);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* t:totable() -> {{row 1}, {row 2}, ...}. */
static int tensor_totable(lua_State *L) {
    dsv3_ltensor *t = check_tensor(L, 1);
    lua_createtable(L, (int)t->rows, 0);
    for (int64_t i = 0; i < t->rows; i++) {
        push_floats(L, t->v + i * t->cols, t->cols);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* t:transpose() -> [cols x rows]. */
static int tensor_transpose(lua_State *L) {
    dsv3_ltensor *t = check_tensor(L, 1);
    dsv3_tensor out;
    dsv3_err err = {{0}};
    dsv3_ltensor *r = push_result(L, dsv3_tensor_new(&out, t->cols, t->rows, &err), &out, &err);
    for (int64_t i = 0; i < t->rows; i++)
        for (int64_t j = 0; j < t->cols; j++) r->v[j * t->rows + i] = t->v[i * t->cols + j];
    r->row_labels = copy_labels(t->col_labels, 0, t->cols);
    r->col_labels = copy_labels(t->row_labels, 0, t->rows);
    return 1;
}

/* ---------------------------------------------------------------- tensor(...) ---------- */

/* tensor({a, b, ...} | {{...}, ...} | t) -> a new tensor; tensor(rows, cols [, value]). */
static int l_tensor(lua_State *L) {
    if (lua_type(L, 1) == LUA_TNUMBER) {
        const lua_Integer r = luaL_checkinteger(L, 1), c = luaL_checkinteger(L, 2);
        const lua_Number x = luaL_optnumber(L, 3, 0);
        luaL_argcheck(L, r >= 0 && r <= (1 << 24), 1, "rows 0..16777216");
        luaL_argcheck(L, c >= 0 && c <= (1 << 24) && r * c <= (1 << 28), 2, "columns 0..16777216, at most 2^28 values");
        dsv3_tensor out;
        dsv3_err err = {{0}};
        dsv3_ltensor *t = push_result(L, dsv3_tensor_new(&out, r, c, &err), &out, &err);
        for (int64_t i = 0; i < r * c; i++) t->v[i] = (float)x;
        return 1;
    }
    lua_settop(L, 1);
    if (luaL_testudata(L, 1, MT_TENSOR)) {
        dsv3_ltensor *t = check_tensor(L, 1);
        return push_slice(L, t, 0, t->rows, 0, t->cols);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    from_table(L, 1, "tensor");
    return 1;
}

/* ---------------------------------------------------------------- registration --------- */

static void open_tensor(lua_State *L) {
    static const luaL_Reg meta[] = {{"__gc", tensor_gc},   {"__tostring", tensor_tostring},
                                    {"__svg", tensor_svg}, {"__len", tensor_len},
                                    {"__add", tensor_add}, {"__sub", tensor_sub},
                                    {"__mul", tensor_mul}, {"__div", tensor_div},
                                    {"__unm", tensor_unm}, {NULL, NULL}};
    static const luaL_Reg methods[] = {
        {"shape", tensor_shape},   {"get", tensor_get},         {"row", tensor_row},
        {"norms", tensor_norms},   {"save", tensor_save},       {"slice", tensor_slice},
        {"matmul", tensor_matmul}, {"cos", tensor_cos},         {"sum", tensor_sum},
        {"mean", tensor_mean},     {"topk", tensor_topk},       {"argmax", tensor_argmax},
        {"totable", tensor_totable}, {"transpose", tensor_transpose}, {NULL, NULL}};
    luaL_newmetatable(L, MT_TENSOR);
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__methods"); /* what completion, help and the fuzz list (the __index is a function) */
    lua_pushcclosure(L, tensor_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

static const dsv3_lua_fn fns[] = {
    {"tensor", l_tensor, "tensor({a, ...} | {{...}, ...} | t | rows, cols [, value]) -> tensor",
     "A float32 matrix [rows x cols] from a list (one row), a table of rows, a copy of a tensor,\n"
     "or filled with value (default 0). Tensors (also from capture() and attn()), 1-based:\n"
     "t[i] row i as [1 x cols]; #t rows; t:shape(); t:get(i, j); t:row(i) a list; t:slice(r0, r1\n"
     "[, c0, c1]) inclusive; t + u, t - u, t * u, t / u, -t elementwise with broadcasting of a\n"
     "number, a row or a column; t:matmul(m); t:transpose(); t:norms() a list; t:cos(u [,\n"
     "\"pairs\"]) (no u: pairs of t's rows); t:sum([axis]), t:mean([axis]) (1 over rows, 2 over\n"
     "columns, none: a number); t:topk([k]) -> values, columns; t:argmax() -> {column per row};\n"
     "t:totable(); t:save(\"x.npy\"). Results are new tensors (copies)."},
    {NULL, NULL, NULL, NULL},
};

const dsv3_lua_module dsv3_lua_tensor_module = {"tensor", open_tensor, fns};
