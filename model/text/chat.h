/* chat.h — the DeepSeek-V3 chat format (docs/ARCHITECTURE.md, "Chat template") as a pure function.
 *
 * Owns: turning a list of role/content messages into the prompt text the DeepSeek-V3 chat
 * template renders (the template shipped with DeepSeek-V3, without tool calls). Does not own:
 * tokenization (encode the result with dsv3_tokenizer_encode, add_special = 0, since the text
 * already starts with BOS) or a Jinja engine: the format is fixed here. No I/O, no state: the
 * same input gives the same output; any thread may call it.
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

/* Renders messages in the DeepSeek-V3 chat format. The output is, in order:
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
