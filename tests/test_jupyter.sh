#!/usr/bin/env bash
# test_jupyter.sh — dsv3-kernel under Debian's real Jupyter clients (tests/test_jupyter.py).
#
# Generates the tiny random model with tokenizer (scripts/gen_model.py) in a temporary
# directory, then runs tests/test_jupyter.py with /usr/bin/python3: jupyter_client starts
# $DSV3_BUILD/dsv3-kernel from a kernelspec that `$DSV3_BIN kernel install --prefix` wrote.
# Env: DSV3_BUILD (default build), DSV3_BIN (default $DSV3_BUILD/dsv3). Extra arguments are
# passed on (a test-name substring).
# Prints "N passed, M failed"; exits 1 on failure, 77 (skip) without the binaries,
# jupyter_client, nbclient, pyzmq or numpy.
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.." || exit 2
BUILD=${DSV3_BUILD:-build}
BIN=${DSV3_BIN:-$BUILD/dsv3}
KERNEL=$BUILD/dsv3-kernel
for f in "$BIN" "$KERNEL"; do
    if [ ! -x "$f" ]; then
        echo "skip: $f is not built"
        exit 77
    fi
done
if ! "$PY" -c 'import jupyter_client, nbclient, nbformat, zmq, numpy' 2>/dev/null; then
    echo "skip: $PY lacks jupyter_client/nbclient/nbformat/zmq/numpy (scripts/setup.sh installs them)"
    exit 77
fi

"$PY" scripts/gen_model.py "$work/tiny" --quiet || exit 1
# Sanitizer builds: leaks at kernel exit are reported on stderr, not by the exit status that
# nobody reads; keep them visible without failing the clients.
export ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}exitcode=0
"$PY" -Xfrozen_modules=off tests/test_jupyter.py "$(realpath "$BIN")" "$(realpath "$KERNEL")" "$work/tiny" "$@"
