#!/usr/bin/env bash
# `dsv3 route --json` against the numpy reference's routing (selections exact, weights and
# scores to 1e-5) on tiny checkpoints where the bias flips many choices, and on the DeepSeek-V2
# family's routing (softmax scores, group_limited_greedy / greedy, no bias).
. "$(dirname "$0")/lib.sh"
$PY -c 'import numpy' 2>/dev/null || { echo "skip: no numpy"; exit 77; }
for variant in "bf16 --dtype bf16 --seed 3" "fp8 --dtype fp8 --seed 9" "small --preset small --dtype bf16 --seed 4" \
               "v2 --family v2 --preset small --dtype bf16 --seed 6" "v2lite --family v2-lite --dtype bf16 --seed 8"; do
    set -- $variant
    name=$1; shift
    d=$work/$name
    $PY scripts/gen_model.py "$d" --quiet --no-tokenizer "$@"
    ids=$($PY -c "import random; r=random.Random(5); print(','.join(str(r.randrange(1024)) for _ in range(40)))")
    $PY tests/reference/dsv3_ref.py "$d" --ids "$ids" --out "$d/ref.npy" --route-out "$d/ref.json" 2>/dev/null
    "$BIN" route "$d" --ids "$ids" --json > "$d/dsv3.json" || { bad "$name: dsv3 route"; continue; }
    if $PY - "$d/dsv3.json" "$d/ref.json" "$name" "$d/config.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2])); name = sys.argv[3]
# weights are scores times routed_scaling_factor (16 for V2): compare them on the scores' scale
rsf = max(1.0, json.load(open(sys.argv[4])).get("routed_scaling_factor", 1.0))
assert [l["layer"] for l in a["layers"]] == [l["layer"] for l in b["layers"]], "layers differ"
worst, flips, n = 0.0, 0, 0
for la, lb in zip(a["layers"], b["layers"]):
    assert len(la["tokens"]) == len(lb["tokens"])
    for i, (ta, tb) in enumerate(zip(la["tokens"], lb["tokens"])):
        assert ta["experts"] == tb["experts"], "layer %d token %d: experts %s vs reference %s" % (la["layer"], i, ta["experts"], tb["experts"])
        for k in ("weights", "scores", "biased"):
            for x, y in zip(ta[k], tb[k]):
                worst = max(worst, abs(x - y) / max(rsf if k == "weights" else 1.0, abs(y)))
        flips += ta["bias_changed"]; n += 1
assert worst <= 1e-5, "max rel diff %.3g" % worst
if not name.startswith("v2"):  # V2 routers have no bias: nothing to flip
    assert flips > 0, "no token whose choice the bias changed: the test would not see a bias bug"
else:
    assert flips == 0, "a V2 model (zero bias) reports choices the bias changed"
print("%s: %d token-layers agree, max rel diff %.2g, bias changed %d of them" % (name, n, worst, flips))
PY
    then ok; else bad "$name"; fi
done
finish
