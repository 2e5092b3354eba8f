#!/usr/bin/env bash
# Fill-in-Middle from the command line and the session: `dsv3 train --fim-rate R` (the header
# line counts the rearranged documents; --dump-tokens shows the sentinels in the trained ids;
# rate 0 prints the same losses as no option), `dsv3 generate --fim-prefix/--fim-suffix` on the
# demo model (its prompt length, the middle ends at EOS or -n), bad input (exit 2 for usage, 1
# with one line naming the problem, e.g. a tokenizer without the FIM tokens), and
# tests/lua/fim_check.lua for fim{} and train{fim_rate=}.
. "$(dirname "$0")/lib.sh"
[ -x "$PY" ] || { echo "skip: needs /usr/bin/python3"; exit 77; }

$PY scripts/gen_model.py "$work/tiny" --quiet --seed 3 || { echo "gen_model failed"; exit 1; }
# the same model with <｜fim▁begin｜> renamed in its tokenizer
cp -r "$work/tiny" "$work/nofim"
sed -i 's/fim▁begin/fim▁start/g' "$work/nofim/tokenizer.json"
mkdir "$work/docs"
printf 'def add(a, b):\n    return a + b\n' > "$work/docs/a.txt"
printf 'The quick brown fox jumps over the lazy dog. %.0s' 1 2 3 > "$work/docs/b.txt"
printf 'int main(void) { return 0; }\n' > "$work/docs/c.txt"
common="--data $work/docs --seq-len 8 --batch 2 --seed 4 --steps 3 --heldout 0"

# rate 1: every document rearranged; the dumped ids (2 sequences of 9 per step) hold the
# sentinels (1019-1021 in the generated tokenizer)
"$BIN" train "$work/tiny" $common --fim-rate 1 --dump-tokens "$work/f1.ids" > "$work/f1.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q '^fim rate 1: 3 of 3 documents in the PSM layout' "$work/f1.out" &&
   [ "$(grep -c '^step 1 seq ' "$work/f1.ids")" -eq 2 ] && [ "$(grep -c '^step' "$work/f1.ids")" -eq 6 ] &&
   [ "$(awk '{print NF - 4}' "$work/f1.ids" | sort -u)" = "9" ] &&
   grep -qE ' (1019|1020|1021)( |$)' "$work/f1.ids"; then ok
else bad "--fim-rate 1 (rc $rc)"; cat "$work/f1.out"; head -3 "$work/f1.ids"; fi

# rate 0: the same losses as without the option, and no sentinel in the data
"$BIN" train "$work/tiny" $common --dump-tokens "$work/f0.ids" > "$work/plain.out" 2>&1
"$BIN" train "$work/tiny" $common --fim-rate 0 > "$work/f0.out" 2>&1
strip() { grep '^step' "$1" | sed 's/ tok\/s .*//'; }
if [ -n "$(strip "$work/plain.out")" ] && [ "$(strip "$work/plain.out")" = "$(strip "$work/f0.out")" ] &&
   ! grep -q 'fim rate' "$work/f0.out" && ! grep -qE ' (1019|1020|1021)( |$)' "$work/f0.ids" &&
   [ "$(strip "$work/plain.out")" != "$(strip "$work/f1.out")" ]; then ok
else bad "--fim-rate 0 changed the run"; diff <(strip "$work/plain.out") <(strip "$work/f0.out"); fi

# generate: the FIM prompt on the demo model (BOS, begin, prefix, hole, suffix, end)
pre="Love is " suf=" forever."
"$BIN" generate examples/demo --fim-prefix "$pre" --fim-suffix "$suf" -n 6 --greedy --stats "$work/st.json" > "$work/gen.out" 2>&1
rc=$?
np=$(( $("$BIN" tokenize examples/demo --text "$pre" 2>/dev/null | wc -w) + $("$BIN" tokenize examples/demo --text "$suf" 2>/dev/null | wc -w) + 4 ))
if [ $rc -eq 0 ] && $PY -c "import json,sys; s=json.load(open('$work/st.json')); sys.exit(not (s['prompt_tokens']==$np and 1<=s['tokens']<=6))"; then ok
else bad "generate --fim-prefix/--fim-suffix (rc $rc, want $np prompt tokens)"; cat "$work/gen.out" "$work/st.json"; fi

check_err "rate out of range" train 2 "not a valid value" "$work/tiny" $common --fim-rate 1.5
check_err "rate not a number" train 2 "not a valid value" "$work/tiny" $common --fim-rate x
check_err "train without FIM tokens" train 1 "has no <｜fim▁begin｜> token" "$work/nofim" $common --fim-rate 0.1
check_err "dump to a bad path" train 1 "dump-tokens" "$work/tiny" $common --dump-tokens /nonexistent/x.ids
check_err "generate without FIM tokens" generate 1 "has no <｜fim▁begin｜> token" "$work/nofim" --fim-prefix a --fim-suffix b -n 2
check_err "fim and prompt" generate 2 "exactly one of" examples/demo --fim-prefix a --prompt b
check_err "fim and chat" generate 2 "cannot be used with" examples/demo --fim-suffix a --chat
check_err "fim prefix without value" generate 2 "bad or incomplete" examples/demo --fim-prefix

# the session: fim{} and train{fim_rate=}
if "$BIN" run tests/lua/fim_check.lua examples/demo "$work/nofim" "$work/docs" > "$work/lua.out" 2>&1 &&
   grep -q '^5 passed, 0 failed' "$work/lua.out"; then ok
else bad "tests/lua/fim_check.lua"; cat "$work/lua.out"; fi

finish
