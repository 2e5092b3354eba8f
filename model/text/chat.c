/* chat.c — the DeepSeek-V3 chat format (contract in chat.h; docs/ARCHITECTURE.md, "Chat template").
 *
 * Mirrors the Jinja template shipped in DeepSeek-V3's tokenizer_config.json without its tool-call
 * branch: system prompts first, then the turns, with the template's is_tool / is_output_first
 * state kept as two booleans.
 */
#include "model/text/chat.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "model/base/strbuf.h"

static const char user_tag[] = "<｜User｜>", assistant_tag[] = "<｜Assistant｜>",
                  eos_tag[] = "<｜end▁of▁sentence｜>", outputs_begin[] = "<｜tool▁outputs▁begin｜>",
                  outputs_end[] = "<｜tool▁outputs▁end｜>",
                  output_begin[] = "<｜tool▁output▁begin｜>",
                  output_end[] = "<｜tool▁output▁end｜>";

dsv3_status dsv3_chat_render(char **text, size_t *len, const char *bos, const dsv3_chat_msg *msgs,
                             size_t n_msgs, int add_generation_prompt, dsv3_err *err) {
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!text || (!msgs && n_msgs)) return dsv3_errf(err, DSV3_EINVAL, "chat: NULL argument");
    for (size_t i = 0; i < n_msgs; i++) {
        const char *r = msgs[i].role;
        if (!r || !msgs[i].content)
            return dsv3_errf(err, DSV3_EINVAL, "chat: message %zu: NULL %s", i,
                             r ? "content" : "role");
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant") && strcmp(r, "tool"))
            return dsv3_errf(err, DSV3_EINVAL, "chat: message %zu: unknown role \"%.40s\"", i, r);
    }
    dsv3_strbuf b = {0};
    bool first_system = true, is_tool = false, first_output = true;
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
            dsv3_strbuf_puts(&b, user_tag);
            dsv3_strbuf_puts(&b, content);
        } else if (strcmp(r, "assistant") == 0) {
            dsv3_strbuf_puts(&b, is_tool ? outputs_end : assistant_tag);
            dsv3_strbuf_puts(&b, content);
            dsv3_strbuf_puts(&b, eos_tag);
            is_tool = false;
        } else if (strcmp(r, "tool") == 0) {
            is_tool = true;
            dsv3_strbuf_puts(&b, first_output ? outputs_begin : "\n");
            dsv3_strbuf_puts(&b, output_begin);
            dsv3_strbuf_puts(&b, content);
            dsv3_strbuf_puts(&b, output_end);
            first_output = false;
        }
    }
    if (is_tool) {
        dsv3_strbuf_puts(&b, outputs_end);
    } else if (add_generation_prompt) {
        dsv3_strbuf_puts(&b, assistant_tag);
    }
    if (b.oom) {
        free(b.s);
        return dsv3_errf(err, DSV3_ENOMEM, "chat: out of memory");
    }
    *text = b.s;
    if (len) *len = b.len;
    return DSV3_OK;
}
