/* grpo_task.h — built-in toy tasks for GRPO runs: prompts with answers, and rule-based rewards.
 *
 * Text only (no tokenizer, no model): the front ends (the `dsv3 grpo` command and grpo{} in Lua)
 * tokenize the prompts and decode completions, then score them here. The tasks exist so that a
 * GRPO run works with no data at hand and shows a reward that rises on the bundled demo model.
 * Pure functions; no allocation; thread-safe.
 */
#ifndef DSV3_GRPO_TASK_H
#define DSV3_GRPO_TASK_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name;  /* "add", "copy", ... */
    const char *about; /* one line for help texts */
    /* Example i (any i >= 0; deterministic): a NUL-terminated prompt and answer, cut to the
     * buffer sizes. */
    void (*example)(uint64_t i, char *prompt, size_t pcap, char *answer, size_t acap);
    /* The task's rule-based reward of a completion (decoded text, special tokens left out). */
    double (*reward)(const char *answer, const char *completion);
} dsv3_grpo_task;

/* The task called name, or NULL. */
const dsv3_grpo_task *dsv3_grpo_task_find(const char *name);
/* The built-in tasks: i < dsv3_grpo_n_tasks(). */
int dsv3_grpo_n_tasks(void);
const dsv3_grpo_task *dsv3_grpo_task_at(int i);

/* The rule-based reward of a completion against an answer (prompt files with answers use it):
 * leading white space of both is ignored; 1 when the completion starts with the answer, else 0.5 *
 * (the length of their common prefix) / (the answer's length), in bytes. An empty answer gives 1.
 */
double dsv3_grpo_answer_reward(const char *answer, const char *completion);

#endif
