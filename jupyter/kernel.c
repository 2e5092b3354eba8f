/* kernel.c — the dsv3-kernel binary: a Jupyter kernel running dsv3's Lua session.
 *
 * `dsv3-kernel -f CONNECTION_FILE` (as a kernelspec's argv starts it, see install.c). Owns
 * the process-wide pieces: the interrupt flag (the one mutable global, set by SIGINT and by
 * interrupt_request), signal dispositions, the capture of stderr (what a cell writes there goes
 * to the notebook, capture.h), and the order of construction: connection file → stderr capture
 * → session interpreter → server → serve until shutdown_request.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "jupyter/capture.h"
#include "jupyter/interp_session.h"
#include "jupyter/server.h"

_Static_assert(sizeof(sig_atomic_t) == sizeof(int), "the interrupt flag is shared as an int");

/* Set by SIGINT (signal interrupt mode) and by the control thread (message mode); the
 * interpreter clears it when a cell starts and ends, so an interrupt while idle does nothing. */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

static int usage(FILE *to, int rc) {
    fprintf(
        to,
        "usage: dsv3-kernel -f CONNECTION_FILE\n"
        "A Jupyter kernel for dsv3 (Lua). Install its kernelspec with\n"
        "`dsv3 kernel install [--user | --prefix DIR]`, then `jupyter console --kernel dsv3`.\n");
    return rc;
}

int main(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-f") || !strcmp(argv[i], "--connection-file")) && i + 1 < argc)
            path = argv[++i];
        else if (!strncmp(argv[i], "--connection-file=", 18))
            path = argv[i] + 18;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return usage(stdout, 0);
        else
            return usage(stderr, 2);
    }
    if (!path) return usage(stderr, 2);

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);

    dsv3_err err = {{0}};
    dsv3_jconnection conn;
    dsv3_jsession *js = NULL;
    dsv3_jserver *srv = NULL;
    dsv3_jcapture *errout = NULL;
    dsv3_jinterp interp;
    int rc = 1, restart = 0;
    if (dsv3_jconnection_read(&conn, path, &err) == DSV3_OK &&
        dsv3_jcapture_open(&errout, 2, &err) == DSV3_OK &&
        dsv3_jsession_new(&js, &interp, (volatile int *)&interrupted, errout, &err) == DSV3_OK &&
        dsv3_jserver_open(&srv, &conn, (const volatile int *)&interrupted, &err) == DSV3_OK &&
        dsv3_jserver_run(srv, &interp, &restart, &err) == DSV3_OK)
        rc = 0;
    dsv3_jconnection_fini(&conn);
    dsv3_jserver_close(srv);
    dsv3_jsession_free(js);
    dsv3_jcapture_close(errout);
    if (rc) fprintf(stderr, "dsv3-kernel: %s\n", err.msg);
    return rc;
}
