#!/usr/bin/python3
"""Self-checks for scripts/gen_model.py and tests/reference/dsv3_ref.py (numpy + stdlib only).

Usage: /usr/bin/python3 tests/reference/selftest.py [--keep DIR] [--verbose]

Generates tiny checkpoints into a temporary directory and checks:
  * E4M3FN encoder (gen_model) against the decode table (dsv3_ref) and a brute-force
    round-to-nearest-even search; BF16 rounding;
  * safetensors layout (8-byte aligned data start, offsets cover the data section, per-dtype alignment);
  * fp8 / bf16 dequantized weights vs the fp32 originals (per-element error bounds);
  * single-file vs 3-shard checkpoints give bit-identical reference outputs;
  * the reference's naive MLA with HF-style RoPE == absorbed MLA with complex-pair RoPE
    (docs/ARCHITECTURE.md "MLA", "RoPE");
  * routing vs an independent pure-Python implementation (including forced ties);
  * causality (prefix logits == leading rows of longer-run logits, main and MTP);
  * logits finite, O(1), varying by position; the routing bias changes the expert set for a
    meaningful fraction of tokens.
Exit status 0 when all pass.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import dsv3_ref as ref  # noqa: E402
import gen_model as gen  # noqa: E402

FAILS = []
VERBOSE = False


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        FAILS.append(msg)


def generate(out, *args):
    subprocess.check_call([sys.executable, os.path.join(ROOT, "scripts", "gen_model.py"), out,
                           "--quiet"] + list(args))


# ----------------------------------------------------------------------------- numerics

def test_e4m3():
    t = ref.e4m3fn_table()
    codes = np.arange(256)
    fin = ~np.isnan(t)
    check(np.isnan(t[0x7F]) and np.isnan(t[0xFF]) and fin.sum() == 254, "e4m3: only 0x7F/0xFF are NaN")
    check(t[0x7E] == 448.0 and t[0x01] == 2.0 ** -9 and t[0x08] == 2.0 ** -6, "e4m3: 448, 2^-9, 2^-6")
    enc = gen.f32_to_e4m3fn(t[fin].astype(np.float32))
    check((enc == codes[fin]).all(), "e4m3: encode(decode(c)) == c for all 254 finite codes")
    pos = np.unique(t[fin & (t >= 0)])
    code_of = {float(v): int(c) for c, v in enumerate(t) if fin[c] and not (c & 0x80)}

    def brute(v):
        s = 0x80 if np.signbit(v) else 0
        a = abs(float(v))
        if a >= 448:
            return 0x7E | s
        i = int(np.searchsorted(pos, a))
        if pos[i] == a:
            return code_of[float(pos[i])] | s
        lo, hi = pos[i - 1], pos[i]
        if a - lo < hi - a:
            c = code_of[float(lo)]
        elif hi - a < a - lo:
            c = code_of[float(hi)]
        else:
            c = code_of[float(lo)] if code_of[float(lo)] % 2 == 0 else code_of[float(hi)]
        return c | s

    rng = np.random.default_rng(5)
    mids = (pos[:-1] + pos[1:]) / 2
    vals = np.concatenate([
        rng.standard_normal(6000) * rng.choice([1e-3, 1e-2, 0.1, 1, 10, 100, 300], 6000),
        mids, -mids, np.nextafter(mids.astype(np.float32), np.float32(0)),
        [447.9, 448, 449, 463.9, 464, 470, 1e6, np.inf, -np.inf, 0.0, -0.0]]).astype(np.float32)
    got = gen.f32_to_e4m3fn(vals)
    exp = np.array([brute(v) for v in vals], dtype=np.uint8)
    check((got == exp).all(), "e4m3: RNE + saturation matches brute force on %d values (%d bad)"
          % (len(vals), int((got != exp).sum())))
    check(gen.f32_to_e4m3fn(np.array([np.nan], np.float32))[0] & 0x7F == 0x7F, "e4m3: NaN -> 0x7F")

    bits = rng.integers(0, 0x7F7F0000, 100000, dtype=np.uint32)
    bits[:2000] = (bits[:2000] & 0xFFFF0000) | 0x8000  # exact ties
    x = bits.view(np.float32)
    b = gen.f32_to_bf16_bits(x).astype(np.uint32)
    lo = bits >> np.uint32(16)
    hi = lo + np.uint32(1)
    vlo = (lo << np.uint32(16)).view(np.float32).astype(np.float64)
    vhi = (hi << np.uint32(16)).view(np.float32).astype(np.float64)
    xv = x.astype(np.float64)
    e = np.where(xv - vlo < vhi - xv, lo, np.where(xv - vlo > vhi - xv, hi, np.where(lo % 2 == 0, lo, hi)))
    check((e == b).all(), "bf16: round-to-nearest-even on 100000 values incl. 2000 ties")


def test_layout(d):
    ok = True
    for fn in sorted(os.listdir(d)):
        if not fn.endswith(".safetensors"):
            continue
        raw = open(os.path.join(d, fn), "rb").read()
        n = int.from_bytes(raw[:8], "little")
        h = json.loads(raw[8:8 + n])
        meta = h.pop("__metadata__", None)
        iv = sorted(v["data_offsets"] for v in h.values())
        sz = {"F32": 4, "BF16": 2, "F8_E4M3": 1}
        ok &= meta == {"format": "pt"} and (8 + n) % 8 == 0
        ok &= iv[0][0] == 0 and all(a[1] == b[0] for a, b in zip(iv, iv[1:])) and iv[-1][1] == len(raw) - 8 - n
        ok &= all(v["data_offsets"][0] % sz[v["dtype"]] == 0 for v in h.values())
        ok &= all(v["data_offsets"][1] - v["data_offsets"][0] == int(np.prod(v["shape"])) * sz[v["dtype"]]
                  for v in h.values())
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        ix = json.load(open(idx))
        tot = 0
        for fn in set(ix["weight_map"].values()):
            raw = open(os.path.join(d, fn), "rb").read(8)
            tot += os.path.getsize(os.path.join(d, fn)) - 8 - int.from_bytes(raw, "little")
        ok &= tot == ix["metadata"]["total_size"]
    check(ok, "safetensors layout of %s" % os.path.basename(d))


def test_dequant(d32, d8, d16):
    c32, c8, c16 = ref.Checkpoint(d32), ref.Checkpoint(d8), ref.Checkpoint(d16)
    n8 = 0
    worst8 = 0.0
    ok8 = True
    ok16 = True
    worst16 = 0.0
    types_ok = True
    for name in c32.where:
        w = c32.get(name)
        if c8.dtype(name) == "F8_E4M3":
            n8 += 1
            q = c8.get(name)
            s = c8.get(name + "_scale_inv")
            M, N = w.shape
            S = np.repeat(np.repeat(s, 128, 0), 128, 1)[:M, :N]
            bound = np.maximum(np.abs(w) * 2.0 ** -4, S * 2.0 ** -10) * (1 + 1e-6)
            ok8 &= bool((np.abs(q - w) <= bound).all())
            worst8 = max(worst8, float(np.abs(q - w).max() / np.abs(w).max()))
            # scale = block amax / 448 (to float32)
            amax = np.zeros_like(s)
            for i in range(s.shape[0]):
                for j in range(s.shape[1]):
                    amax[i, j] = np.abs(w[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128]).max()
            ok8 &= bool(np.allclose(s, amax / 448.0, rtol=1e-6))
        else:
            q = c8.get(name)
            exp_dt = "F32" if name.endswith("e_score_correction_bias") else "BF16"
            types_ok &= c8.dtype(name) == exp_dt
            if exp_dt == "F32":
                ok8 &= bool((q == w).all())
        if not name.endswith("_scale_inv"):
            b = c16.get(name)
            if name.endswith("e_score_correction_bias"):
                ok16 &= c16.dtype(name) == "F32" and bool((b == w).all())
            else:
                r = np.abs(b - w) / np.maximum(np.abs(w), 1e-30)
                worst16 = max(worst16, float(r.max()))
                ok16 &= bool((r <= 2.0 ** -8).all())
    check(ok8 and n8 > 0, "fp8: %d FP8 tensors dequantize within e4m3 RNE bounds of the fp32 originals "
          "(worst max|dq-w|/max|w| = %.4f); scales = block amax/448" % (n8, worst8))
    check(types_ok, "fp8 variant: non-FP8 tensors BF16, e_score_correction_bias F32")
    check(ok16, "bf16: all tensors within 2^-8 relative of fp32 originals (worst %.2e)" % worst16)
    # which tensors are FP8: all projections inside decoder blocks, nothing else
    fp8_names = {n for n in c8.where if c8.dtype(n) == "F8_E4M3"}
    bad = [n for n in fp8_names if any(k in n for k in ("embed", "lm_head", "shared_head", "eh_proj",
                                                         "norm", "mlp.gate.weight"))]
    check(not bad, "fp8: no FP8 on embed/head/eh_proj/norms/router (%s)" % bad[:3])


# ----------------------------------------------------------------------------- reference internals

def absorbed_attention(m, i, x, pos):
    """Absorbed MLA (docs/ARCHITECTURE.md "MLA") with complex-pair RoPE on interleaved dims (official form)."""
    c = m.cfg
    pre = "model.layers.%d.self_attn." % i
    S = x.shape[0]
    nh = c["num_attention_heads"]
    dn, dr, dv = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
    rkv = c["kv_lora_rank"]
    if c.get("q_lora_rank"):
        cq = ref.rmsnorm(x @ m.W(pre + "q_a_proj.weight").T, m.W(pre + "q_a_layernorm.weight"), 1e-6)
        q = cq @ m.W(pre + "q_b_proj.weight").T
    else:
        q = x @ m.W(pre + "q_proj.weight").T
    q = q.reshape(S, nh, dn + dr)
    kva = x @ m.W(pre + "kv_a_proj_with_mqa.weight").T
    lat = ref.rmsnorm(kva[:, :rkv], m.W(pre + "kv_a_layernorm.weight"), 1e-6)
    ang = (np.asarray(pos).astype(np.float32)[:, None] * m.rope.inv_freq[None, :]).astype(np.float64)
    af = m.rope.attention_factor
    cs, sn = np.cos(ang) * af, np.sin(ang) * af                   # [S, dr/2]

    def rot(v):  # v [S, ..., dr] interleaved pairs (2k, 2k+1)
        z = v[..., 0::2] + 1j * v[..., 1::2]
        e = (cs + 1j * sn).reshape((S,) + (1,) * (v.ndim - 2) + (dr // 2,))
        z = z * e
        out = np.empty(v.shape)
        out[..., 0::2] = z.real
        out[..., 1::2] = z.imag
        return out

    q_pe = rot(q[:, :, dn:])
    k_pe = rot(kva[:, rkv:])
    wkvb = m.W(pre + "kv_b_proj.weight").reshape(nh, dn + dv, rkv)
    wuk, wuv = wkvb[:, :dn], wkvb[:, dn:]
    q_abs = np.einsum("shd,hdr->shr", q[:, :, :dn], wuk)
    sc = (np.einsum("shr,tr->hst", q_abs, lat) + np.einsum("shd,td->hst", q_pe, k_pe)) * m.rope.softmax_scale
    p = np.asarray(pos)
    sc = np.where((p[None, :] > p[:, None])[None], -np.inf, sc)
    sc -= sc.max(-1, keepdims=True)
    P = np.exp(sc)
    P /= P.sum(-1, keepdims=True)
    u = np.einsum("hst,tr->shr", P, lat)
    o = np.einsum("hdr,shr->shd", wuv, u).reshape(S, nh * dv)
    return o @ m.W(pre + "o_proj.weight").T


def test_attention_forms(d, T):
    m = ref.Model(d)
    rng = np.random.default_rng(3)
    H = m.cfg["hidden_size"]
    worst = 0.0
    for i in range(m.cfg["num_hidden_layers"] + (1 if m.cfg.get("num_nextn_predict_layers") else 0)):
        x = rng.standard_normal((T, H))
        pos = np.arange(T)
        a = m.attention(i, x, pos)
        b = absorbed_attention(m, i, x, pos)
        worst = max(worst, float(np.abs(a - b).max() / np.abs(b).max()))
    check(worst < 1e-12, "%s: naive MLA + HF permute/rotate-half == absorbed MLA + complex-pair RoPE "
          "(T=%d, rel %.1e)" % (os.path.basename(d), T, worst))


def brute_route(s, bias, E, G, KG, K):
    """Pure-Python routing (docs/ARCHITECTURE.md "Routing" steps 3-5) with explicit tie rules."""
    b = [float(s[e]) + float(bias[e]) for e in range(E)]
    g = E // G
    gs = []
    for j in range(G):
        vals = sorted(b[j * g:(j + 1) * g], reverse=True)
        gs.append((vals[0] + vals[1], j))
    groups = sorted(gs, key=lambda t: (-t[0], t[1]))[:KG]
    kept = {j for _, j in groups}
    cand = [(b[e], e) for e in range(E) if e // g in kept]
    return [e for _, e in sorted(cand, key=lambda t: (-t[0], t[1]))[:K]]


def test_routing(d):
    m = ref.Model(d)
    c = m.cfg
    E, G, KG, K = c["n_routed_experts"], c["n_group"], c["topk_group"], c["num_experts_per_tok"]
    rng = np.random.default_rng(11)
    ok = True
    for trial in range(3000):
        s = 1 / (1 + np.exp(-2 * rng.standard_normal(E)))
        bias = rng.standard_normal(E) * 0.1
        if trial % 3 == 0:   # force ties: quantize scores coarsely
            s = np.round(s * 4) / 4
            bias = np.round(bias * 4) / 4
        if trial % 7 == 0:   # negative biased scores (where -inf vs 0.0 masking differs)
            bias = bias - 1.5
        sel, _ = m.route(s, bias)
        ok &= list(sel) == brute_route(s, bias, E, G, KG, K)
    check(ok, "routing == pure-Python brute force on 3000 score vectors (with ties, negative scores)")


def run_ref(d, ids, out, mtp=None, extra=()):
    cmd = [sys.executable, os.path.join(HERE, "dsv3_ref.py"), d, "--ids", ",".join(map(str, ids)),
           "--out", out] + (["--mtp-out", mtp] if mtp else []) + list(extra)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=True)
    return r.stderr


def main():
    global VERBOSE
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", default=None, help="generate models into this directory and keep them")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    VERBOSE = args.verbose
    tmp = args.keep or tempfile.mkdtemp(prefix="dsv3_selftest_")
    os.makedirs(tmp, exist_ok=True)
    try:
        test_e4m3()
        D = lambda n: os.path.join(tmp, n)  # noqa: E731
        generate(D("fp32"), "--dtype", "fp32")
        generate(D("bf16"), "--dtype", "bf16")
        generate(D("fp8"), "--dtype", "fp8")
        generate(D("fp8_s3"), "--dtype", "fp8", "--shards", "3")
        generate(D("bf16_s3"), "--dtype", "bf16", "--shards", "3")
        generate(D("fp32_q0"), "--dtype", "fp32", "--q-lora-rank", "0")
        generate(D("fp32_noyarn"), "--dtype", "fp32", "--no-yarn")
        generate(D("small_fp8"), "--preset", "small", "--dtype", "fp8", "--shards", "2")
        for n in ("fp32", "fp8", "fp8_s3", "bf16_s3", "fp32_q0", "small_fp8"):
            test_layout(D(n))
        test_dequant(D("fp32"), D("fp8"), D("bf16"))
        test_routing(D("fp32"))
        for n in ("fp32", "fp32_q0", "fp32_noyarn", "fp8"):
            test_attention_forms(D(n), 150)

        rng = np.random.default_rng(7)
        ids = rng.integers(0, 1024, 200).tolist()
        outs = {}
        for n in ("fp32", "bf16", "bf16_s3", "fp8", "fp8_s3", "fp32_q0", "fp32_noyarn"):
            stats = run_ref(D(n), ids, D(n + ".npy"), D(n + "_mtp.npy"), ["--stats"])
            outs[n] = (np.load(D(n + ".npy")), np.load(D(n + "_mtp.npy")))
            lg, mt = outs[n]
            fin = np.isfinite(lg).all() and np.isfinite(mt).all()
            shp = lg.shape == (200, 1024) and mt.shape == (199, 1024)
            scale = 0.1 < np.abs(lg).mean() < 10 and 0.1 < np.abs(mt).mean() < 10
            vary = np.abs(np.diff(lg, axis=0)).mean() > 0.1 and len(set(lg.argmax(1))) > 50
            check(fin and shp and scale and vary, "%s: logits/MTP finite, shapes ok, O(1) "
                  "(mean|l| %.2f), vary by position" % (n, np.abs(lg).mean()))
            fr = []
            for line in stats.splitlines():
                if "bias changes" in line:
                    fr.append(float(line.split("=")[1].split(";")[0]))
            check(len(fr) > 0 and min(fr) >= 0.2, "%s: bias changes expert set for %s of tokens per MoE layer"
                  % (n, ["%.2f" % f for f in fr]))
            if VERBOSE:
                sys.stdout.write(stats)
        for a, b in (("bf16_s3", "bf16"), ("fp8_s3", "fp8")):
            same = all((x == y).all() for x, y in zip(outs[a], outs[b]))
            check(same, "%s == %s bit-identical outputs" % (a, b))
        # causality: a prefix run reproduces the leading rows (also past original_max_pos 128)
        n = "fp32"
        run_ref(D(n), ids[:150], D("pre.npy"), D("pre_mtp.npy"))
        p, pm = np.load(D("pre.npy")), np.load(D("pre_mtp.npy"))
        full, fullm = outs[n]
        e1 = np.abs(p - full[:150]).max() / np.abs(full).max()
        e2 = np.abs(pm - fullm[:149]).max() / np.abs(fullm).max()
        check(e1 < 1e-6 and e2 < 1e-6, "causality: 150-token prefix == first rows of 200-token run "
              "(%.1e, %.1e)" % (e1, e2))
        # T = 1: MTP output has shape [0, vocab]
        run_ref(D(n), ids[:1], D("one.npy"), D("one_mtp.npy"))
        check(np.load(D("one.npy")).shape == (1, 1024) and np.load(D("one_mtp.npy")).shape == (0, 1024),
              "T=1: logits [1, V], MTP [0, V]")
        # variants must really differ from the default
        for v in ("fp32_q0", "fp32_noyarn"):
            dd = np.abs(outs[v][0] - outs["fp32"][0]).max()
            check(dd > 1e-2, "%s differs from fp32 (max diff %.3g)" % (v, dd))
        m = ref.Model(D("fp32"))
        check(m.rope.low == 0 and m.rope.high == 3 and abs(m.rope.softmax_scale - 48 ** -0.5 * (0.1 * math.log(4) + 1) ** 2) < 1e-15,
              "tiny YaRN: low 0, high 3, softmax_scale %.17g" % m.rope.softmax_scale)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print("%d failure(s)" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
