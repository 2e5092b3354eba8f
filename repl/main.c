/* main.c — the `dsv3` binary: dispatch to a subcommand from one table. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "jupyter/install.h"
#include "repl/cli/cli.h"
#include "repl/repl.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand commands[] = {
    {"logits", dsv3_cli_logits, "exact FP32 logits (and MTP logits) for token ids, as .npy"},
    {"generate", dsv3_cli_generate, "generate text or ids (sampling, MTP speculative decoding)"},
    {"tokenize", dsv3_cli_tokenize, "print the token ids of a text"},
    {"kernel", dsv3_kernel_cmd, "Jupyter kernel: `kernel install [--user | --prefix DIR]`"},
    {"route", dsv3_cli_route, "per-token expert routing of the MoE layers (--json)"},
    {"schedule", dsv3_cli_schedule, "pipeline schedules: 1F1B, ZB1P, DualPipe bubbles and timelines"},
    {"train", dsv3_cli_train, "train on text (AdamW, MTP, bias balancing; save/resume)"},
    {"grpo", dsv3_cli_grpo, "GRPO: sample groups, score with a reward, clipped policy step + KL"},
    {"check", dsv3_cli_check, "scan every tensor: non-finite values, FP8 scales, shapes vs config"},
    {"info", dsv3_cli_info, "what a checkpoint is: variant, routing, parameter counts, dtype mix"},
};

static void usage(FILE *to) {
    fprintf(to, "usage: dsv3 [MODEL_DIR] [-e CODE]     the REPL (Lua; help() inside)\n"
                "       dsv3 run SCRIPT.lua [ARGS...]  run a script (args in `arg`)\n"
                "       dsv3 COMMAND [args]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(to, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; argc >= 2 && i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 2, argv + 2);
    /* Anything else must be REPL syntax: run, -e, or an existing model directory. */
    struct stat sb;
    if (argc >= 2 && strcmp(argv[1], "run") && argv[1][0] != '-' && stat(argv[1], &sb) != 0) {
        fprintf(stderr, "dsv3: '%s' is neither a command nor a model directory\n", argv[1]);
        usage(stderr);
        return 2;
    }
    return dsv3_repl_main(argc - 1, argv + 1);
}
