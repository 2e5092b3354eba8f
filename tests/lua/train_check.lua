-- Training from the session, run as: dsv3 run tests/lua/train_check.lua MODEL_DIR
local m = load(arg[1])
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local R = dofile(here .. "/runner.lua")
local T = R.suite()
local text = string.rep("the cat sat on the mat. ", 200)
local L1 = info().dense_layers
local before = logits("the cat"):row(-1)
local bias0 = bias(L1)

T["gamma = 0 freezes the bias, and the loss falls on repeated text"] = function()
  local r = train{text = text, steps = 12, seq_len = 32, batch = 2, lr = 3e-3, gamma = 0, quiet = true}
  assert(#r.steps == 12)
  assert(r.steps[12].loss < r.steps[1].loss, ("loss %g -> %g"):format(r.steps[1].loss, r.steps[12].loss))
  local b = bias(L1)
  for e = 1, #b do assert(b[e] == bias0[e], "bias moved with gamma = 0") end
  assert(#r.layers >= 1 and #r.layers[1].load == info().routed_experts)
  assert(tostring(r):find("loss"))
end

T["gamma > 0 moves the bias by +-gamma toward balance"] = function()
  local r = train{steps = 1, gamma = 0.01, quiet = true}
  local b, moved = bias(L1), 0
  for e = 1, #b do
    local d = b[e] - bias0[e]
    assert(math.abs(math.abs(d) - 0.01) < 1e-6 or math.abs(d) < 1e-9, "step was not +-gamma: " .. d)
    if math.abs(d) > 0 then moved = moved + 1 end
  end
  assert(moved > 0)
  -- the direction: experts above the mean load go down
  local load = r.layers[1].load
  local mean = 0
  for _, c in ipairs(load) do mean = mean + c end
  mean = mean / #load
  for e, c in ipairs(load) do
    if c > mean then assert(b[e] < bias0[e], "overloaded expert " .. (e - 1) .. " not pushed down") end
  end
end

T["trained weights are seen by inference; train_reset restores the checkpoint"] = function()
  local after = logits("the cat"):row(-1)
  local same = true
  for i = 1, #after do if after[i] ~= before[i] then same = false end end
  assert(not same, "logits unchanged after training")
  train_reset()
  local back = logits("the cat"):row(-1)
  for i = 1, #back do assert(back[i] == before[i], "train_reset did not restore the weights") end
  local b = bias(L1)
  for e = 1, #b do assert(b[e] == bias0[e]) end
end

T["fp8 = true switches the block linears to FP8 between steps, and back"] = function()
  train_reset()
  local a = train{text = text, steps = 2, seq_len = 32, batch = 2, gamma = 0, quiet = true}
  train_reset()
  local b = train{text = text, steps = 1, seq_len = 32, batch = 2, gamma = 0, quiet = true}
  local c = train{steps = 1, fp8 = true, quiet = true}
  assert(b.steps[1].loss == a.steps[1].loss, "same first step")
  local gap = math.abs(c.steps[1].loss - a.steps[2].loss) / a.steps[2].loss
  assert(gap > 0 and gap < 0.01, "FP8 step 2 vs FP32 step 2: relative gap " .. gap)
  local d = train{steps = 1, fp8 = false, quiet = true}
  assert(d.steps[1].loss == d.steps[1].loss, "back to FP32")
  train_reset()
end

T["precision = 64 between steps: double compute, close to the float32 step"] = function()
  train_reset()
  local a = train{text = text, steps = 2, seq_len = 32, batch = 2, gamma = 0, quiet = true}
  train_reset()
  local b = train{text = text, steps = 1, seq_len = 32, batch = 2, gamma = 0, quiet = true}
  local c = train{steps = 1, precision = 64, quiet = true}
  local gap = math.abs(c.steps[1].loss - a.steps[2].loss) / a.steps[2].loss
  assert(b.steps[1].loss == a.steps[1].loss, "same first step")
  assert(gap < 1e-5, "precision 64 step 2 vs 32: relative gap " .. gap)
  local ok, err = pcall(train, {steps = 1, precision = 16})
  assert(not ok and err:find("precision must be 32 or 64"), err)
  local d = train{steps = 1, quiet = true} -- the trainer is still usable, still in 64
  assert(d.steps[1].loss == d.steps[1].loss)
  train_reset()
end

T["bad input gives clear errors"] = function()
  local ok, err = pcall(train, {steps = 0, text = text})
  assert(not ok and err:find("steps"))
  ok, err = pcall(train, {steps = 1})
  assert(not ok and err:find("data"), err)
  ok, err = pcall(train_eval)
  assert(not ok and err:find("no trainer"))
end

R.run(T)
