-- tour.lua — a first look at dsv3 from Lua: load a model, look inside, tokenize, read the
-- logits, generate with and without multi-token prediction (MTP).
--
--   build/dsv3 run examples/tour.lua [MODEL_DIR]        (default: the bundled demo model)
--
-- The default is $DSV3_MODEL, else the bundled demo model examples/demo (a 3M-parameter model
-- trained on fortunes), found from any working directory. Every line
-- here also works typed at the `dsv3>` prompt, where values print themselves (no print needed).

local dir = arg[1] -- nil: load() picks the default

local function section(title)
    print("\n== " .. title .. " " .. string.rep("=", math.max(3, 72 - #title)))
end

-- Text as one readable line: control bytes shown as '.', cut to n bytes.
local function clip(s, n)
    s = s:gsub("%c", ".")
    return #s > n and (s:sub(1, n) .. "...") or s
end

local function human(n)
    if n >= 1e9 then return string.format("%.2fB", n / 1e9) end
    if n >= 1e6 then return string.format("%.2fM", n / 1e6) end
    if n >= 1e3 then return string.format("%.1fK", n / 1e3) end
    return tostring(n)
end

section("1. Load a model")
-- load() opens a Hugging Face-format directory (config.json, *.safetensors, tokenizer.json)
-- and makes it the current model: the functions below use it unless given another.
local m = load(dir)
print(m)

section("2. What is inside: info()")
local i = info()
print(i)        -- the text rendering; the fields are plain Lua values:
print(string.format("%d layers: %d dense + %d MoE, each MoE layer with %d routed experts " ..
                    "(top-%d per token, %d groups) and %d shared",
                    i.layers, i.dense_layers, i.moe_layers, i.routed_experts,
                    i.experts_per_token, i.groups, i.shared_experts))
print(string.format("parameters: %s in all, %s active per token (%.0f%%)", human(i.params.total),
                    human(i.params.active), 100 * i.params.active / i.params.total))
print(string.format("KV cache per token: %d bytes with MLA's latent cache, %d with plain " ..
                    "multi-head attention (%.1fx less)", i.cache_bytes_per_token,
                    i.mha_cache_bytes_per_token,
                    i.mha_cache_bytes_per_token / i.cache_bytes_per_token))

section("3. Tokens")
local text = "The lighthouse keeper climbed the stairs."
local t = tokenize(text)
print(t)                                         -- ids with their pieces
print(#t .. " tokens: " .. table.concat(t.pieces, " | "))
print("detokenize(tokenize(text)) == text:", detokenize(t) == text)

section("4. Logits: what comes next?")
-- One exact FP32 forward pass from position 0 (text gets the BOS token first).
local l = logits(text)
local T, V = l:shape()
print(string.format("logits of %d positions over a vocabulary of %d", T, V))
print("the 5 most likely next tokens after the last position:")
for rank, e in ipairs(l:top(-1, 5)) do
    print(string.format("  %d. id %-5d %-16s logit %7.3f   p = %.4f", rank, e.id,
                        string.format("%q", clip(detokenize({e.id}), 12)), e.logit, e.prob))
end

section("5. Greedy generation")
-- Tokens stream as they are produced; the result holds .text, .ids and .stats.
local g = gen(text, {n = 24, greedy = true})
print(g)
print(string.format("%d tokens in %d forward passes", g.stats.tokens, g.stats.forward_passes))

section("6. The same with MTP speculative decoding")
if not i.mtp then
    print("(this model has no MTP layer)")
else
    -- The MTP head drafts the token after next; one forward pass then checks the draft. With
    -- greedy decoding the text is exactly the same, in fewer passes when drafts are accepted.
    local s = gen(text, {n = 24, greedy = true, mtp = true})
    print(s)
    local same = #s.ids == #g.ids
    for k = 1, #g.ids do same = same and s.ids[k] == g.ids[k] end
    print("same tokens as plain greedy:", same)
    print(string.format("drafted %d, accepted %d (%.0f%%): %d forward passes instead of %d",
                        s.stats.drafted, s.stats.accepted, 100 * s.stats.acceptance_rate,
                        s.stats.forward_passes, g.stats.forward_passes))
end

section("Next")
print("help() lists the API, help \"gen\" explains one function; examples/generate.lua shows")
print("the generation options; docs/LUA.md is the reference.")
