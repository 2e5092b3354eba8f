-- GRPO from the session, run as: dsv3 run tests/lua/grpo_check.lua MODEL_DIR SAVE_DIR
-- (an FP32 model, so the inference model computes the same numbers before and after the run
-- takes over its weights).
local m = load(arg[1])
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local R = dofile(here .. "/runner.lua")
local T = R.suite()
local before = logits("the cat"):row(-1)
local function same_logits()
  local now = logits("the cat"):row(-1)
  for i = 1, #now do if now[i] ~= before[i] then return false end end
  return true
end
local prompts = {"the cat", "a dog"}
local small = {prompts = prompts, group = 4, max_tokens = 4, quiet = true}
local function opts(extra)
  local t = {}
  for k, v in pairs(small) do t[k] = v end
  for k, v in pairs(extra) do t[k] = v end
  return t
end

T["a failing reward function fails the call with its message and leaves the weights"] = function()
  local ok, err = pcall(grpo, opts{reward = function() error("boom") end, steps = 1})
  assert(not ok and tostring(err):find("reward function") and tostring(err):find("boom"), tostring(err))
  ok, err = pcall(grpo, opts{reward = function() return "x" end, steps = 1})
  assert(not ok and tostring(err):find("expected a number"), tostring(err))
  ok, err = pcall(grpo, opts{reward = function() return 0/0 end, steps = 1})
  assert(not ok and tostring(err):find("must be finite"), tostring(err))
  assert(same_logits(), "the weights changed")
end

T["equal rewards: no update, nothing NaN"] = function()
  local r = grpo(opts{reward = function() return 1 end, steps = 2})
  assert(#r.steps == 2)
  for _, s in ipairs(r.steps) do
    assert(s.loss == 0 and s.kl == 0 and s.grad_norm == 0 and s.zero_adv == 1, "not a zero step")
    assert(s.reward == 1 and s.reward_std == 0)
  end
  assert(same_logits(), "the weights changed")
end

T["a varying reward moves the policy; the run value renders"] = function()
  local seen = {}
  local r = grpo(opts{steps = 3, lr = 1e-2, reward = function(p, c, a)
    seen[p] = true
    assert(type(c) == "string" and a == nil)
    return #c % 3
  end})
  assert(seen["the cat"] and seen["a dog"], "reward not called with the prompts")
  assert(#r.steps == 3 and r.total_steps == 5 and r.group == 4 and r.task == "prompts")
  for _, s in ipairs(r.steps) do
    for _, k in ipairs{"reward", "reward_std", "kl", "length", "loss", "grad_norm", "seconds"} do
      assert(s[k] == s[k] and s[k] ~= nil, k .. " is NaN or missing")
    end
    assert(s.length >= 1 and s.length <= 4)
    assert(type(s.best) == "string" and type(s.best_prompt) == "string")
  end
  assert(not same_logits(), "the model does not compute with the policy")
  assert(tostring(r):find("^reward "), tostring(r))
  local svg = getmetatable(r).__svg(r)
  assert(svg:find("^<svg") and select(2, svg:gsub("<polyline", "")) == 3, "svg")
end

T["a run continues only with the same shape; train{} waits for grpo_reset"] = function()
  local ok, err = pcall(grpo, opts{reward = function() return 1 end, steps = 1, group = 2})
  assert(not ok and tostring(err):find("grpo_reset"), tostring(err))
  ok, err = pcall(train, {text = string.rep("ab ", 300), steps = 1, quiet = true})
  assert(not ok and tostring(err):find("GRPO run"), tostring(err))
end

T["grpo_save writes a model directory; grpo_reset gives the weights back"] = function()
  assert(grpo_save(arg[2]) == arg[2])
  local f = assert(io.open(arg[2] .. "/model.safetensors", "rb"))
  f:close()
  grpo_reset()
  assert(same_logits(), "grpo_reset did not restore the weights")
end

T["prompts with answers use the answer reward; the run cannot be reset from its reward"] = function()
  local r = grpo{prompts = {{"the cat", " sat"}, {prompt = "a dog", answer = "ran"}}, steps = 1,
                 group = 2, max_tokens = 3, quiet = true}
  assert(#r.steps == 1 and r.steps[1].reward >= 0 and r.steps[1].reward <= 1)
  local ok, err = pcall(grpo, {prompts = {"x", "y"}, steps = 1, group = 2, max_tokens = 3, quiet = true,
                               reward = function() grpo_reset() return 1 end})
  assert(not ok and tostring(err):find("not allowed inside a grpo"), tostring(err))
  grpo_reset()
  assert(same_logits(), "grpo_reset did not restore the weights")
end

T["built-in task with its rule-based reward; bad options are refused"] = function()
  local r = grpo{task = "add", steps = 1, group = 2, max_tokens = 3, quiet = true}
  assert(#r.steps == 1 and r.task == "add" and r.steps[1].reward >= 0 and r.steps[1].reward <= 1)
  grpo_reset()
  local cases = {
    {{task = "nope"}, "unknown task"},
    {{prompts = {"x"}}, "give reward"},
    {{}, "give prompts"},
    {{prompts = {"x"}, reward = 3}, "reward must be a function"},
    {{prompts = {{1, 2}}, reward = print}, "prompts%[1%]"},
    {{prompts = {"x"}, reward = print, eps = -1}, "eps"},
    {{prompts = {"x"}, reward = print, max_tokens = 100000}, "max_position_embeddings"},
  }
  for _, c in ipairs(cases) do
    c[1].quiet = true
    local ok, err = pcall(grpo, c[1])
    assert(not ok and tostring(err):find(c[2]), "expected '" .. c[2] .. "', got " .. tostring(err))
  end
  assert(same_logits(), "the weights changed")
end

R.run(T)
