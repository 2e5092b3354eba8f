/* repl.h — the terminal front end of a session: the interactive prompt (GNU readline), scripts
 * (`dsv3 run FILE`), one-liners (`dsv3 -e CODE`) and piped stdin.
 *
 * Follows lua.c: read (readline, expression first, continuation while a chunk is incomplete,
 * `.help` / `.quit` / `.time` handled before Lua), evaluate (a protected call; Ctrl-C sets the
 * interrupt flag, which stops Lua code, a forward or a generation at its next safe point), print.
 */
#ifndef DSV3_REPL_H
#define DSV3_REPL_H

/* `dsv3 [MODEL_DIR] [-e CODE]...`, `dsv3 run FILE [ARGS...]`: returns the exit status. */
int dsv3_repl_main(int argc, char **argv);

#endif
