#!/usr/bin/python3
"""Independent float64 numpy reference forward for DeepSeek-V3-architecture checkpoints.

Usage:
  /usr/bin/python3 tests/reference/dsv3_ref.py MODEL_DIR --ids 1,2,3 --out logits.npy
        [--mtp-out mtp.npy] [--stats] [--rope-f64]

Written from the model description (now docs/ARCHITECTURE.md, HF semantics) only; numpy + stdlib.
Every weight is decoded/dequantized to float64 and every activation is float64. The one
deliberate exception is the RoPE table: docs/ARCHITECTURE.md ("RoPE", "YaRN") defines inv_freq
and the angle p * inv_freq in float32 (as HF does), so those two are float32 unless --rope-f64 is given;
cos/sin of that angle are evaluated in float64.

Outputs (float32 .npy): logits [T, vocab]; MTP logits [T-1, vocab] (row i predicts token i+2;
shape [0, vocab] when T < 2).
"""
import argparse
import json
import math
import os
import sys

import numpy as np

# ----------------------------------------------------------------------------- safetensors

_E4M3 = None
_E5M2 = None


def e4m3fn_table():
    t = np.zeros(256, dtype=np.float64)
    for c in range(256):
        s = -1.0 if c & 0x80 else 1.0
        e, m = (c >> 3) & 0xF, c & 7
        if e == 15 and m == 7:
            t[c] = np.nan  # 0x7F / 0xFF; no infinities in e4m3fn
        elif e == 0:
            t[c] = s * 2.0 ** -6 * (m / 8.0)
        else:
            t[c] = s * 2.0 ** (e - 7) * (1.0 + m / 8.0)
    return t


def e5m2_table():
    t = np.zeros(256, dtype=np.float64)
    for c in range(256):
        s = -1.0 if c & 0x80 else 1.0
        e, m = (c >> 2) & 0x1F, c & 3
        if e == 31:
            t[c] = s * np.inf if m == 0 else np.nan
        elif e == 0:
            t[c] = s * 2.0 ** -14 * (m / 4.0)
        else:
            t[c] = s * 2.0 ** (e - 15) * (1.0 + m / 4.0)
    return t


_DTYPES = {  # name -> (bytes per element, decoder from raw bytes to float64 ndarray)
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}


def _decode(raw, dtype, shape):
    global _E4M3, _E5M2
    if dtype == "F64":
        a = np.frombuffer(raw, dtype="<f8").astype(np.float64)
    elif dtype == "F32":
        a = np.frombuffer(raw, dtype="<f4").astype(np.float64)
    elif dtype == "F16":
        a = np.frombuffer(raw, dtype="<f2").astype(np.float64)
    elif dtype == "BF16":
        u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << np.uint32(16)
        a = u.view(np.float32).astype(np.float64)
    elif dtype == "F8_E4M3":
        if _E4M3 is None:
            _E4M3 = e4m3fn_table()
        a = _E4M3[np.frombuffer(raw, dtype=np.uint8)]
    elif dtype == "F8_E5M2":
        if _E5M2 is None:
            _E5M2 = e5m2_table()
        a = _E5M2[np.frombuffer(raw, dtype=np.uint8)]
    elif dtype in ("I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL"):
        npd = {"I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U64": "<u8",
               "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "u1"}[dtype]
        a = np.frombuffer(raw, dtype=npd).astype(np.float64)
    else:
        raise ValueError("unsupported safetensors dtype %r" % dtype)
    return a.reshape(shape)


class SafeTensorsFile:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            hdr = json.loads(f.read(n).decode("utf-8"))
        self.data_start = 8 + n
        hdr.pop("__metadata__", None)
        self.entries = hdr
        size = os.path.getsize(path)
        for name, e in hdr.items():
            if e["dtype"] not in _DTYPES:
                raise ValueError("%s: tensor %s has unknown dtype %s" % (path, name, e["dtype"]))
            b, end = e["data_offsets"]
            cnt = int(np.prod(e["shape"])) if e["shape"] else 1
            if end - b != cnt * _DTYPES[e["dtype"]] or self.data_start + end > size:
                raise ValueError("%s: bad data_offsets for %s" % (path, name))
        self.mm = np.memmap(path, dtype=np.uint8, mode="r")

    def raw(self, name):
        e = self.entries[name]
        b, end = e["data_offsets"]
        return e["dtype"], tuple(e["shape"]), self.mm[self.data_start + b:self.data_start + end].tobytes()


class Checkpoint:
    """Single file or sharded (model.safetensors.index.json) checkpoint."""

    def __init__(self, model_dir, block=(128, 128)):
        self.block = tuple(block)
        self.files = {}
        self.where = {}
        idx = os.path.join(model_dir, "model.safetensors.index.json")
        if os.path.exists(idx):
            with open(idx) as f:
                wm = json.load(f)["weight_map"]
            for name, fn in wm.items():
                if fn not in self.files:
                    self.files[fn] = SafeTensorsFile(os.path.join(model_dir, fn))
                if name not in self.files[fn].entries:
                    raise ValueError("index maps %s to %s but the shard lacks it" % (name, fn))
                self.where[name] = fn
        else:
            fn = "model.safetensors"
            self.files[fn] = SafeTensorsFile(os.path.join(model_dir, fn))
            for name in self.files[fn].entries:
                self.where[name] = fn

    def __contains__(self, name):
        return name in self.where

    def dtype(self, name):
        return self.files[self.where[name]].entries[name]["dtype"]

    def get(self, name):
        """Tensor as float64; FP8 weights with a companion <name>_scale_inv are block-dequantized."""
        dt, shape, raw = self.files[self.where[name]].raw(name)
        w = _decode(raw, dt, shape)
        sname = name + "_scale_inv"
        if sname in self.where:
            s = self.get(sname)
            if w.ndim != 2 or s.ndim != 2:
                raise ValueError("scale_inv for non-2D tensor %s" % name)
            M, N = w.shape
            bm, bn = self.block
            if s.shape != (-(-M // bm), -(-N // bn)):
                raise ValueError("%s: scale shape %s does not match weight %s" % (sname, s.shape, w.shape))
            full = np.repeat(np.repeat(s, bm, axis=0), bn, axis=1)[:M, :N]
            w = w * full
        return w


# ----------------------------------------------------------------------------- config

HF_DEFAULTS = dict(
    vocab_size=129280, hidden_size=7168, intermediate_size=18432, moe_intermediate_size=2048,
    num_hidden_layers=61, num_attention_heads=128, num_key_value_heads=128,
    n_shared_experts=1, n_routed_experts=256, routed_scaling_factor=2.5,
    kv_lora_rank=512, q_lora_rank=1536, qk_rope_head_dim=64, v_head_dim=128,
    qk_nope_head_dim=128, topk_method="noaux_tc", n_group=8, topk_group=4,
    num_experts_per_tok=8, moe_layer_freq=1, first_k_dense_replace=3, norm_topk_prob=True,
    scoring_func="sigmoid", hidden_act="silu", max_position_embeddings=4096,
    rms_norm_eps=1e-6, rope_theta=10000.0, rope_scaling=None, tie_word_embeddings=False,
    num_nextn_predict_layers=1,
)


# DeepseekV2Config's defaults where they differ from V3's (DeepSeek-V2 family, model_type
# "deepseek_v2"): no MTP, no shared expert, one group, softmax scores, greedy choice, no
# normalisation, routed_scaling_factor 1, no dense layers.
HF_V2_DEFAULTS = dict(
    n_shared_experts=None, n_group=1, topk_group=1, routed_scaling_factor=1.0,
    first_k_dense_replace=0, norm_topk_prob=False, scoring_func="softmax", topk_method="greedy",
    num_nextn_predict_layers=0,
)


def load_config(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        raw = json.load(f)
    family = raw.get("model_type") or "deepseek_v3"
    if family not in ("deepseek_v3", "kimi_k2", "deepseek_v2"):
        raise ValueError("model_type %r is not a DeepSeek-V3/V2 family model" % family)
    defaults = dict(HF_DEFAULTS)
    if family == "deepseek_v2":
        defaults.update(HF_V2_DEFAULTS)
    cfg = dict(defaults)
    cfg.update({k: v for k, v in raw.items()})
    cfg["family"] = "v2" if family == "deepseek_v2" else "v3"
    for k in defaults:  # explicit nulls keep their meaning only for these
        if cfg.get(k) is None and k not in ("q_lora_rank", "rope_scaling", "n_routed_experts",
                                             "n_shared_experts"):
            cfg[k] = defaults[k]
    if cfg.get("scoring_func") not in ("sigmoid", "softmax"):
        raise ValueError("scoring_func %r is not implemented" % cfg.get("scoring_func"))
    if cfg.get("topk_method") not in ("noaux_tc", "greedy", "group_limited_greedy"):
        raise ValueError("topk_method %r is not implemented" % cfg.get("topk_method"))
    if cfg.get("hidden_act") != "silu":
        raise ValueError("only hidden_act silu is implemented")
    return cfg


# ----------------------------------------------------------------------------- math

def rmsnorm(x, w, eps):
    return w * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps))


def silu(z):
    return z / (1.0 + np.exp(-z))


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def yarn_mscale(f, m):
    if f <= 1:
        return 1.0
    return 0.1 * m * math.log(f) + 1.0


class Rope:
    """HF-style RoPE (permute to de-interleaved order, then rotate-half); docs/ARCHITECTURE.md, "RoPE"."""

    def __init__(self, cfg, f64=False):
        d = cfg["qk_rope_head_dim"]
        b = float(cfg["rope_theta"])
        self.d = d
        self.f64 = f64
        rs = cfg.get("rope_scaling")
        ft = np.float64 if f64 else np.float32
        self.attention_factor = 1.0
        mscale_sm = 1.0
        kind = None
        if rs:
            kind = rs.get("type", rs.get("rope_type"))
        if kind == "yarn":
            L0 = rs.get("original_max_position_embeddings", 4096)
            f = rs.get("factor")
            if not f:
                f = cfg["max_position_embeddings"] / L0
            f = float(f)
            beta_fast = rs.get("beta_fast", 32)
            beta_slow = rs.get("beta_slow", 1)
            ms = rs.get("mscale", 1)
            msad = rs.get("mscale_all_dim", 0)
            k = np.arange(0, d, 2).astype(ft)
            base = ft(b) ** (k / ft(d))                   # b^(2k/d)
            extra = ft(1.0) / base
            inter = ft(1.0) / (ft(f) * base)

            def cdim(r):
                return d * math.log(L0 / (2 * math.pi * r)) / (2 * math.log(b))

            low = max(math.floor(cdim(beta_fast)), 0)
            high = min(math.ceil(cdim(beta_slow)), d - 1)
            if low == high:
                high += 0.001
            kk = np.arange(d // 2).astype(ft)
            ramp = np.clip((kk - ft(low)) / ft(high - low), ft(0), ft(1)).astype(ft)
            self.inv_freq = (inter * ramp + extra * (ft(1) - ramp)).astype(ft)
            self.low, self.high = low, high
            if msad:
                mscale_sm = yarn_mscale(f, msad)
            self.attention_factor = yarn_mscale(f, ms) / yarn_mscale(f, msad)
        elif kind in (None, "default"):
            k = np.arange(0, d, 2).astype(ft)
            self.inv_freq = (ft(1.0) / (ft(b) ** (k / ft(d)))).astype(ft)
            self.low = self.high = None
        else:
            raise ValueError("unsupported rope_scaling type %r" % kind)
        dq = cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]
        self.softmax_scale = dq ** -0.5 * mscale_sm * mscale_sm

    def cos_sin(self, pos):
        pos = np.asarray(pos)
        ft = np.float64 if self.f64 else np.float32
        ang = pos.astype(ft)[:, None] * self.inv_freq[None, :]   # [S, d/2], float32 product per spec
        ang = ang.astype(np.float64)
        emb = np.concatenate([ang, ang], axis=-1)                 # concat(freqs, freqs)
        return np.cos(emb) * self.attention_factor, np.sin(emb) * self.attention_factor

    @staticmethod
    def deinterleave(x):
        """[..., d] interleaved pairs -> [x0, x2, x4, ..., x1, x3, ...] (HF permutation)."""
        sh = x.shape
        d = sh[-1]
        return x.reshape(sh[:-1] + (d // 2, 2)).swapaxes(-1, -2).reshape(sh)

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)

    def apply(self, x, cos, sin):
        """x [S, ..., d] (interleaved, as produced by the checkpoint), cos/sin [S, d]."""
        x = self.deinterleave(x)
        extra = x.ndim - 2
        c = cos.reshape(cos.shape[:1] + (1,) * extra + cos.shape[1:])
        s = sin.reshape(sin.shape[:1] + (1,) * extra + sin.shape[1:])
        return x * c + self.rotate_half(x) * s


NEAR_TIE = 1e-5  # routing decision margins below this are reported on stderr


class Model:
    def __init__(self, model_dir, rope_f64=False):
        self.cfg = load_config(model_dir)
        qc = self.cfg.get("quantization_config") or {}
        self.ck = Checkpoint(model_dir, qc.get("weight_block_size") or (128, 128))
        self.rope = Rope(self.cfg, f64=rope_f64)
        self._cache = {}
        self.stats = []  # (layer, n_tokens, n_changed)
        self.routes = []  # main-model routing records (see --route-out)

    def W(self, name):
        """float64 weight; routed-expert weights are not cached (bounded memory on big models)."""
        if name in self._cache:
            return self._cache[name]
        if name not in self.ck:
            raise KeyError("tensor %s not found in checkpoint" % name)
        w = self.ck.get(name)
        if ".experts." not in name:
            self._cache[name] = w
        return w

    def is_moe(self, i):
        c = self.cfg
        return (c.get("n_routed_experts") is not None and i >= c["first_k_dense_replace"]
                and i % c["moe_layer_freq"] == 0)

    # -- attention (naive MLA, docs/ARCHITECTURE.md "MLA"), causal over the given sequence
    def attention(self, i, x, pos):
        c = self.cfg
        pre = "model.layers.%d.self_attn." % i
        S = x.shape[0]
        nh = c["num_attention_heads"]
        dn, dr, dv = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
        dq = dn + dr
        rkv = c["kv_lora_rank"]
        if c.get("q_lora_rank"):
            cq = rmsnorm(x @ self.W(pre + "q_a_proj.weight").T, self.W(pre + "q_a_layernorm.weight"), 1e-6)
            q = cq @ self.W(pre + "q_b_proj.weight").T
        else:
            q = x @ self.W(pre + "q_proj.weight").T
        q = q.reshape(S, nh, dq)
        q_nope, q_pe = q[:, :, :dn], q[:, :, dn:]
        kva = x @ self.W(pre + "kv_a_proj_with_mqa.weight").T
        lat = rmsnorm(kva[:, :rkv], self.W(pre + "kv_a_layernorm.weight"), 1e-6)
        k_pe = kva[:, rkv:]                                       # [S, dr], not normalised
        cos, sin = self.rope.cos_sin(pos)
        q_pe = self.rope.apply(q_pe, cos, sin)                    # [S, nh, dr] (de-interleaved order)
        k_pe = self.rope.apply(k_pe, cos, sin)                    # [S, dr]
        kv = (lat @ self.W(pre + "kv_b_proj.weight").T).reshape(S, nh, dn + dv)
        k_nope, v = kv[:, :, :dn], kv[:, :, dn:]
        Q = np.concatenate([q_nope, q_pe], axis=-1)                # [S, nh, dq]
        K = np.concatenate([k_nope, np.broadcast_to(k_pe[:, None, :], (S, nh, dr))], axis=-1)
        scores = np.einsum("shd,thd->hst", Q, K) * self.rope.softmax_scale
        p = np.asarray(pos)
        mask = p[None, :] > p[:, None]                             # key pos > query pos
        scores = np.where(mask[None], -np.inf, scores)
        scores -= scores.max(axis=-1, keepdims=True)
        P = np.exp(scores)
        P /= P.sum(axis=-1, keepdims=True)
        o = np.einsum("hst,thd->shd", P, v).reshape(S, nh * dv)
        return o @ self.W(pre + "o_proj.weight").T

    def mlp(self, pre, x):
        g = x @ self.W(pre + "gate_proj.weight").T
        u = x @ self.W(pre + "up_proj.weight").T
        return (silu(g) * u) @ self.W(pre + "down_proj.weight").T

    def route(self, s, bias):
        """Expert selection per docs/ARCHITECTURE.md "Routing" steps 3-5 for one token. Returns sorted-by-choice indices.

        topk_method noaux_tc: a group's score is the sum of its two best biased scores;
        group_limited_greedy (V2): its best score; greedy (V2-Lite): every group is kept."""
        c = self.cfg
        E, G, KG, K = c["n_routed_experts"], c["n_group"], c["topk_group"], c["num_experts_per_tok"]
        method = c["topk_method"]
        if method == "greedy":
            G, KG = 1, 1
        g = E // G
        b = s + bias
        bg = b.reshape(G, g)
        if method == "noaux_tc":
            gs = (-np.sort(-bg, axis=1)[:, :2]).sum(axis=1)
        else:
            gs = bg.max(axis=1)
        gord = np.argsort(-gs, kind="stable")                     # ties -> lower group index
        keep = gord[:KG]
        gmask = np.zeros(G, dtype=bool)
        gmask[keep] = True
        bm = np.where(np.repeat(gmask, g), b, -np.inf)
        eord = np.argsort(-bm, kind="stable")                     # ties -> lower expert index
        # decision margin: how close the group cut and the top-k cut are to a tie
        margin = np.inf
        if KG < G:
            margin = gs[gord[KG - 1]] - gs[gord[KG]]
        if K < E and np.isfinite(bm[eord[K]]):
            margin = min(margin, bm[eord[K - 1]] - bm[eord[K]])
        return eord[:K], margin

    def moe(self, i, x):
        c = self.cfg
        pre = "model.layers.%d.mlp." % i
        logits = x @ self.W(pre + "gate.weight").T                # [S, E]
        if c["scoring_func"] == "softmax":                         # DeepSeek-V2
            z = np.exp(logits - logits.max(axis=-1, keepdims=True))
            s = z / z.sum(axis=-1, keepdims=True)
        else:
            s = sigmoid(logits)
        bname = pre + "gate.e_score_correction_bias"
        if c["topk_method"] == "noaux_tc" and bname in self.ck:
            bias = self.W(bname)
        else:  # V2's routers have no bias
            bias = np.zeros(c["n_routed_experts"])
        S = x.shape[0]
        K = c["num_experts_per_tok"]
        idx = np.zeros((S, K), dtype=np.int64)
        wts = np.zeros((S, K))
        changed = 0
        min_margin = np.inf
        for t in range(S):
            sel, margin = self.route(s[t], bias)
            min_margin = min(min_margin, margin)
            if margin < NEAR_TIE:
                print("WARNING: layer %d token %d: routing margin %.3g < %g (near-tie; a float32 "
                      "implementation may pick a different expert here)" % (i, t, margin, NEAR_TIE),
                      file=sys.stderr)
            idx[t] = sel
            w = s[t][sel]
            if c["family"] == "v2":
                # HF DeepseekV2 MoEGate: normalise (K > 1 and norm_topk_prob) or scale, not both
                if K > 1 and c["norm_topk_prob"]:
                    wts[t] = w / (w.sum() + 1e-20)
                else:
                    wts[t] = w * c["routed_scaling_factor"]
            else:
                if c.get("norm_topk_prob", True):
                    w = w / (w.sum() + 1e-20)
                wts[t] = w * c["routed_scaling_factor"]
            sel0, _ = self.route(s[t], np.zeros_like(bias))
            if set(sel.tolist()) != set(sel0.tolist()):
                changed += 1
        self.stats.append((i, S, changed, min_margin))
        if i < c["num_hidden_layers"]:
            # routing record of the main model, in the format of `dsv3 route --json`
            toks = []
            for t in range(S):
                sel = idx[t]
                bsel = s[t][sel] + bias[sel]
                toks.append({"experts": [int(e) for e in sel],
                             "weights": [float(w) for w in wts[t]],
                             "scores": [float(v) for v in s[t][sel]],
                             "biased": [float(v) for v in bsel]})
            self.routes.append({"layer": i, "tokens": toks})
        y = np.zeros_like(x)
        for e in np.unique(idx):
            rows, slot = np.nonzero(idx == e)
            y[rows] += wts[rows, slot][:, None] * self.mlp(pre + "experts.%d." % e, x[rows])
        if c.get("n_shared_experts"):
            y += self.mlp(pre + "shared_experts.", x)
        return y

    def block(self, i, x, pos):
        pre = "model.layers.%d." % i
        eps = self.cfg["rms_norm_eps"]
        x = x + self.attention(i, rmsnorm(x, self.W(pre + "input_layernorm.weight"), eps), pos)
        h = rmsnorm(x, self.W(pre + "post_attention_layernorm.weight"), eps)
        if self.is_moe(i):
            x = x + self.moe(i, h)
        else:
            x = x + self.mlp(pre + "mlp.", h)
        return x

    def forward(self, ids):
        c = self.cfg
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.arange(len(ids))
        x = self.W("model.embed_tokens.weight")[ids]
        for i in range(c["num_hidden_layers"]):
            x = self.block(i, x, pos)
        h = rmsnorm(x, self.W("model.norm.weight"), c["rms_norm_eps"])
        return h, h @ self.W("lm_head.weight").T

    def mtp(self, ids, h):
        """docs/ARCHITECTURE.md "MTP": row i (0..T-2) uses h_i (after model.norm) and token t_{i+1}; predicts t_{i+2}."""
        c = self.cfg
        L = c["num_hidden_layers"]
        pre = "model.layers.%d." % L
        eps = c["rms_norm_eps"]
        ids = np.asarray(ids, dtype=np.int64)
        T = len(ids)
        V = c["vocab_size"]
        if T < 2:
            return np.zeros((0, V))
        e = rmsnorm(self.W(pre + "embed_tokens.weight")[ids[1:]], self.W(pre + "enorm.weight"), eps)
        hh = rmsnorm(h[:T - 1], self.W(pre + "hnorm.weight"), eps)
        z = np.concatenate([e, hh], axis=-1) @ self.W(pre + "eh_proj.weight").T
        z = self.block(L, z, np.arange(T - 1))
        z = rmsnorm(z, self.W(pre + "shared_head.norm.weight"), eps)
        return z @ self.W(pre + "shared_head.head.weight").T


def main(argv=None):
    ap = argparse.ArgumentParser(description="float64 numpy reference forward (DeepSeek-V3, HF semantics)")
    ap.add_argument("model_dir")
    ap.add_argument("--ids", required=True, help="comma-separated token ids")
    ap.add_argument("--out", required=True, help="logits .npy [T, vocab] float32")
    ap.add_argument("--mtp-out", default=None, help="MTP logits .npy [T-1, vocab] float32")
    ap.add_argument("--stats", action="store_true",
                    help="print per-MoE-layer fraction of tokens whose expert set changes because of the bias")
    ap.add_argument("--route-out", default=None,
                    help="write the main model's routing record as JSON (format of `dsv3 route --json`)")
    ap.add_argument("--rope-f64", action="store_true",
                    help="compute inv_freq and RoPE angles in float64 instead of float32 (the model: float32)")
    args = ap.parse_args(argv)
    ids = [int(t) for t in args.ids.replace(" ", "").split(",") if t != ""]
    m = Model(args.model_dir, rope_f64=args.rope_f64)
    V = m.cfg["vocab_size"]
    for t in ids:
        if not 0 <= t < V:
            ap.error("token id %d out of range [0, %d)" % (t, V))
    if not ids:
        ap.error("--ids is empty")
    h, logits = m.forward(ids)
    np.save(args.out, logits.astype(np.float32))
    if args.route_out:
        import json
        with open(args.route_out, "w") as f:
            json.dump({"layers": m.routes}, f)
    if args.mtp_out:
        if not m.cfg.get("num_nextn_predict_layers"):
            ap.error("--mtp-out given but the model has num_nextn_predict_layers = 0")
        np.save(args.mtp_out, m.mtp(ids, h).astype(np.float32))
    if args.stats:
        r = m.rope
        print("softmax_scale=%.17g attention_factor=%.17g yarn_low=%s yarn_high=%s"
              % (r.softmax_scale, r.attention_factor, r.low, r.high), file=sys.stderr)
        print("logits: shape=%s mean|x|=%.4g max|x|=%.4g std_over_positions=%.4g"
              % (logits.shape, np.abs(logits).mean(), np.abs(logits).max(),
                 logits.std(axis=0).mean()), file=sys.stderr)
        for layer, n, ch, mg in m.stats:
            tag = " (MTP)" if layer == m.cfg["num_hidden_layers"] else ""
            print("layer %d%s: bias changes expert set for %d/%d tokens = %.3f; "
                  "min routing margin %.3g" % (layer, tag, ch, n, ch / max(n, 1), mg), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
