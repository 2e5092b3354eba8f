#!/usr/bin/env bash
# The full-size layouts, as sparse files (docs/ARCHITECTURE.md, "Family"): DeepSeek-V3's 671B
# checkpoint (163 shards + index, the released config, FP8 weights with weight_scale_inv, the
# MTP layer 61) and Kimi-K2's 1T one, written by scripts/gen_model.py --sparse (headers only:
# the data are holes, a few MB on disk). `dsv3 info` must open and bind every tensor without
# reading the weights — quickly and in little memory — and count the published parameters.
. "$(dirname "$0")/lib.sh"
$PY -c 'import numpy' 2>/dev/null || { echo "skip: /usr/bin/python3 has no numpy"; exit 77; }
free_kb=$(df -Pk "$work" | awk 'NR==2 {print $4}')
[ "$free_kb" -gt 200000 ] || { echo "skip: under 200 MB free in $work"; exit 77; }

layout() { # NAME ARGS... -> $work/NAME
    local name=$1; shift
    $PY scripts/gen_model.py "$work/$name" --quiet --sparse --dtype fp8 --no-tokenizer "$@" ||
        bad "$name: generator"
}

# info --json of DIR, run as a child whose peak RSS python reports
info_json() {
    $PY - "$BIN" "$1" "$2" <<'PY'
import json, resource, subprocess, sys, time
t = time.time()
out = subprocess.run([sys.argv[1], "info", sys.argv[2], "--json"], capture_output=True, text=True)
if out.returncode != 0:
    sys.exit("dsv3 info failed: " + out.stderr)
j = json.loads(out.stdout)
j["wall_seconds"] = time.time() - t
j["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
json.dump(j, open(sys.argv[3], "w"))
PY
}

layout v3 --preset v3-671b --shards 163
d=$work/v3
n=$(ls "$d" | grep -c '^model-[0-9]\{5\}-of-000163\.safetensors$')
[ "$n" = 163 ] && [ -f "$d/model.safetensors.index.json" ] && ok || bad "v3: $n shards, want 163 + index"
used_kb=$(du -sk "$d" | cut -f1)
[ "$used_kb" -lt 65536 ] && ok || bad "v3: $used_kb KB on disk (sparse files should take a few MB)"
if info_json "$d" "$work/v3.json"; then
    if $PY - "$work/v3.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); p = j["params"]
# docs/ARCHITECTURE.md "Family": the main model is 671,026,419,200 parameters; the MTP layer
# 11,610,068,224 unique + its stored copies of the embedding and head (2 x 926,679,040)
assert p["main"] == 671026419200, p["main"]
assert p["mtp"] == 11610068224 + 2 * 926679040, p["mtp"]
assert 36.0e9 < p["active"] < 38.0e9, p["active"]
assert j["mtp"] and j["fp8"] and j["layers"] == 61 and j["routed_experts"] == 256
assert j["dtype_bytes"]["F8_E4M3"] > 6.5e11 and j["dtype_bytes"]["F32"] > 1e8  # weight_scale_inv
assert 6.8e11 < j["file_bytes"] < 7.0e11, j["file_bytes"]
assert j["wall_seconds"] < 30 and j["peak_rss_mb"] < 1024, (j["wall_seconds"], j["peak_rss_mb"])
print("v3-671b: total %.3fB (main %.3fB + MTP %.3fB), active %.3fB, %.1f GB of files, open %.2f s, "
      "peak RSS %.0f MB" % (p["total"] / 1e9, p["main"] / 1e9, p["mtp"] / 1e9, p["active"] / 1e9,
                            j["file_bytes"] / 1e9, j["open_seconds"], j["peak_rss_mb"]))
PY
    then ok; else bad "v3-671b info"; fi
else
    bad "v3-671b: dsv3 info"
fi
# the Lua info() of the same model
"$BIN" "$d" -e 'local i = info(); print(i.params.total - i.params.mtp, i.model_type)' > "$work/lua.txt" 2>&1
grep -q '^671026419200	deepseek_v3$' "$work/lua.txt" && ok || { bad "v3-671b: Lua info()"; cat "$work/lua.txt"; }
rm -rf "$d"

layout kimi --preset kimi-k2-1t --family kimi --shards 61
if info_json "$work/kimi" "$work/kimi.json"; then
    if $PY - "$work/kimi.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); p = j["params"]
assert j["model_type"] == "kimi_k2" and not j["mtp"] and j["n_group"] == 1
assert 1.00e12 < p["total"] < 1.05e12, p["total"]   # "1T total"
assert 31e9 < p["active"] < 34e9, p["active"]      # "32B activated"
assert j["wall_seconds"] < 30 and j["peak_rss_mb"] < 1024
print("kimi-k2-1t: total %.3fB, active %.3fB, open %.2f s, peak RSS %.0f MB"
      % (p["total"] / 1e9, p["active"] / 1e9, j["open_seconds"], j["peak_rss_mb"]))
PY
    then ok; else bad "kimi-k2-1t info"; fi
else
    bad "kimi-k2-1t: dsv3 info"
fi
finish
