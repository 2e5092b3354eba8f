/* chat.h — the known DeepSeek chat templates (docs/ARCHITECTURE.md, "Chat template") as pure
 * functions.
 *
 * Owns: recognising a checkpoint's `chat_template` text among the known templates (DeepSeek-V3,
 * R1, V3.1: model/text/templates/ (*.jinja), byte for byte) and turning a list of role/content
 * messages into the prompt text that template renders (without tool calls). Does not own:
 * tokenization (encode the result with dsv3_tokenizer_encode, add_special = 0, since the text
 * already starts with BOS), reading tokenizer_config.json (model/text/tokenizer.c), or a Jinja
 * engine: each format is written out here. No I/O, no state: the same input gives the same
 * output; any thread may call it.
 */
#ifndef DSV3_CHAT_H
#define DSV3_CHAT_H

#include <stddef.h>

#include "model/base/status.h"

/* One chat message. */
typedef struct {
    const char *role;    /* "system", "user", "assistant" or "tool"; not NULL */
    const char *content; /* UTF-8, NUL-terminated; not NULL (tool calls are not supported) */
} dsv3_chat_msg;

/* The known templates. */
typedef enum {
    DSV3_CHAT_V3 = 0, /* DeepSeek-V3 (also V3's format when a checkpoint has no chat_template) */
    DSV3_CHAT_R1,     /* DeepSeek-R1: always thinks; the generation prompt ends "<think>\n" */
    DSV3_CHAT_V31,    /* DeepSeek-V3.1: `thinking` switches "<think>" / "</think>" */
    DSV3_CHAT_N
} dsv3_chat_kind;

/* "deepseek-v3", "deepseek-r1", "deepseek-v3.1"; "?" for anything else. */
const char *dsv3_chat_kind_name(int kind);

/* The exact Jinja text of a known template (NUL-terminated, static; *len its bytes when len is
 * not NULL), or NULL for an unknown kind. */
const char *dsv3_chat_template_text(int kind, size_t *len);

/* The kind whose template text equals tmpl (len bytes) exactly, or -1. */
int dsv3_chat_identify(const char *tmpl, size_t len);

/* 1 when the template has a thinking switch (V3.1), else 0. */
int dsv3_chat_has_think_switch(int kind);

/* Renders messages as template `kind` renders them with Python jinja2 (as Hugging Face's
 * apply_chat_template does) for messages without tool calls. think: -1 the template's default,
 * 0 off, 1 on. V3 does not think: think 1 is DSV3_EINVAL ("chat: the deepseek-v3 template has no
 * thinking switch"). R1 always thinks: think 0 is DSV3_EINVAL. V3.1 (default off) passes
 * `thinking` to the template. Per template, beyond the V3 rules below:
 *   R1:   an assistant message's content is cut to what follows its last "</think>" (unless it
 *         follows tool outputs); later tool outputs get no "\n" before "<｜tool▁output▁begin｜>";
 *         the generation prompt is "<｜Assistant｜><think>\n".
 *   V3.1: an assistant message right after a user message starts "<｜Assistant｜></think>", and
 *         its content is cut to what follows its first "</think>" (unless it follows tool
 *         outputs, then no tag at all); a tool message is "<｜tool▁output▁begin｜>" + content +
 *         "<｜tool▁output▁end｜>"; the generation prompt, only when the last non-system message is
 *         a user message, is "<｜Assistant｜>" + ("<think>" if thinking else "</think>").
 * Other arguments, output and errors as dsv3_chat_render's. */
dsv3_status dsv3_chat_render_kind(int kind, int think, char **text, size_t *len, const char *bos,
                                  const dsv3_chat_msg *msgs, size_t n_msgs,
                                  int add_generation_prompt, dsv3_err *err);

/* Renders messages in the DeepSeek-V3 chat format (dsv3_chat_render_kind with DSV3_CHAT_V3). The output is, in order:
 *   1. `bos` (the tokenizer config's bos_token content; NULL means "");
 *   2. the contents of all system messages, joined by "\n\n", with no role marker;
 *   3. for each non-system message in order:
 *        user:      "<｜User｜>" + content
 *        assistant: "<｜Assistant｜>" + content + "<｜end▁of▁sentence｜>", or, when the previous
 *                   non-system message is a tool message, "<｜tool▁outputs▁end｜>" + content +
 *                   "<｜end▁of▁sentence｜>"
 *        tool:      the first tool message ever: "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>"
 *                   + content + "<｜tool▁output▁end｜>"; later ones: "\n<｜tool▁output▁begin｜>"
 *                   + content + "<｜tool▁output▁end｜>"
 *   4. "<｜tool▁outputs▁end｜>" if the last non-system message is a tool message; otherwise
 *      "<｜Assistant｜>" if add_generation_prompt is nonzero.
 * Example: bos "<｜begin▁of▁sentence｜>" and one user message "Hi" with add_generation_prompt
 * render "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>".
 * On success *text is a malloc'd NUL-terminated string of *len bytes (caller frees with free());
 * len may be NULL. Errors (then *text is NULL): DSV3_EINVAL for NULL text, NULL msgs with
 * n_msgs > 0, a NULL role or content, or an unknown role, naming the message index, e.g.
 * "chat: message 1: unknown role "robot""; DSV3_ENOMEM. */
dsv3_status dsv3_chat_render(char **text, size_t *len, const char *bos, const dsv3_chat_msg *msgs,
                             size_t n_msgs, int add_generation_prompt, dsv3_err *err);

#endif
