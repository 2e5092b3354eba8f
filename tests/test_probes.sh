#!/usr/bin/env bash
# The probe API end to end (tests/lua/probes_check.lua), then the exported JSON / SVG / .npy are
# parsed by independent readers.
. "$(dirname "$0")/lib.sh"
$PY -c 'import numpy' 2>/dev/null || { echo "skip: no numpy"; exit 77; }
$PY scripts/gen_model.py "$work/m" --quiet --seed 12 || exit 1
"$BIN" run tests/lua/probes_check.lua "$work/m" "$work" || exit 1
$PY - "$work" <<'PY'
import json, sys, xml.etree.ElementTree as ET
import numpy as np
d = sys.argv[1]
r = json.load(open(d + "/route.json"))
assert r["layers"] and all("experts" in t and "groups" in t for l in r["layers"] for t in l["tokens"])
svg = ET.parse(d + "/heatmap.svg").getroot()
assert svg.tag.endswith("svg") and len(list(svg)) > 10
import csv
rows = list(csv.DictReader(open(d + "/route.csv")))
assert rows and set(rows[0]) >= {"layer", "pos", "expert", "weight", "bias_changed"}
t = np.load(d + "/tensor.npy")
assert t.dtype == np.float32 and t.ndim == 2 and np.isfinite(t).all()
print("exports parse: route.json (%d layers), heatmap.svg (%d elements), tensor.npy %s" % (len(r["layers"]), len(list(svg)), t.shape))
PY
