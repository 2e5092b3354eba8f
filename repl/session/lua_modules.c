/* lua_modules.c — the API table: the modules of a session in help() order, the lookups over
 * their functions and help() (contract in lua_modules.h).
 */
#include "repl/session/lua_modules.h"

#include <stdlib.h>
#include <string.h>

#include "model/base/strbuf.h"
#include "repl/session/lua_api.h"
#include "repl/session/lua_grpo.h"
#include "repl/session/lua_pipeline.h"
#include "repl/session/lua_probes.h"
#include "repl/session/lua_tensor.h"
#include "repl/session/lua_train.h"

/* ---------------------------------------------------------------- help() --------------- */

static int l_help(lua_State *L) {
    const char *name = NULL;
    if (lua_type(L, 1) == LUA_TFUNCTION) {
        /* help(gen): find the API entry of this function */
        const dsv3_lua_fn *f;
        for (size_t i = 0; (f = dsv3_lua_api_at(i)); i++) {
            lua_getglobal(L, f->name);
            int same = lua_rawequal(L, -1, 1);
            lua_pop(L, 1);
            if (same) name = f->name;
        }
    } else {
        name = luaL_optstring(L, 1, NULL);
    }
    char *h = dsv3_lua_api_help(name);
    lua_pushstring(L, h ? h : "");
    free(h);
    return 1;
}

static const dsv3_lua_fn help_fns[] = {
    {"help", l_help, "help([name]) -> text", "Help for an API function, or the list of all."},
    {NULL, NULL, NULL, NULL},
};

static const dsv3_lua_module help_module = {"help", NULL, help_fns};

/* ---------------------------------------------------------------- the table ------------ */

const dsv3_lua_module *const dsv3_lua_modules[] = {
    &dsv3_lua_api_module,      /* load ... backend */
    &help_module,              /* help */
    &dsv3_lua_train_module,    /* train, train_eval, train_save, train_reset */
    &dsv3_lua_grpo_module,     /* grpo, grpo_save, grpo_reset */
    &dsv3_lua_pipeline_module, /* schedule */
    &dsv3_lua_probes_module,   /* route ... attn */
    &dsv3_lua_tensor_module,   /* tensor */
    NULL,
};

const dsv3_lua_fn *dsv3_lua_api_at(size_t i) {
    for (size_t m = 0; dsv3_lua_modules[m]; m++)
        for (const dsv3_lua_fn *f = dsv3_lua_modules[m]->fns; f->name; f++)
            if (i-- == 0) return f;
    return NULL;
}

const dsv3_lua_fn *dsv3_lua_api_find(const char *name) {
    const dsv3_lua_fn *f;
    for (size_t i = 0; name && (f = dsv3_lua_api_at(i)); i++)
        if (!strcmp(f->name, name)) return f;
    return NULL;
}

char *dsv3_lua_api_help(const char *name) {
    dsv3_strbuf b = {0};
    const dsv3_lua_fn *f;
    if (!name || !*name) {
        dsv3_strbuf_printf(&b, "dsv3 API (help \"name\" for details):\n");
        for (size_t i = 0; (f = dsv3_lua_api_at(i)); i++)
            dsv3_strbuf_printf(&b, "  %s\n", f->signature);
    } else if ((f = dsv3_lua_api_find(name))) {
        dsv3_strbuf_printf(&b, "%s\n%s\n", f->signature, f->doc);
    } else {
        dsv3_strbuf_printf(&b, "no help for '%s' (help() lists the API)\n", name);
    }
    return dsv3_strbuf_finish(&b);
}
