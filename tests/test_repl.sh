#!/usr/bin/env bash
# test_repl.sh — the terminal REPL through a pseudo-terminal: runs tests/test_repl.py (pexpect)
# with Debian's python3. See that file for what is covered.
#
# Env: DSV3_BIN (default build/dsv3); DSV3_TEST_VERBOSE=1 prints whole transcripts on failure.
# Arguments are passed on: test name substrings pick tests (`bash tests/test_repl.sh ctrl_c`).
# Prints "N passed, M failed"; exits 1 on failure, 77 (skip) without pexpect, numpy or the binary.
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.." || exit 2
if ! "$PY" -c 'import pexpect' 2>/dev/null; then
    echo "skip: $PY has no pexpect (apt-get install python3-pexpect)"
    exit 77
fi
export DSV3_BIN=$BIN
"$PY" tests/test_repl.py "$@"
