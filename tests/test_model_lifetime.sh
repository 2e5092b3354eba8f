#!/usr/bin/env bash
# Models are freed when nothing refers to them (docs/LUA.md, "load", "models", "close"): the
# session's list holds weak references, models() lists the open ones, close(m) frees at once and
# a closed model raises "model is closed", close() is refused while a train{} run computes with
# the model; and 1,000 load/unload cycles (half closed, half dropped) keep the RSS flat
# (DSV3_LOAD_CYCLES overrides the count). Under ASan (whose quarantine keeps freed memory
# resident) the cycles run for LeakSanitizer and the RSS bound is not checked.
. "$(dirname "$0")/lib.sh"
asan=0
grep -q __asan_init "$BIN" 2>/dev/null && asan=1

$PY scripts/gen_model.py "$work/tiny" --quiet --seed 3 || { echo "gen_model failed"; exit 1; }
cycles=${DSV3_LOAD_CYCLES:-1000}

cat > "$work/semantics.lua" <<'EOF'
local dir = arg[1]
local function check(c, what) if not c then error(what, 2) end end
local a = load(dir)
local b = load(dir)
check(#models() == 2 and models()[1] == a and models()[2] == b, "models() lists a, b in order")
a = nil
collectgarbage()
check(#models() == 1 and models()[1] == b, "a collected: only b listed")
close(b)
check(tostring(b) == "<closed model>", "closed renders as such")
check(#models() == 0, "closed model not listed")
local ok, msg = pcall(info, b)
check(not ok and msg:find("model is closed"), "info(closed): " .. tostring(msg))
ok, msg = pcall(gen, "hi", {n = 1})
check(not ok and msg:find("closed"), "gen on the closed current model: " .. tostring(msg))
close(b)                                   -- twice: no-op
local c = load(dir)
train{text = "hello world, hello world, hello world again", steps = 1, seq_len = 8, batch = 1, quiet = true}
ok, msg = pcall(close, c)
check(not ok and msg:find("train_reset"), "close refused while training: " .. tostring(msg))
check(tostring(c):find("^<model"), "still open")
load(dir)                                  -- c is no longer current; the trainer keeps it alive
collectgarbage()
check(info(c).layers == 3, "the trainer's model survives a GC")
train_reset()
close(c)
check(tostring(c) == "<closed model>", "closed after train_reset")
print("semantics ok")
EOF
if "$BIN" run "$work/semantics.lua" "$work/tiny" > "$work/sem.out" 2>&1 && grep -q "semantics ok" "$work/sem.out"; then ok
else bad "model lifetime semantics"; cat "$work/sem.out"; fi

cat > "$work/rss.lua" <<'EOF'
local dir, n = arg[1], tonumber(arg[2])
local function rss()
    for l in io.lines("/proc/self/status") do
        local v = l:match("^VmRSS:%s+(%d+)")
        if v then return tonumber(v) end
    end
end
local r0
for i = 1, n do
    local m = load(dir)
    if i % 2 == 0 then close(m) end      -- half closed at once, half left to the GC
    if i == 50 then collectgarbage(); r0 = rss() end
end
collectgarbage()
print(string.format("rss %d kB after 50 loads, %d kB after %d; %d models open", r0, rss(), n, #models()))
EOF
"$BIN" run "$work/rss.lua" "$work/tiny" "$cycles" > "$work/rss.out" 2>&1
cat "$work/rss.out"
if $PY - "$work/rss.out" $asan <<'PYEOF'
import re, sys
m = re.search(r"rss (\d+) kB after 50 loads, (\d+) kB after \d+; (\d+) models open", open(sys.argv[1]).read())
flat = sys.argv[2] == "1" or int(m.group(2)) - int(m.group(1)) < 4096
sys.exit(0 if m and flat and int(m.group(3)) <= 1 else 1)
PYEOF
then ok; else bad "RSS not flat over $cycles load/unload cycles"; fi

finish
