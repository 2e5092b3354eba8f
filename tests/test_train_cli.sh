#!/usr/bin/env bash
# `dsv3 train` from the command line: one line per step, eval lines, --save writes a directory
# the other commands open, --resume continues to the same weights as an uninterrupted run (the
# saved train_state files compare equal byte for byte), and bad input exits 1 with one line
# (2 for usage errors).
. "$(dirname "$0")/lib.sh"

$PY scripts/gen_model.py "$work/tiny" --quiet --seed 3 || { echo "gen_model failed"; exit 1; }
data=examples/tokenizer_corpus.txt
common="--data $data --seq-len 16 --batch 2 --lr 1e-3 --warmup 2 --seed 9"

# a run of 4 steps with eval every 2 and a save
"$BIN" train "$work/tiny" $common --steps 4 --eval-every 2 --save "$work/full" > "$work/full.out" 2> "$work/full.err"
rc=$?
if [ $rc -eq 0 ] && [ "$(grep -c '^step [0-9]*/4 loss .* ce .* mtp .* balance .* lr .* gnorm .* maxvio .* tok/s' "$work/full.out")" -eq 4 ] &&
   [ "$(grep -c '^eval step' "$work/full.out")" -eq 2 ] && [ -f "$work/full/model.safetensors" ] &&
   [ -f "$work/full/train_state.safetensors" ] && [ -f "$work/full/tokenizer.json" ]; then ok
else bad "train 4 steps (rc $rc)"; cat "$work/full.out" "$work/full.err"; fi

# the saved directory is a model for the other commands
if "$BIN" logits "$work/full" --ids 1,2,3 > /dev/null 2>&1; then ok; else bad "dsv3 logits on the saved model"; fi

# 2 steps of the 4-step schedule, save, resume for the other 2: the same files as the
# uninterrupted run
"$BIN" train "$work/tiny" $common --steps 4 --stop-at 2 --save "$work/half" > /dev/null 2>&1
"$BIN" train "$work/tiny" $common --steps 4 --resume "$work/half" --save "$work/resumed" > "$work/res.out" 2>&1
if grep -q "(resumed)" "$work/res.out" && [ "$(grep -c '^step' "$work/res.out")" -eq 2 ] &&
   cmp -s "$work/full/train_state.safetensors" "$work/resumed/train_state.safetensors" &&
   cmp -s "$work/full/model.safetensors" "$work/resumed/model.safetensors"; then ok
else bad "resume is not bit-exact"; cat "$work/res.out"; fi

# --precision 64 (double compute) runs the same schedule to losses within 1e-4 of the default
# float32 path, and says so in its header
"$BIN" train "$work/tiny" $common --steps 2 --precision 64 > "$work/p64.out" 2>&1
"$BIN" train "$work/tiny" $common --steps 2 > "$work/p32.out" 2>&1
if grep -q "double compute" "$work/p64.out" && ! grep -q "double compute" "$work/p32.out" &&
   $PY - "$work/p32.out" "$work/p64.out" <<'PYEOF'
import re, sys
def losses(p):
    return [float(m.group(1)) for m in map(re.compile(r"^step \d+/\d+ loss (\S+)").match, open(p)) if m]
a, b = losses(sys.argv[1]), losses(sys.argv[2])
sys.exit(0 if len(a) == 2 and len(b) == 2 and all(abs(x - y) <= 1e-4 * abs(y) for x, y in zip(a, b)) else 1)
PYEOF
then ok; else bad "--precision 64 vs default"; cat "$work/p64.out" "$work/p32.out"; fi

# bad input: exit 1 and one line naming the problem
: > "$work/empty.txt"
printf 'ab\0cd' > "$work/bin.txt"
check_err "empty data" train 1 "no text" "$work/tiny" --data "$work/empty.txt" --steps 1
check_err "binary data" train 1 "binary file" "$work/tiny" --data "$work/bin.txt" --steps 1
check_err "seq-len too long" train 1 "exceeds max_position_embeddings" "$work/tiny" --data $data --steps 1 --seq-len 100000
check_err "missing model" train 1 "dsv3 train:" "$work/nope" --data $data --steps 1
check_err "not a state" train 1 "not a dsv3 training state" "$work/tiny" --data $data --steps 1 --seq-len 16 --resume "$work/full/model.safetensors"
check_err "nan loss" train 1 "stopped" "$work/tiny" $common --steps 6 --lr 1e38 --clip 0
check_err "usage" train 2 "required" "$work/tiny" --steps 1
check_err "bad number" train 2 "not a valid value" "$work/tiny" --data $data --steps 1 --lr abc
check_err "bad precision" train 2 "not a valid value" "$work/tiny" --data $data --steps 1 --precision 16

finish
