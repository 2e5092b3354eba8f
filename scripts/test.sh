#!/usr/bin/env bash
# The whole test suite: set-up, a release build and an ASan+UBSan build, ctest on both.
set -eu
cd "$(dirname "$0")/.."
[ -n "${DSV3_NO_SETUP:-}" ] || bash scripts/setup.sh
bash scripts/build.sh build -DDSV3_WERROR=ON
bash scripts/build.sh build-asan -DDSV3_WERROR=ON -DDSV3_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
echo "== release build"
(cd build && ctest --output-on-failure -j2)
echo "== ASan + UBSan build"
# Everything that runs our C code, minus what only re-runs Python/Node references or the fuzzers
# (already sanitized) — they add minutes and no C coverage.
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -j2 -E '^(test_fuzz|test_reference_selftest|test_tokenizer_hf|test_reference)$')
