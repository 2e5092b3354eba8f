-- generate.lua — the options of gen() and chat(), one at a time.
--
--   build/dsv3 run examples/generate.lua [MODEL_DIR]    (default: the bundled demo model)
--
-- The demo model (examples/demo) knows only fortunes; watch what each option changes.
-- At the `dsv3>` prompt, Ctrl-C stops a running generation between two tokens: gen() then
-- returns what it has, with .interrupted = true.

print(load(arg[1])) -- no argument: $DSV3_MODEL, else the bundled demo model, from any directory
local prompt = "Once upon a time"

local function section(title)
    print("\n== " .. title .. " " .. string.rep("=", math.max(3, 72 - #title)))
end

-- Text as one readable line: control bytes shown as '.', cut to 60 bytes.
local function clip(s)
    s = s:gsub("%c", ".")
    return #s > 60 and (s:sub(1, 60) .. "...") or s
end

-- Generates quietly (stream = false) and prints one line per run.
local function show(label, opts)
    opts.stream = false
    local r = gen(prompt, opts)
    print(string.format("%-28s %-64s %s", label, string.format("%q", clip(r.text)),
                        tostring(r)))
    return r
end

local function same_ids(a, b)
    if #a ~= #b then return false end
    for k = 1, #a do if a[k] ~= b[k] then return false end end
    return true
end

section("Greedy: always the most likely token")
local g1 = show("greedy = true", {n = 16, greedy = true})
local g2 = show("temp = 0 (the same)", {n = 16, temp = 0})
print("identical:", same_ids(g1.ids, g2.ids))

section("Temperature (seeded, so each line is reproducible)")
for _, temp in ipairs({0.3, 0.7, 1.0, 1.5}) do
    show("temp = " .. temp, {n = 16, temp = temp, seed = 1})
end

section("Truncation: top_k and top_p")
show("top_k = 1 (greedy again)", {n = 16, temp = 1, top_k = 1, seed = 1})
show("top_k = 5", {n = 16, temp = 1, top_k = 5, seed = 1})
show("top_p = 0.5", {n = 16, temp = 1, top_p = 0.5, seed = 1})

section("Seeds")
local a = show("seed = 42", {n = 16, temp = 1, seed = 42})
local b = show("seed = 42 again", {n = 16, temp = 1, seed = 42})
print("same seed, same text:", same_ids(a.ids, b.ids))
-- Without a seed option, sampling uses the session seed, which each sampled gen() advances.
seed(7)
local c = show("seed(7), no seed option", {n = 16, temp = 1})
print("the session seed is now", seed())
seed(7)
local d = show("seed(7) again", {n = 16, temp = 1})
print("reproduced:", same_ids(c.ids, d.ids))

section("Stopping: n, stop strings, end of sequence")
local long = show("n = 32", {n = 32, greedy = true})
local word = long.text:match("%a%a", 8)
if word then
    show("stop = " .. string.format("%q", word), {n = 32, greedy = true, stop = word})
end

section("What a result holds")
local r = gen(prompt, {n = 8, greedy = true, stream = false})
print("r.text           ", string.format("%q", clip(r.text)))
print("r.ids            ", r.ids)
print("r.interrupted    ", r.interrupted)
for _, k in ipairs({"prompt_tokens", "tokens", "forward_passes", "prefill_seconds",
                    "decode_seconds", "tokens_per_second"}) do
    print(string.format("r.stats.%-17s %s", k, tostring(r.stats[k])))
end

section("MTP speculative decoding")
if info().mtp then
    local plain = show("greedy", {n = 32, greedy = true})
    local spec = show("greedy, mtp = true", {n = 32, greedy = true, mtp = true})
    print("greedy text unchanged by MTP:", same_ids(plain.ids, spec.ids))
    local s = show("temp = 1, mtp = true", {n = 32, temp = 1, seed = 3, mtp = true})
    print(string.format("sampling: drafted %d, accepted %d (acceptance rate %.2f)",
                        s.stats.drafted, s.stats.accepted, s.stats.acceptance_rate))
else
    print("(this model has no MTP layer)")
end

section("Chat template")
local p1 = gen("Hello!", {n = 4, greedy = true, stream = false}).stats.prompt_tokens
local p2 = gen("Hello!", {n = 4, greedy = true, stream = false, chat = true}).stats.prompt_tokens
local p3 = gen("Hello!", {n = 4, greedy = true, stream = false, chat = true,
                          system = "You are terse."}).stats.prompt_tokens
print(string.format("prompt tokens: plain %d, chat = true %d, with a system prompt %d", p1, p2, p3))

section("A conversation: chat()")
chat_reset()
chat("Hello!", {n = 12, greedy = true, stream = false})
chat("Tell me more.", {n = 12, greedy = true, stream = false})
for k, msg in ipairs(chat_history()) do
    print(string.format("%d %-9s %q", k, msg.role, clip(msg.content)))
end
chat_reset()
print("after chat_reset():", #chat_history(), "messages")

section("Streaming")
-- By default tokens are written as they come (stream = true): this line streams.
gen(prompt, {n = 16, greedy = true})
