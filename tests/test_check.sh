#!/usr/bin/env bash
# Non-finite numbers never pass silently at load (model/run/scan.h): NaN or infinity in an FP8
# block scale, a norm gain or a router bias makes loading fail naming the tensor (dsv3 logits,
# load() in Lua); `dsv3 check` finds those and non-finite weights (BF16 and the E4M3 NaN code),
# a scale that is not positive and a shape that does not match the config, naming each tensor,
# with a summary and --json; a clean checkpoint passes.
. "$(dirname "$0")/lib.sh"

$PY scripts/gen_model.py "$work/fp8" --quiet --seed 3 --dtype fp8 || { echo "gen_model failed"; exit 1; }
$PY scripts/gen_model.py "$work/bf16" --quiet --seed 3 || { echo "gen_model failed"; exit 1; }

# a clean checkpoint: exit 0, "ok", JSON ok
for m in fp8 bf16; do
    if "$BIN" check "$work/$m" > "$work/out" 2> "$work/err" && tail -1 "$work/out" | grep -qx ok &&
       "$BIN" check "$work/$m" --json | $PY -c 'import json, sys; d = json.load(sys.stdin); sys.exit(0 if d["ok"] and d["tensors"] > 100 and not d["problems"] else 1)'; then ok
    else bad "check of a clean $m model"; cat "$work/out" "$work/err"; fi
done
grep -q "FP8 block scales: [0-9]* tensors, scale_inv in" <("$BIN" check "$work/fp8") && ok || bad "scale range line"

# caught at load and by check: a scale, a norm gain, a router bias (NaN and inf each)
S=model.layers.1.mlp.experts.3.up_proj.weight_scale_inv
N=model.layers.2.post_attention_layernorm.weight
B=model.layers.1.mlp.gate.e_score_correction_bias
Q=model.layers.1.self_attn.q_a_layernorm.weight
for case in "$S nan" "$S inf" "$N nan" "$N inf" "$B nan" "$B inf" "$Q inf"; do
    set -- $case
    poison "$work/fp8" "$work/bad" "$1" "$2"
    check_err "load: $2 in $1" logits 1 "tensor $1: value .* is -\?$2 (.* must be finite)" "$work/bad" --ids 1,2,3
    if "$BIN" check "$work/bad" --json > "$work/json" 2> "$work/err"; then bad "check passed $2 in $1"
    elif $PY - "$work/json" "$1" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if not d["ok"] and d["nonfinite_values"] == 1 and [p["tensor"] for p in d["problems"]] == [sys.argv[2]] else 1)
PYEOF
    then ok; else bad "check --json of $2 in $1"; cat "$work/json"; fi
done
if timeout 10 "$BIN" -e "print(pcall(load, '$work/bad'))" 2>&1 | grep -q "tensor $Q: value .* is inf"; then ok
else bad "load() in Lua names the tensor"; fi

# weights are not scanned at load (too large), but check finds them: an E4M3 NaN code, a BF16 inf
W=model.layers.1.mlp.experts.5.up_proj.weight
poison "$work/fp8" "$work/bad" $W nan
"$BIN" check "$work/bad" > "$work/out" 2> "$work/err"
if [ $? -eq 1 ] && grep -q "problem: $W: .*1 non-finite values (1 NaN, 0 infinite)" "$work/out" &&
   grep -qx "dsv3 check: $work/bad: 1 problem" "$work/err"; then ok
else bad "check: E4M3 NaN in a weight"; cat "$work/out" "$work/err"; fi
W2=model.layers.0.self_attn.o_proj.weight
poison "$work/bf16" "$work/bad" $W2 inf
"$BIN" check "$work/bad" > "$work/out" 2>&1
if [ $? -eq 1 ] && grep -q "problem: $W2: .*(0 NaN, 1 infinite)" "$work/out"; then ok
else bad "check: BF16 inf in a weight"; cat "$work/out"; fi

# a negative scale, a shape that disagrees with the config
poison "$work/fp8" "$work/bad" $S -1
"$BIN" check "$work/bad" > "$work/out" 2>&1
if [ $? -eq 1 ] && grep -q "problem: $S: .*block scale -1 is not positive" "$work/out"; then ok
else bad "check: negative scale"; cat "$work/out"; fi
rm -rf "$work/bad" && cp -r "$work/bf16" "$work/bad"
sed -i 's/"moe_intermediate_size": *[0-9]*/"moe_intermediate_size": 48/' "$work/bad/config.json"
"$BIN" check "$work/bad" > "$work/out" 2>&1
if [ $? -eq 1 ] && grep -q "shapes and dtypes vs config.json: .*shape \[.*\], expected" "$work/out"; then ok
else bad "check: shape vs config"; cat "$work/out"; fi

check_err "usage" check 2 "MODEL_DIR is required"
check_err "missing dir" check 1 "dsv3 check: config" "$work/nope"

finish
