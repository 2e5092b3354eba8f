#!/usr/bin/env bash
# test_kernel_conformance.sh — Jupyter's kernel conformance suite (Debian python3-jupyter-kernel-test)
# against dsv3-kernel: tests/kernel_conformance.py run with a kernelspec that
# `dsv3 kernel install --prefix` writes into a scratch directory. The pager and clear_output tests
# skip (dsv3 has neither); every other test of the suite must pass.
. "$(dirname "$0")/lib.sh"
[ -x "$BIN" ] || { echo "skip: no $BIN (build first)"; exit 77; }
$PY -c 'import jupyter_kernel_test' 2>/dev/null || { echo "skip: $PY has no jupyter_kernel_test (python3-jupyter-kernel-test)"; exit 77; }
"$BIN" kernel install --prefix "$work" > /dev/null || { bad "kernel install"; finish; exit; }
if (cd tests && JUPYTER_PATH="$work/share/jupyter" timeout 180 $PY kernel_conformance.py > "$work/out" 2>&1) &&
   grep -q "^OK" "$work/out" && [ "$(grep -c '\.\.\. ok$' "$work/out")" -ge 10 ]; then ok
else bad "conformance suite"; fi
tail -16 "$work/out"
finish
