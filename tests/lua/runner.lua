-- runner.lua — a tiny test runner for the Lua-level tests of the dsv3 API (tests/lua/test_*.lua),
-- run inside the real session by `dsv3 run tests/lua/test_NAME.lua ARGS...`.
--
--   local R = dofile(DIR .. "/runner.lua")
--   local T = R.suite()                 -- remembers the order tests are defined in
--   function T.load_returns_a_model() R.eq(type(load(dir)), "userdata") end
--   T.some_bug = R.known_bug("what is wrong, where", function() ... end)
--   R.run(T)
--
-- R.run calls every test under pcall (with a traceback for unexpected errors), prints "ok NAME"
-- or "FAIL NAME: message", then one line "N passed, M failed" (", K known bugs" when there are
-- any). When a test failed it ends with error(), so that `dsv3 run` exits non-zero.
-- A known bug is a test that documents a reported defect: its failure counts as a known bug (the
-- reason is printed), its success as a pass marked "FIXED" so that the marker can be removed.
-- Env: DSV3_TEST_ONLY=substring runs only the tests whose name contains it;
-- DSV3_TEST_VERBOSE=1 prints the traceback of every failure.

local R = {}

-- ------------------------------------------------------------------------------ suites

function R.suite()
    local order = {}
    return setmetatable({}, {
        __newindex = function(t, name, fn)
            assert(type(fn) == "function" or (type(fn) == "table" and fn.known_bug),
                   "a test must be a function: " .. tostring(name))
            order[#order + 1] = name
            rawset(t, name, fn)
        end,
        __index = function(_, k) if k == "__order" then return order end end,
    })
end

function R.known_bug(reason, fn)
    return {known_bug = reason, fn = fn}
end

-- ------------------------------------------------------------------------------ checks

local function show(v)
    if type(v) == "string" then
        if #v > 200 then v = v:sub(1, 200) .. "...(" .. #v .. " bytes)" end
        return string.format("%q", v)
    end
    return tostring(v)
end
R.show = show

local function fail(msg, what)
    error((what and (what .. ": ") or "") .. msg, 3)
end

function R.ok(cond, what)
    if not cond then fail("expected a true value", what) end
    return cond
end

function R.eq(got, want, what)
    if got ~= want then fail("got " .. show(got) .. ", want " .. show(want), what) end
end

function R.near(got, want, tol, what)
    if type(got) ~= "number" or math.abs(got - want) > tol then
        fail("got " .. show(got) .. ", want " .. show(want) .. " within " .. tol, what)
    end
end

-- Deep equality of plain values and tables (metatables are ignored).
local function same(a, b)
    if type(a) ~= "table" or type(b) ~= "table" then return a == b end
    for k, v in pairs(a) do if not same(v, b[k]) then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
end
R.same_value = same

local function listing(t)
    if type(t) ~= "table" then return show(t) end
    local parts = {}
    for i = 1, math.min(#t, 12) do parts[i] = show(t[i]) end
    return "{" .. table.concat(parts, ", ") .. (#t > 12 and ", ...}" or "}")
end

function R.same(got, want, what)
    if not same(got, want) then fail("got " .. listing(got) .. ", want " .. listing(want), what) end
end

function R.contains(s, needle, what)
    if type(s) ~= "string" or not s:find(needle, 1, true) then
        fail(show(needle) .. " not in " .. show(s), what)
    end
end

-- Calls fn(...) and requires a Lua error whose message is a non-empty string (containing
-- `needle` when given). Returns the message.
function R.raises(needle, fn, ...)
    local ok, msg = pcall(fn, ...)
    if ok then fail("no error (wanted " .. show(needle or "any error") .. ")") end
    if type(msg) ~= "string" or msg == "" then fail("error object is " .. show(msg)) end
    if needle and not msg:find(needle, 1, true) then
        fail("error " .. show(msg) .. " does not mention " .. show(needle))
    end
    return msg
end

-- ------------------------------------------------------------------------------ running

function R.run(T)
    local only = os.getenv("DSV3_TEST_ONLY")
    local verbose = os.getenv("DSV3_TEST_VERBOSE") == "1"
    local passed, failed, known, fixed = 0, 0, 0, 0
    local clock = os.clock
    for _, name in ipairs(T.__order) do
        local t = rawget(T, name)
        if not only or name:find(only, 1, true) then
            local fn = type(t) == "table" and t.fn or t
            local t0 = clock()
            local ok, err = xpcall(fn, function(m)
                return verbose and debug.traceback(tostring(m), 2) or tostring(m)
            end)
            local dt = string.format("(%.2f s)", clock() - t0)
            if type(t) == "table" then
                if ok then
                    fixed = fixed + 1
                    passed = passed + 1
                    print("ok   " .. name .. " " .. dt .. "  FIXED (was a known bug: " ..
                          t.known_bug .. ")")
                else
                    known = known + 1
                    print("BUG  " .. name .. ": known bug: " .. t.known_bug)
                    print("     " .. err)
                end
            elseif ok then
                passed = passed + 1
                print("ok   " .. name .. " " .. dt)
            else
                failed = failed + 1
                print("FAIL " .. name .. ": " .. err)
            end
        end
    end
    print(string.format("%d passed, %d failed%s", passed, failed,
                        known > 0 and string.format(", %d known bugs", known) or ""))
    if failed > 0 then error(failed .. " test(s) failed", 0) end
    return passed, failed, known, fixed
end

return R
