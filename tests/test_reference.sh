#!/usr/bin/env bash
# Exactness: `dsv3 logits` (both MLA forms, reference, fast and devsim backends) against the independent float64 numpy reference
# (tests/reference/dsv3_ref.py) on several checkpoint variants. Tolerance: max|a-b|/max|ref|
# <= 1e-5 for logits and MTP logits (issue: runtime; docs/ARCHITECTURE.md, "The model").
. "$(dirname "$0")/lib.sh"
TOL=${DSV3_REF_TOL:-1e-5}
$PY -c 'import numpy' 2>/dev/null || { echo "skip: /usr/bin/python3 has no numpy"; exit 77; }

ids_for() { # N SEED VOCAB -> comma-separated random ids
    $PY -c "import random,sys; r=random.Random($2); print(','.join(str(r.randrange($3)) for _ in range($1)))"
}

check() { # NAME GEN_ARGS... -- T
    local name=$1; shift
    local args=() T
    while [ "$1" != "--" ]; do args+=("$1"); shift; done
    T=$2
    local d=$work/$name
    $PY scripts/gen_model.py "$d" --quiet "${args[@]}" || { bad "$name: generator"; return; }
    local vocab
    vocab=$($PY -c "import json; print(json.load(open('$d/config.json'))['vocab_size'])")
    local ids
    ids=$(ids_for "$T" 7 "$vocab")
    local mtp # variants released without an MTP layer (Kimi-K2, Moonlight, V2) compare logits only
    mtp=$($PY -c "import json; print(int(bool(json.load(open('$d/config.json')).get('num_nextn_predict_layers'))))")
    local rm=() files=(absorbed.npy naive.npy)
    [ "$mtp" = 1 ] && rm=(--mtp-out "$d/refm.npy") && files+=(absorbedm.npy naivem.npy)
    $PY tests/reference/dsv3_ref.py "$d" --ids "$ids" --out "$d/ref.npy" "${rm[@]}" \
        || { bad "$name: reference"; return; }
    for be in ref fast devsim; do
    for form in absorbed naive; do
        local o=$d/$be-$form om=()
        [ "$mtp" = 1 ] && om=(--mtp-out "${o}m.npy")
        if ! "$BIN" logits "$d" --ids "$ids" --attn $form --backend $be --out "$o.npy" "${om[@]}"; then
            bad "$name/$be/$form: dsv3 logits exited non-zero"; continue
        fi
        if $PY tests/reference/compare.py "$o.npy" "$d/ref.npy" --tol "$TOL" --name "$name/$be/$form logits" &&
           { [ "$mtp" = 0 ] ||
             $PY tests/reference/compare.py "${o}m.npy" "$d/refm.npy" --tol "$TOL" --name "$name/$be/$form mtp"; }; then
            ok
        else
            bad "$name/$be/$form"
        fi
    done
    done
    # the simulated device runs the fast kernels: the same bytes
    for f in "${files[@]}"; do
        if cmp -s "$d/fast-$f" "$d/devsim-$f"; then ok; else bad "$name: devsim $f differs from fast"; fi
    done
}

check bf16        --dtype bf16            -- 24
check fp32        --dtype fp32 --seed 3   -- 24
check fp8_ragged  --dtype fp8  --seed 5   -- 24
check sharded     --dtype bf16 --shards 3 --seed 11 -- 24
check yarn_long   --dtype bf16 --seed 13  -- 200   # past original_max_position_embeddings (128)
check no_yarn     --dtype bf16 --no-yarn --seed 17 -- 40
check q_proj      --dtype fp8 --q-lora-rank 0 --seed 19 -- 24
check small_fp8   --preset small --dtype fp8 --seed 23 -- 48
# the family (docs/ARCHITECTURE.md, "Family"): each released variant's config keys and tensors
check v2          --family v2 --dtype fp8 --seed 29 -- 24        # softmax, group max, x16, no bias
check v2_lite     --family v2-lite --dtype bf16 --seed 31 -- 24  # softmax, greedy, q_proj
check kimi        --family kimi --dtype fp8 --seed 37 -- 24      # one group, 2.827, no MTP
check moonlight   --family moonlight --dtype bf16 --seed 41 -- 24 # q_proj, one group, no YaRN
check v2_small    --family v2 --preset small --dtype bf16 --seed 43 -- 24  # 8 groups, 3 kept

finish
