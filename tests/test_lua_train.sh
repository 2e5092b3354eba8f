#!/usr/bin/env bash
# Training from the session (train{}, train_eval, train_reset): see tests/lua/train_check.lua.
. "$(dirname "$0")/lib.sh"
$PY -c 'import numpy' 2>/dev/null || { echo "skip: no numpy"; exit 77; }
$PY scripts/gen_model.py "$work/m" --quiet --seed 5 --dtype fp32 || exit 1
"$BIN" run tests/lua/train_check.lua "$work/m"
