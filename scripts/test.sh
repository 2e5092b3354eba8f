#!/usr/bin/env bash
# The whole test suite: set-up, a release build and an ASan+UBSan build, ctest on both; where the
# CUDA toolkit is installed (CI: CUDA 13, no GPU) also a build with the CUDA backend, whose GPU
# test checks what it can without a device and then reports skipped.
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
if [ -x /usr/local/cuda/bin/nvcc ] || command -v nvcc >/dev/null; then
    bash scripts/build.sh build-cuda -DDSV3_WERROR=ON -DDSV3_CUDA=ON
    echo "== CUDA build (kernels/cuda compiled for sm_90a)"
    (cd build-cuda && ctest --output-on-failure -j2 -R '^(test_cuda|test_devsim|test_layers|test_kernels|test_generate)$')
else
    echo "== no CUDA toolkit: the CUDA backend is not built"
fi
