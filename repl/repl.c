/* repl.c — the terminal front end (see repl.h). */
#define _GNU_SOURCE
#include "repl/repl.h"

#include <errno.h>
#include <fcntl.h>
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

#include "model/base/clock.h"
#include "model/base/strbuf.h"
#include "repl/session/session.h"

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
    int color;         /* ANSI colour on stdout/stderr */
    int timing;        /* .time: print seconds after each chunk */
    int errors;        /* chunks that failed */
    int quit;
    char *chunk;       /* lines of an incomplete chunk, joined by '\n' */
    char *history;     /* history file path, or NULL */
    sigset_t waitmask; /* interactive: the signal mask of a wait, SIGINT deliverable */
    int key_fd;        /* interactive: the terminal opened again, non-blocking; or -1 */
} repl;

/* ---------------------------------------------------------------- evaluate / print ----- */

static void print_error(repl *r, const char *msg) {
    if (r->color) fprintf(stderr, "\x1b[31m%s\x1b[0m\n", msg);
    else fprintf(stderr, "%s\n", msg);
}

/* Runs one complete chunk and prints its results; returns 1 if the chunk is incomplete. */
static int eval_print(repl *r, const char *code) {
    char *res = NULL;
    interrupted = 0;
    double t0 = dsv3_now_s();
    dsv3_exec_status st = dsv3_session_exec(r->s, code, strlen(code), &res);
    double dt = dsv3_now_s() - t0;
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
    dsv3_strbuf b = {0};
    if (xdg && *xdg) dsv3_strbuf_printf(&b, "%s/dsv3", xdg);
    else if (home && *home) dsv3_strbuf_printf(&b, "%s/.local/state/dsv3", home);
    else return NULL;
    if (b.oom) return dsv3_strbuf_finish(&b); /* NULL */
    /* mkdir -p */
    for (char *p = b.s + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(b.s, 0700);
            *p = '/';
        }
    mkdir(b.s, 0700);
    dsv3_strbuf_puts(&b, "/history");
    return dsv3_strbuf_finish(&b);
}

/* 1 if the n bytes at p are valid UTF-8 without NUL bytes: what a terminal can have typed. */
static int is_text(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (c == 0 || len == 0 || i + len > n) return 0;
        for (size_t k = 1; k < len; k++)
            if ((p[i + k] & 0xC0) != 0x80) return 0;
        i += len;
    }
    return 1;
}

/* Loads the history file if it is usable. A path that is not a regular file (a directory in its
 * place) disables saving; an unreadable file or one holding binary data (a NUL byte, invalid
 * UTF-8) is not loaded and is replaced when the session ends. Each case warns on stderr. */
static void load_history(repl *r) {
    struct stat sb;
    if (stat(r->history, &sb) != 0) return; /* no history yet */
    if (!S_ISREG(sb.st_mode)) {
        fprintf(stderr, "dsv3: history %s is not a regular file; history will not be saved\n",
                r->history);
        free(r->history);
        r->history = NULL;
        return;
    }
    FILE *f = fopen(r->history, "rb");
    if (!f) {
        fprintf(stderr, "dsv3: history %s: %s; starting a new one\n", r->history, strerror(errno));
        return;
    }
    unsigned char buf[65536];
    int text = 1;
    size_t n, carry = 0; /* bytes of a UTF-8 sequence cut by the buffer end */
    while (text && (n = fread(buf + carry, 1, sizeof buf - carry, f)) > 0) {
        n += carry;
        size_t cut = n;
        while (cut > 0 && n - cut < 3 && (buf[cut - 1] & 0xC0) == 0x80) cut--;
        if (cut > 0 && buf[cut - 1] >= 0xC0) cut--; /* lead byte of a cut sequence */
        else cut = n;
        text = is_text(buf, cut);
        carry = n - cut;
        memmove(buf, buf + cut, carry);
    }
    if (text && carry) text = is_text(buf, carry);
    int ioerr = ferror(f);
    fclose(f);
    if (ioerr || !text)
        fprintf(stderr, "dsv3: history %s %s; starting a new one\n", r->history,
                ioerr ? "cannot be read" : "holds binary data");
    else if (read_history(r->history) != 0)
        fprintf(stderr, "dsv3: history %s unreadable; starting a new one\n", r->history);
}

/* History is saved whole to a temp file and renamed over the old one, so a crash never leaves a
 * half-written history. A failure warns and leaves no temp file behind. */
static void save_history(repl *r) {
    if (!r->history) return;
    dsv3_strbuf tb = {0};
    dsv3_strbuf_printf(&tb, "%s.tmp.%ld", r->history, (long)getpid());
    char *tmp = dsv3_strbuf_finish(&tb);
    stifle_history(2000);
    int e = tmp ? write_history(tmp) : ENOMEM;
    if (e == 0 && rename(tmp, r->history) != 0) e = errno;
    if (e) {
        if (tmp) unlink(tmp);
        fprintf(stderr, "dsv3: cannot save history to %s: %s\n", r->history, strerror(e));
    }
    free(tmp);
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

/* readline's key reader. The main loop's pselect said stdin was readable, but a Ctrl-C
 * flushes the terminal's input queue (ISIG without NOFLSH), so the key may be gone by the time
 * it is read, and a blocking read() would then wait with SIGINT blocked. Keys are therefore
 * read from key_fd, a second, non-blocking open file description of the terminal (stdin's own
 * stays blocking for whoever shares it), and waited for in pselect with SIGINT deliverable.
 * Once Ctrl-C came it returns 0 (C-@, set-mark: nothing visible changes) so that readline
 * returns and the main loop clears the line. */
static int read_key(FILE *in) {
    const int fd = the_repl->key_fd >= 0 ? the_repl->key_fd : fileno(in);
    for (;;) {
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(fd, &fds);
        int rc = pselect(fd + 1, &fds, NULL, NULL, NULL, &the_repl->waitmask);
        if (rc < 0 && errno != EINTR) return EOF;
        if (interrupted) return 0;
        if (rc <= 0) continue;
        unsigned char c;
        ssize_t n = read(fd, &c, 1);
        if (n == 1) return c;
        if (n == 0 || (errno != EINTR && errno != EAGAIN)) return EOF;
    }
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
    sigset_t sigint, outside;
    sigemptyset(&sigint);
    sigaddset(&sigint, SIGINT);
    sigprocmask(SIG_UNBLOCK, &sigint, &outside); /* Ctrl-C may stop the chunk */
    int pending = feed_line(r, line);
    sigprocmask(SIG_SETMASK, &outside, NULL);
    free(line);
    if (!r->quit) rl_callback_handler_install(pending ? ">> " : prompt_main(r), on_line);
}

static int interactive(repl *r, const char *banner) {
    the_repl = r;
    r->history = history_path();
    if (r->history) load_history(r);
    rl_readline_name = "dsv3";
    rl_attempted_completion_function = complete;
    rl_completer_word_break_characters = " \t\n\"'`@$><=;|&{(,.:[]+-*/^%~#";
    /* A quote before the completed word is a word break, not a delimiter to close: `load "mod`
     * completes to `load "models/` and the user closes the string. */
    rl_basic_quote_characters = "";
    rl_catch_signals = 0;
    const char *tty = ttyname(STDIN_FILENO);
    r->key_fd = tty ? open(tty, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC) : -1;
    rl_getc_function = read_key;
    fputs(banner, stdout);
    /* SIGINT stays blocked except inside pselect and while a chunk runs (on_line), so a Ctrl-C
     * that comes while readline handles a key waits for the next pselect instead of being
     * lost between the check of the flag and the wait. */
    sigset_t sigint;
    sigemptyset(&sigint);
    sigaddset(&sigint, SIGINT);
    sigprocmask(SIG_BLOCK, &sigint, &r->waitmask);
    sigdelset(&r->waitmask, SIGINT);
    rl_callback_handler_install(prompt_main(r), on_line);
    while (!r->quit) {
        if (interrupted) { /* Ctrl-C at the prompt: drop the line (and a pending chunk) */
            interrupted = 0;
            free(r->chunk);
            r->chunk = NULL;
            rl_free_line_state();
            rl_replace_line("", 0);
            rl_crlf();
            rl_callback_handler_remove();
            rl_callback_handler_install(prompt_main(r), on_line);
            continue;
        }
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(STDIN_FILENO, &fds);
        int rc = pselect(STDIN_FILENO + 1, &fds, NULL, NULL, NULL, &r->waitmask);
        if (rc < 0 && errno == EINTR) continue;
        if (rc < 0) break;
        rl_callback_read_char();
    }
    sigprocmask(SIG_UNBLOCK, &sigint, NULL);
    if (r->key_fd >= 0) close(r->key_fd);
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

/* The chunk that loads model directory dir: `local ok, m = pcall(load, "dir") return ok,
 * tostring(m)`, with dir quoted for Lua (quotes, backslashes and control bytes escaped).
 * Malloc'd; NULL when out of memory. */
static char *load_chunk(const char *dir) {
    static const char head[] = "local ok, m = pcall(load, \"", tail[] = "\") return ok, tostring(m)";
    size_t n = strlen(dir);
    char *code = malloc(sizeof head + 4 * n + sizeof tail);
    if (!code) return NULL;
    char *q = code + sprintf(code, "%s", head);
    for (const unsigned char *p = (const unsigned char *)dir; *p; p++) {
        if (*p == '"' || *p == '\\') *q++ = '\\';
        if (*p < 0x20 || *p == 0x7f) q += sprintf(q, "\\%03u", *p);
        else *q++ = (char)*p;
    }
    strcpy(q, tail);
    return code;
}

int dsv3_repl_main(int argc, char **argv) {
    repl r = {.key_fd = -1};
    const char *no_color = getenv("NO_COLOR"); /* no-color.org: set and not empty */
    r.color = isatty(STDOUT_FILENO) && isatty(STDERR_FILENO) && !(no_color && *no_color);
    dsv3_session_io io = {.write = write_out, .interrupt = &interrupted, .color = r.color};
    dsv3_err err = {{0}};
    if (dsv3_session_new(&r.s, &io, &err)) {
        fprintf(stderr, "dsv3: %s\n", err.msg);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: pselect() returns EINTR */
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
        /* A model directory: load it before anything else runs. The load is protected so a
         * bad directory gives its one-line message ("config: DIR/config.json: ...") without a
         * Lua traceback; the chunk returns `ok, text`, rendered "true\t<model ...>" or
         * "false\t<message>". */
        char *code = load_chunk(argv[i]);
        if (!code) {
            fprintf(stderr, "dsv3: out of memory\n");
            rc = 1;
            break;
        }
        dsv3_exec_status st = dsv3_session_exec(r.s, code, strlen(code), &res);
        free(code);
        if (st == DSV3_EXEC_OK && res && !strncmp(res, "true\t", 5)) {
            snprintf(banner, sizeof banner, "%s\n", res + 5);
        } else {
            const char *msg = res && !strncmp(res, "false\t", 6) ? res + 6 : res;
            fprintf(stderr, "dsv3: %s\n", msg ? msg : "cannot load");
            rc = 1;
        }
        free(res);
    }
    if (!rc && !ran_code) {
        if (isatty(STDIN_FILENO)) {
            char full[2048];
            snprintf(full, sizeof full,
                     "dsv3 — a DeepSeek-V3 runtime you can look inside. %s"
                     "Try:  gen \"Once upon a time\"    info()    help()    .help    (Ctrl-D quits)\n",
                     banner[0] ? banner : "No model loaded: load \"DIR\", or load() for the bundled demo model.\n");
            rc = interactive(&r, full);
        } else {
            rc = piped(&r);
        }
    }
    free(r.chunk); /* a chunk left incomplete by Ctrl-D or the end of input */
    dsv3_session_free(r.s);
    return rc;
}
