# lib.sh — what the shell tests share; source it first: . "$(dirname "$0")/lib.sh"
# Sets BIN (the dsv3 binary), PY (Debian's python3), a scratch directory $work removed on exit,
# and counts checks: `ok` after a check that passed, `bad NAME` after one that failed (prints
# "FAIL NAME"), `finish` prints "N passed, M failed" and returns the status of the test.
# `check_err NAME COMMAND RC NEEDLE ARGS...` runs `dsv3 COMMAND ARGS...` and wants exit status
# RC with NEEDLE on stderr — in exactly one line when RC is 1 (usage errors, 2, may print more).
# `poison SRC DST TENSOR VALUE` copies a model directory with one value of one tensor broken.
set -u
BIN=${DSV3_BIN:-build/dsv3}
PY=/usr/bin/python3
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
ok() { pass=$((pass+1)); }
bad() { echo "FAIL $1"; fail=$((fail+1)); }
finish() {
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
check_err() {
    local name=$1 cmd=$2 want=$3 needle=$4; shift 4
    "$BIN" "$cmd" "$@" > /dev/null 2> "$work/err"
    local rc=$? lines
    lines=$(wc -l < "$work/err")
    if [ $rc -eq "$want" ] && grep -q -- "$needle" "$work/err" && { [ "$want" -eq 2 ] || [ "$lines" -eq 1 ]; }; then ok
    else bad "$name (rc $rc, $lines lines)"; cat "$work/err"; fi
}

# poison SRC DST TENSOR VALUE(nan|inf|-1): a copy of SRC with element 3 (0 for small tensors) of
# TENSOR set to VALUE in its dtype
poison() {
    rm -rf "$2" && cp -r "$1" "$2"
    $PY - "$2/model.safetensors" "$3" "$4" <<'PYEOF'
import json, struct, sys
path, name, what = sys.argv[1:]
b = bytearray(open(path, "rb").read())
n = struct.unpack("<Q", b[:8])[0]
t = json.loads(b[8:8 + n])[name]
x = {"nan": float("nan"), "inf": float("inf"), "-1": -1.0}[what]
size = {"F32": 4, "BF16": 2, "F16": 2, "F8_E4M3": 1}[t["dtype"]]
numel = 1
for d in t["shape"]: numel *= d
at = 8 + n + t["data_offsets"][0] + size * (3 if numel > 3 else 0)
if t["dtype"] == "F32": b[at:at + 4] = struct.pack("<f", x)
elif t["dtype"] == "BF16": b[at:at + 2] = struct.pack("<f", x)[2:]
elif t["dtype"] == "F16": b[at:at + 2] = struct.pack("<e", x)
else: b[at] = 0x7F                     # E4M3 has no infinity: its NaN code
open(path, "wb").write(bytes(b))
PYEOF
}
