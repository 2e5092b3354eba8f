#!/usr/bin/python3
"""Write a random Hugging Face-format DeepSeek-V3 checkpoint directory.

Usage:
  /usr/bin/python3 scripts/gen_model.py OUT_DIR [--preset tiny|small|bench] [--seed N]
        [--dtype bf16|fp32|fp8] [--shards N] [--no-yarn] [--q-lora-rank N]
        [--vocab N] [--layers N] [--no-mtp] [--family v3|v2|v2-lite|kimi|moonlight] [--sparse]

Writes OUT_DIR/config.json and OUT_DIR/model.safetensors (or, with --shards N > 1,
model-0000K-of-0000N.safetensors + model.safetensors.index.json).

Written from the model description (docs/ARCHITECTURE.md) only; depends on numpy + stdlib.

Determinism: every tensor's float32 values come from numpy default_rng([seed, crc32(name)]),
so the same (preset, seed) gives the same underlying weights whatever --dtype / --shards
is chosen (fp8 and bf16 are roundings of the fp32 values). The MTP layer's embed_tokens /
shared_head.head are exact copies of model.embed_tokens / lm_head (same RNG key).
"""
import argparse
import json
import math
import os
import sys
import zlib

import numpy as np

PRESETS = {
    # the "tiny" test config (docs/ARCHITECTURE.md, "config.json")
    "tiny": dict(
        vocab_size=1024, hidden_size=128, intermediate_size=320, moe_intermediate_size=64,
        num_hidden_layers=3, first_k_dense_replace=1, num_attention_heads=4,
        q_lora_rank=96, kv_lora_rank=32, qk_nope_head_dim=32, qk_rope_head_dim=16,
        v_head_dim=32, n_routed_experts=16, n_group=4, topk_group=2, num_experts_per_tok=4,
        n_shared_experts=1, routed_scaling_factor=2.5, yarn_factor=4,
        yarn_orig=128),
    # a "small" test config, with vocab 2048
    "small": dict(
        vocab_size=2048, hidden_size=256, intermediate_size=704, moe_intermediate_size=96,
        num_hidden_layers=4, first_k_dense_replace=1, num_attention_heads=8,
        q_lora_rank=192, kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=16,
        v_head_dim=48, n_routed_experts=32, n_group=8, topk_group=4, num_experts_per_tok=8,
        n_shared_experts=1, routed_scaling_factor=2.5, yarn_factor=8,
        yarn_orig=256),
    # ~0.83B-parameter main model for benchmarking
    "bench": dict(
        vocab_size=32000, hidden_size=1024, intermediate_size=2816, moe_intermediate_size=512,
        num_hidden_layers=8, first_k_dense_replace=1, num_attention_heads=16,
        q_lora_rank=512, kv_lora_rank=256, qk_nope_head_dim=64, qk_rope_head_dim=32,
        v_head_dim=64, n_routed_experts=64, n_group=8, topk_group=4, num_experts_per_tok=6,
        n_shared_experts=2, routed_scaling_factor=2.5, yarn_factor=40,
        yarn_orig=4096),
    # the full DeepSeek-V3 (671B) layout: real dimensions; with --sparse --dtype fp8 --shards 163
    # it writes the released shard layout as sparse files (headers only, data reads as zeros)
    "v3-671b": dict(
        vocab_size=129280, hidden_size=7168, intermediate_size=18432, moe_intermediate_size=2048,
        num_hidden_layers=61, first_k_dense_replace=3, num_attention_heads=128,
        q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64,
        v_head_dim=128, n_routed_experts=256, n_group=8, topk_group=4, num_experts_per_tok=8,
        n_shared_experts=1, routed_scaling_factor=2.5, yarn_factor=40,
        yarn_orig=4096),
    # Kimi-K2's layout (1T; use with --family kimi): 384 experts, 64 heads, 163,840-token vocab
    "kimi-k2-1t": dict(
        vocab_size=163840, hidden_size=7168, intermediate_size=18432, moe_intermediate_size=2048,
        num_hidden_layers=61, first_k_dense_replace=1, num_attention_heads=64,
        q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64,
        v_head_dim=128, n_routed_experts=384, n_group=1, topk_group=1, num_experts_per_tok=8,
        n_shared_experts=1, routed_scaling_factor=2.827, yarn_factor=32,
        yarn_orig=4096),
}

# Variants of the family (docs/ARCHITECTURE.md, "Family"): the config keys each released
# checkpoint states, applied to a preset's (scaled-down) dimensions. "mtp": whether the release
# has the MTP layer; "bias": whether its MoE layers carry e_score_correction_bias.
FAMILIES = {
    "v3": dict(cfg={}, mtp=True, bias=True),
    # DeepSeek-V2 / V2.5 / Coder-V2: softmax scores, the group's best score ranks it, 8 groups
    # of which 3 are kept (scaled: 4 groups, 3 kept), unnormalised weights times 16
    "v2": dict(cfg=dict(model_type="deepseek_v2", architectures=["DeepseekV2ForCausalLM"],
                        scoring_func="softmax", topk_method="group_limited_greedy",
                        norm_topk_prob=False, routed_scaling_factor=16.0, topk_group=3,
                        n_shared_experts=2, mscale=0.707),
               mtp=False, bias=False),
    # DeepSeek-V2-Lite / Coder-V2-Lite: greedy over all experts, one group, plain q_proj
    "v2-lite": dict(cfg=dict(model_type="deepseek_v2", architectures=["DeepseekV2ForCausalLM"],
                             scoring_func="softmax", topk_method="greedy", norm_topk_prob=False,
                             routed_scaling_factor=1.0, n_group=1, topk_group=1, q_lora_rank=None,
                             n_shared_experts=2, mscale=0.707),
                    mtp=False, bias=False),
    # Kimi-K2: one group, another scaling factor, rope_theta 50000, equal YaRN betas, no MTP
    "kimi": dict(cfg=dict(model_type="kimi_k2", n_group=1, topk_group=1,
                          routed_scaling_factor=2.827, first_k_dense_replace=1, rope_theta=50000.0,
                          beta_fast=1.0, beta_slow=1.0),
                 mtp=False, bias=True),
    # Moonlight-16B-A3B: plain q_proj, one group, no YaRN, rms_norm_eps 1e-5, no MTP
    "moonlight": dict(cfg=dict(n_group=1, topk_group=1, routed_scaling_factor=2.446,
                               first_k_dense_replace=1, q_lora_rank=None, n_shared_experts=2,
                               rope_theta=50000.0, no_yarn=True, rms_norm_eps=1e-05),
                      mtp=False, bias=True),
}

FP8_MAX = 448.0
BLOCK = 128


# ----------------------------------------------------------------------------- numerics

def f32_to_bf16_bits(x):
    """float32 array -> uint16 BF16 bits, round to nearest even (NaN kept NaN)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    b = x.view(np.uint32)
    r = ((b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        r[nan] = ((b[nan] >> np.uint32(16)) | np.uint32(0x40)).astype(np.uint16)
    return r


def f32_to_e4m3fn(x):
    """float32 array -> uint8 E4M3FN codes, round to nearest even, saturate to +-448.

    Normal range (|x| >= 2^-6): round the float32 mantissa from 23 to 3 bits (RNE on the
    bit pattern, carry propagates into the exponent), rebias exponent 127 -> 7.
    Subnormal range: value = m * 2^-9, m = rint(|x| * 512) (numpy rint is half-to-even);
    m == 8 yields code 0x08 = 2^-6, the smallest normal, which is correct.
    NaN -> 0x7F (sign kept). There are no infinities; +-inf saturate to +-448.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    bits = x.view(np.uint32)
    sign = ((bits >> np.uint32(24)) & np.uint32(0x80)).astype(np.uint8)
    a = np.abs(x)
    ab = a.view(np.uint32)
    r = (ab + np.uint32(0x7FFFF) + ((ab >> np.uint32(20)) & np.uint32(1))) >> np.uint32(20)
    normal = r.astype(np.int64) - (120 << 3)
    sub = np.rint(np.fmin(a, np.float32(1.0)).astype(np.float64) * 512.0).astype(np.int64)
    code = np.where(a < np.float32(2.0 ** -6), sub, normal)
    np.minimum(code, 0x7E, out=code)
    out = code.astype(np.uint8) | sign
    nan = np.isnan(x)
    if nan.any():
        out[nan] = 0x7F | sign[nan]
    return out


def e4m3fn_table():
    """256-entry decode table (float64), docs/ARCHITECTURE.md "FP8 E4M3"."""
    t = np.zeros(256, dtype=np.float64)
    for c in range(256):
        s = -1.0 if c & 0x80 else 1.0
        e = (c >> 3) & 0xF
        m = c & 7
        if e == 15 and m == 7:
            t[c] = np.nan
        elif e == 0:
            t[c] = s * 2.0 ** -6 * (m / 8.0)
        else:
            t[c] = s * 2.0 ** (e - 7) * (1.0 + m / 8.0)
    return t


def quantize_fp8(w):
    """Block-quantize float32 [M, N] -> (uint8 codes [M, N], float32 scale_inv [ceil(M/128), ceil(N/128)])."""
    M, N = w.shape
    Mb, Nb = -(-M // BLOCK), -(-N // BLOCK)
    pad = np.zeros((Mb * BLOCK, Nb * BLOCK), dtype=np.float32)
    pad[:M, :N] = w
    blocks = pad.reshape(Mb, BLOCK, Nb, BLOCK)
    amax = np.abs(blocks).max(axis=(1, 3))
    scale = (amax / np.float32(FP8_MAX)).astype(np.float32)
    scale[amax == 0] = np.float32(1.0)
    full = np.repeat(np.repeat(scale, BLOCK, axis=0), BLOCK, axis=1)[:M, :N]
    q = f32_to_e4m3fn(w / full)
    return q, scale


# ----------------------------------------------------------------------------- model layout

def build_config(p, args):
    fam = FAMILIES[args.family]["cfg"]
    p = dict(p)
    for k in ("n_group", "topk_group", "routed_scaling_factor", "first_k_dense_replace",
              "n_shared_experts"):
        if k in fam:
            p[k] = fam[k]
    if "q_lora_rank" in fam and args.q_lora_rank is None:
        args.q_lora_rank = 0
    if fam.get("no_yarn"):
        args.no_yarn = True
    H = p["hidden_size"]
    layers = args.layers if args.layers is not None else p["num_hidden_layers"]
    vocab = args.vocab if args.vocab is not None else p["vocab_size"]
    qlr = p["q_lora_rank"] if args.q_lora_rank is None else args.q_lora_rank
    fkd = min(p["first_k_dense_replace"], layers)
    factor, orig = p["yarn_factor"], p["yarn_orig"]
    rope_scaling = None if args.no_yarn else {
        "type": "yarn", "factor": factor, "original_max_position_embeddings": orig,
        "beta_fast": fam.get("beta_fast", 32), "beta_slow": fam.get("beta_slow", 1),
        "mscale": fam.get("mscale", 1.0), "mscale_all_dim": fam.get("mscale", 1.0),
    }
    cfg = {
        "architectures": ["DeepseekV3ForCausalLM"],
        "model_type": "deepseek_v3",
        "auto_map": {
            "AutoConfig": "configuration_deepseek.DeepseekV3Config",
            "AutoModel": "modeling_deepseek.DeepseekV3Model",
            "AutoModelForCausalLM": "modeling_deepseek.DeepseekV3ForCausalLM",
        },
        "vocab_size": vocab,
        "hidden_size": H,
        "intermediate_size": p["intermediate_size"],
        "moe_intermediate_size": p["moe_intermediate_size"],
        "num_hidden_layers": layers,
        "num_attention_heads": p["num_attention_heads"],
        "num_key_value_heads": p["num_attention_heads"],
        "n_shared_experts": p["n_shared_experts"],
        "n_routed_experts": p["n_routed_experts"],
        "num_experts_per_tok": p["num_experts_per_tok"],
        "n_group": p["n_group"],
        "topk_group": p["topk_group"],
        "routed_scaling_factor": p["routed_scaling_factor"],
        "scoring_func": "sigmoid",
        "topk_method": "noaux_tc",
        "norm_topk_prob": True,
        "first_k_dense_replace": fkd,
        "moe_layer_freq": 1,
        "q_lora_rank": qlr if qlr else None,
        "kv_lora_rank": p["kv_lora_rank"],
        "qk_nope_head_dim": p["qk_nope_head_dim"],
        "qk_rope_head_dim": p["qk_rope_head_dim"],
        "v_head_dim": p["v_head_dim"],
        "hidden_act": "silu",
        "rope_theta": 10000,
        "rope_scaling": rope_scaling,
        "max_position_embeddings": factor * orig,
        "rms_norm_eps": 1e-06,
        "tie_word_embeddings": False,
        "num_nextn_predict_layers": 0 if args.no_mtp else 1,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "torch_dtype": "float32" if args.dtype == "fp32" else "bfloat16",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "aux_loss_alpha": 0.001,
        "seq_aux": True,
        "ep_size": 1,
        "pretraining_tp": 1,
        "initializer_range": 0.02,
        "use_cache": True,
        "transformers_version": "4.46.3",
    }
    for k in ("model_type", "architectures", "scoring_func", "topk_method", "norm_topk_prob",
              "rope_theta", "rms_norm_eps", "bos_token_id", "eos_token_id"):
        if k in fam:
            cfg[k] = fam[k]
    if not FAMILIES[args.family]["mtp"]:
        cfg["num_nextn_predict_layers"] = 0
    if fam.get("model_type") == "deepseek_v2":  # V2 configs have no MTP key at all
        del cfg["num_nextn_predict_layers"]
        cfg["auto_map"] = {k: v.replace("V3", "V2") for k, v in cfg["auto_map"].items()}
    if args.dtype == "fp8":
        cfg["quantization_config"] = {
            "quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
            "weight_block_size": [BLOCK, BLOCK],
        }
    return cfg


# kinds: "lin" (FP8-eligible projection inside a decoder block), "embed", "head",
# "norm", "gate" (router), "bias" (e_score_correction_bias), "eh" (MTP eh_proj)
def tensor_list(cfg):
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    dn, dr, dv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    dq = dn + dr
    rq, rkv = cfg["q_lora_rank"], cfg["kv_lora_rank"]
    V = cfg["vocab_size"]
    E = cfg["n_routed_experts"]
    mi = cfg["moe_intermediate_size"]
    L = cfg["num_hidden_layers"]
    out = []  # (name, shape, kind, rng_key_name)

    def add(name, shape, kind, key=None):
        out.append((name, tuple(shape), kind, key or name))

    def block(i):
        pre = "model.layers.%d." % i
        add(pre + "input_layernorm.weight", [H], "norm")
        if rq:
            add(pre + "self_attn.q_a_proj.weight", [rq, H], "lin")
            add(pre + "self_attn.q_a_layernorm.weight", [rq], "norm")
            add(pre + "self_attn.q_b_proj.weight", [nh * dq, rq], "lin")
        else:
            add(pre + "self_attn.q_proj.weight", [nh * dq, H], "lin")
        add(pre + "self_attn.kv_a_proj_with_mqa.weight", [rkv + dr, H], "lin")
        add(pre + "self_attn.kv_a_layernorm.weight", [rkv], "norm")
        add(pre + "self_attn.kv_b_proj.weight", [nh * (dn + dv), rkv], "lin")
        add(pre + "self_attn.o_proj.weight", [H, nh * dv], "lin")
        add(pre + "post_attention_layernorm.weight", [H], "norm")
        if i < cfg["first_k_dense_replace"]:
            I = cfg["intermediate_size"]
            add(pre + "mlp.gate_proj.weight", [I, H], "lin")
            add(pre + "mlp.up_proj.weight", [I, H], "lin")
            add(pre + "mlp.down_proj.weight", [H, I], "lin")
        else:
            add(pre + "mlp.gate.weight", [E, H], "gate")
            if cfg.get("topk_method", "noaux_tc") == "noaux_tc":
                add(pre + "mlp.gate.e_score_correction_bias", [E], "bias")
            for j in range(E):
                add(pre + "mlp.experts.%d.gate_proj.weight" % j, [mi, H], "lin")
                add(pre + "mlp.experts.%d.up_proj.weight" % j, [mi, H], "lin")
                add(pre + "mlp.experts.%d.down_proj.weight" % j, [H, mi], "lin")
            S = mi * cfg["n_shared_experts"]
            add(pre + "mlp.shared_experts.gate_proj.weight", [S, H], "lin")
            add(pre + "mlp.shared_experts.up_proj.weight", [S, H], "lin")
            add(pre + "mlp.shared_experts.down_proj.weight", [H, S], "lin")

    add("model.embed_tokens.weight", [V, H], "embed")
    for i in range(L):
        block(i)
    if cfg.get("num_nextn_predict_layers"):
        pre = "model.layers.%d." % L
        add(pre + "embed_tokens.weight", [V, H], "embed", key="model.embed_tokens.weight")
        add(pre + "enorm.weight", [H], "norm")
        add(pre + "hnorm.weight", [H], "norm")
        add(pre + "eh_proj.weight", [H, 2 * H], "eh")
        block(L)
        add(pre + "shared_head.norm.weight", [H], "norm")
        add(pre + "shared_head.head.weight", [V, H], "head", key="lm_head.weight")
    add("model.norm.weight", [H], "norm")
    add("lm_head.weight", [V, H], "head")
    return out


def gen_values(seed, key, shape, kind):
    """float32 values for one tensor (deterministic in (seed, key))."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    n = int(np.prod(shape))
    x = rng.standard_normal(n, dtype=np.float32).reshape(shape)
    if kind in ("lin", "eh", "head"):
        x *= np.float32(1.0 / math.sqrt(shape[1]))
    elif kind == "gate":
        x *= np.float32(2.0 / math.sqrt(shape[1]))
    elif kind == "norm":
        x *= np.float32(0.1)
        x += np.float32(1.0)
    elif kind == "bias":
        x *= np.float32(0.1)
    # "embed": N(0, 1)
    return x


# ----------------------------------------------------------------------------- writing

DT_SIZE = {"BF16": 2, "F32": 4, "F8_E4M3": 1}


def plan_entries(tensors, dtype):
    """Expand tensor list into safetensors entries, grouped (a weight and its scale stay together).

    Returns list of groups; each group = list of (name, st_dtype, shape, producer_id)."""
    groups = []
    for name, shape, kind, key in tensors:
        if kind == "bias":
            groups.append([(name, "F32", shape, (name, shape, kind, key, "f32"))])
        elif dtype == "fp32":
            groups.append([(name, "F32", shape, (name, shape, kind, key, "f32"))])
        elif dtype == "fp8" and kind == "lin":
            sshape = (-(-shape[0] // BLOCK), -(-shape[1] // BLOCK))
            g = (name, shape, kind, key, "fp8")
            groups.append([(name, "F8_E4M3", shape, g),
                           (name + "_scale_inv", "F32", sshape, g)])
        else:
            groups.append([(name, "BF16", shape, (name, shape, kind, key, "bf16"))])
    return groups


def nbytes(entry):
    _, dt, shape, _ = entry
    return int(np.prod(shape)) * DT_SIZE[dt]


def write_shard(path, entries, seed, sparse=False):
    """Write one safetensors file.

    Data layout follows the Python safetensors library: entries ordered by element size
    (largest first) then name, so every tensor's data is aligned to its element size (the
    data section starts 8-byte aligned). Values are generated in group order (a weight and
    its scale together) and written with seeks, so only one tensor is in memory at a time.
    """
    header = {"__metadata__": {"format": "pt"}}
    order = sorted(entries, key=lambda e: (-DT_SIZE[e[1]], e[0]))
    offs = {}
    off = 0
    for e in order:
        n = nbytes(e)
        header[e[0]] = {"dtype": e[1], "shape": list(e[2]), "data_offsets": [off, off + n]}
        offs[e[0]] = off
        off += n
    hjson = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((-(8 + len(hjson))) % 8)
    base = 8 + len(hjson)
    with open(path, "wb") as f:
        f.write(len(hjson).to_bytes(8, "little"))
        f.write(hjson)
        f.truncate(base + off)
        if sparse:  # the data stays a hole: zeros, no disk blocks
            return off

        def put(name, data):
            f.seek(base + offs[name])
            f.write(data)

        done = set()
        for name, dt, shape, g in entries:
            gname, gshape, kind, key, mode = g
            if gname in done:
                continue
            done.add(gname)
            x = gen_values(seed, key, gshape, kind)
            if mode == "fp8":
                q, sc = quantize_fp8(x)
                put(gname, q.tobytes())
                put(gname + "_scale_inv", sc.astype("<f4").tobytes())
            elif mode == "f32":
                put(gname, x.astype("<f4").tobytes())
            else:
                put(gname, f32_to_bf16_bits(x).astype("<u2").tobytes())
    return off


def cfg_vocab(out_dir):
    with open(os.path.join(out_dir, "config.json")) as f:
        return int(json.load(f)["vocab_size"])


def main(argv=None):
    ap = argparse.ArgumentParser(description="Generate a random DeepSeek-V3 HF checkpoint.")
    ap.add_argument("out_dir")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--family", choices=sorted(FAMILIES), default="v3",
                    help="the released variant whose config keys and tensors to write "
                         "(docs/ARCHITECTURE.md, \"Family\")")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["bf16", "fp32", "fp8"], default="bf16")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--no-yarn", action="store_true")
    ap.add_argument("--q-lora-rank", type=int, default=None,
                    help="override q_lora_rank (0 -> q_lora_rank null, single q_proj)")
    ap.add_argument("--vocab", type=int, default=None)
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--no-mtp", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--sparse", action="store_true",
                    help="write only the headers: tensor data are holes (zeros) of sparse files, "
                         "so the full 671B layout costs a few MB of disk")
    ap.add_argument("--no-tokenizer", action="store_true",
                    help="do not write tokenizer.json (written by default when vocab >= 512)")
    args = ap.parse_args(argv)
    if args.shards < 1:
        ap.error("--shards must be >= 1")
    if args.layers is not None and args.layers < 1:
        ap.error("--layers must be >= 1")

    p = PRESETS[args.preset]
    cfg = build_config(p, args)
    tensors = tensor_list(cfg)
    groups = plan_entries(tensors, args.dtype)

    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")

    # remove stale weight files from an earlier run with a different layout
    for fn in os.listdir(args.out_dir):
        if fn.endswith(".safetensors") or fn == "model.safetensors.index.json":
            os.remove(os.path.join(args.out_dir, fn))

    gsize = [sum(nbytes(e) for e in g) for g in groups]
    total = sum(gsize)
    nsh = min(args.shards, len(groups))
    if nsh == 1:
        entries = [e for g in groups for e in g]
        write_shard(os.path.join(args.out_dir, "model.safetensors"), entries, args.seed, args.sparse)
        files = ["model.safetensors"]
    else:
        # contiguous partition of groups by cumulative byte size, every shard non-empty
        parts = [[] for _ in range(nsh)]
        acc = 0
        k = 0
        for gi, g in enumerate(groups):
            remaining_groups = len(groups) - gi
            remaining_shards = nsh - k
            must = remaining_groups <= remaining_shards - 1  # keep later shards non-empty
            if parts[k] and k < nsh - 1 and (must or acc >= total * (k + 1) / nsh):
                k += 1
            parts[k].append(g)
            acc += gsize[gi]
        files = []
        weight_map = {}
        for k, part in enumerate(parts):
            # the released V3 names its shards model-00001-of-000163.safetensors
            fn = ("model-%05d-of-%06d.safetensors" if args.preset == "v3-671b"
                  else "model-%05d-of-%05d.safetensors") % (k + 1, nsh)
            entries = [e for g in part for e in g]
            write_shard(os.path.join(args.out_dir, fn), entries, args.seed, args.sparse)
            for e in entries:
                weight_map[e[0]] = fn
            files.append(fn)
        index = {"metadata": {"total_size": total},
                 "weight_map": dict(sorted(weight_map.items()))}
        with open(os.path.join(args.out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f, indent=2)
            f.write("\n")

    vocab = cfg_vocab(args.out_dir)
    if not args.no_tokenizer and vocab >= 512:
        # A small BPE tokenizer in the DeepSeek-V3 structure (scripts/gen_tokenizer.py), sized to
        # the model's vocabulary (at most 1024 entries; larger models keep unused rows).
        import subprocess
        here = os.path.dirname(os.path.abspath(__file__))
        subprocess.run([sys.executable, os.path.join(here, "gen_tokenizer.py"), args.out_dir,
                        "--vocab-size", str(min(vocab, 1024))], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    if not args.quiet:
        nparam = sum(int(np.prod(s)) for _, s, _, _ in tensors)
        print("wrote %s: preset=%s dtype=%s params=%d tensors=%d bytes=%d files=%s"
              % (args.out_dir, args.preset, args.dtype, nparam, len(tensors), total,
                 ",".join(files)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
