#!/usr/bin/env bash
# test_fuzz.sh — a short fuzzing smoke test: scripts/fuzz.sh 5 (5 s per target).
#
# Skips (exit 77) when clang cannot link a -fsanitize=fuzzer program. Builds into
# $DSV3_BUILD/fuzz when ctest sets DSV3_BUILD, so parallel build trees do not share outputs.
set -u

cd "$(dirname "$0")/.." || exit 2
CC=${CC:-clang}
probe=$(mktemp -d "${TMPDIR:-/tmp}/dsv3_fuzz_probe.XXXXXX")
trap 'rm -rf "$probe"' EXIT
cat >"$probe/p.c" <<'EOF'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return (int)(n && d[0] == 0) * 0; }
EOF
if ! command -v "$CC" >/dev/null 2>&1 ||
    ! "$CC" -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" >/dev/null 2>&1; then
    echo "skip: $CC cannot build libFuzzer targets (-fsanitize=fuzzer)"
    exit 77
fi
if [ -n "${DSV3_BUILD:-}" ]; then export DSV3_FUZZ_DIR=${DSV3_FUZZ_DIR:-$DSV3_BUILD/fuzz}; fi
bash scripts/fuzz.sh 5
