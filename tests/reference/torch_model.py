#!/usr/bin/python3
"""DeepSeek-V3 training steps in PyTorch, for cross-checking and timing `dsv3 train`.

Usage:
  /usr/bin/python3 tests/reference/torch_model.py MODEL_DIR --ids DUMP [--steps N]
        [--dtype float64|float32] [--threads N] [--lr 2.2e-4] [--min-lr LR] [--warmup 0]
        [--total-steps N] [--lambda 0.3] [--alpha 1e-4] [--gamma 0.001]
        [--weight-decay 0.1] [--clip 1.0] [--repeat-first] [--json OUT]

DUMP is the file `dsv3 train --dump-tokens` writes: one line "step S seq I: id id ..." per
sequence of seq_len + 1 ids, so both programs train on the same batches. Each step prints
  step S loss L ce C mtp M balance B gnorm G lr R tokens N seconds T tok/s X
with full precision; --json writes the same numbers as a list. --repeat-first trains every step
on the first step's batch (benchmark with fewer dumped steps).

Written from the model description, now docs/ARCHITECTURE.md (MLA with low-rank q/kv and the
decoupled RoPE key, YaRN, sigmoid group-limited routing with a selection-only bias, shared
experts, dense first layers, the MTP module fed [RMSNorm(embedding); RMSNorm(final-normed hidden state)] as
docs/ARCHITECTURE.md "MTP" and docs/TRAINING.md "MTP input" say) and docs/TRAINING.md "The
objective": loss = ce + lambda * mtp + alpha * balance, with
  ce      mean next-token cross-entropy over B*T positions,
  mtp     mean cross-entropy of the MTP module at positions 0..T-2 predicting token i+2,
  balance sum over MoE layers (the MTP block's included) of the mean over sequences of
          sum_i f_i P_i, f_i = E/(K*T) * count_i from the biased choice, P_i the mean over the
          sequence's tokens of s_i / (sum_j s_j + 1e-20).
The optimizer is torch.optim.AdamW (betas 0.9/0.95, eps 1e-8, weight decay on matrices only),
the global norm clipped with torch.nn.utils.clip_grad_norm_, the learning rate warmup + cosine
as in docs/TRAINING.md, and after each step every router bias moves by
gamma * sign(mean load - load_i) (docs/ARCHITECTURE.md "Bias update and balance loss"; the bias
only selects experts, it gets no gradient). The MTP embedding and head are the main ones when
the checkpoint's copies are bit-identical or absent (docs/TRAINING.md "Shared MTP embedding and head").

Weights are read from the safetensors files with numpy (F32, BF16 by a 16-bit shift, F16,
F8_E4M3 with 128x128 weight_scale_inv blocks). Routing decides on the router logits rounded
to float32, as dsv3 does.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------- checkpoint


def _e4m3_table():
    t = np.zeros(256, dtype=np.float32)
    for c in range(256):
        sign = -1.0 if c & 0x80 else 1.0
        e, m = (c >> 3) & 0xF, c & 7
        if e == 15 and m == 7:
            t[c] = np.nan
        elif e == 0:
            t[c] = sign * 2.0 ** -6 * (m / 8.0)
        else:
            t[c] = sign * 2.0 ** (e - 7) * (1.0 + m / 8.0)
    return t


def _read_safetensors(path):
    """name -> float32 numpy array (FP8 left as codes with dtype noted)."""
    out = {}
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n).decode("utf-8"))
        base = 8 + n
        header.pop("__metadata__", None)
        data = np.memmap(path, dtype=np.uint8, mode="r")
    for name, e in header.items():
        b, end = e["data_offsets"]
        raw = data[base + b:base + end]
        shape = tuple(e["shape"])
        dt = e["dtype"]
        if dt == "F32":
            a = raw.view("<f4").astype(np.float32)
        elif dt == "BF16":
            a = (raw.view("<u2").astype(np.uint32) << np.uint32(16)).view(np.float32)
        elif dt == "F16":
            a = raw.view("<f2").astype(np.float32)
        elif dt == "F8_E4M3":
            a = _e4m3_table()[np.asarray(raw)]
        else:
            raise ValueError("%s: tensor %s: dtype %s is not supported here" % (path, name, dt))
        out[name] = a.reshape(shape)
    return out


def load_checkpoint(model_dir):
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    w = {}
    for fn in files:
        w.update(_read_safetensors(os.path.join(model_dir, fn)))
    for name in [k for k in w if k.endswith("_scale_inv")]:  # FP8 128x128 block scales
        s = w.pop(name)
        wn = name[: -len("_scale_inv")]
        M, N = w[wn].shape
        w[wn] = w[wn] * np.repeat(np.repeat(s, 128, axis=0), 128, axis=1)[:M, :N]
    return w


# ----------------------------------------------------------------------------- model


def rmsnorm(x, g, eps):
    return g * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class DeepSeekV3:
    def __init__(self, model_dir, dtype):
        with open(os.path.join(model_dir, "config.json")) as f:
            c = json.load(f)
        self.c = c
        self.dtype = dtype
        self.H = c["hidden_size"]
        self.V = c["vocab_size"]
        self.L = c["num_hidden_layers"]
        self.nh = c["num_attention_heads"]
        self.dn, self.dr, self.dv = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
        self.rkv = c["kv_lora_rank"]
        self.q_lora = c.get("q_lora_rank")
        self.E = c.get("n_routed_experts") or 0
        self.K = c.get("num_experts_per_tok", 0)
        self.G, self.KG = c.get("n_group", 1), c.get("topk_group", 1)
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.mtp = (c.get("num_nextn_predict_layers") or 0) > 0
        raw = load_checkpoint(model_dir)
        self.p = {}    # checkpoint name -> Parameter (tied MTP copies map to the main ones)
        self.bias = {}  # MoE layer -> router bias (float32 tensor, not a parameter)
        for name, a in raw.items():
            if name.endswith("e_score_correction_bias"):
                self.bias[int(name.split(".")[2])] = torch.from_numpy(a.astype(np.float32))
                continue
            self.p[name] = torch.nn.Parameter(torch.from_numpy(np.array(a)).to(dtype))
        L = self.L
        for mine, main in ((f"model.layers.{L}.embed_tokens.weight", "model.embed_tokens.weight"),
                           (f"model.layers.{L}.shared_head.head.weight", "lm_head.weight")):
            if not self.mtp:
                break
            if mine not in raw or np.array_equal(raw[mine], raw[main]):
                self.p[mine] = self.p[main]
        for i in self.moe_layers():
            self.bias.setdefault(i, torch.zeros(self.E, dtype=torch.float32))
        self._rope(c)

    def moe_layers(self):
        c = self.c
        out = [i for i in range(self.L)
               if self.E and i >= c.get("first_k_dense_replace", 0) and i % c.get("moe_layer_freq", 1) == 0]
        if self.mtp and self.E:
            out.append(self.L)  # the MTP block is a MoE block (its own experts)
        return out

    def is_moe(self, i):
        return i in self.bias

    def params(self):
        seen, out = set(), []
        for name in sorted(self.p):
            t = self.p[name]
            if id(t) not in seen:
                seen.add(id(t))
                out.append((name, t))
        return out

    # -- RoPE with YaRN (docs/ARCHITECTURE.md "RoPE", "YaRN"): inv_freq and the angles in float32,
    # cos/sin scaled by the attention factor; softmax scale times mscale(f, mscale_all_dim)^2.
    def _rope(self, c):
        d, theta = self.dr, float(c.get("rope_theta", 10000.0))
        f32 = np.float32
        k = np.arange(0, d, 2).astype(f32)
        base = f32(theta) ** (k / f32(d))
        rs = c.get("rope_scaling") or {}
        kind = rs.get("type", rs.get("rope_type"))
        self.attn_factor, msm = 1.0, 1.0
        if kind == "yarn":
            L0 = rs.get("original_max_position_embeddings", 4096)
            fac = float(rs.get("factor") or c["max_position_embeddings"] / L0)
            bf, bs = rs.get("beta_fast", 32), rs.get("beta_slow", 1)

            def corr(r):
                return d * math.log(L0 / (2 * math.pi * r)) / (2 * math.log(theta))

            lo, hi = max(math.floor(corr(bf)), 0), min(math.ceil(corr(bs)), d - 1)
            if lo == hi:
                hi += 0.001
            ramp = np.clip((np.arange(d // 2).astype(f32) - f32(lo)) / f32(hi - lo), f32(0), f32(1)).astype(f32)
            inv = (f32(1) / (f32(fac) * base)) * ramp + (f32(1) / base) * (f32(1) - ramp)

            def ms(m):
                return 1.0 if fac <= 1 or not m else 0.1 * m * math.log(fac) + 1.0

            msad = rs.get("mscale_all_dim", 0)
            msm = ms(msad)
            self.attn_factor = ms(rs.get("mscale", 1)) / ms(msad)
        else:
            inv = f32(1) / base
        self.inv_freq = inv.astype(f32)
        self.scale = (self.dn + self.dr) ** -0.5 * msm * msm
        self._cs = {}

    def cos_sin(self, T):
        if T not in self._cs:
            ang = (np.arange(T).astype(np.float32)[:, None] * self.inv_freq[None, :]).astype(np.float64)
            emb = np.concatenate([ang, ang], axis=-1)
            cos = torch.from_numpy(np.cos(emb) * self.attn_factor).to(self.dtype)
            sin = torch.from_numpy(np.sin(emb) * self.attn_factor).to(self.dtype)
            self._cs[T] = (cos, sin)
        return self._cs[T]

    def rope(self, x, cos, sin):
        """x [B, T, ..., dr] in the checkpoint's interleaved pair order: de-interleave (HF), then
        x * cos + rotate_half(x) * sin."""
        sh = x.shape
        x = x.reshape(sh[:-1] + (sh[-1] // 2, 2)).transpose(-1, -2).reshape(sh)
        extra = x.dim() - 3
        c = cos.view((1, cos.shape[0]) + (1,) * extra + (cos.shape[1],))
        s = sin.view((1, sin.shape[0]) + (1,) * extra + (sin.shape[1],))
        return x * c + rotate_half(x) * s

    # -- blocks
    def W(self, name):
        return self.p[name]

    def attention(self, i, x):
        B, T, _ = x.shape
        pre = f"model.layers.{i}.self_attn."
        nh, dn, dr, dv = self.nh, self.dn, self.dr, self.dv
        if self.q_lora:
            cq = rmsnorm(x @ self.W(pre + "q_a_proj.weight").t(), self.W(pre + "q_a_layernorm.weight"), 1e-6)
            q = cq @ self.W(pre + "q_b_proj.weight").t()
        else:
            q = x @ self.W(pre + "q_proj.weight").t()
        q = q.view(B, T, nh, dn + dr)
        kva = x @ self.W(pre + "kv_a_proj_with_mqa.weight").t()
        lat = rmsnorm(kva[..., :self.rkv], self.W(pre + "kv_a_layernorm.weight"), 1e-6)
        cos, sin = self.cos_sin(T)
        q_pe = self.rope(q[..., dn:], cos, sin)                    # [B, T, nh, dr]
        k_pe = self.rope(kva[..., self.rkv:], cos, sin)            # [B, T, dr], shared by heads
        kv = (lat @ self.W(pre + "kv_b_proj.weight").t()).view(B, T, nh, dn + dv)
        k_nope, v = kv[..., :dn], kv[..., dn:]
        scores = (torch.einsum("bshd,bthd->bhst", q[..., :dn], k_nope) +
                  torch.einsum("bshd,btd->bhst", q_pe, k_pe)) * self.scale
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(mask, float("-inf"))
        P = torch.softmax(scores, dim=-1)
        o = torch.einsum("bhst,bthd->bshd", P, v).reshape(B, T, nh * dv)
        return o @ self.W(pre + "o_proj.weight").t()

    def mlp(self, pre, x):
        g = x @ self.W(pre + "gate_proj.weight").t()
        u = x @ self.W(pre + "up_proj.weight").t()
        return (F.silu(g) * u) @ self.W(pre + "down_proj.weight").t()

    def route(self, z, bias):
        """Expert choice (no gradient) from router logits z [n, E] rounded to float32:
        biased scores s + b, groups ranked by the sum of their two best, the topk_group best
        groups kept, then the top K experts among them (docs/ARCHITECTURE.md "Routing")."""
        with torch.no_grad():
            s = torch.sigmoid(z.detach().float()) + bias
            n, E = s.shape
            g = s.view(n, self.G, E // self.G)
            gscore = g.topk(2, dim=-1).values.sum(-1)
            keep = gscore.topk(self.KG, dim=-1).indices
            gmask = torch.zeros(n, self.G, dtype=torch.bool).scatter_(1, keep, True)
            s = s.masked_fill(~gmask.repeat_interleave(E // self.G, dim=1), float("-inf"))
            return s.topk(self.K, dim=-1).indices

    def moe(self, i, x, counts):
        """Routed experts (per-expert index_select loops) plus the shared experts; returns the
        output and the layer's balance term; adds the (token, slot) loads into counts[i]."""
        B, T, H = x.shape
        pre = f"model.layers.{i}.mlp."
        E, K, c = self.E, self.K, self.c
        xf = x.reshape(B * T, H)
        z = xf @ self.W(pre + "gate.weight").t()
        s = torch.sigmoid(z)
        idx = self.route(z, self.bias[i])                          # [n, K]
        w = s.gather(1, idx)
        if c.get("norm_topk_prob", True):
            w = w / (w.sum(-1, keepdim=True) + 1e-20)
        w = w * c.get("routed_scaling_factor", 1.0)
        y = torch.zeros_like(xf)
        for e in range(E):
            tok, slot = (idx == e).nonzero(as_tuple=True)
            if tok.numel() == 0:
                continue
            ye = self.mlp(pre + f"experts.{e}.", xf.index_select(0, tok))
            y = y.index_add(0, tok, ye * w[tok, slot].unsqueeze(-1))
        if c.get("n_shared_experts"):
            y = y + self.mlp(pre + "shared_experts.", xf)
        onehot = torch.zeros(B * T, E, dtype=self.dtype).scatter_(1, idx, 1.0)
        cnt = onehot.view(B, T, E).sum(1)                          # [B, E], no gradient
        counts[i] = counts.get(i, 0) + cnt.sum(0).to(torch.int64)
        fi = cnt * (E / (K * T))
        Pi = (s / (s.sum(-1, keepdim=True) + 1e-20)).view(B, T, E).mean(1)
        bal = (fi * Pi).sum(-1).mean()
        return y.view(B, T, H), bal

    def block(self, i, x, counts, bals):
        pre = f"model.layers.{i}."
        x = x + self.attention(i, rmsnorm(x, self.W(pre + "input_layernorm.weight"), self.eps))
        h = rmsnorm(x, self.W(pre + "post_attention_layernorm.weight"), self.eps)
        if self.is_moe(i):
            y, bal = self.moe(i, h, counts)
            bals.append(bal)
        else:
            y = self.mlp(pre + "mlp.", h)
        return x + y

    def losses(self, seqs, lam, alpha, counts):
        """seqs [B, T+1] int64 -> (loss, ce, mtp, balance) tensors."""
        inp, tgt = seqs[:, :-1], seqs[:, 1:]
        B, T = inp.shape
        bals = []
        x = F.embedding(inp, self.W("model.embed_tokens.weight"))
        for i in range(self.L):
            x = self.block(i, x, counts, bals)
        h = rmsnorm(x, self.W("model.norm.weight"), self.eps)
        logits = h @ self.W("lm_head.weight").t()
        ce = F.cross_entropy(logits.reshape(B * T, self.V), tgt.reshape(B * T))
        mtp = torch.zeros((), dtype=self.dtype)
        if self.mtp and T >= 2:
            L = self.L
            pre = f"model.layers.{L}."
            e = rmsnorm(F.embedding(seqs[:, 1:T], self.W(pre + "embed_tokens.weight")),
                        self.W(pre + "enorm.weight"), self.eps)
            hh = rmsnorm(h[:, :T - 1], self.W(pre + "hnorm.weight"), self.eps)
            zz = torch.cat([e, hh], dim=-1) @ self.W(pre + "eh_proj.weight").t()
            zz = self.block(L, zz, counts, bals)
            zz = rmsnorm(zz, self.W(pre + "shared_head.norm.weight"), self.eps)
            ml = zz @ self.W(pre + "shared_head.head.weight").t()
            mtp = F.cross_entropy(ml.reshape(B * (T - 1), self.V), seqs[:, 2:].reshape(B * (T - 1)))
        bal = sum(bals) if bals else torch.zeros((), dtype=self.dtype)
        return ce + lam * mtp + alpha * bal, ce, mtp, bal


# ----------------------------------------------------------------------------- training


def schedule(k, lr, min_lr, warmup, total):
    """docs/TRAINING.md: linear warmup from 0, then cosine from lr to min_lr at step `total`."""
    if warmup > 0 and k <= warmup:
        return lr * k / warmup
    p = min(1.0, (k - warmup) / max(1, total - warmup))
    return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * p)) / 2


def read_dump(path):
    steps = {}
    with open(path) as f:
        for line in f:
            head, _, ids = line.partition(":")
            parts = head.split()
            if len(parts) != 4 or parts[0] != "step":
                raise ValueError("%s: not a `dsv3 train --dump-tokens` line: %r" % (path, line[:60]))
            steps.setdefault(int(parts[1]), []).append([int(t) for t in ids.split()])
    return [torch.tensor(steps[s], dtype=torch.int64) for s in sorted(steps)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("--ids", required=True, help="`dsv3 train --dump-tokens` file")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--lr", type=float, default=2.2e-4)
    ap.add_argument("--min-lr", type=float, default=None)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--total-steps", type=int, default=None)
    ap.add_argument("--lambda", dest="lam", type=float, default=0.3)
    ap.add_argument("--alpha", type=float, default=1e-4)
    ap.add_argument("--gamma", type=float, default=0.001)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--repeat-first", action="store_true")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    dtype = torch.float64 if a.dtype == "float64" else torch.float32
    batches = read_dump(a.ids)
    n_steps = a.steps or len(batches)
    if not a.repeat_first and n_steps > len(batches):
        ap.error("%s holds %d steps, %d asked (use --repeat-first)" % (a.ids, len(batches), n_steps))
    total = a.total_steps or n_steps
    min_lr = a.lr / 10 if a.min_lr is None else a.min_lr
    m = DeepSeekV3(a.model_dir, dtype)
    params = m.params()
    decay = [t for _, t in params if t.dim() >= 2]
    no_decay = [t for _, t in params if t.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    # Every parameter gets a (zero) gradient, so AdamW decays and updates the moments of the
    # experts no token reached too, as dsv3 does (torch skips parameters whose grad is None).
    for _, t in params:
        t.grad = torch.zeros_like(t)
    out = []
    for k in range(1, n_steps + 1):
        seqs = batches[0] if a.repeat_first else batches[k - 1]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        counts = {}
        loss, ce, mtp, bal = m.losses(seqs, a.lam, a.alpha, counts)
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_([t for _, t in params], a.clip if a.clip > 0 else float("inf")))
        lr = schedule(k, a.lr, min_lr, a.warmup, total)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        with torch.no_grad():  # "Bias update and balance loss": b_i += gamma * sign(mean load - load_i)
            for i, cnt in counts.items():
                d = cnt.sum() - m.E * cnt
                m.bias[i] += a.gamma * torch.sign(d).to(torch.float32)
        dt = time.perf_counter() - t0
        ntok = seqs.shape[0] * (seqs.shape[1] - 1)
        r = {"step": k, "loss": float(loss), "ce": float(ce), "mtp": float(mtp), "balance": float(bal),
             "grad_norm": gnorm, "lr": lr, "tokens": ntok, "seconds": dt, "tokens_per_s": ntok / dt}
        out.append(r)
        print("step %d loss %.17g ce %.17g mtp %.17g balance %.17g gnorm %.17g lr %.6e tokens %d "
              "seconds %.4f tok/s %.1f" % (k, r["loss"], r["ce"], r["mtp"], r["balance"], gnorm, lr,
                                           ntok, dt, r["tokens_per_s"]), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
