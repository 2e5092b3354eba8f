#!/usr/bin/env bash
# Soak at CI size (tests/soak.py): 1,000 cells in one dsv3-kernel and 1,000 lines in one REPL,
# every reply as expected and the RSS flat (at most 4 MiB more at the end than after the first
# tenth). scripts/soak runs the full 10,000 of each. Under ASan (whose quarantine keeps freed
# memory resident) the cells and lines run for the sanitizers and the RSS bound is not checked.
. "$(dirname "$0")/lib.sh"
BUILD=${DSV3_BUILD:-build}
KERNEL=$BUILD/dsv3-kernel
if [ ! -x "$KERNEL" ] || ! "$PY" -c 'import jupyter_client, zmq' 2>/dev/null; then
    echo "skip: needs $KERNEL and jupyter_client"
    exit 77
fi
$PY scripts/gen_model.py "$work/tiny" --quiet --seed 3 || { echo "gen_model failed"; exit 1; }
growth=4096
grep -q __asan_init "$BIN" 2>/dev/null && growth=100000000
export ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}exitcode=0
if "$PY" tests/soak.py "$(realpath "$BIN")" "$(realpath "$KERNEL")" "$work/tiny" \
        "${DSV3_SOAK_CELLS:-1000}" "${DSV3_SOAK_LINES:-1000}" $growth; then ok; else bad "soak"; fi
finish
