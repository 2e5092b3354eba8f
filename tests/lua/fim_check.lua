-- Fill-in-Middle from the session: fim{} and train{fim_rate=}.
-- Run as: dsv3 run tests/lua/fim_check.lua FIM_MODEL NO_FIM_MODEL DOCS_DIR
-- FIM_MODEL has the FIM tokens and BOS added by its tokenizer config (examples/demo),
-- NO_FIM_MODEL a tokenizer without <｜fim▁begin｜>, DOCS_DIR a directory of .txt documents.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local R = dofile(here .. "/runner.lua")
local T = R.suite()
local function id_of(piece) local t = tokenize(piece); assert(#t == 1, piece); return t[1] end

local m = load(arg[1])
local begin, hole, fend = id_of("<｜fim▁begin｜>"), id_of("<｜fim▁hole｜>"), id_of("<｜fim▁end｜>")
local bos = tokenize("", {bos = true})[1]
local pre, suf = "Love is ", " forever.\n"

T["the prompt is [BOS] begin prefix hole suffix end, exactly"] = function()
  local r = fim{prefix = pre, suffix = suf, max_tokens = 8, greedy = true, stream = false}
  local want = {bos, begin}
  for _, id in ipairs(tokenize(pre)) do want[#want + 1] = id end
  want[#want + 1] = hole
  for _, id in ipairs(tokenize(suf)) do want[#want + 1] = id end
  want[#want + 1] = fend
  assert(#r.prompt == #want, ("%d prompt ids, want %d"):format(#r.prompt, #want))
  for i = 1, #want do assert(r.prompt[i] == want[i], ("prompt id %d is %d, want %d"):format(i, r.prompt[i], want[i])) end
  local nb = fim{prefix = pre, suffix = suf, max_tokens = 1, bos = false, stream = false}
  assert(#nb.prompt == #want - 1 and nb.prompt[1] == begin, "bos = false still adds BOS")
end

T["it generates the middle up to max_tokens, deterministically when greedy"] = function()
  local a = fim{prefix = pre, suffix = suf, max_tokens = 12, greedy = true, stream = false}
  local b = fim{prefix = pre, suffix = suf, max_tokens = 12, greedy = true, stream = false}
  assert(type(a.text) == "string" and a.text == b.text, "greedy middles differ")
  assert(#a.ids >= 1 and #a.ids <= 12 and a.stats.tokens == #a.ids, "tokens " .. #a.ids)
  assert(not a.text:find("fim", 1, true), "the middle holds a sentinel: " .. a.text)
  local only = fim{suffix = suf, max_tokens = 2, greedy = true, stream = false}
  assert(only.prompt[2] == begin and only.prompt[3] == hole, "an absent prefix is not empty")
end

T["bad input gives clear errors"] = function()
  R.raises("give prefix", function() fim{max_tokens = 3} end)
  R.raises("table expected", function() fim("x", "y") end)
  R.raises("at least 1", function() fim{prefix = "a", max_tokens = 0} end)
  R.raises("must be a string", function() fim{prefix = {}} end)
  R.raises("exceeds max_position_embeddings", function() fim{prefix = "a", max_tokens = 100000} end)
end

T["train{fim_rate = 1} rearranges every document; bad rates are refused"] = function()
  R.raises("fim_rate must be in [0, 1]", function() train{data = arg[3], fim_rate = 2, steps = 1, quiet = true} end)
  local r = train{data = arg[3], fim_rate = 1, steps = 1, seq_len = 8, batch = 2, quiet = true}
  assert(r.documents >= 2 and r.fim_documents == r.documents,
         ("%d of %d documents rearranged"):format(r.fim_documents, r.documents))
  train_reset()
  local z = train{data = arg[3], steps = 1, seq_len = 8, batch = 2, quiet = true}
  assert(z.fim_documents == 0)
  train_reset()
  R.raises("fim_rate needs data = PATH", function() train{text = "abc def", fim_rate = 0.5, steps = 1} end)
end

T["a tokenizer without the FIM tokens is named in the error"] = function()
  load(arg[2])
  R.raises("has no <｜fim▁begin｜> token", function() fim{prefix = "a", suffix = "b"} end)
  R.raises("has no <｜fim▁begin｜> token", function()
    train{data = arg[3], fim_rate = 0.1, steps = 1, seq_len = 8, batch = 2, quiet = true}
  end)
  use(m)
end

R.run(T)
