#!/usr/bin/env bash
# A checkpoint directory is replaced as a whole (docs/TRAINING.md, "Checkpoints"): 24 kill -9 at
# random moments of `dsv3 train --save OUT --save-every 1` (each run resuming from OUT) leave OUT
# loadable by `dsv3 logits` and consistent (every weight of model.safetensors equals its
# master copy in train_state.safetensors, the biases equal router_bias, the step never goes
# back); the next save removes what the killed ones left beside OUT; files of an older dsv3
# killed mid-write (*.tmp.<pid>) go, other regular files stay, a subdirectory is refused, and an
# old checkpoint moved aside by the two-rename fallback comes back.
. "$(dirname "$0")/lib.sh"

$PY scripts/gen_model.py "$work/tiny" --quiet --seed 3 || { echo "gen_model failed"; exit 1; }
data=examples/tokenizer_corpus.txt
common="--data $data --seq-len 16 --batch 2 --lr 1e-3 --seed 9 --save-f32 --save-every 1"
out=$work/out
kills=${DSV3_KILLS:-24}

# consistent OUT: prints the state's step, exits 1 naming the first mismatch
cat > "$work/check.py" <<'PYEOF'
import json, struct, sys
def read(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__", {})
    return meta, {k: b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in h.items()}
d = sys.argv[1]
_, model = read(d + "/model.safetensors")
meta, state = read(d + "/train_state.safetensors")
n = 0
for k, v in model.items():
    if k.endswith("e_score_correction_bias"):
        ref = state.get("router_bias." + k.split(".")[2])
    else:
        ref = state.get("master." + k)
        if ref is None: continue   # a tied copy saved under its second name
    if ref != v: sys.exit("mismatch: " + k)
    n += 1
if n < 10: sys.exit("only %d tensors compared" % n)
json.load(open(d + "/config.json"))
print(meta["step"])
PYEOF

last=0 landed=0 good=0 ever=0
for i in $(seq 1 "$kills"); do
    resume=""
    [ -d "$out" ] && resume="--resume $out"
    "$BIN" train "$work/tiny" $common --steps 100000 $resume --save "$out" > /dev/null 2> "$work/train.err" &
    pid=$!
    sleep "$(awk -v s="$RANDOM" 'BEGIN { printf "%.3f", 0.15 + (s % 400) / 1000 }')"
    kill -9 $pid 2> /dev/null
    wait $pid 2> /dev/null
    ls "$work" | grep -q '^out\.dsv3-' && landed=$((landed + 1))
    if [ ! -d "$out" ]; then
        # killed before any save completed (a loaded machine can take longer than the first kill
        # to start and save): nothing to lose yet; once a checkpoint existed, it must never go
        [ $ever -eq 0 ] && { good=$((good + 1)); continue; }
        bad "kill $i: OUT is gone"; continue
    fi
    ever=1
    if step=$($PY "$work/check.py" "$out" 2> "$work/check.err") && [ "$step" -ge "$last" ] &&
       "$BIN" logits "$out" --ids 1,2,3 > /dev/null 2>&1; then
        good=$((good + 1)); last=$step
    else
        bad "kill $i: OUT inconsistent (step '$step' after $last)"; cat "$work/check.err" "$work/train.err"
    fi
done
echo "kills: $kills, OUT consistent after $good, $landed left a save half-done beside OUT, last step $last"
[ "$good" -ge $((kills - 1)) ] && [ "$last" -gt 0 ] && ok || bad "kill test"

# one more save to the place removes the leftovers; an older dsv3's temp file goes, a note stays
touch "$out/model.safetensors.tmp.4242" "$out/NOTES.txt"
"$BIN" train "$work/tiny" $common --steps 100000 --resume "$out" --stop-at $((last + 1)) --save "$out" > /dev/null 2>&1
left=$(ls "$work" | grep -c '^out\.dsv3-')
if [ "$left" -eq 0 ] && [ ! -e "$out/model.safetensors.tmp.4242" ] && [ -f "$out/NOTES.txt" ] &&
   [ "$($PY "$work/check.py" "$out")" -eq $((last + 1)) ]; then ok
else bad "leftover cleanup ($left left)"; ls -la "$work" "$out"; fi

# a directory inside OUT would be lost by a replacement: refused, OUT unchanged
mkdir "$out/sub"
check_err "subdirectory refused" train 1 "holds sub, a directory" "$work/tiny" $common --steps 1 --save "$out"
rmdir "$out/sub"
check_err "not a directory" train 1 "not a directory" "$work/tiny" $common --steps 1 --save "$work/tiny/config.json"

# the two-rename fallback killed between its renames: OUT absent, the old checkpoint aside;
# the next save puts it back before replacing it (a dead pid names the leftover)
dead=$(sh -c 'echo $$')
mv "$out" "$work/out.dsv3-old.$dead"
mkdir "$work/out.dsv3-new.$dead" && touch "$work/out.dsv3-new.$dead/model.safetensors"
"$BIN" train "$work/tiny" $common --steps 100000 --resume "$work/out.dsv3-old.$dead" --stop-at $((last + 2)) --save "$out" > /dev/null 2>&1
if [ -f "$out/NOTES.txt" ] && [ "$(ls "$work" | grep -c '^out\.dsv3-')" -eq 0 ] &&
   [ "$($PY "$work/check.py" "$out")" -eq $((last + 2)) ]; then ok
else bad "fallback leftovers"; ls -la "$work" "$out"; fi

# a symbolic link OUT: its target is replaced, the link stays
ln -s "$out" "$work/link"
"$BIN" train "$work/tiny" $common --steps 100000 --resume "$out" --stop-at $((last + 3)) --save "$work/link" > /dev/null 2>&1
if [ -L "$work/link" ] && [ "$($PY "$work/check.py" "$out")" -eq $((last + 3)) ]; then ok
else bad "symlink OUT"; ls -la "$work"; fi

finish
