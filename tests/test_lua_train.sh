#!/usr/bin/env bash
# Training from the session (train{}, train_eval, train_reset): see tests/lua/train_check.lua.
set -u
BIN=${DSV3_BIN:-build/dsv3}
/usr/bin/python3 -c 'import numpy' 2>/dev/null || { echo "skip: no numpy"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 scripts/gen_model.py "$work/m" --quiet --seed 5 --dtype fp32 || exit 1
exec "$BIN" run tests/lua/train_check.lua "$work/m"
