#!/usr/bin/env bash
# The family as downloaded (docs/ARCHITECTURE.md, "Family"): a tiny checkpoint of each variant
# (scripts/gen_model.py --family) generates text and routes through the CLI and the Lua session;
# what dsv3 does not implement is refused naming it: training V2-style routing, and Kimi-K2 /
# Moonlight's tiktoken tokenizer. (Exactness against the numpy reference: test_reference.sh.)
. "$(dirname "$0")/lib.sh"
$PY -c 'import numpy' 2>/dev/null || { echo "skip: /usr/bin/python3 has no numpy"; exit 77; }
printf 'the quick brown fox jumps over the lazy dog\n%.0s' $(seq 50) > "$work/corpus.txt"

for fam in v3 v2 v2-lite kimi moonlight; do
    d=$work/$fam
    $PY scripts/gen_model.py "$d" --quiet --family "$fam" --seed 3 || { bad "$fam: generator"; continue; }
    # greedy generation, the same ids on every backend
    for be in ref fast devsim; do
        "$BIN" generate "$d" --prompt "the quick" -n 6 --greedy --print-ids --backend $be \
            > "$work/$fam.$be" 2> "$work/err" || { bad "$fam/$be: generate"; cat "$work/err"; }
    done
    cmp -s "$work/$fam.fast" "$work/$fam.devsim" && [ -s "$work/$fam.fast" ] && ok ||
        bad "$fam: devsim generated other ids than fast"
    # info names the variant; the session routes and edits the (possibly zero) bias
    "$BIN" "$d" -e 'local i = info(); print(i.model_type, i.scoring_func, i.topk_method)
        local ids = {5, 6, 7, 8, 9, 10}; bias_add(1, 3, 5.0)
        local n = route(ids):load(1).counts[4]; bias_reset()
        print("expert3", n, route(ids):load(1).counts[4])' > "$work/lua.txt" 2>&1
    want=$($PY -c "import json; c = json.load(open('$d/config.json'))
print(c.get('model_type'), c.get('scoring_func'), c.get('topk_method'), sep='\t')")
    grep -qF "$want" "$work/lua.txt" && ok || { bad "$fam: info() names '$want'"; cat "$work/lua.txt"; }
    grep -q '^expert3	6	[0-5]$' "$work/lua.txt" && ok || { bad "$fam: bias_add(1, 3, 5) does not steer to expert 3"; cat "$work/lua.txt"; }
done

# training: V3-family routing trains; V2 routing (softmax scores, no bias) is refused by name
"$BIN" train "$work/kimi" --data "$work/corpus.txt" --steps 1 --seq-len 16 > /dev/null 2> "$work/err" &&
    ok || { bad "kimi: one training step"; cat "$work/err"; }
check_err "v2: train refused" train 1 'scoring_func "softmax" and topk_method "group_limited_greedy" is not implemented in the trainer' \
    "$work/v2" --data "$work/corpus.txt" --steps 1 --seq-len 16
check_err "v2-lite: train refused" train 1 'topk_method "greedy"' \
    "$work/v2-lite" --data "$work/corpus.txt" --steps 1 --seq-len 16

# Kimi-K2 / Moonlight ship tiktoken.model instead of tokenizer.json: named, ids still work
d=$work/moonlight
rm -f "$d/tokenizer.json" "$d/tokenizer_config.json"
echo "dGhl 0" > "$d/tiktoken.model"
check_err "tiktoken: tokenize refused" tokenize 1 "tiktoken.model: the tiktoken format (Kimi-K2, Moonlight) is not supported" "$d" --text hi
check_err "tiktoken: generate --prompt refused" generate 1 "tiktoken.model format is not supported" "$d" --prompt hi -n 2
"$BIN" generate "$d" --ids 1,2,3 -n 3 --greedy --print-ids > /dev/null 2>&1 && ok || bad "tiktoken model: --ids generation"
finish
