# lib.sh — what the shell tests share; source it first: . "$(dirname "$0")/lib.sh"
# Sets BIN (the dsv3 binary), PY (Debian's python3), a scratch directory $work removed on exit,
# and counts checks: `ok` after a check that passed, `bad NAME` after one that failed (prints
# "FAIL NAME"), `finish` prints "N passed, M failed" and returns the status of the test.
# `check_err NAME COMMAND RC NEEDLE ARGS...` runs `dsv3 COMMAND ARGS...` and wants exit status
# RC with NEEDLE on stderr — in exactly one line when RC is 1 (usage errors, 2, may print more).
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
