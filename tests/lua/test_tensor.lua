-- The tensor value's array methods (docs/LUA.md, "Tensors"), run as:
--   dsv3 run tests/lua/test_tensor.lua MODEL_DIR
-- Hand-computed values on tensor{...}, then captures of the model: every method is called, so a
-- missing one fails its test. Prints "N passed, M failed" (tests/lua/runner.lua).
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local R = dofile(here .. "/runner.lua")
load(arg[1])
local T = R.suite()

local A = tensor{{1, 2, 3}, {4, 5, 6}}

local function values(t) return t:totable() end

function T.tensor_builds_from_rows_a_list_a_shape_or_a_tensor()
    R.eq(tostring(getmetatable(A).__name), "dsv3.tensor")
    R.same({A:shape()}, {2, 3})
    R.same({tensor{7, 8, 9}:shape()}, {1, 3}, "a list is one row")
    R.same(values(tensor(2, 2, 1.5)), {{1.5, 1.5}, {1.5, 1.5}})
    R.same(values(tensor(1, 2)), {{0, 0}})
    local c = tensor(A)
    R.same(values(c), values(A), "a copy")
    R.raises("row 2 is not a list of 3 numbers", tensor, {{1, 2, 3}, {4}})
    R.raises("not a number", tensor, {{1, "x"}})
    R.raises("empty table", tensor, {})
end

function T.index_gives_a_row_and_len_the_rows()
    R.eq(#A, 2)
    R.same(values(A[2]), {{4, 5, 6}})
    R.same(values(A[-1]), {{4, 5, 6}}, "negative from the end")
    R.eq(A[3], nil, "out of range: nil")
    local n = 0
    for i, row in ipairs(A) do n = n + 1; R.same({row:shape()}, {1, 3}) end
    R.eq(n, 2, "ipairs walks the rows")
    R.eq(A[1]:get(1, 3), 3)
end

function T.existing_methods_unchanged()
    R.eq(A:get(2, 1), 4)
    R.same(A:row(1), {1, 2, 3})
    R.same(A:row(-1), {4, 5, 6})
    local n = A:norms()
    R.eq(type(n), "table", "norms() is a list")
    R.near(n[1], math.sqrt(14), 1e-6)
    R.near(n[2], math.sqrt(77), 1e-6)
    R.contains(tostring(A), "tensor [2 x 3]")
end

function T.slice_is_inclusive_and_a_copy()
    R.same(values(A:slice(1, 2, 2, 3)), {{2, 3}, {5, 6}})
    R.same(values(A:slice(2)), {{4, 5, 6}}, "rows 2..end")
    R.same(values(A:slice(nil, nil, -1)), {{3}, {6}}, "last column")
    R.same({A:slice(2, 1):shape()}, {0, 3}, "empty")
    R.raises("slice: rows 1..3, columns 1..3 out of a tensor [2 x 3]", A.slice, A, 1, 3)
end

function T.arithmetic_with_broadcasting()
    R.same(values(A + A), {{2, 4, 6}, {8, 10, 12}})
    R.same(values(A - tensor{1, 1, 1}), {{0, 1, 2}, {3, 4, 5}}, "a row")
    R.same(values(A * tensor{{2}, {10}}), {{2, 4, 6}, {40, 50, 60}}, "a column")
    R.same(values(A / 2), {{0.5, 1, 1.5}, {2, 2.5, 3}}, "a number")
    R.same(values(12 / A:slice(1, 1)), {{12, 6, 4}}, "number / tensor")
    R.same(values(1 - A[1]), {{0, -1, -2}})
    R.same(values(-A[1]), {{-1, -2, -3}})
    R.same(values(A + {10, 20, 30}), {{11, 22, 33}, {14, 25, 36}}, "a Lua list")
    local msg = R.raises("shapes [2 x 3] and [3 x 2]", function() return A - tensor{{1, 2}, {3, 4}, {5, 6}} end)
    R.contains(msg, "-")
    R.raises("expected a tensor, a number or a table", function() return A + "x" end)
end

function T.matmul_and_transpose()
    R.same(values(A:matmul{{1, 0}, {0, 1}, {1, 1}}), {{4, 5}, {10, 11}})
    R.same(values(A:transpose()), {{1, 4}, {2, 5}, {3, 6}})
    R.same(values(A:matmul(A:transpose())), {{14, 32}, {32, 77}})
    R.raises("matmul: shapes [2 x 3] and [2 x 3]", A.matmul, A, A)
end

function T.cos_per_row_pairs_and_errors()
    local U = tensor{{3, 4}, {0, 0}, {-6, -8}}
    R.same(values(U:cos(U)), {{1}, {0}, {1}}, "row by row")
    local c = U:cos({1, 0})
    R.near(c:get(1, 1), 0.6, 1e-6)
    R.near(c:get(3, 1), -0.6, 1e-6)
    local p = U:cos()
    R.same({p:shape()}, {3, 3})
    R.near(p:get(1, 3), -1, 1e-6)
    R.same({U:cos(tensor{{1, 0}, {0, 1}}, "pairs"):shape()}, {3, 2})
    R.raises("cos: shapes [3 x 2] and [2 x 2]", U.cos, U, tensor{{1, 0}, {0, 1}})
end

function T.sum_and_mean_over_an_axis()
    R.same(values(A:sum(1)), {{5, 7, 9}}, "over rows")
    R.same(values(A:sum(2)), {{6}, {15}}, "over columns")
    R.eq(A:sum(), 21)
    R.same(values(A:mean(1)), {{2.5, 3.5, 4.5}})
    R.same(values(A:mean(2)), {{2}, {5}})
    R.eq(A:mean(), 3.5)
    R.raises("axis", A.mean, A, 3)
end

function T.topk_and_argmax()
    local B = tensor{{1, 5, 5, -2}, {0, -1, 3, 2}}
    local v, i = B:topk(2)
    R.same(values(v), {{5, 5}, {3, 2}})
    R.same(values(i), {{2, 3}, {3, 4}}, "1-based columns, ties to the lower")
    R.same(B:argmax(), {2, 3})
    R.raises("k = 5", B.topk, B, 5)
end

function T.save_writes_npy_unchanged()
    local path = os.tmpname()
    A:save(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("a")
    f:close()
    os.remove(path)
    R.eq(s:sub(1, 6), "\147NUMPY")
    R.contains(s, "'shape': (2, 3,)")
    R.eq(#s % 64, 24 % 64, "header padded to 64, then 24 bytes of data")
end

function T.captures_difference_cos_and_means()
    local a = capture("the cat sat", {layers = {1}})["resid_out.1"]
    local b = capture("the dog sat", {layers = {1}})["resid_out.1"]
    R.same({a:shape()}, {b:shape()})
    local d = b - a
    R.same({d:shape()}, {a:shape()})
    R.eq((a - a):sum(), 0)
    R.near(d:get(1, 1), b:get(1, 1) - a:get(1, 1), 1e-6)
    R.ok(d[1]:norms()[1] < 1e-4 * a[1]:norms()[1], "<bos> is the same in both")
    local c = a:cos(b)
    R.near(c:get(1, 1), 1, 1e-5)
    R.ok(c:get(3, 1) < 0.9999, "the changed token differs")
    R.same({a:mean(1):shape()}, {1, select(2, a:shape())}, "mean over positions")
    local longer = capture("the cat sat on the mat", {layers = {1}})["resid_out.1"]
    R.raises("shapes [" .. #longer .. " x", function() return longer - a end)
    local at = attn("the cat sat", 0, 0)
    R.near(at:sum(2):get(2, 1), 1, 1e-5, "attention rows sum to 1")
    R.same({at[2]:shape()}, {1, #at})
end

R.run(T)
