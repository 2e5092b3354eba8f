#!/usr/bin/env bash
# test_lua_tensor.sh — the tensor value's array methods from Lua (tests/lua/test_tensor.lua,
# through tests/lua/runner.lua) on the bundled demo model: construction, t[i], slicing,
# arithmetic with broadcasting, matmul, norms, cos, sum/mean, topk/argmax, save, and the
# difference of two captures. Exits 77 (skip) without the binary.
set -u
cd "$(dirname "$0")/.." || exit 2
BIN=${DSV3_BIN:-build/dsv3}
[ -x "$BIN" ] || { echo "skip: $BIN is not built"; exit 77; }
"$BIN" run tests/lua/test_tensor.lua examples/demo
