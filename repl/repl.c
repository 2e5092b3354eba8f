/* repl.c — the terminal front end (see repl.h). */
#define _GNU_SOURCE
#include "repl/repl.h"

#include <errno.h>
#include <readline/history.h>
#include <readline/readline.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "repl/session.h"

/* The one mutable global: the SIGINT flag (a signal handler may only set it). */
static volatile int interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

static void write_out(void *ud, dsv3_stream st, const char *bytes, size_t len) {
    (void)ud;
    FILE *f = st == DSV3_STDERR ? stderr : stdout;
    fwrite(bytes, 1, len, f);
    fflush(f);
}

typedef struct {
    dsv3_session *s;
    int color;       /* ANSI colour on stdout/stderr */
    int timing;      /* .time: print seconds after each chunk */
    int errors;      /* chunks that failed */
    int quit;
    char *chunk;     /* lines of an incomplete chunk, joined by '\n' */
    char *history;   /* history file path, or NULL */
} repl;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- evaluate / print ----- */

static void print_error(repl *r, const char *msg) {
    if (r->color) fprintf(stderr, "\x1b[31m%s\x1b[0m\n", msg);
    else fprintf(stderr, "%s\n", msg);
}

/* Runs one complete chunk and prints its results; returns 1 if the chunk is incomplete. */
static int eval_print(repl *r, const char *code) {
    char *res = NULL;
    interrupted = 0;
    double t0 = now();
    dsv3_exec_status st = dsv3_session_exec(r->s, code, strlen(code), &res);
    double dt = now() - t0;
    interrupted = 0;
    if (st == DSV3_EXEC_INCOMPLETE) {
        free(res);
        return 1;
    }
    if (st == DSV3_EXEC_ERROR) {
        print_error(r, res ? res : "error");
        r->errors++;
    } else if (res && *res) {
        printf("%s\n", res);
    }
    if (r->timing) fprintf(stderr, "(%.3f s)\n", dt);
    fflush(stdout);
    free(res);
    return 0;
}

static const char meta_help[] =
    "Type Lua. Results print themselves (no need for print). Multi-line input continues while a\n"
    "chunk is incomplete. Ctrl-C clears the line or stops a running generation; Ctrl-D quits.\n"
    "  .help        this text        help()      the dsv3 API     help \"gen\"  one function\n"
    "  .time        toggle timing    .quit       leave\n";

/* Meta commands are whole lines starting with '.'; returns 1 if handled. */
static int meta(repl *r, const char *line) {
    if (line[0] != '.' || r->chunk) return 0;
    if (!strcmp(line, ".quit") || !strcmp(line, ".exit")) r->quit = 1;
    else if (!strcmp(line, ".help")) fputs(meta_help, stdout);
    else if (!strcmp(line, ".time")) {
        r->timing = !r->timing;
        printf("timing %s\n", r->timing ? "on" : "off");
    } else {
        print_error(r, "unknown command (try .help)");
    }
    return 1;
}

/* Feeds one input line; returns 1 while a chunk is pending (continuation prompt). */
static int feed_line(repl *r, const char *line) {
    if (!r->chunk && meta(r, line)) return 0;
    if (r->chunk) {
        size_t a = strlen(r->chunk), b = strlen(line);
        char *nc = realloc(r->chunk, a + b + 2);
        if (!nc) return 0;
        nc[a] = '\n';
        memcpy(nc + a + 1, line, b + 1);
        r->chunk = nc;
    } else {
        r->chunk = strdup(line);
    }
    if (!r->chunk) return 0;
    int pending = eval_print(r, r->chunk);
    if (!pending) {
        free(r->chunk);
        r->chunk = NULL;
    }
    return pending;
}

/* ---------------------------------------------------------------- readline ------------- */

static repl *the_repl; /* readline's callbacks carry no user data */

static char *history_path(void) {
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    char dir[4096];
    if (xdg && *xdg) snprintf(dir, sizeof dir, "%s/dsv3", xdg);
    else if (home && *home) snprintf(dir, sizeof dir, "%s/.local/state/dsv3", home);
    else return NULL;
    /* mkdir -p */
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(dir, 0700);
            *p = '/';
        }
    mkdir(dir, 0700);
    char *path = malloc(strlen(dir) + 16);
    if (path) sprintf(path, "%s/history", dir);
    return path;
}

/* History is saved whole to a temp file and renamed over the old one, so a crash never leaves a
 * half-written history. */
static void save_history(repl *r) {
    if (!r->history) return;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", r->history, (long)getpid());
    stifle_history(2000);
    if (write_history(tmp) == 0) rename(tmp, r->history);
    else unlink(tmp);
}

static char **complete(const char *text, int start, int end) {
    (void)text;
    (void)start;
    rl_attempted_completion_over = 1;
    size_t wstart = 0;
    char **m = NULL;
    size_t n = dsv3_session_complete(the_repl->s, rl_line_buffer, (size_t)end, &wstart, &m);
    if (n == 0) {
        dsv3_session_free_matches(m, n);
        return NULL;
    }
    /* readline wants [common prefix, match..., NULL], relative to its own word start. */
    char **out = calloc(n + 2, sizeof *out);
    if (!out) {
        dsv3_session_free_matches(m, n);
        return NULL;
    }
    size_t skip = (size_t)start > wstart ? (size_t)start - wstart : 0;
    size_t lcp = strlen(m[0]);
    for (size_t i = 1; i < n; i++) {
        size_t k = 0;
        while (k < lcp && m[i][k] == m[0][k]) k++;
        lcp = k;
    }
    out[0] = strndup(m[0] + (skip < lcp ? skip : lcp), lcp > skip ? lcp - skip : 0);
    for (size_t i = 0; i < n; i++) out[i + 1] = strdup(strlen(m[i]) > skip ? m[i] + skip : "");
    dsv3_session_free_matches(m, n);
    rl_completion_append_character = '\0';
    return out;
}

static const char *prompt_main(const repl *r) {
    return r->color ? "\001\x1b[1;36m\002dsv3>\001\x1b[0m\002 " : "dsv3> ";
}

static void on_line(char *line) {
    repl *r = the_repl;
    if (!line) { /* Ctrl-D */
        r->quit = 1;
        printf("\n");
        rl_callback_handler_remove();
        return;
    }
    if (*line) add_history(line);
    rl_callback_handler_remove(); /* output of the chunk must not fight the prompt */
    int pending = feed_line(r, line);
    free(line);
    if (!r->quit) rl_callback_handler_install(pending ? ">> " : prompt_main(r), on_line);
}

static int interactive(repl *r, const char *banner) {
    the_repl = r;
    r->history = history_path();
    if (r->history && access(r->history, F_OK) == 0 && read_history(r->history) != 0)
        fprintf(stderr, "dsv3: history %s unreadable; starting a new one\n", r->history);
    rl_readline_name = "dsv3";
    rl_attempted_completion_function = complete;
    rl_completer_word_break_characters = " \t\n\"'`@$><=;|&{(,.:[]+-*/^%~#";
    rl_catch_signals = 0;
    fputs(banner, stdout);
    rl_callback_handler_install(prompt_main(r), on_line);
    while (!r->quit) {
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(STDIN_FILENO, &fds);
        int rc = select(STDIN_FILENO + 1, &fds, NULL, NULL, NULL);
        if (rc < 0 && errno == EINTR) {
            if (interrupted) { /* Ctrl-C at the prompt: drop the line (and a pending chunk) */
                interrupted = 0;
                free(r->chunk);
                r->chunk = NULL;
                rl_free_line_state();
                rl_replace_line("", 0);
                rl_crlf();
                rl_callback_handler_remove();
                rl_callback_handler_install(prompt_main(r), on_line);
            }
            continue;
        }
        if (rc < 0) break;
        rl_callback_read_char();
    }
    save_history(r);
    free(r->history);
    return 0;
}

/* ---------------------------------------------------------------- scripts and pipes ---- */

static int piped(repl *r) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while (!r->quit && (n = getline(&line, &cap, stdin)) >= 0) {
        if (n > 0 && line[n - 1] == '\n') line[n - 1] = 0;
        feed_line(r, line);
    }
    free(line);
    if (r->chunk) { /* input ended inside a chunk: run it to get the syntax error */
        char *res = NULL;
        dsv3_session_exec(r->s, r->chunk, strlen(r->chunk), &res);
        print_error(r, res ? res : "incomplete chunk at end of input");
        free(res);
        r->errors++;
    }
    return r->errors ? 1 : 0;
}

int dsv3_repl_main(int argc, char **argv) {
    repl r = {0};
    r.color = isatty(STDOUT_FILENO) && isatty(STDERR_FILENO) && !getenv("NO_COLOR");
    dsv3_session_io io = {.write = write_out, .interrupt = &interrupted, .color = r.color};
    dsv3_err err = {{0}};
    if (dsv3_session_new(&r.s, &io, &err)) {
        fprintf(stderr, "dsv3: %s\n", err.msg);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: select() returns EINTR */
    int rc = 0, ran_code = 0;
    char banner[1024] = "";
    for (int i = 0; i < argc && !rc; i++) {
        char *res = NULL;
        if (!strcmp(argv[i], "run")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "usage: dsv3 run SCRIPT.lua [ARGS...]\n");
                rc = 2;
                break;
            }
            if (dsv3_session_run_file(r.s, argv[i + 1], argc - i - 2, argv + i + 2, &res) != DSV3_EXEC_OK) {
                fprintf(stderr, "%s\n", res ? res : "error");
                rc = 1;
            }
            free(res);
            ran_code = 1;
            break;
        }
        if (!strcmp(argv[i], "-e")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "usage: dsv3 -e CODE\n");
                rc = 2;
                break;
            }
            interrupted = 0;
            dsv3_exec_status st = dsv3_session_exec(r.s, argv[i + 1], strlen(argv[i + 1]), &res);
            if (st != DSV3_EXEC_OK) {
                fprintf(stderr, "%s\n", res ? res : "error");
                rc = 1;
            } else if (res && *res) {
                printf("%s\n", res);
            }
            free(res);
            ran_code = 1;
            i++;
            continue;
        }
        /* A model directory: load it before anything else runs. */
        char code[4400];
        snprintf(code, sizeof code, "return load(%s)", "...");
        char quoted[4300];
        size_t q = 0;
        quoted[q++] = '"';
        for (const char *p = argv[i]; *p && q < sizeof quoted - 3; p++) {
            if (*p == '"' || *p == '\\') quoted[q++] = '\\';
            quoted[q++] = *p;
        }
        quoted[q++] = '"';
        quoted[q] = 0;
        snprintf(code, sizeof code, "load(%s)", quoted);
        if (dsv3_session_exec(r.s, code, strlen(code), &res) != DSV3_EXEC_OK) {
            fprintf(stderr, "dsv3: %s\n", res ? res : "cannot load");
            rc = 1;
        } else {
            snprintf(banner, sizeof banner, "%s\n", res);
        }
        free(res);
    }
    if (!rc && !ran_code) {
        if (isatty(STDIN_FILENO)) {
            char full[2048];
            snprintf(full, sizeof full,
                     "dsv3 — a DeepSeek-V3 runtime you can look inside. %s"
                     "Try:  gen \"Once upon a time\"    info()    help()    .help    (Ctrl-D quits)\n",
                     banner[0] ? banner : "No model loaded: load \"DIR\".\n");
            rc = interactive(&r, full);
        } else {
            rc = piped(&r);
        }
    }
    dsv3_session_free(r.s);
    return rc;
}
