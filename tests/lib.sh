# lib.sh — what the shell tests share; source it first: . "$(dirname "$0")/lib.sh"
# Sets BIN (the dsv3 binary), PY (Debian's python3), a scratch directory $work removed on exit,
# and counts checks: `ok` after a check that passed, `bad NAME` after one that failed (prints
# "FAIL NAME"), `finish` prints "N passed, M failed" and returns the status of the test.
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
