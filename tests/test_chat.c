/* test_chat.c — unit tests for model/chat (the DeepSeek-V3 chat format, docs/ARCHITECTURE.md
 * "Chat template").
 *
 * Each expected string was written from the Jinja template shipped in DeepSeek-V3's
 * tokenizer_config.json. Usage: test_chat [NAME...] runs the named tests (default: all).
 */
#include "model/text/chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/runner.h"


#define BOS "<｜begin▁of▁sentence｜>"

static void expect_render(const dsv3_chat_msg *msgs, size_t n, int gen, const char *want) {
    char *text = NULL;
    size_t len = 0;
    dsv3_err err = {{0}};
    EXPECT(dsv3_chat_render(&text, &len, BOS, msgs, n, gen, &err) == DSV3_OK);
    if (!text || strcmp(text, want) != 0 || len != strlen(want)) {
        fprintf(stderr, "  got  \"%s\"\n  want \"%s\"\n", text ? text : "(null)", want);
        dsv3_test_failed_checks++;
    }
    free(text);
}

static int test_chat_single_user_turn(void) {
    dsv3_chat_msg m[] = {{"user", "Hi"}};
    expect_render(m, 1, 1, BOS "<｜User｜>Hi<｜Assistant｜>");
    expect_render(m, 1, 0, BOS "<｜User｜>Hi");
    return 0;
}

static int test_chat_system_prompts_first_joined_by_blank_line(void) {
    dsv3_chat_msg m[] = {
        {"system", "S1"}, {"user", "U1"}, {"assistant", "A1"}, {"system", "S2"}, {"user", "U2"}};
    expect_render(m, 5, 1,
                  BOS "S1\n\nS2<｜User｜>U1<｜Assistant｜>A1<｜end▁of▁sentence｜><｜User｜>U2"
                      "<｜Assistant｜>");
    return 0;
}

static int test_chat_tool_outputs(void) {
    dsv3_chat_msg m[] = {{"user", "U"}, {"tool", "T1"}, {"tool", "T2"}, {"assistant", "A"}};
    expect_render(m, 4, 1,
                  BOS "<｜User｜>U<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>T1"
                      "<｜tool▁output▁end｜>\n<｜tool▁output▁begin｜>T2<｜tool▁output▁end｜>"
                      "<｜tool▁outputs▁end｜>A<｜end▁of▁sentence｜><｜Assistant｜>");
    /* ending on a tool message closes the outputs and adds no generation prompt */
    expect_render(m, 2, 1,
                  BOS "<｜User｜>U<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>T1"
                      "<｜tool▁output▁end｜><｜tool▁outputs▁end｜>");
    /* a user message after tool outputs resets the tool state (no outputs_end) */
    dsv3_chat_msg r[] = {{"tool", "T"}, {"user", "U"}, {"assistant", "A"}};
    expect_render(r, 3, 0,
                  BOS "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>T<｜tool▁output▁end｜>"
                      "<｜User｜>U<｜Assistant｜>A<｜end▁of▁sentence｜>");
    return 0;
}

static int test_chat_empty_and_null_bos(void) {
    expect_render(NULL, 0, 0, BOS);
    char *text = NULL;
    dsv3_err err = {{0}};
    dsv3_chat_msg m[] = {{"user", "x"}};
    EXPECT(dsv3_chat_render(&text, NULL, NULL, m, 1, 1, &err) == DSV3_OK);
    EXPECT(text && strcmp(text, "<｜User｜>x<｜Assistant｜>") == 0);
    free(text);
    return 0;
}

static int test_chat_rejects_bad_messages(void) {
    char *text = (char *)1;
    dsv3_err err = {{0}};
    dsv3_chat_msg bad_role[] = {{"user", "x"}, {"robot", "y"}};
    EXPECT(dsv3_chat_render(&text, NULL, BOS, bad_role, 2, 1, &err) == DSV3_EINVAL);
    EXPECT(text == NULL && strcmp(err.msg, "chat: message 1: unknown role \"robot\"") == 0);
    dsv3_chat_msg null_content[] = {{"user", NULL}};
    EXPECT(dsv3_chat_render(&text, NULL, BOS, null_content, 1, 1, &err) == DSV3_EINVAL);
    EXPECT(strcmp(err.msg, "chat: message 0: NULL content") == 0);
    dsv3_chat_msg null_role[] = {{NULL, "x"}};
    EXPECT(dsv3_chat_render(&text, NULL, BOS, null_role, 1, 1, &err) == DSV3_EINVAL);
    EXPECT(dsv3_chat_render(&text, NULL, BOS, NULL, 1, 1, &err) == DSV3_EINVAL);
    EXPECT(dsv3_chat_render(NULL, NULL, BOS, null_role, 0, 1, &err) == DSV3_EINVAL);
    return 0;
}

static const dsv3_test tests[] = {
    {"test_chat_single_user_turn", test_chat_single_user_turn},
    {"test_chat_system_prompts_first_joined_by_blank_line",
     test_chat_system_prompts_first_joined_by_blank_line},
    {"test_chat_tool_outputs", test_chat_tool_outputs},
    {"test_chat_empty_and_null_bos", test_chat_empty_and_null_bos},
    {"test_chat_rejects_bad_messages", test_chat_rejects_bad_messages},
};

int main(int argc, char **argv) {
    return DSV3_RUN_TESTS(tests, argc, argv);
}
