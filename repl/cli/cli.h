/* cli.h — the scriptable subcommands of the `dsv3` binary (`dsv3 logits ...`, ...).
 *
 * Each subcommand takes argv after its name, prints results to stdout and at most one line
 * "dsv3 <cmd>: <error>" to stderr, and returns the process exit status (0 ok, 1 bad input or
 * failure, 2 usage). These command-line forms are a contract users' scripts rely on.
 */
#ifndef DSV3_CLI_H
#define DSV3_CLI_H

#include <stdint.h>

#include "model/base/status.h"

struct dsv3_backend;
struct dsv3_model;
struct dsv3_tokenizer;

int dsv3_cli_logits(int argc, char **argv);
int dsv3_cli_generate(int argc, char **argv);
int dsv3_cli_tokenize(int argc, char **argv);
int dsv3_cli_route(int argc, char **argv);
int dsv3_cli_schedule(int argc, char **argv);
int dsv3_cli_train(int argc, char **argv);
int dsv3_cli_grpo(int argc, char **argv);
int dsv3_cli_check(int argc, char **argv);
int dsv3_cli_info(int argc, char **argv);

/* Parses "1,2,3" into a malloc'd array (*ids, *n). Errors name the bad item. */
dsv3_status dsv3_cli_parse_ids(const char *s, int32_t **ids, int64_t *n, dsv3_err *err);

/* The backend named by a --backend value ("fast" or "ref"); NULL (with a message in err) for
 * any other name. */
const struct dsv3_backend *dsv3_cli_backend(const char *name, dsv3_err *err);

/* Opens the model in dir with the kernels of a --backend value, prints its load warnings to
 * stderr, and, when tok is not NULL, opens its optional tokenizer (*tok NULL when dir has no
 * tokenizer.json). On failure nothing stays open (*m and *tok NULL) and err says why, in the
 * words of dsv3_cli_backend, dsv3_model_open or dsv3_tokenizer_open_dir. */
dsv3_status dsv3_cli_open_model(struct dsv3_model **m, struct dsv3_tokenizer **tok, const char *dir,
                                const char *backend, dsv3_err *err);

/* 1 when dir holds a tiktoken.model (Kimi-K2 / Moonlight's tokenizer, not supported), for
 * messages about a missing tokenizer.json. */
int dsv3_cli_has_tiktoken(const char *dir);

/* Parses a non-negative decimal integer option value; -1 on error. */
long long dsv3_cli_parse_count(const char *s);
/* A finite decimal number; *ok is 0 (and the result meaningless) for NULL, "", trailing
 * characters, overflow, inf or nan. */
double dsv3_cli_parse_num(const char *s, int *ok);

#endif
