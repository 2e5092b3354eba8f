#!/usr/bin/env bash
# fuzz.sh — build and run the libFuzzer targets of tests/fuzz/ for a fixed time each.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  run time per target (default 10)
#   TARGET   fuzz_safetensors, fuzz_config, fuzz_tokenizer, ... (default: every tests/fuzz/fuzz_*.c)
#
# Each target is compiled with clang -fsanitize=fuzzer,address,undefined directly from the
# library sources it needs (model/base/status.c model/base/file.c model/base/utf8.c model/run/config.c model/run/safetensors.c kernels/dtype.c,
# -lcjson -lm) into $DSV3_FUZZ_DIR (default build-fuzz/), and run over a fresh COPY of its seed
# corpus tests/fuzz/corpus_<name>/ (the repository corpus is never modified) with the
# dictionary tests/fuzz/<name>.dict. Crash inputs are written as $DSV3_FUZZ_DIR/<target>-crash-*
# (also -leak-, -timeout-, -oom-); reproduce one with `$DSV3_FUZZ_DIR/<target> FILE`.
# Env: CC (default clang), DSV3_FUZZ_DIR.
# Exit: 0 when no target found a crash, 1 when one did, 2 when clang/libFuzzer is unusable.
set -u

cd "$(dirname "$0")/.." || exit 2
SECONDS_EACH=${1:-10}
shift $(($# > 0 ? 1 : 0))
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    for f in tests/fuzz/fuzz_*.c; do TARGETS+=("$(basename "$f" .c)"); done
fi
CC=${CC:-clang}
OUT=${DSV3_FUZZ_DIR:-build-fuzz}
LIB_SOURCES=(model/base/status.c model/base/file.c model/run/config.c model/run/safetensors.c kernels/dtype.c
    model/text/tokenizer.c model/text/pretok.c model/text/chat.c model/base/strbuf.c model/base/utf8.c)
LIBS=(-lcjson -lpcre2-8 -lm)

# Sources and libraries a target needs beyond the parsers above.
extra_sources() {
    case $1 in
    fuzz_wire) echo jupyter/wire.c ;;
    *) ;;
    esac
}
extra_libs() {
    case $1 in
    fuzz_wire) echo -lsodium -lpthread ;;
    *) ;;
    esac
}
SANITIZERS=fuzzer,address,undefined
CFLAGS=(-std=gnu11 -g -O1 -fno-omit-frame-pointer "-fsanitize=$SANITIZERS"
    -fno-sanitize-recover=undefined -Wall -Wextra -Wno-unused-parameter -I.)

case $SECONDS_EACH in
'' | *[!0-9]*)
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
    exit 2
    ;;
esac

# max_len per target: a safetensors header with a few tensors; a full V3 config.json.
max_len() {
    case $1 in
    fuzz_safetensors) echo 4096 ;;
    fuzz_config) echo 8192 ;;
    fuzz_tokenizer) echo 16384 ;;
    fuzz_wire) echo 8192 ;;
    *) echo 4096 ;;
    esac
}

mkdir -p "$OUT"
status=0
for t in "${TARGETS[@]}"; do
    src=tests/fuzz/$t.c
    name=${t#fuzz_}
    if [ ! -f "$src" ]; then
        echo "fuzz.sh: no target $src" >&2
        exit 2
    fi
    echo "== $t: build"
    # shellcheck disable=SC2046
    if ! "$CC" "${CFLAGS[@]}" "${LIB_SOURCES[@]}" $(extra_sources "$t") "$src" "${LIBS[@]}" \
        $(extra_libs "$t") -o "$OUT/$t"; then
        echo "fuzz.sh: $CC could not build $t with -fsanitize=fuzzer (is libFuzzer installed?)" >&2
        exit 2
    fi
    work=$(mktemp -d "$OUT/corpus_$name.XXXXXX")
    if [ -d "tests/fuzz/corpus_$name" ]; then cp -r "tests/fuzz/corpus_$name/." "$work/"; fi
    dict=()
    [ -f "tests/fuzz/$name.dict" ] && dict=(-dict="tests/fuzz/$name.dict")
    rm -f "$OUT/$t-crash-"* "$OUT/$t-leak-"* "$OUT/$t-timeout-"* "$OUT/$t-oom-"*
    echo "== $t: ${SECONDS_EACH}s, -max_len=$(max_len "$t")"
    "$OUT/$t" "$work" "${dict[@]}" -max_total_time="$SECONDS_EACH" -max_len="$(max_len "$t")" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$OUT/$t-" >"$OUT/$t.log" 2>&1
    rc=$?
    grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs' "$OUT/$t.log"
    artifacts=$(ls "$OUT/$t-crash-"* "$OUT/$t-leak-"* "$OUT/$t-timeout-"* "$OUT/$t-oom-"* 2>/dev/null)
    if [ "$rc" -ne 0 ] || [ -n "$artifacts" ]; then
        echo "== $t: FAILED (exit $rc); log $OUT/$t.log"
        grep -E 'ERROR:|runtime error|SUMMARY|Test unit written' "$OUT/$t.log" | head -20
        status=1
    else
        echo "== $t: no crash"
    fi
    rm -rf "$work"
done
exit $status
