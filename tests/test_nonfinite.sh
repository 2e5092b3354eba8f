#!/usr/bin/env bash
# Non-finite numbers never pass silently in the forward pass (model/run/forward.c): a NaN or an
# infinity in a weight (which loading does not scan: `dsv3 check` does) makes the forward stop
# with one line naming the first layer and component where a non-finite value appeared — on the
# fast, ref and devsim backends, from the CLI and from Lua (where the session survives it) — and
# a clean model is untouched.
. "$(dirname "$0")/lib.sh"
[ -x "$BIN" ] || { echo "skip: no $BIN (build first)"; exit 77; }
$PY -c 'import numpy' 2>/dev/null || { echo "skip: $PY has no numpy"; exit 77; }
$PY scripts/gen_model.py "$work/m" --quiet --seed 3 || { echo "gen_model failed"; exit 1; }

for be in fast ref devsim; do
    poison "$work/m" "$work/o" model.layers.2.self_attn.o_proj.weight nan
    check_err "attention NaN ($be)" logits 1 "layer 2, attention output (attn_out), at position 0" \
        "$work/o" --ids 1,2,3 --backend $be
    poison "$work/m" "$work/d" model.layers.0.mlp.down_proj.weight inf
    check_err "dense FFN inf ($be)" generate 1 "layer 0, FFN/MoE output (ffn_out)" \
        "$work/d" --ids 1,2,3 -n 4 --greedy --backend $be
    poison "$work/m" "$work/h" lm_head.weight nan
    check_err "lm_head NaN ($be)" logits 1 "non-finite logits at position 0 (the lm_head" \
        "$work/h" --ids 1,2,3 --backend $be
done
# the session survives, the run is usable again on a clean model, a clean model is unaffected
out=$("$BIN" -e "
local ok, e = pcall(gen, {1, 2, 3}, {n = 4, greedy = true}, load('$work/o'))
print(ok, e)
local m = load('$work/m')
print(#gen({1, 2, 3}, {n = 4, greedy = true}).ids)" 2>&1)
grep -q "false.*layer 2, attention output" <<<"$out" && ok || bad "Lua: $out"
grep -qx 4 <<<"$(tail -1 <<<"$out")" && ok || bad "Lua clean model after the error: $out"
"$BIN" logits "$work/m" --ids 1,2,3 --out "$work/l.npy" && ok || bad "clean model"
finish
