#!/usr/bin/env bash
# GRPO from the session (tests/lua/grpo_check.lua) and from the command line (`dsv3 grpo`):
# one line per step, --save writes a directory the other commands open, prompt files, and bad
# input exits 1 with one line (2 for usage errors).
. "$(dirname "$0")/lib.sh"
$PY -c 'import numpy' 2>/dev/null || { echo "skip: no numpy"; exit 77; }

$PY scripts/gen_model.py "$work/m" --quiet --seed 5 --dtype fp32 --layers 2 || { echo "gen_model failed"; exit 1; }

if "$BIN" run tests/lua/grpo_check.lua "$work/m" "$work/lua-save" > "$work/lua.out" 2>&1; then ok
else bad "lua API"; cat "$work/lua.out"; fi

common="--group 4 --max-tokens 4 --seed 3"
"$BIN" grpo "$work/m" --task add --steps 3 $common --samples --save "$work/saved" > "$work/add.out" 2> "$work/add.err"
rc=$?
if [ $rc -eq 0 ] && [ "$(grep -c '^step [0-9]/3 reward .* std .* max .* kl .* len .* loss .* gnorm .* tok/s' "$work/add.out")" -eq 3 ] &&
   [ "$(grep -c '^  best ' "$work/add.out")" -eq 3 ] && grep -q '^saved ' "$work/add.out" &&
   [ -f "$work/saved/model.safetensors" ] && [ -f "$work/saved/tokenizer.json" ]; then ok
else bad "grpo --task add (rc $rc)"; cat "$work/add.out" "$work/add.err"; fi
if "$BIN" logits "$work/saved" --ids 1,2,3 > /dev/null 2>&1; then ok; else bad "dsv3 logits on the saved policy"; fi

printf 'the cat\tsat\r\n\nthe dog\tran\n' > "$work/prompts.tsv"
if "$BIN" grpo "$work/m" --prompts "$work/prompts.tsv" --steps 2 $common > "$work/p.out" 2>&1 &&
   grep -q '(2 prompts)' "$work/p.out" && [ "$(grep -c '^step' "$work/p.out")" -eq 2 ]; then ok
else bad "grpo --prompts"; cat "$work/p.out"; fi

# the same seed gives the same run
"$BIN" grpo "$work/m" --task add --steps 3 $common 2>/dev/null | sed 's/ tok\/s .*//' > "$work/a1"
"$BIN" grpo "$work/m" --task add --steps 3 $common 2>/dev/null | sed 's/ tok\/s .*//' > "$work/a2"
if cmp -s "$work/a1" "$work/a2" && [ -s "$work/a1" ]; then ok; else bad "not reproducible"; diff "$work/a1" "$work/a2"; fi

# Ctrl-C: stops within the current step, saves the last finished one, exit 130
"$BIN" grpo "$work/m" --task add --steps 100000 $common --save "$work/int" > "$work/int.out" 2> "$work/int.err" &
pid=$!
for _ in $(seq 600); do
    [ "$(grep -c '^step' "$work/int.out" 2>/dev/null)" -ge 2 ] && break
    sleep 0.1
done
kill -INT $pid
wait $pid
rc=$?
if [ $rc -eq 130 ] && grep -q 'interrupted after step [0-9]*, saved to' "$work/int.err" &&
   [ -f "$work/int/model.safetensors" ] && "$BIN" logits "$work/int" --ids 1,2 > /dev/null 2>&1; then ok
else bad "Ctrl-C (rc $rc)"; cat "$work/int.err"; fi

: > "$work/empty.tsv"
printf 'no tab here\n' > "$work/notab.tsv"
check_err "missing prompt file" grpo 1 "nope.tsv: No such file" "$work/m" --prompts "$work/nope.tsv" --steps 1
check_err "empty prompt file" grpo 1 "no prompts" "$work/m" --prompts "$work/empty.tsv" --steps 1
check_err "line without answer" grpo 1 "line 1: expected" "$work/m" --prompts "$work/notab.tsv" --steps 1
check_err "missing model" grpo 1 "dsv3 grpo:" "$work/nope" --task add --steps 1
check_err "too long" grpo 1 "max_position_embeddings" "$work/m" --task add --steps 1 --max-tokens 100000
check_err "bad eps" grpo 1 "option eps" "$work/m" --task add --steps 1 --eps 5
check_err "usage" grpo 2 "required" "$work/m" --steps 1
check_err "both sources" grpo 2 "required" "$work/m" --steps 1 --task add --prompts "$work/prompts.tsv"
check_err "unknown task" grpo 2 "unknown task" "$work/m" --steps 1 --task nope
check_err "bad number" grpo 2 "not a valid value" "$work/m" --task add --steps 1 --lr abc

finish
