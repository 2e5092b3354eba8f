/* lua_tensor.h — the tensor value of a session (repl/session/lua_tensor.c): a float32 matrix
 * [rows, cols] as Lua sees it (capture(), attn(), tensor{...}), with indexing, slicing,
 * arithmetic metamethods and the array methods of model/base/tensor.h, its text and SVG
 * renderings and .npy export; and the global tensor(...) that builds one (docs/LUA.md).
 * Thread rules: those of the lua_State.
 */
#ifndef DSV3_LUA_TENSOR_H
#define DSV3_LUA_TENSOR_H

#include <stdint.h>

#include "repl/session/luax.h"

#define DSV3_LUA_MT_TENSOR "dsv3.tensor"

/* A tensor userdata. Every field is freed by its __gc. */
typedef struct {
    int64_t rows, cols;
    float *v;          /* [rows * cols] row-major, malloc'd; NULL once released */
    char *title;       /* what the figure says it shows, or NULL ("tensor") */
    char **row_labels; /* [rows] token labels, or NULL */
    char **col_labels; /* [cols] token labels, or NULL */
} dsv3_ltensor;

/* Pushes a tensor that takes v ([rows, cols], malloc'd; freed by its __gc). */
dsv3_ltensor *dsv3_lua_push_tensor(lua_State *L, int64_t rows, int64_t cols, float *v);

/* The function tensor(...) with its help, and the tensor metatable. */
extern const dsv3_lua_module dsv3_lua_tensor_module;

#endif
