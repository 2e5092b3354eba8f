#!/usr/bin/env bash
# test_bad_input.sh — every kind of bad input to `dsv3 logits` fails cleanly.
#
# Generates tiny random checkpoints (scripts/gen_model.py) in a temporary directory, breaks
# them one way each (truncated or malformed safetensors, missing or mis-shaped tensors, a
# missing shard, bad config.json, bad --ids), and requires `dsv3 logits` to exit 1 with
# exactly one line on stderr that names what is wrong (the tensor, the key, the shard file...).
# Usage errors must exit 2; an unused extra tensor loads with a warning naming it.
#
# Env: DSV3_BIN (default build/dsv3); DSV3_ASAN_BIN, when set, runs every case against that
# binary too (an ASan/UBSan build) and also requires no sanitizer report; DSV3_TEST_VERBOSE=1
# prints the stderr line of each passing case.
# Prints "N passed, M failed"; exits 1 on failure, 77 (skip) without the binary or numpy.
set -u

cd "$(dirname "$0")/.." || exit 2
BIN=${DSV3_BIN:-build/dsv3}
PY=/usr/bin/python3
if [ ! -x "$BIN" ]; then
    echo "skip: $BIN is not built"
    exit 77
fi
if ! "$PY" -c 'import numpy' 2>/dev/null; then
    echo "skip: $PY has no numpy (needed by scripts/gen_model.py)"
    exit 77
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/dsv3_bad_input.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# ------------------------------------------------------------------ file surgery ----------
# surgery.py DIR OP ARGS...: edits DIR/model.safetensors or DIR/config.json in place.
cat >"$TMP/surgery.py" <<'EOF'
import json, os, struct, sys

d, op, args = sys.argv[1], sys.argv[2], sys.argv[3:]
st = os.path.join(d, "model.safetensors")

def load():
    raw = open(st, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]

def save(hdr, data):
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((-(8 + len(h))) % 8)
    with open(st, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)

def rebuild(hdr, data, drop=(), add=()):
    """Rewrites the file with tensors `drop` removed and `add` = [(name, dtype, shape, bytes)]
    appended, offsets recomputed so they still tile the data section."""
    names = sorted((k for k in hdr if k != "__metadata__" and k not in drop),
                   key=lambda k: hdr[k]["data_offsets"][0])
    out, blob = {"__metadata__": hdr.get("__metadata__", {})}, bytearray()
    for k in names:
        b, e = hdr[k]["data_offsets"]
        out[k] = dict(hdr[k], data_offsets=[len(blob), len(blob) + e - b])
        blob += data[b:e]
    for name, dtype, shape, payload in add:
        out[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(payload)]}
        blob += payload
    save(out, bytes(blob))

if op == "truncate":                      # truncate FRACTION_OR_BYTES
    size = os.path.getsize(st)
    keep = int(float(args[0]) * size) if "." in args[0] else int(args[0])
    os.truncate(st, keep)
elif op == "header-len-beyond-file":      # header length field = file size
    size = os.path.getsize(st)
    with open(st, "r+b") as f:
        f.write(struct.pack("<Q", size))
elif op == "corrupt-json":                # the header's first byte '{' -> '['
    with open(st, "r+b") as f:
        f.seek(8)
        assert f.read(1) == b"{"
        f.seek(8)
        f.write(b"[")
elif op == "set":                         # set TENSOR FIELD JSON
    hdr, data = load()
    hdr[args[0]][args[1]] = json.loads(args[2])
    save(hdr, data)
elif op == "offsets-beyond-data":         # offsets-beyond-data TENSOR
    hdr, data = load()
    b, e = hdr[args[0]]["data_offsets"]
    hdr[args[0]]["data_offsets"] = [b, len(data) + 64]
    save(hdr, data)
elif op == "overlap":                     # overlap TENSOR OTHER: TENSOR claims OTHER's bytes
    hdr, data = load()
    hdr[args[0]]["data_offsets"] = list(hdr[args[1]]["data_offsets"])
    save(hdr, data)
elif op == "remove":                      # remove TENSOR
    hdr, data = load()
    rebuild(hdr, data, drop=(args[0],))
elif op == "add":                         # add TENSOR DTYPE SHAPE_JSON (zero bytes)
    hdr, data = load()
    shape = json.loads(args[2])
    n = 1
    for s in shape:
        n *= s
    size = {"F32": 4, "BF16": 2, "U8": 1}[args[1]]
    rebuild(hdr, data, add=[(args[0], args[1], shape, bytes(n * size))])
elif op == "config-del":                  # config-del KEY
    p = os.path.join(d, "config.json")
    c = json.load(open(p))
    del c[args[0]]
    json.dump(c, open(p, "w"))
elif op == "config-set":                  # config-set KEY JSON
    p = os.path.join(d, "config.json")
    c = json.load(open(p))
    c[args[0]] = json.loads(args[1])
    json.dump(c, open(p, "w"))
elif op == "config-truncate":             # config-truncate: cut config.json in half
    p = os.path.join(d, "config.json")
    os.truncate(p, os.path.getsize(p) // 2)
elif op == "index-move":                  # index-move TENSOR SHARD: index names another shard
    p = os.path.join(d, "model.safetensors.index.json")
    idx = json.load(open(p))
    idx["weight_map"][args[0]] = args[1]
    json.dump(idx, open(p, "w"))
else:
    sys.exit("surgery.py: unknown op " + op)
EOF

gen() { # gen NAME [gen_model.py options]
    local name=$1
    shift
    "$PY" scripts/gen_model.py "$TMP/$name" --quiet "$@" >/dev/null || {
        echo "test_bad_input: scripts/gen_model.py $* failed"
        exit 1
    }
}
gen base
gen sharded --shards 3
gen fp8 --dtype fp8
gen nomtp --no-mtp

# prepare CASE_DIR SOURCE [OP ARGS...]: copies a generated checkpoint and breaks it.
prepare() {
    local dir=$TMP/$1 src=$TMP/$2
    shift 2
    cp -r "$src" "$dir"
    if [ $# -gt 0 ] && ! "$PY" "$TMP/surgery.py" "$dir" "$@"; then
        echo "test_bad_input: surgery $* on $dir failed"
        exit 1
    fi
}

# ------------------------------------------------------------------ cases -----------------
# Each case: NAME|MODEL_DIR|IDS|WORDS (WORDS separated by ';', all must be on the line).
CASES=()
bad() { CASES+=("$1|$2|$3|$4"); }

prepare trunc_header base truncate 5
bad "truncated file (5 bytes)" "$TMP/trunc_header" 1,2,3 "model.safetensors;truncated"
prepare trunc_data base truncate 0.5
bad "truncated file (half the data)" "$TMP/trunc_data" 1,2,3 "model.safetensors;data_offsets"
prepare hlen base header-len-beyond-file
bad "header length larger than the file" "$TMP/hlen" 1,2,3 "model.safetensors;header length"
prepare badjson base corrupt-json
bad "invalid JSON header" "$TMP/badjson" 1,2,3 "model.safetensors;JSON"
prepare dtype base set model.norm.weight dtype '"BF17"'
bad "unknown dtype" "$TMP/dtype" 1,2,3 "model.norm.weight;BF17"
prepare wrongdtype base set lm_head.weight dtype '"I16"'
bad "dtype not usable for a weight" "$TMP/wrongdtype" 1,2,3 "lm_head.weight;I16"
prepare offsets base offsets-beyond-data lm_head.weight
bad "data_offsets out of range" "$TMP/offsets" 1,2,3 "lm_head.weight;data_offsets"
prepare overlap base overlap model.norm.weight model.layers.0.input_layernorm.weight
bad "overlapping data_offsets" "$TMP/overlap" 1,2,3 "overlap;model.norm.weight"
prepare sizemismatch base set model.norm.weight shape '[127]'
bad "shape/size mismatch" "$TMP/sizemismatch" 1,2,3 "model.norm.weight"
prepare missing base remove model.layers.1.mlp.gate.weight
bad "required tensor missing" "$TMP/missing" 1,2,3 "model.layers.1.mlp.gate.weight;missing"
prepare wrongshape base set model.layers.1.mlp.gate.weight shape '[128,16]'
bad "tensor with the wrong shape" "$TMP/wrongshape" 1,2,3 "model.layers.1.mlp.gate.weight;shape"
prepare noscale fp8 remove model.layers.0.self_attn.o_proj.weight_scale_inv
bad "FP8 weight without its scale" "$TMP/noscale" 1,2,3 "model.layers.0.self_attn.o_proj.weight_scale_inv"
prepare noshard sharded
rm -f "$TMP/noshard/model-00002-of-00003.safetensors"
bad "shard listed in the index but absent" "$TMP/noshard" 1,2,3 "model-00002-of-00003.safetensors"
prepare wrongshard sharded index-move lm_head.weight model-00001-of-00003.safetensors
bad "index names the wrong shard" "$TMP/wrongshard" 1,2,3 "lm_head.weight;model-00001-of-00003.safetensors"
prepare nokey base config-del hidden_size
bad "config.json without hidden_size" "$TMP/nokey" 1,2,3 "hidden_size"
prepare contra base config-set n_group 3
bad "config.json n_group not dividing n_routed_experts" "$TMP/contra" 1,2,3 "n_group"
prepare kvheads base config-set num_key_value_heads 2
bad "config.json num_key_value_heads != num_attention_heads" "$TMP/kvheads" 1,2,3 "num_key_value_heads"
prepare sparsemax base config-set scoring_func '"sparsemax"'
bad "config.json scoring_func sparsemax" "$TMP/sparsemax" 1,2,3 "scoring_func"
prepare llama base config-set model_type '"llama"'
bad "config.json model_type llama" "$TMP/llama" 1,2,3 "model_type;llama"
prepare aux base config-set topk_method '"aux_tc"'
bad "config.json topk_method aux_tc" "$TMP/aux" 1,2,3 "topk_method;aux_tc"
prepare cfgjson base config-truncate
bad "config.json invalid JSON" "$TMP/cfgjson" 1,2,3 "config.json;JSON"
prepare cfgbig base config-set hidden_size 256
bad "config.json disagrees with the tensors" "$TMP/cfgbig" 1,2,3 "model.embed_tokens.weight;shape"
bad "token id out of range" "$TMP/base" 5000 "5000"
bad "token id out of range after valid ones" "$TMP/base" 1,2,1024 "1024"
bad "--ids with an empty item" "$TMP/base" 1,,2 "--ids"
bad "--ids not a number" "$TMP/base" a "--ids"
bad "--ids negative" "$TMP/base" -1 "--ids"
bad "--ids trailing comma" "$TMP/base" 1,2, "--ids"
bad "--ids beyond int32" "$TMP/base" 99999999999 "--ids"
bad "--ids longer than max_position_embeddings" "$TMP/base" \
    "$("$PY" -c 'print(",".join(["1"] * 513))')" "max_position_embeddings"
bad "nonexistent model dir" "$TMP/no_such_model" 1,2,3 "no_such_model"
bad "model dir is a file" "$TMP/base/config.json" 1,2,3 "config.json"
prepare noweights base
rm -f "$TMP/noweights/model.safetensors"
bad "model dir without weights" "$TMP/noweights" 1,2,3 "model.safetensors"
prepare extra base add model.layers.0.extra_proj.weight BF16 '[4,4]'

# ------------------------------------------------------------------ runner ----------------
PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "$1 PASS"; }
ko() {
    FAIL=$((FAIL + 1))
    echo "$1 FAIL"
    shift
    printf '    %s\n' "$@"
}

sanitizer_report() { grep -qE 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$1"; }

# run_bad BIN LABEL NAME DIR IDS WORDS [EXTRA ARGS...]
run_bad() {
    local bin=$1 label=$2 name=$3 dir=$4 ids=$5 words=$6
    shift 6
    local err=$TMP/stderr rc lines
    "$bin" logits "$dir" --ids "$ids" "$@" >"$TMP/stdout" 2>"$err"
    rc=$?
    lines=$(wc -l <"$err")
    local why=()
    [ "$rc" -eq 1 ] || why+=("exit code $rc, expected 1")
    [ "$lines" -eq 1 ] || why+=("$lines lines on stderr, expected exactly 1")
    local wl w
    IFS=';' read -r -a wl <<<"$words"
    for w in "${wl[@]}"; do
        grep -qF -- "$w" "$err" || why+=("stderr does not name '$w'")
    done
    if sanitizer_report "$err"; then why+=("sanitizer report"); fi
    if [ ${#why[@]} -eq 0 ]; then
        ok "[$label] $name"
        [ -z "${DSV3_TEST_VERBOSE:-}" ] || sed 's/^/    /' "$err"
    else
        ko "[$label] $name" "${why[@]}" "stderr: $(head -c 2000 "$err")"
    fi
}

# run_usage BIN LABEL NAME ARGS...: must exit 2 (usage) with something on stderr.
run_usage() {
    local bin=$1 label=$2 name=$3
    shift 3
    "$bin" "$@" >"$TMP/stdout" 2>"$TMP/stderr"
    local rc=$?
    local why=()
    [ "$rc" -eq 2 ] || why+=("exit code $rc, expected 2")
    [ -s "$TMP/stderr" ] || why+=("nothing on stderr")
    if sanitizer_report "$TMP/stderr"; then why+=("sanitizer report"); fi
    if [ ${#why[@]} -eq 0 ]; then ok "[$label] $name"; else ko "[$label] $name" "${why[@]}"; fi
}

run_all() {
    local bin=$1 label=$2
    for c in "${CASES[@]}"; do
        IFS='|' read -r name dir ids words <<<"$c"
        run_bad "$bin" "$label" "$name" "$dir" "$ids" "$words"
    done
    run_bad "$bin" "$label" "--mtp-out without an MTP layer" "$TMP/nomtp" 1,2,3 "MTP" \
        --mtp-out "$TMP/mtp.npy"
    run_bad "$bin" "$label" "--out into a missing directory" "$TMP/base" 1,2,3 "no_such_dir" \
        --out "$TMP/no_such_dir/logits.npy"

    # an extra tensor the config does not use: loads, warns naming it
    "$bin" logits "$TMP/extra" --ids 1,2,3 >"$TMP/stdout" 2>"$TMP/stderr"
    local rc=$?
    local why=()
    [ "$rc" -eq 0 ] || why+=("exit code $rc, expected 0")
    grep -qF model.layers.0.extra_proj.weight "$TMP/stderr" || why+=("no warning naming the tensor")
    [ -s "$TMP/stdout" ] || why+=("no logits printed")
    if sanitizer_report "$TMP/stderr"; then why+=("sanitizer report"); fi
    if [ ${#why[@]} -eq 0 ]; then
        ok "[$label] extra unused tensor loads with a warning"
    else
        ko "[$label] extra unused tensor loads with a warning" "${why[@]}" \
            "stderr: $(head -c 2000 "$TMP/stderr")"
    fi

    run_usage "$bin" "$label" "usage: no arguments" logits
    run_usage "$bin" "$label" "usage: no --ids" logits "$TMP/base"
    run_usage "$bin" "$label" "usage: --ids without a value" logits "$TMP/base" --ids
    run_usage "$bin" "$label" "usage: unknown option" logits "$TMP/base" --ids 1 --bogus
    run_usage "$bin" "$label" "usage: bad --attn" logits "$TMP/base" --ids 1 --attn fast
    run_usage "$bin" "$label" "usage: unknown command" frobnicate
}

run_all "$BIN" dsv3
if [ -n "${DSV3_ASAN_BIN:-}" ]; then
    if [ -x "$DSV3_ASAN_BIN" ]; then
        run_all "$DSV3_ASAN_BIN" asan
    else
        ko "[asan] DSV3_ASAN_BIN" "$DSV3_ASAN_BIN is not an executable"
    fi
fi

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
