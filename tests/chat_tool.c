/* chat_tool.c — helper of tests/test_chat_jinja.sh: renders conversations with model/text/chat.
 *
 * Reads a JSON array of cases from stdin, each {"kind": K, "think": -1|0|1, "gen": 0|1,
 * "bos": "...", "messages": [{"role": ..., "content": ...}, ...]}, and writes a JSON object
 * {"templates": [the text of each known kind], "out": [rendered text, or {"error": message}]}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "model/text/chat.h"

int main(void) {
    size_t cap = 1 << 16, n = 0, r;
    char *in = malloc(cap);
    while (in && (r = fread(in + n, 1, cap - n - 1, stdin)) > 0)
        if ((n += r) + 1 == cap) in = realloc(in, cap *= 2);
    if (!in) return 1;
    in[n] = 0;
    cJSON *cases = cJSON_Parse(in), *res = cJSON_CreateObject();
    free(in);
    if (!cJSON_IsArray(cases)) return fprintf(stderr, "chat_tool: expected a JSON array\n"), 1;
    cJSON *tmpls = cJSON_AddArrayToObject(res, "templates"), *out = cJSON_AddArrayToObject(res, "out");
    for (int k = 0; k < DSV3_CHAT_N; k++)
        cJSON_AddItemToArray(tmpls, cJSON_CreateString(dsv3_chat_template_text(k, NULL)));
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const cJSON *ms = cJSON_GetObjectItem(c, "messages"), *m;
        size_t nm = (size_t)cJSON_GetArraySize(ms), i = 0;
        dsv3_chat_msg *msgs = calloc(nm + 1, sizeof *msgs);
        cJSON_ArrayForEach(m, ms) {
            msgs[i++] = (dsv3_chat_msg){cJSON_GetStringValue(cJSON_GetObjectItem(m, "role")),
                                        cJSON_GetStringValue(cJSON_GetObjectItem(m, "content"))};
        }
        char *text = NULL;
        size_t len = 0;
        dsv3_err err = {{0}};
        const int kind = cJSON_GetObjectItem(c, "kind")->valueint;
        const int think = cJSON_GetObjectItem(c, "think")->valueint;
        const int gen = cJSON_GetObjectItem(c, "gen")->valueint;
        const char *bos = cJSON_GetStringValue(cJSON_GetObjectItem(c, "bos"));
        if (dsv3_chat_render_kind(kind, think, &text, &len, bos, msgs, nm, gen, &err)) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "error", err.msg);
            cJSON_AddItemToArray(out, e);
        } else {
            if (strlen(text) != len) return fprintf(stderr, "chat_tool: length mismatch\n"), 1;
            cJSON_AddItemToArray(out, cJSON_CreateString(text));
        }
        free(text);
        free(msgs);
    }
    char *s = cJSON_PrintUnformatted(res);
    fputs(s, stdout);
    free(s);
    cJSON_Delete(res);
    cJSON_Delete(cases);
    return 0;
}
