-- examples/probing.lua — three questions researchers ask of a DeepSeek-V3-style MoE, answered
-- with dsv3's probes.  Run:  build/dsv3 run examples/probing.lua [MODEL_DIR]
-- (default: $DSV3_MODEL, else the bundled demo model examples/demo; from any directory).
local m = load(arg[1])
local I = info()
print(m)
local first, last = I.dense_layers, I.layers - 1

-- 1. Which experts does code use, and which does prose use?
local prose = "The old man walked slowly along the beach, watching the gulls circle over the water."
local code = "for (int i = 0; i < n; i++) { sum += a[i] * b[i]; } return sum;"
local function usage(text, L)
  local l = route(text):load(L)
  local total = 0
  for _, c in ipairs(l.counts) do total = total + c end
  local u = {}
  for e, c in ipairs(l.counts) do u[e] = c / total end
  return u, l.maxvio
end
print("\n1. Expert usage, prose vs code (share of routed slots per expert):")
for L = first, last do
  local up, vp = usage(prose, L)
  local uc, vc = usage(code, L)
  local diff, top_p, top_c = 0, 1, 1
  for e = 1, #up do
    diff = diff + math.abs(up[e] - uc[e])
    if up[e] > up[top_p] then top_p = e end
    if uc[e] > uc[top_c] then top_c = e end
  end
  print(("   layer %d: total-variation distance %.2f; busiest expert prose %d, code %d; maxvio %.2f / %.2f")
        :format(L, diff / 2, top_p - 1, top_c - 1, vp, vc))
end

-- 2. How much does the router bias change routing, and what does it do to the output?
local r = route(prose)
print("\n2. Choices the bias changed (fraction of tokens, per MoE layer):")
for L, f in pairs(r:changed()) do print(("   layer %d: %.0f%%"):format(L, 100 * f)) end
print("   " .. tostring(effect(prose, {zero_bias = true})))
print("   ablating each layer-" .. first .. " expert in turn (KL of the next-token distribution):")
local worst, worst_e = -1, -1
for e = 0, I.routed_experts - 1 do
  local eff = effect(prose, {disable = {[first] = {e}}})
  if eff.mean_kl > worst then worst, worst_e = eff.mean_kl, e end
end
print(("   the most important expert of layer %d is %d (mean KL %.4f when removed)"):format(first, worst_e, worst))

-- 3. Where does MTP fail?
if I.mtp then
  local t = mtp_trace("The old man", {n = 48})
  print("\n3. " .. tostring(t))
  print("   acceptance by position bucket:")
  local keys = {}
  for pos in pairs(t.by_position) do keys[#keys + 1] = pos end
  table.sort(keys)
  for _, pos in ipairs(keys) do print(("     from position %d: %.0f%%"):format(pos, 100 * t.by_position[pos])) end
  local fails = {}
  for _, s in ipairs(t.steps) do
    if not s.accepted then fails[#fails + 1] = ("%s->%s"):format(s.draft, s.main) end
  end
  print("   rejected drafts (draft->main token): " .. table.concat(fails, " ", 1, math.min(#fails, 12)))
end
