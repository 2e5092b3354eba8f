"""test_dsv3.py — the Python module against the C library's other front ends.

Every function's result is compared with what the CLI (`dsv3 logits/route/tokenize/generate`)
or the Lua session (`dsv3 -e`) gives for the same model and ids: logits byte for byte, routing
arrays exactly, capture/attention tensors byte for byte, lens/effect/mtp_trace numbers as Lua
prints them (17 digits). Then: bias edits change routing and reset restores it, errors raise
with the library's message, Ctrl-C (SIGINT) stops a call inside C and leaves the model usable,
the GIL is released while C computes, and 1,000 calls leave RSS and reference counts flat.

Runs under pytest or as a plain script (tests/test_python.sh): `import dsv3` must work
(PYTHONPATH=build/python) and DSV3_BIN name the dsv3 binary. DSV3_TEST_SMALL names a `small`
preset checkpoint for the timing-based tests (else they make one with scripts/gen_model.py).
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

import dsv3

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.abspath(os.environ.get("DSV3_BIN", os.path.join(ROOT, "build", "dsv3")))
DEMO = os.path.join(ROOT, "examples", "demo")
TMP = tempfile.mkdtemp(prefix="dsv3-pytest-")
PROMPT = "The quick brown fox jumps over the lazy dog."
# Under ASan (tests/test_python.sh preloads it for an ASan build's module) forwards are ~10x
# slower and freed memory waits in the sanitizer's quarantine: shorter inputs, no RSS bound.
SANITIZED = os.environ.get("DSV3_TEST_SANITIZED") == "1"
LONG = 512 if SANITIZED else 2048


def cli(*args, check=True):
    p = subprocess.run([BIN] + [str(a) for a in args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError("dsv3 %s: rc %d: %s" % (" ".join(map(str, args)), p.returncode, p.stderr))
    return p


def lua(code):
    """Runs Lua code in a dsv3 session; returns its stdout."""
    return cli("-e", code).stdout


def lua_ids(ids):
    return "{" + ",".join(str(int(i)) for i in ids) + "}"


def csv(ids):
    return ",".join(str(int(i)) for i in ids)


_models = {}


def model(name="demo"):
    if name not in _models:
        _models[name] = dsv3.load(None if name == "demo" else name)
    return _models[name]


def tiny_fp8():
    d = os.path.join(TMP, "tiny-fp8")
    if not os.path.exists(d):
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_model.py"), d, "--quiet",
                        "--dtype", "fp8", "--seed", "9"], check=True)
    return d


def small():
    d = os.environ.get("DSV3_TEST_SMALL") or os.path.join(TMP, "small")
    if not os.path.exists(os.path.join(d, "config.json")):
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_model.py"), d, "--quiet",
                        "--preset", "small", "--seed", "4"], check=True)
    return d


# ---------------------------------------------------------------- models and tokens --------

def test_load_default_is_demo_and_info_matches_lua():
    m = model()
    i = m.info()
    assert os.path.realpath(i["dir"]) == os.path.realpath(DEMO)
    out = lua('i = info(load()); for _, k in ipairs{"vocab_size","hidden_size","layers","moe_layers",'
              '"routed_experts","experts_per_token","groups","file_bytes","cache_bytes_per_token"} do '
              'io.write(k, " ", i[k], "\\n") end; io.write("total ", i.params.total, "\\n")')
    for line in out.splitlines():
        k, v = line.split()
        got = i["params"]["total"] if k == "total" else i[k]
        assert got == int(v), (k, got, v)
    assert i["backend"] == "fast" and i["mtp"] is True
    assert "3193280 params" in repr(m)


def test_tokenize_detokenize_equal_cli():
    m = model()
    for text in ["hello world", PROMPT, "naïve café — ünïcödé ✓", ""]:
        want = json.loads(cli("tokenize", DEMO, "--text", text, "--json").stdout)
        assert m.tokenize(text) == want["ids"], text
        assert m.pieces(m.tokenize(text)) == want["pieces"] if text else True
        assert m.detokenize(m.tokenize(text)) == text
    with_bos = cli("tokenize", DEMO, "--text", PROMPT, "--bos").stdout.split()
    assert m.tokenize(PROMPT, bos=True) == [int(x) for x in with_bos]
    assert m.detokenize(m.tokenize("hi", bos=True), skip_special=True) == "hi"
    assert m.detokenize(np.array(m.tokenize("hi"), dtype=np.int32)) == "hi"


# ---------------------------------------------------------------- logits ------------------

def check_logits_equal_cli(d, backend, ids):
    m = dsv3.load(d, backend=backend)
    out, mout = os.path.join(TMP, "l.npy"), os.path.join(TMP, "m.npy")
    cli("logits", d, "--ids", csv(ids), "--out", out, "--mtp-out", mout, "--backend", backend)
    lg, mt = m.logits(ids, mtp=True)
    want, wmt = np.load(out), np.load(mout)
    assert lg.dtype == np.float32 and lg.shape == want.shape == (len(ids), m.info()["vocab_size"])
    assert lg.tobytes() == want.tobytes(), "%s/%s: logits differ from dsv3 logits" % (d, backend)
    assert mt.tobytes() == wmt.tobytes(), "%s/%s: MTP logits differ" % (d, backend)
    assert m.logits(ids).tobytes() == want.tobytes()
    naive = os.path.join(TMP, "n.npy")
    cli("logits", d, "--ids", csv(ids), "--out", naive, "--attn", "naive", "--backend", backend)
    assert m.logits(ids, attn="naive").tobytes() == np.load(naive).tobytes()
    m.close()


def test_logits_bytes_equal_cli():
    ids = model().tokenize(PROMPT, bos=True)
    for backend in ("fast", "ref", "devsim"):
        check_logits_equal_cli(DEMO, backend, ids)
    rng = np.random.default_rng(5)
    check_logits_equal_cli(tiny_fp8(), "fast", rng.integers(0, 1000, 40))


def test_logits_text_is_ids_with_bos():
    m = model()
    assert m.logits(PROMPT).tobytes() == m.logits(m.tokenize(PROMPT, bos=True)).tobytes()


# ---------------------------------------------------------------- generation --------------

def test_generate_greedy_equals_cli_with_and_without_mtp():
    m = model()
    ids = m.tokenize("Once upon a time", bos=True)
    want = [int(x) for x in cli("generate", DEMO, "--ids", csv(ids), "-n", 24, "--greedy", "--print-ids").stdout.split()]
    g = m.generate(ids, max_tokens=24, greedy=True)
    assert g["ids"] == want
    gm = m.generate(ids, max_tokens=24, greedy=True, mtp=True)
    assert gm["ids"] == want
    assert gm["stats"]["drafted"] > 0 and 0 <= gm["stats"]["acceptance_rate"] <= 1
    assert g["text"] == m.detokenize(want, skip_special=True)
    assert g["stats"]["prompt_tokens"] == len(ids) and g["stats"]["tokens"] == 24


def test_generate_sampling_seeded_and_streamed():
    m = model()
    a = m.generate("Once upon a time", max_tokens=16, temperature=0.9, seed=7)
    b = m.generate("Once upon a time", max_tokens=16, temperature=0.9, seed=7)
    assert a["ids"] == b["ids"]
    pieces = []
    s = m.generate("Once upon a time", max_tokens=16, temperature=0.9, seed=7, stream=pieces.append)
    assert "".join(pieces) == s["text"] == a["text"]
    want = [int(x) for x in cli("generate", DEMO, "--prompt", "Once upon a time", "-n", 16, "--temp", 0.9,
                                "--seed", 7, "--print-ids").stdout.split()]
    assert a["ids"] == want
    st = m.generate("Once upon a time", max_tokens=60, greedy=True, stop="\n")
    assert "\n" in st["text"] and len(st["ids"]) < 60


# ---------------------------------------------------------------- routing and bias --------

def check_route_equal_cli(m, d, ids):
    r = m.route(ids)
    want = json.loads(cli("route", d, "--ids", csv(ids), "--json").stdout)
    assert list(r["layers"]) == [l["layer"] for l in want["layers"]]
    L, T = len(r["layers"]), len(ids)
    assert r["experts"].shape == (L, T, m.info()["experts_per_token"]) and r["experts"].dtype == np.int32
    assert r["scores"].shape == (L, T, m.info()["routed_experts"]) and r["scores"].dtype == np.float32
    for li, layer in enumerate(want["layers"]):
        for t, tok in enumerate(layer["tokens"]):
            assert tok["pos"] == t and tok["token"] == r["tokens"][t]
            assert list(r["experts"][li, t]) == tok["experts"]
            assert list(r["experts_nobias"][li, t]) == tok["experts_nobias"]
            assert list(np.nonzero(r["groups"][li, t])[0]) == tok["groups"]
            assert bool(r["bias_changed"][li, t]) == tok["bias_changed"]
            assert r["weights"][li, t].tobytes() == np.array(tok["weights"], dtype=np.float32).tobytes()
            for k in ("scores", "biased"):  # the JSON has the chosen experts' [K], the arrays every [E]
                got = r[k][li, t][r["experts"][li, t]]
                assert got.tobytes() == np.array(tok[k], dtype=np.float32).tobytes(), (k, li, t)
        # biased = scores + the layer's bias, for every expert
        assert np.array_equal(r["biased"][li], r["scores"][li] + m.bias(int(r["layers"][li])))
    return r


def test_route_arrays_equal_cli_json():
    m = model()
    r = check_route_equal_cli(m, DEMO, m.tokenize(PROMPT, bos=True))
    assert r["pieces"][1] == "The" and len(r["pieces"]) == len(r["tokens"])
    t = dsv3.load(tiny_fp8())
    r = check_route_equal_cli(t, tiny_fp8(), np.random.default_rng(5).integers(0, 1000, 40))
    assert r["bias_changed"].any(), "tiny model: the bias should change some choices"


def test_bias_edit_changes_routing_and_reset_restores():
    m = model()
    before = m.route(PROMPT)
    b = m.bias(1)
    assert b.dtype == np.float32 and b.shape == (16,)
    lua_b = [float(x) for x in lua('for _, v in ipairs(bias(1, nil, load())) do io.write(string.format("%.9g ", v)) end').split()]
    assert np.array_equal(b, np.array(lua_b, dtype=np.float32))
    m.bias_add(1, 3, 5.0)
    assert m.bias(1)[3] == np.float32(np.float32(lua_b[3]) + np.float32(5.0))
    after = m.route(PROMPT)
    assert (after["experts"][0] == 3).any(axis=-1).all(), "expert 3 favoured at every token of layer 1"
    assert not np.array_equal(after["experts"], before["experts"])
    m.bias_reset()
    assert np.array_equal(m.route(PROMPT)["experts"], before["experts"])
    m.bias_set(1, np.zeros(16))
    assert not m.bias(1).any()
    m.set_bias(1, 2, 0.25)
    assert m.bias(1)[2] == np.float32(0.25)
    m.bias_reset(1)
    assert np.array_equal(m.bias(1), np.array(lua_b, dtype=np.float32))


def test_bias_view_is_writable_and_pushed_at_the_next_forward():
    m = dsv3.load(DEMO)
    before = m.route(PROMPT)
    v = m.bias(1)
    ckpt = v.copy()
    assert v.flags.writeable and m.bias(1) is v  # one view per layer
    v[3] += 5.0  # an edit in place: the next forward routes with it
    after = m.route(PROMPT)
    assert (after["experts"][0] == 3).any(axis=-1).all(), "expert 3 favoured at every token of layer 1"
    assert np.allclose(after["biased"][0] - after["scores"][0], v, atol=1e-5)  # the view is what chose
    m.bias_add(1, 0, 1.0)  # builds on the view's values
    assert v[0] == np.float32(ckpt[0] + np.float32(1.0)) and v[3] == np.float32(ckpt[3] + np.float32(5.0))
    v[3] = ckpt[3]  # an edit not yet pushed is what bias_add builds on too
    m.bias_add(1, 0, -1.0)
    assert v[3] == ckpt[3] and np.allclose(v, ckpt, atol=1e-6)
    v[:] = 0
    m.route(PROMPT)
    m.bias_reset()  # the view shows the checkpoint's values again
    assert np.array_equal(v, ckpt)
    assert np.array_equal(m.route(PROMPT)["experts"], before["experts"])
    v[5] = np.nan  # refused at the next call, which then computes nothing
    raises(ValueError, "bias(1)[5] is not a finite number", m.route, PROMPT)
    v[5] = ckpt[5]
    m.bias_set(2, np.zeros(16))
    w = m.bias(2)
    assert not w.any()
    m.bias_reset(2)
    assert w.any()
    m.close()  # detached: read-only, holding the last values, never the freed model's memory
    assert not v.flags.writeable and np.array_equal(v, ckpt)
    try:
        v[0] = 1.0
        raise AssertionError("a closed model's bias view was writable")
    except ValueError:
        pass
    raises(ValueError, "model is closed", m.bias, 1)
    # the same after the model object is gone without close()
    m = dsv3.load(DEMO)
    v = m.bias(3)
    del m
    assert not v.flags.writeable and v.shape == (16,)


def test_load_stats_sums_route():
    m = model()
    texts = ["hello world", PROMPT]
    s = m.load_stats(texts)
    counts = np.zeros_like(s["counts"])
    for t in texts:
        r = m.route(t)
        for li in range(len(r["layers"])):
            counts[li] += np.bincount(r["experts"][li].ravel(), minlength=16)
    assert np.array_equal(s["counts"], counts)
    assert list(s["tokens"]) == [sum(len(m.tokenize(t, bos=True)) for t in texts)] * 3


# ---------------------------------------------------------------- probes vs Lua -----------

def test_capture_and_attention_bytes_equal_lua():
    m = model()
    ids = m.tokenize(PROMPT, bos=True)
    c = m.capture(ids, points=["resid_out", "ckv", "attn_out", "hidden"], layers=[1, 3])
    assert sorted(c) == ["attn_out.1", "attn_out.3", "ckv.1", "ckv.3", "hidden", "resid_out.1", "resid_out.3"]
    assert c["ckv.1"].shape == (len(ids), 32) and c["resid_out.3"].dtype == np.float32
    p = os.path.join(TMP, "cap")
    lua('c = capture(%s, {points={"resid_out","ckv","attn_out","hidden"}, layers={1,3}}, load()); '
        'for k, t in pairs(c) do t:save("%s." .. k .. ".npy") end; '
        'attn(%s, 2, 1, load()):save("%s.attn.npy")' % (lua_ids(ids), p, lua_ids(ids), p))
    for k, v in c.items():
        assert v.tobytes() == np.load("%s.%s.npy" % (p, k)).tobytes(), k
    a = m.attention(ids, 2, 1)
    assert a.shape == (len(ids), len(ids)) and a.tobytes() == np.load(p + ".attn.npy").tobytes()
    assert np.allclose(a.sum(axis=1), 1, atol=1e-5) and not np.triu(a, 1).any()
    assert m.capture(ids)["resid_out.0"].shape == (len(ids), 128)  # default: resid_out, every block


def test_capture_arrays_outlive_the_model_object():
    c = dsv3.load().capture(PROMPT, points=["resid_out"])
    import gc
    gc.collect()
    assert np.isfinite(c["resid_out.2"]).all() and c["resid_out.2"].flags.writeable


def test_lens_equals_lua():
    m = model()
    ids = m.tokenize(PROMPT, bos=True)
    l = m.lens(ids, k=3, pos=-2)
    assert l["ids"].shape == (4, 3) and l["probs"].dtype == np.float64 and l["pos"] == len(ids) - 2
    out = lua('for _, r in ipairs(lens(%s, {k=3, pos=-2}, load())) do for _, e in ipairs(r.top) do '
              'io.write(string.format("%%d %%.17g\\n", e.id, e.prob)) end end' % lua_ids(ids))
    want = [line.split() for line in out.splitlines()]
    assert [int(w[0]) for w in want] == list(l["ids"].ravel())
    assert [float(w[1]) for w in want] == list(l["probs"].ravel())
    # the last block's lens is the model's own distribution
    row = m.logits(ids)[-2].astype(np.float64)
    p = np.exp(row - row.max())
    p /= p.sum()
    assert l["ids"][-1, 0] == int(np.argmax(row)) and abs(l["probs"][-1, 0] - p.max()) < 1e-6


def test_effect_equals_lua():
    m = model()
    ids = m.tokenize(PROMPT, bos=True)
    cases = [({"disable": [3]}, "{disable={3}}"),
             ({"disable": {2: [0, 5]}, "zero_bias": True}, "{disable={[2]={0,5}}, zero_bias=true}"),
             ({"force": {"layer": 1, "experts": [0, 1, 2, 3], "pos": 4}}, "{force={layer=1, experts={0,1,2,3}, pos=5}}"),
             ({"drop_shared": True}, "{drop_shared=true}")]
    for kw, lua_opts in cases:
        e = m.effect(ids, **kw)
        out = lua('e = effect(%s, %s, load()); for i, v in ipairs(e.kl) do io.write(string.format("%%.17g %%s\\n", '
                  'v, tostring(e.top1_changed[i]))) end; io.write(string.format("%%.17g\\n", e.mean_kl))' % (lua_ids(ids), lua_opts))
        lines = out.splitlines()
        assert [float(x.split()[0]) for x in lines[:-1]] == list(e["kl"]), kw
        assert [x.split()[1] == "true" for x in lines[:-1]] == list(e["top1_changed"]), kw
        assert float(lines[-1]) == e["mean_kl"]
    assert m.effect(ids)["max_kl"] == 0


def test_mtp_trace_equals_lua():
    m = model()
    ids = m.tokenize("Once upon a time", bos=True)
    t = m.mtp_trace(ids, max_tokens=40)
    out = lua('t = mtp_trace(%s, {max_tokens=40}, load()); io.write(t.drafted, " ", t.accepted, "\\n"); '
              'for _, s in ipairs(t.steps) do io.write(s.pos - 1, " ", s.draft, " ", s.main, " ", tostring(s.accepted), "\\n") end'
              % lua_ids(ids))
    lines = out.splitlines()
    assert lines[0].split() == [str(t["drafted"]), str(t["accepted"])]
    steps = t["steps"]
    got = ["%d %d %d %s" % (p, d, mm, "true" if a else "false")
           for p, d, mm, a in zip(steps["pos"], steps["draft"], steps["main"], steps["accepted"])]
    assert got == lines[1:]
    assert t["accepted"] == int(steps["accepted"].sum()) and t["pos_drafted"].sum() == t["drafted"]


# ---------------------------------------------------------------- errors ------------------

def raises(exc, needle, fn, *a, **kw):
    try:
        fn(*a, **kw)
    except exc as e:
        assert needle in str(e), "%r lacks %r" % (str(e), needle)
        return e
    raise AssertionError("no %s (%s)" % (exc.__name__, needle))


def test_errors_raise_with_the_library_message():
    m = model()
    msg = cli("logits", "/nonexistent-dsv3", "--ids", "1", check=False).stderr.strip()
    assert msg.startswith("dsv3 logits: ")
    raises(OSError, msg[len("dsv3 logits: "):], dsv3.load, "/nonexistent-dsv3")
    raises(ValueError, "backend 'gpu'", dsv3.load, None, backend="gpu")
    raises(ValueError, "token id at index 1 is 5000", m.logits, [1, 5000])
    raises(ValueError, "0 tokens (need 1..512)", m.logits, [])
    raises(TypeError, "integer token ids", m.logits, [1.5, 2])
    raises(TypeError, "integer token ids", m.logits, np.array([1.0, 2.0]))
    raises(TypeError, "integer token ids", m.logits, [[1, 2]])
    assert m.logits(np.array([0, 1], dtype=np.uint16)).shape == (2, 2048)
    raises(TypeError, "got bytes", m.route, b"abc")
    raises(ValueError, "lens: k must be at least 1", m.lens, "hi", k=0)
    lua_msg = cli("-e", 'attn("hi", 0, 99, load())', check=False).stderr
    raises(ValueError, "out of range", m.attention, "hi", 0, 99)
    assert "out of range" in lua_msg
    raises(ValueError, "layer 0 has no router bias (MoE layers are 1..3, and the MTP block)", m.bias, 0)
    raises(ValueError, "16 experts", m.bias_set, 1, [0.0] * 3)
    raises(ValueError, "not a finite number", m.bias_set, 1, [float("nan")] * 16)
    raises(ValueError, "capture: unknown point 'resid'", m.capture, "hi", points=["resid"])
    raises(ValueError, "force: experts must list exactly 4 experts", m.effect, "hi", force={"layer": 1, "experts": [1]})
    raises(ValueError, "disable: expert 16 out of range", m.effect, "hi", disable=[16])
    raises(ValueError, "exceeds max_position_embeddings 512", m.generate, "hi", max_tokens=600)
    raises(TypeError, "stream must be callable", m.generate, "hi", stream=3)
    raises(TypeError, "'temprature' is an invalid keyword argument for generate()", m.generate, "hi", temprature=1)
    t = dsv3.load(tiny_fp8())
    t.close()
    raises(ValueError, "model is closed", t.logits, [1, 2])
    assert t.closed and "closed" in repr(t)
    t.close()  # twice: nothing
    with dsv3.load() as w:
        assert w.logits([0, 1]).shape == (2, 2048)
    assert w.closed


def test_stream_callback_errors_propagate():
    m = model()

    def boom(piece):
        raise RuntimeError("from the callback")
    raises(RuntimeError, "from the callback", m.generate, "Once", max_tokens=10, stream=boom)

    def reenter(piece):
        m.logits([0, 1])
    raises(RuntimeError, "computing in this thread", m.generate, "Once", max_tokens=10, stream=reenter)
    assert m.generate("Once", max_tokens=3, greedy=True)["stats"]["tokens"] == 3


# ---------------------------------------------------------------- Ctrl-C and the GIL -------

def test_sigint_inside_generation_raises_and_keeps_the_model():
    m = model()
    seen = []

    def kill_at_5(piece):
        seen.append(piece)
        if len(seen) == 5:
            os.kill(os.getpid(), signal.SIGINT)  # a Ctrl-C while the C loop runs
    try:
        m.generate("Once upon a time", max_tokens=400, temperature=0.8, seed=1, stream=kill_at_5)
        raise AssertionError("no KeyboardInterrupt")
    except KeyboardInterrupt:
        pass
    assert len(seen) <= 7, "generation went on for %d pieces after Ctrl-C" % (len(seen) - 5)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    g = m.generate("Once upon a time", max_tokens=8, greedy=True)
    assert g["stats"]["tokens"] == 8
    try:  # Python's own handler is back: a Ctrl-C in Python code raises there
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)
        raise AssertionError("no KeyboardInterrupt from Python's handler")
    except KeyboardInterrupt:
        pass


def test_sigint_stops_a_long_forward_between_layers():
    m = model(small())
    ids = np.arange(LONG) % 2000
    t = time.perf_counter()
    m.effect(ids, disable=[1])
    full = time.perf_counter() - t
    timer = threading.Timer(full * 0.2, os.kill, (os.getpid(), signal.SIGINT))
    t = time.perf_counter()
    timer.start()
    try:
        m.effect(ids, disable=[1])
        raise AssertionError("no KeyboardInterrupt")
    except KeyboardInterrupt:
        took = time.perf_counter() - t
    timer.join()
    assert took < full * 0.85, "interrupted call took %.3fs of %.3fs" % (took, full)
    assert m.logits(ids[:16]).shape == (16, 2048)


def test_gil_released_during_forward():
    m = model(small())
    ids = np.arange(LONG) % 2000
    stamps, run = [], [True]

    def tick():
        while run[0]:
            stamps.append(time.perf_counter())
            time.sleep(0.001)
    th = threading.Thread(target=tick)
    th.start()
    time.sleep(0.02)
    t0 = time.perf_counter()
    m.logits(ids)
    t1 = time.perf_counter()
    run[0] = False
    th.join()
    inside = [s for s in stamps if t0 + 0.01 < s < t1 - 0.01]
    assert t1 - t0 > 0.05 and len(inside) >= 5, "%d ticks during a %.3fs call" % (len(inside), t1 - t0)


def test_two_models_in_two_threads():
    a, b = dsv3.load(), dsv3.load()
    ids = a.tokenize(PROMPT, bos=True)
    want = a.logits(ids)
    out = {}
    ths = [threading.Thread(target=lambda k=k, mm=mm: out.__setitem__(k, [mm.logits(ids) for _ in range(20)]))
           for k, mm in (("a", a), ("b", b))]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    assert all(x.tobytes() == want.tobytes() for k in out for x in out[k])


# ---------------------------------------------------------------- memory ------------------

# ---------------------------------------------------------------- training -----------------

def train_model():
    d = os.path.join(TMP, "train-fp32")
    if not os.path.exists(os.path.join(d, "config.json")):
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_model.py"), d, "--quiet",
                        "--seed", "5", "--dtype", "fp32"], check=True)
    data = os.path.join(TMP, "train-data.txt")
    if not os.path.exists(data):
        with open(data, "w") as f:
            f.write("the cat sat on the mat. " * 300)
    return d, data


def cli_train_losses(out):
    rows = [l.split() for l in out.splitlines() if l.startswith("step ")]
    return [float(r[r.index("loss") + 1]) for r in rows], [float(r[r.index("maxvio") + 1]) for r in rows]


def test_train_equals_cli_train_and_saves_the_same_bytes():
    d, data = train_model()
    out = cli("train", d, "--data", data, "--steps", "4", "--seq-len", "32", "--batch", "2", "--lr", "3e-3",
              "--seed", "7", "--gamma", "0.01", "--save", os.path.join(TMP, "cli-trained")).stdout
    cli_loss, cli_maxvio = cli_train_losses(out)
    m = dsv3.load(d)
    L1 = m.info()["dense_layers"]
    v = m.bias(L1)
    ckpt = v.copy()
    r = m.train(data=data, steps=4, total_steps=4, seq_len=32, batch=2, lr=3e-3, seed=7, gamma=0.01, quiet=True)
    assert r["loss"].dtype == np.float64 and r["loss"].shape == (4,)
    assert ["%.4f" % x for x in r["loss"]] == ["%.4f" % x for x in cli_loss]
    assert ["%.3f" % x for x in r["maxvio"]] == ["%.3f" % x for x in cli_maxvio]
    assert list(r["step"]) == [1, 2, 3, 4] and r["total_steps_done"] == 4 and not r["interrupted"]
    Lm, E = len(r["layers"]), m.info()["routed_experts"]
    assert r["layers"][0] == L1 and r["load"].shape == (4, Lm, E) and r["bias"].shape == (4, Lm, E)
    assert (r["load"].sum(axis=2) == r["load"][0].sum(axis=1)).all()  # every step routes the same tokens
    moved = np.abs(r["bias"][0, 0] - ckpt)  # the first update: each expert by +-gamma or not at all
    assert (np.isclose(moved, 0.01, atol=1e-6) | (moved < 1e-9)).all() and moved.any()
    assert np.array_equal(v, r["bias"][-1, 0]), "the bias view shows the trained bias"
    saved = os.path.join(TMP, "py-trained")
    assert m.train_save(saved) == saved
    for f in ("model.safetensors", "train_state.safetensors"):
        with open(os.path.join(saved, f), "rb") as a, open(os.path.join(TMP, "cli-trained", f), "rb") as b:
            assert a.read() == b.read(), f + " differs from dsv3 train --save"
    ev = m.train_eval()
    assert ev["tokens"] > 0 and np.isfinite(ev["loss"])
    trained = m.logits("the cat")
    r2 = m.train(steps=1, lr=1e-3, quiet=True)  # continues the same trainer
    assert list(r2["step"]) == [5]
    raises(TypeError, "train (continuing", m.train, steps=1, seq_len=16)
    m.train_reset()
    assert np.array_equal(v, ckpt), "train_reset gives the checkpoint's bias back"
    assert not np.array_equal(m.logits("the cat"), trained)
    raises(ValueError, "train_eval: no trainer yet", m.train_eval)
    raises(ValueError, "train: give data", m.train, steps=1)
    raises(TypeError, "unexpected keyword argument 'dta'", m.train, steps=1, dta=data)
    raises(ValueError, "train: steps must be in 1..1e7", m.train, steps=0, text="x")
    m.close()


def test_train_on_text_and_ctrl_c_between_steps_keeps_the_model():
    d, _ = train_model()
    m = dsv3.load(d)
    r = m.train(text="the cat sat on the mat. " * 200, steps=6, seq_len=32, batch=2, lr=3e-3, gamma=0, **{"lambda": 0.5}, quiet=True)
    assert r["loss"][-1] < r["loss"][0]
    before = r["total_steps_done"]
    timer = threading.Timer(0.4, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        m.train(steps=100000, quiet=True)
        raise AssertionError("no KeyboardInterrupt")
    except KeyboardInterrupt as e:
        res = e.result
    finally:
        timer.cancel()
    assert res["interrupted"] and res["total_steps_done"] == before + len(res["loss"])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert m.logits("the cat").shape[0] >= 2  # the model computes (with the last finished step's weights)
    r3 = m.train(steps=1, quiet=True)
    assert list(r3["step"]) == [res["total_steps_done"] + 1]
    m.close()  # frees the trainer first, then the model


def test_grpo_equals_cli_grpo_and_calls_python_rewards():
    out = cli("grpo", DEMO, "--task", "add", "--steps", "2", "--group", "4", "--batch", "2", "--max-tokens", "6",
              "--seed", "3", "--save", os.path.join(TMP, "cli-grpo")).stdout
    rows = [l.split() for l in out.splitlines() if l.startswith("step ")]
    m = dsv3.load(DEMO)
    r = m.grpo(task="add", steps=2, group=4, batch=2, max_tokens=6, seed=3, quiet=True)
    assert r["reward"].dtype == np.float64 and r["reward"].shape == (2,) and list(r["step"]) == [1, 2]
    for key, col in (("reward", "reward"), ("reward_std", "std"), ("reward_max", "max"), ("kl", "kl")):
        assert ["%.4f" % x for x in r[key]] == ["%.4f" % float(w[w.index(col) + 1]) for w in rows], key
    assert ["%+.5f" % x for x in r["loss"]] == [w[w.index("loss") + 1] for w in rows]
    assert r["task"] == "add" and r["group"] == 4 and len(r["best"]) == 2 and r["total_steps"] == 2
    saved = os.path.join(TMP, "py-grpo")
    m.grpo_save(saved)
    with open(os.path.join(saved, "model.safetensors"), "rb") as a, \
            open(os.path.join(TMP, "cli-grpo", "model.safetensors"), "rb") as b:
        assert a.read() == b.read(), "grpo_save differs from dsv3 grpo --save"
    raises(ValueError, "grpo: the model's GRPO run has group 4", m.grpo, task="add", steps=1, group=2, quiet=True)
    raises(ValueError, "train: the model has a GRPO run", m.train, text="x y z", steps=1)
    m.grpo_reset()
    calls = []

    def reward(prompt, completion, answer):
        calls.append((prompt, completion, answer))
        return float(len(completion))
    prompts = ["hello", ("2+2=", "4"), {"prompt": "cat", "answer": None}]
    r = m.grpo(prompts=prompts, reward=reward, steps=2, group=2, batch=3, max_tokens=4, quiet=True)
    assert len(calls) == 2 * 3 * 2 and {c[0] for c in calls} == {"hello", "2+2=", "cat"}
    assert {c[2] for c in calls} == {None, "4"}
    assert np.isclose(r["reward"][0], np.mean([len(c[1]) for c in calls[:6]]))

    def broken(prompt, completion, answer):
        raise KeyError("from the reward")
    try:
        m.grpo(prompts=prompts, reward=broken, steps=1, group=2, batch=3, max_tokens=4, quiet=True)
        raise AssertionError("the reward's exception was lost")
    except KeyError as e:
        assert "from the reward" in str(e)
    raises(TypeError, "expected a number", m.grpo, prompts=prompts, reward=lambda p, c, a: "x", steps=1, group=2,
           batch=3, max_tokens=4, quiet=True)
    raises(ValueError, "an answer with every prompt", m.grpo, prompts=["a"], steps=1)
    raises(ValueError, "unknown task 'mul'", m.grpo, task="mul", steps=1)
    m.grpo_reset()
    assert np.array_equal(m.logits("1+1="), dsv3.load(DEMO).logits("1+1=")), "grpo_reset gives the weights back"
    m.close()


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


def test_thousand_calls_keep_rss_and_refcounts_flat():
    m = model()
    ids = m.tokenize(PROMPT, bos=True)
    calls = [lambda: m.logits(ids), lambda: m.route(ids), lambda: m.capture(ids, points=["resid_out", "ckv"]),
             lambda: m.lens(ids), lambda: m.effect(ids, disable=[3]), lambda: m.attention(ids, 1, 0),
             lambda: m.generate(ids, max_tokens=4, greedy=True), lambda: m.tokenize(PROMPT),
             lambda: m.mtp_trace(ids, max_tokens=4), lambda: m.info(), lambda: m.bias(1)]
    for f in calls:  # warm up the allocators
        for _ in range(20):
            f()
    rc_ids, rc_m = sys.getrefcount(ids), sys.getrefcount(m)
    before = rss_kb()
    for i in range(1000):
        calls[i % len(calls)]()
    grown = rss_kb() - before
    assert sys.getrefcount(ids) == rc_ids and sys.getrefcount(m) == rc_m
    print("rss over 1000 calls: %+d kB" % grown)
    before = rss_kb()
    n = 20 if SANITIZED else 200
    for _ in range(n):
        dsv3.load().close()
    cycles = rss_kb() - before
    print("rss over %d load/close cycles: %+d kB" % (n, cycles))
    if not SANITIZED:  # ASan's quarantine keeps freed memory resident
        assert grown < 2048, "RSS grew by %d kB over 1000 calls" % grown
        assert cycles < 2048, "load/close cycles grew RSS by %d kB" % cycles


def main():
    tests = [(k, v) for k, v in sorted(globals().items()) if k.startswith("test_") and callable(v)]
    only = sys.argv[1:]
    failed = 0
    for name, fn in tests:
        if only and not any(o in name for o in only):
            continue
        t = time.perf_counter()
        try:
            fn()
            print("ok   %s (%.2fs)" % (name, time.perf_counter() - t))
        except BaseException as e:  # KeyboardInterrupt too: a test must not end the run
            failed += 1
            import traceback
            traceback.print_exc()
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
    print("%d failed" % failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
