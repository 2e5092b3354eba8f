#!/usr/bin/env bash
# `dsv3 schedule`: the bubble table for PP=8, M=20 against the report's formulas, the SVG parsed
# by Python's xml.etree, the JSON parsed by json (every op passes the rules again in Python),
# and the usage / constraint errors with their exit codes.
. "$(dirname "$0")/lib.sh"
[ -x "$BIN" ] || { echo "skip: no $BIN (build first)"; exit 77; }
$PY -c 'import xml.etree.ElementTree, json' 2>/dev/null || { echo "skip: no $PY"; exit 77; }

# the table: simulated bubble next to the formula, peak activations, parameter copies
out=$("$BIN" schedule --pp 8 --micro 20 --svg "$work/s.svg") || bad "schedule exit status"
grep -q '^1f1b *21 *21  (PP-1)(F+B) *8 *1x' <<<"$out" && ok || bad "1f1b row: $out"
grep -q '^zb1p *7 *7  (PP-1)(F+B-2W) *8 *1x' <<<"$out" && ok || bad "zb1p row"
grep -q '^dualpipe *6 *6  (PP/2-1)(F&B+B-3W) *9 *2x' <<<"$out" && ok || bad "dualpipe row"
[ "$(grep -c '^rank ' <<<"$out")" -eq 24 ] && ok || bad "3 x 8 timeline rows"

# the SVG is XML with one rect per op and a border per F&B pair
$PY - "$work/s.svg" <<'PY' && ok || bad "svg"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
rects = root.findall("{http://www.w3.org/2000/svg}rect")
titled = [r for r in rects if r.find("{http://www.w3.org/2000/svg}title") is not None]
# 1F1B 2 ops per chunk, ZB1P 3, DualPipe 2 plus its split W's; PP*M = 160 chunks
assert 2 * 160 + 3 * 160 + 2 * 160 < len(titled) < 2 * 160 + 3 * 160 + 3 * 160, len(titled)
borders = [r for r in rects if r.get("stroke-width") == "1.5"]
assert len(borders) > 0, "no F&B pair border"
PY

# the JSON: counts, values, and the dependency rules checked again independently
"$BIN" schedule --pp 4 --micro 8 --f 2 --b 1 --w 0.5 --a 0.25 --json > "$work/s.json" || bad "json exit status"
$PY - "$work/s.json" <<'PY' && ok || bad "json"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["pp"] == 4 and d["micro"] == 8 and d["fb"] == 3.5, d
names = [m["method"] for m in d["methods"]]
assert names == ["1f1b", "zb1p", "dualpipe"], names
for m in d["methods"]:
    ops = m["ops"]
    done = {}
    for o in ops:
        done[(o["kind"] if o["kind"] != "BW" else "B", o["mb"], o["dir"], o["stage"])] = o
    for o in ops:
        k, mb, di, st = o["kind"], o["mb"], o["dir"], o["stage"]
        if k == "F" and st > 0:
            assert o["start"] >= done[("F", mb, di, st - 1)]["end"], o
        if k in ("B", "BW"):
            assert o["start"] >= done[("F", mb, di, st)]["end"], o
            if st < d["pp"] - 1:
                assert o["start"] >= done[("B", mb, di, st + 1)]["end"], o
        if k == "W":
            assert o["start"] >= done[("B", mb, di, st)]["end"], o
    by_rank = {}
    for i, o in enumerate(ops):
        by_rank.setdefault(o["rank"], []).append((o["start"], o["end"], i, o["pair"]))
    for r, iv in by_rank.items():
        iv.sort()
        for a, b in zip(iv, iv[1:]):
            assert b[0] >= a[1] or (b[3] == a[2] and a[:2] == b[:2]), (r, a, b)
    makespan = max(o["end"] for o in ops) - min(o["start"] for o in ops)
    assert abs(makespan - m["makespan"]) < 1e-9
    assert abs(m["bubble"] - max(x["bubble"] for x in m["ranks"])) < 1e-9
assert d["methods"][0]["bubble"] == d["methods"][0]["formula"] == 3 * (2.25 + 1.75)
PY

# one method; errors and their exit codes
"$BIN" schedule --pp 4 --micro 8 --method zb1p | grep -q '^zb1p ' && ok || bad "--method zb1p"
"$BIN" schedule --pp 4 --micro 6 --method dualpipe >/dev/null 2>"$work/err"; rc=$?
[ $rc -eq 1 ] && grep -q 'micro 6 < 2\*pp = 8' "$work/err" && ok || bad "dualpipe constraint (rc $rc)"
"$BIN" schedule --pp 4 --micro 6 >"$work/out" 2>"$work/err"; rc=$?
[ $rc -eq 0 ] && grep -q 'dualpipe left out' "$work/err" && ! grep -q '^dualpipe' "$work/out" && ok || bad "all without dualpipe"
"$BIN" schedule --pp 4 >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "missing --micro is usage"
"$BIN" schedule --pp 4 --micro 8 --f -1 >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "negative time is usage"
"$BIN" schedule --pp 4 --micro 8 --method gpipe >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "unknown method"
finish
