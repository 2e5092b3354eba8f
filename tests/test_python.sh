#!/usr/bin/env bash
# test_python.sh — the Python module (python/, docs/PYTHON.md): python/tests/test_dsv3.py against
# the CLI and the Lua session (under pytest when Debian's python3-pytest is there, else as a plain
# script), scripts/install-python.sh into a scratch user site, and the example notebook
# python/examples/interpretability.ipynb run by nbclient with the standard python3 kernel from its
# own folder (its code run as a script when ipykernel is missing; with matplotlib its logit-lens
# heatmap must be drawn). Skips (77) when this build has
# no module (no python3-dev or numpy).
. "$(dirname "$0")/lib.sh"
B=${DSV3_BUILD:-build}
so=$(ls "$B"/python/dsv3.*.so 2>/dev/null | head -1)
[ -n "$so" ] || { echo "skip: no $B/python/dsv3.*.so (python3-dev and python3-numpy are needed)"; exit 77; }
$PY -c 'import numpy' 2>/dev/null || { echo "skip: no numpy"; exit 77; }
case $B in /*) ;; *) B=$PWD/$B ;; esac
export PYTHONPATH=$B/python${PYTHONPATH:+:$PYTHONPATH}
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
export DSV3_BIN=$BIN
export PYDEVD_DISABLE_FILE_VALIDATION=1 # ipykernel's debugger notes on stderr
unset DSV3_MODEL
# An ASan build's module needs the sanitizer runtimes first in the interpreter (preloaded), and
# the interpreter's own memory at exit is not ours to report (no leak check in these processes).
if ldd "$so" | grep -q libasan; then
    export LD_PRELOAD="$(cc -print-file-name=libasan.so) $(cc -print-file-name=libubsan.so)"
    export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
    export DSV3_TEST_SANITIZED=1
fi

# 1. the API against the CLI and Lua
$PY scripts/gen_model.py "$work/small" --quiet --preset small --seed 4
export DSV3_TEST_SMALL=$work/small
if $PY -c 'import pytest' 2>/dev/null; then
    if $PY -m pytest -q -p no:cacheprovider python/tests/test_dsv3.py > "$work/out" 2>&1; then ok
    else bad "python/tests/test_dsv3.py (pytest)"; fi
else
    if $PY python/tests/test_dsv3.py > "$work/out" 2>&1; then ok
    else bad "python/tests/test_dsv3.py"; fi
fi
tail -40 "$work/out"

# 2. the install command, into a scratch user site, imported from outside the tree
if PYTHONUSERBASE=$work/userbase PYTHONPATH= bash scripts/install-python.sh "$B" > "$work/inst" 2>&1 &&
   (cd / && PYTHONUSERBASE=$work/userbase PYTHONPATH= $PY -c 'import dsv3; assert dsv3.load().info()["layers"] == 4'); then ok
else bad "scripts/install-python.sh"; cat "$work/inst"; fi
PYTHONUSERBASE=$work/userbase bash scripts/install-python.sh --uninstall > /dev/null
(cd / && PYTHONUSERBASE=$work/userbase PYTHONPATH= $PY -c 'import dsv3' 2>/dev/null) && bad "uninstall left dsv3 importable" || ok

# 3. the example notebook, from its own folder
nb=python/examples/interpretability.ipynb
if $PY -c 'import nbclient, nbformat, ipykernel' 2>/dev/null; then
    if (cd python/examples && $PY - "$(basename $nb)" > "$work/nb" 2>&1 <<'PY'
import sys, nbformat, nbclient
nb = nbformat.read(sys.argv[1], as_version=4)
nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": "."}}).execute()
errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
assert not errors, errors
text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
for needle in ("digit tokens", "mean KL", "block 3:", "tokens routed to expert", "MTP drafts"):
    assert needle in text, needle
try:
    import matplotlib  # with it the logit lens is also a figure (an image in the cell's output)
    pngs = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert pngs >= 1 and "heatmap drawn with matplotlib" in text, "no logit-lens figure"
except ImportError:
    print("note: no matplotlib: the logit lens is a table only")
print("notebook ran: %d code cells" % sum(c.cell_type == "code" for c in nb.cells))
PY
    ); then ok; else bad "$nb under nbclient"; cat "$work/nb"; fi
else
    echo "note: no nbclient/ipykernel for $PY: running the notebook's code as a script"
    if (cd python/examples && $PY -c '
import json, sys
nb = json.load(open(sys.argv[1]))
code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
exec(compile(code, sys.argv[1], "exec"), {})' "$(basename $nb)" > "$work/nb" 2>&1); then ok
    else bad "$nb as a script"; cat "$work/nb"; fi
fi
finish
