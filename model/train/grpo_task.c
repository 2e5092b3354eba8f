/* grpo_task.c — built-in toy tasks and the answer reward (see grpo_task.h). */
#include "model/train/grpo_task.h"

#include <stdio.h>
#include <string.h>

/* A word from fortunes' vocabulary, for the copy task. */
static const char *const words[] = {
    "love",  "time", "life",  "money", "truth",  "world", "cat",  "dog",   "war",  "man",
    "woman", "God",  "house", "night", "friend", "heart", "king", "child", "book", "water",
};

static uint64_t mix(uint64_t z) {
    z = (z + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* "a+b=" with one-digit a, b; the answer is the sum. */
static void add_example(uint64_t i, char *prompt, size_t pcap, char *answer, size_t acap) {
    const uint64_t z = mix(i);
    const int a = (int)(z % 10), b = (int)((z >> 8) % 10);
    snprintf(prompt, pcap, "%d+%d=", a, b);
    snprintf(answer, acap, "%d", a + b);
}

/* "w w w" (a word three times); the answer is the word once more. */
static void copy_example(uint64_t i, char *prompt, size_t pcap, char *answer, size_t acap) {
    const char *w = words[mix(i) % (sizeof words / sizeof words[0])];
    snprintf(prompt, pcap, "%s %s %s", w, w, w);
    snprintf(answer, acap, " %s", w);
}

static const char *skip_space(const char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    return s;
}

/* Format, then exactness: 1 when the completion starts with the answer's number (and no more
 * digits), 0.5 when it starts with some other number, else 0. */
static double add_reward(const char *answer, const char *completion) {
    const char *c = skip_space(completion), *a = skip_space(answer);
    size_t k = 0;
    while (c[k] >= '0' && c[k] <= '9')
        k++;
    if (k == 0) return 0.0;
    return k == strlen(a) && !strncmp(c, a, k) ? 1.0 : 0.5;
}

/* 1 when the completion's first word is the answer's word, 0.5 when the word occurs later. */
static double copy_reward(const char *answer, const char *completion) {
    const char *w = skip_space(answer), *c = skip_space(completion);
    const size_t n = strlen(w);
    if (n == 0) return 1.0;
    if (!strncmp(c, w, n) &&
        (c[n] == 0 || c[n] == ' ' || c[n] == '\n' || c[n] == '.' || c[n] == ','))
        return 1.0;
    return strstr(c, w) ? 0.5 : 0.0;
}

static const dsv3_grpo_task tasks[] = {
    {"add", "one-digit addition \"3+4=\"; reward 1 for the sum, 0.5 for another number, 0 for text",
     add_example, add_reward},
    {"copy", "repeat a word \"cat cat cat\"; reward 1 for \"cat\" first, 0.5 for \"cat\" later",
     copy_example, copy_reward},
};

const dsv3_grpo_task *dsv3_grpo_task_find(const char *name) {
    for (size_t i = 0; name && i < sizeof tasks / sizeof tasks[0]; i++)
        if (!strcmp(tasks[i].name, name)) return &tasks[i];
    return NULL;
}

int dsv3_grpo_n_tasks(void) {
    return (int)(sizeof tasks / sizeof tasks[0]);
}

const dsv3_grpo_task *dsv3_grpo_task_at(int i) {
    return i >= 0 && i < dsv3_grpo_n_tasks() ? &tasks[i] : NULL;
}

double dsv3_grpo_answer_reward(const char *answer, const char *completion) {
    const char *a = skip_space(answer), *c = skip_space(completion);
    const size_t n = strlen(a);
    if (n == 0) return 1.0;
    size_t k = 0;
    while (k < n && c[k] == a[k])
        k++;
    return k == n ? 1.0 : 0.5 * (double)k / (double)n;
}
