-- Probe API checks, run as: dsv3 run tests/lua/probes_check.lua MODEL_DIR OUT_DIR
-- Writes route.json, heatmap.svg, tensor.npy into OUT_DIR for tests/test_probes.sh to parse.
local model_dir, out = arg[1], arg[2]
local m = load(model_dir)
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local R = dofile(here .. "/runner.lua")
local T = R.suite()
local function write(path, s) local f = assert(io.open(path, "w")); f:write(s); f:close() end
local text = "The quick brown fox jumps over the lazy dog"
local info_ = info()
local first_moe = info_.dense_layers

T["route covers every token and MoE layer"] = function()
  local r = route(text)
  local ids = tokenize(text, {bos = true})
  assert(#r == #ids, "tokens " .. #r .. " vs " .. #ids)
  for L = first_moe, info_.layers - 1 do
    local rows = r:layer(L)
    assert(#rows == #ids)
    for _, t in ipairs(rows) do
      assert(#t.experts == info_.experts_per_token)
      for k = 2, #t.biased do assert(t.biased[k - 1] >= t.biased[k], "experts not in descending biased order") end
      local s = 0
      for _, w in ipairs(t.weights) do s = s + w end
      assert(math.abs(s - 2.5) < 1e-4, "weights sum " .. s .. " (norm_topk_prob then routed_scaling_factor 2.5)")
    end
  end
  assert(#r:token(-1) == info_.moe_layers)
  write(out .. "/route.json", r:json())
  r:save(out .. "/route.csv")
  local rows = 0
  for _ in r:csv():gmatch("\n") do rows = rows + 1 end
  assert(rows == 1 + #ids * info_.moe_layers * info_.experts_per_token, "csv rows " .. rows)
  write(out .. "/heatmap.svg", r:heatmap(first_moe, "svg").svg)  -- a figure value
end

T["load counts add up and push points toward the mean"] = function()
  local r = route(text)
  local l = r:load(first_moe)
  local total = 0
  for _, c in ipairs(l.counts) do total = total + c end
  assert(total == l.tokens * info_.experts_per_token, "counts " .. total)
  local mean = total / info_.routed_experts
  for e, c in ipairs(l.counts) do
    local want = c < mean and 1 or (c > mean and -1 or 0)
    assert(l.push[e] == want, "push of expert " .. (e - 1))
  end
  local maxc = 0
  for _, c in ipairs(l.counts) do maxc = math.max(maxc, c) end
  assert(math.abs(l.maxvio - (maxc / mean - 1)) < 1e-9)
end

T["bias edits change routing and reset round-trips"] = function()
  local before = route(text):json()
  local b0 = bias(first_moe, 0)
  bias_add(first_moe, 0, 10.0)
  local r = route(text)
  for _, t in ipairs(r:layer(first_moe)) do assert(t.experts[1] == 0, "a +10 bias must make expert 0 first") end
  bias_reset(first_moe)
  assert(bias(first_moe, 0) == b0)
  assert(route(text):json() == before, "routing after reset differs")
  local v = bias(first_moe)
  bias_set(first_moe, v)
  assert(route(text):json() == before, "setting the same vector changed routing")
end

T["interventions: no-op is zero effect, real ones have one"] = function()
  local e0 = effect(text, {disable = {}})
  assert(e0.mean_kl == 0 and e0.top1_changed_fraction == 0, "empty intervention changed the output")
  local e1 = effect(text, {zero_bias = true})
  assert(e1.mean_kl > 0)
  local e2 = effect(text, {drop_shared = true})
  assert(e2.mean_kl > 0 and #e2.kl == #tokenize(text, {bos = true}))
end

T["MTP trace agrees with the generation counters"] = function()
  local t = mtp_trace("Once upon a time", {n = 24})
  local g = gen("Once upon a time", {n = 24, greedy = true, mtp = true, stream = false})
  assert(t.drafted == g.stats.drafted and t.accepted == g.stats.accepted,
         ("trace %d/%d vs gen %d/%d"):format(t.accepted, t.drafted, g.stats.accepted, g.stats.drafted))
  local acc = 0
  for _, s in ipairs(t.steps) do if s.accepted then acc = acc + 1 end end
  assert(acc == t.accepted)
  local h = 0
  for _, c in ipairs(t.histogram) do h = h + c end
  assert(h == t.drafted)
end

T["capture, lens and attention patterns"] = function()
  local c = capture(text, {points = {"resid_out", "ckv", "hidden"}, layers = {0}})
  local T = #tokenize(text, {bos = true})
  local r, d = c["resid_out.0"]:shape()
  assert(r == T and d == info_.hidden_size)
  local r2, d2 = c["ckv.0"]:shape()
  assert(r2 == T and d2 == info_.kv_lora_rank)
  assert(c["resid_out.1"] == nil, "layers filter ignored")
  c["ckv.0"]:save(out .. "/tensor.npy")
  -- the lens of the last layer is the model's own next-token distribution
  local l = lens(text)
  local top = logits(text):top(-1, 1)[1]
  assert(l[#l].top[1].id == top.id, "lens of the last layer != logits")
  local a = attn(text, 0, 0)
  for i = 1, T do
    local s = 0
    for j = 1, T do
      local p = a:get(i, j)
      if j > i then assert(p == 0, "attention to the future") end
      s = s + p
    end
    assert(math.abs(s - 1) < 1e-5, "row " .. i .. " sums to " .. s)
  end
end

R.run(T)
