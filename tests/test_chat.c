/* test_chat.c — unit tests for model/chat (the DeepSeek-V3 chat format, spec §7.6).
 *
 * Each expected string was written from the Jinja template shipped in DeepSeek-V3's
 * tokenizer_config.json. Usage: test_chat [NAME...] runs the named tests (default: all).
 */
#include "model/chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_failed_checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);             \
            g_failed_checks++;                                                                     \
        }                                                                                          \
    } while (0)

#define BOS "<｜begin▁of▁sentence｜>"

static void expect_render(const dsv3_chat_msg *msgs, size_t n, int gen, const char *want) {
    char *text = NULL;
    size_t len = 0;
    dsv3_err err = {{0}};
    CHECK(dsv3_chat_render(&text, &len, BOS, msgs, n, gen, &err) == DSV3_OK);
    if (!text || strcmp(text, want) != 0 || len != strlen(want)) {
        fprintf(stderr, "  got  \"%s\"\n  want \"%s\"\n", text ? text : "(null)", want);
        g_failed_checks++;
    }
    free(text);
}

static void test_chat_single_user_turn(void) {
    dsv3_chat_msg m[] = {{"user", "Hi"}};
    expect_render(m, 1, 1, BOS "<｜User｜>Hi<｜Assistant｜>");
    expect_render(m, 1, 0, BOS "<｜User｜>Hi");
}

static void test_chat_system_prompts_first_joined_by_blank_line(void) {
    dsv3_chat_msg m[] = {
        {"system", "S1"}, {"user", "U1"}, {"assistant", "A1"}, {"system", "S2"}, {"user", "U2"}};
    expect_render(m, 5, 1,
                  BOS "S1\n\nS2<｜User｜>U1<｜Assistant｜>A1<｜end▁of▁sentence｜><｜User｜>U2"
                      "<｜Assistant｜>");
}

static void test_chat_tool_outputs(void) {
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
}

static void test_chat_empty_and_null_bos(void) {
    expect_render(NULL, 0, 0, BOS);
    char *text = NULL;
    dsv3_err err = {{0}};
    dsv3_chat_msg m[] = {{"user", "x"}};
    CHECK(dsv3_chat_render(&text, NULL, NULL, m, 1, 1, &err) == DSV3_OK);
    CHECK(text && strcmp(text, "<｜User｜>x<｜Assistant｜>") == 0);
    free(text);
}

static void test_chat_rejects_bad_messages(void) {
    char *text = (char *)1;
    dsv3_err err = {{0}};
    dsv3_chat_msg bad_role[] = {{"user", "x"}, {"robot", "y"}};
    CHECK(dsv3_chat_render(&text, NULL, BOS, bad_role, 2, 1, &err) == DSV3_EINVAL);
    CHECK(text == NULL && strcmp(err.msg, "chat: message 1: unknown role \"robot\"") == 0);
    dsv3_chat_msg null_content[] = {{"user", NULL}};
    CHECK(dsv3_chat_render(&text, NULL, BOS, null_content, 1, 1, &err) == DSV3_EINVAL);
    CHECK(strcmp(err.msg, "chat: message 0: NULL content") == 0);
    dsv3_chat_msg null_role[] = {{NULL, "x"}};
    CHECK(dsv3_chat_render(&text, NULL, BOS, null_role, 1, 1, &err) == DSV3_EINVAL);
    CHECK(dsv3_chat_render(&text, NULL, BOS, NULL, 1, 1, &err) == DSV3_EINVAL);
    CHECK(dsv3_chat_render(NULL, NULL, BOS, null_role, 0, 1, &err) == DSV3_EINVAL);
}

static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
    {"test_chat_single_user_turn", test_chat_single_user_turn},
    {"test_chat_system_prompts_first_joined_by_blank_line",
     test_chat_system_prompts_first_joined_by_blank_line},
    {"test_chat_tool_outputs", test_chat_tool_outputs},
    {"test_chat_empty_and_null_bos", test_chat_empty_and_null_bos},
    {"test_chat_rejects_bad_messages", test_chat_rejects_bad_messages},
};

int main(int argc, char **argv) {
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int selected = argc < 2;
        for (int a = 1; a < argc; a++)
            selected |= strcmp(argv[a], tests[i].name) == 0;
        if (!selected) continue;
        int before = g_failed_checks;
        tests[i].fn();
        if (g_failed_checks == before) {
            passed++;
        } else {
            failed++;
            fprintf(stderr, "FAIL %s\n", tests[i].name);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
