/* chat.c — the known DeepSeek chat templates (contract in chat.h; docs/ARCHITECTURE.md,
 * "Chat template").
 *
 * Each renderer mirrors one Jinja template of model/text/templates/ without its tool-call branch:
 * system prompts first, then the turns, with the template's namespace flags (is_tool,
 * is_output_first, is_last_user) kept as booleans. tests/test_chat_jinja.sh renders the same
 * conversations with Python jinja2 and compares bytes.
 */
#include "model/text/chat.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "model/base/strbuf.h"
#include "model/text/chat_templates.inc"

static const char user_tag[] = "<｜User｜>", assistant_tag[] = "<｜Assistant｜>",
                  eos_tag[] = "<｜end▁of▁sentence｜>", outputs_begin[] = "<｜tool▁outputs▁begin｜>",
                  outputs_end[] = "<｜tool▁outputs▁end｜>",
                  output_begin[] = "<｜tool▁output▁begin｜>",
                  output_end[] = "<｜tool▁output▁end｜>", think_end[] = "</think>";

static const char tmpl_v3[] = DSV3_TMPL_V3, tmpl_r1[] = DSV3_TMPL_R1, tmpl_v31[] = DSV3_TMPL_V31;
static const struct {
    const char *name, *text;
    size_t len;
} kinds[DSV3_CHAT_N] = {
    [DSV3_CHAT_V3] = {"deepseek-v3", tmpl_v3, sizeof tmpl_v3 - 1},
    [DSV3_CHAT_R1] = {"deepseek-r1", tmpl_r1, sizeof tmpl_r1 - 1},
    [DSV3_CHAT_V31] = {"deepseek-v3.1", tmpl_v31, sizeof tmpl_v31 - 1},
};

const char *dsv3_chat_kind_name(int kind) {
    return kind >= 0 && kind < DSV3_CHAT_N ? kinds[kind].name : "?";
}

const char *dsv3_chat_template_text(int kind, size_t *len) {
    if (kind < 0 || kind >= DSV3_CHAT_N) return NULL;
    if (len) *len = kinds[kind].len;
    return kinds[kind].text;
}

int dsv3_chat_identify(const char *tmpl, size_t len) {
    if (!tmpl) return -1;
    for (int k = 0; k < DSV3_CHAT_N; k++)
        if (len == kinds[k].len && memcmp(tmpl, kinds[k].text, len) == 0) return k;
    return -1;
}

int dsv3_chat_has_think_switch(int kind) { return kind == DSV3_CHAT_V31; }

/* The part of s after the last (R1: split('</think>')[-1]) or the first (V3.1:
 * split('</think>', 1)[1]) "</think>"; s itself when there is none. */
static const char *after_think(const char *s, bool last) {
    const char *p = strstr(s, think_end), *at = NULL;
    while (p) {
        at = p + sizeof think_end - 1;
        if (!last) break;
        p = strstr(at, think_end);
    }
    return at ? at : s;
}

dsv3_status dsv3_chat_render_kind(int kind, int think, char **text, size_t *len, const char *bos,
                                  const dsv3_chat_msg *msgs, size_t n_msgs,
                                  int add_generation_prompt, dsv3_err *err) {
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!text || (!msgs && n_msgs)) return dsv3_errf(err, DSV3_EINVAL, "chat: NULL argument");
    if (kind < 0 || kind >= DSV3_CHAT_N)
        return dsv3_errf(err, DSV3_EINVAL, "chat: unknown template kind %d", kind);
    if ((kind == DSV3_CHAT_V3 && think > 0) || (kind == DSV3_CHAT_R1 && think == 0))
        return dsv3_errf(err, DSV3_EINVAL,
                         "chat: the %s template has no thinking switch (it %s thinks)",
                         kinds[kind].name, kind == DSV3_CHAT_R1 ? "always" : "never");
    for (size_t i = 0; i < n_msgs; i++) {
        const char *r = msgs[i].role;
        if (!r || !msgs[i].content)
            return dsv3_errf(err, DSV3_EINVAL, "chat: message %zu: NULL %s", i,
                             r ? "content" : "role");
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant") && strcmp(r, "tool"))
            return dsv3_errf(err, DSV3_EINVAL, "chat: message %zu: unknown role \"%.40s\"", i, r);
    }
    const bool r1 = kind == DSV3_CHAT_R1, v31 = kind == DSV3_CHAT_V31, thinking = think > 0;
    dsv3_strbuf b = {0};
    bool first_system = true, is_tool = false, first_output = true, last_user = false;
    dsv3_strbuf_puts(&b, bos ? bos : "");
    for (size_t i = 0; i < n_msgs; i++) {
        if (strcmp(msgs[i].role, "system") != 0) continue;
        if (!first_system) dsv3_strbuf_puts(&b, "\n\n");
        dsv3_strbuf_puts(&b, msgs[i].content);
        first_system = false;
    }
    for (size_t i = 0; i < n_msgs; i++) {
        const char *r = msgs[i].role, *content = msgs[i].content;
        if (strcmp(r, "user") == 0) {
            is_tool = false;
            last_user = true;
            dsv3_strbuf_puts(&b, user_tag);
            dsv3_strbuf_puts(&b, content);
        } else if (strcmp(r, "assistant") == 0) {
            if (v31) {
                if (last_user) {
                    dsv3_strbuf_puts(&b, assistant_tag);
                    dsv3_strbuf_puts(&b, think_end);
                }
                dsv3_strbuf_puts(&b, is_tool ? content : after_think(content, false));
            } else {
                dsv3_strbuf_puts(&b, is_tool ? outputs_end : assistant_tag);
                dsv3_strbuf_puts(&b, r1 && !is_tool ? after_think(content, true) : content);
            }
            dsv3_strbuf_puts(&b, eos_tag);
            is_tool = last_user = false;
        } else if (strcmp(r, "tool") == 0) {
            is_tool = true;
            last_user = false;
            if (!v31) dsv3_strbuf_puts(&b, first_output ? outputs_begin : r1 ? "" : "\n");
            dsv3_strbuf_puts(&b, output_begin);
            dsv3_strbuf_puts(&b, content);
            dsv3_strbuf_puts(&b, output_end);
            first_output = false;
        }
    }
    if (v31) {
        if (add_generation_prompt && last_user && !is_tool) {
            dsv3_strbuf_puts(&b, assistant_tag);
            dsv3_strbuf_puts(&b, thinking ? "<think>" : think_end);
        }
    } else if (is_tool) {
        dsv3_strbuf_puts(&b, outputs_end);
    } else if (add_generation_prompt) {
        dsv3_strbuf_puts(&b, assistant_tag);
        if (r1) dsv3_strbuf_puts(&b, "<think>\n");
    }
    if (b.oom) {
        free(b.s);
        return dsv3_errf(err, DSV3_ENOMEM, "chat: out of memory");
    }
    *text = b.s;
    if (len) *len = b.len;
    return DSV3_OK;
}

dsv3_status dsv3_chat_render(char **text, size_t *len, const char *bos, const dsv3_chat_msg *msgs,
                             size_t n_msgs, int add_generation_prompt, dsv3_err *err) {
    return dsv3_chat_render_kind(DSV3_CHAT_V3, -1, text, len, bos, msgs, n_msgs,
                                 add_generation_prompt, err);
}
