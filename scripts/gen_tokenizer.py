#!/usr/bin/env python3
"""gen_tokenizer.py — write a small tokenizer in the exact DeepSeek-V3 tokenizer.json structure.

Usage: scripts/gen_tokenizer.py OUT_DIR [--vocab-size N] [--merge-format string|pair]
                                [--corpus FILE]

Writes OUT_DIR/tokenizer.json and OUT_DIR/tokenizer_config.json with the same normalizer
(empty Sequence), pre_tokenizer (Sequence of the three V3 Split regexes of docs/ARCHITECTURE.md
"Tokenizer", then ByteLevel), decoder and post_processor (ByteLevel) as the real V3 file, and a
byte-level BPE vocabulary trained on FILE (default examples/tokenizer_corpus.txt). N is the
total vocabulary (default 1024): ids 0 and 1 are <｜begin▁of▁sentence｜> / <｜end▁of▁sentence｜>
(in model.vocab and added_tokens, special), ids 2..257 the 256 byte tokens in byte order, then
one id per learned merge, and the last five ids the added tokens <｜fim▁hole｜>, <｜fim▁begin｜>,
<｜fim▁end｜>, <｜User｜>, <｜Assistant｜> (not special, normalized, as in V3). Merges are written
as "a b" strings (V3's form) or ["a", "b"] pairs. Output is deterministic. Standard library only.

The trainer pre-tokenizes with Python `re` approximations of the V3 regexes (Python has no
\\p{..}); that only shapes which merges are learned: encoding with the result is exact in both
the HF library and model/text/tokenizer.c, which both run the real patterns from the file.
"""
import argparse
import collections
import json
import os
import re
import sys

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
ADDED = ["<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>", "<｜User｜>", "<｜Assistant｜>"]

# The three pre-tokenizer Splits (docs/ARCHITECTURE.md, "Tokenizer"), as in the V3 tokenizer.json.
V3_PATTERNS = [
    "\\p{N}{1,3}",
    "[一-龥぀-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
]

# Python `re` stand-ins for the patterns above (training only).
TRAIN_PATTERNS = [
    re.compile(r"\d{1,3}"),
    re.compile("[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"),
    re.compile("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\w]?[^\\W\\d_]+|"
               " ?[^\\w\\s]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"),
]


def byte_alphabet():
    """docs/ARCHITECTURE.md, "Tokenizer": byte -> character of the byte-level alphabet."""
    direct = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in direct:
            table[b] = chr(b)
        else:
            table[b] = chr(0x100 + extra)
            extra += 1
    return table


def pretokenize(text):
    pieces = [text]
    for rx in TRAIN_PATTERNS:
        out = []
        for p in pieces:
            prev = 0
            for m in rx.finditer(p):
                if m.start() > prev:
                    out.append(p[prev:m.start()])
                if m.end() > m.start():
                    out.append(m.group(0))
                prev = m.end()
            if prev < len(p):
                out.append(p[prev:])
        pieces = out
    return pieces


def train(text, n_merges, alphabet):
    """Plain BPE: repeatedly merge the most frequent adjacent pair (ties: smallest pair)."""
    counts = collections.Counter(pretokenize(text))
    words = [[alphabet[b] for b in w.encode("utf-8")] for w in counts]
    freq = list(counts.values())
    pair_count = collections.Counter()
    where = collections.defaultdict(set)
    for i, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pair_count[(a, b)] += freq[i]
            where[(a, b)].add(i)
    merges = []
    while len(merges) < n_merges:
        best = None
        for pair, c in pair_count.items():
            if c > 0 and (best is None or (-c, pair) < (-best[1], best[0])):
                best = (pair, c)
        if best is None:
            break
        (a, b), _ = best
        merges.append((a, b))
        for i in list(where[(a, b)]):
            w, f = words[i], freq[i]
            for x, y in zip(w, w[1:]):
                pair_count[(x, y)] -= f
            out, k = [], 0
            while k < len(w):
                if k + 1 < len(w) and w[k] == a and w[k + 1] == b:
                    out.append(a + b)
                    k += 2
                else:
                    out.append(w[k])
                    k += 1
            words[i] = out
            for x, y in zip(out, out[1:]):
                pair_count[(x, y)] += f
                where[(x, y)].add(i)
        del pair_count[(a, b)]
    return merges


def chat_template():
    # DeepSeek-V3's own template (model/text/templates/deepseek-v3.jinja, byte for byte), so that
    # dsv3 recognises it (model/text/chat.h); an abridged rendering would be refused as unknown.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "model/text/templates/deepseek-v3.jinja"), encoding="utf-8") as f:
        return f.read()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--vocab-size", type=int, default=1024)
    ap.add_argument("--merge-format", choices=["string", "pair"], default="string")
    ap.add_argument("--corpus", default=os.path.join(here, "..", "examples", "tokenizer_corpus.txt"))
    args = ap.parse_args()

    fixed = 2 + 256 + len(ADDED)
    if args.vocab_size < fixed:
        sys.exit(f"gen_tokenizer.py: --vocab-size must be at least {fixed}")
    with open(args.corpus, encoding="utf-8") as f:
        text = f.read()
    alphabet = byte_alphabet()

    vocab = {BOS: 0, EOS: 1}
    for b in range(256):
        vocab[alphabet[b]] = 2 + b
    n_learned = args.vocab_size - fixed
    # A merge may rebuild a string that already has an id; ask for a few spare merges and keep
    # going until the vocabulary is full.
    merges = []
    for extra in (0, 64, 512, 4096):
        merges = train(text, n_learned + extra, alphabet)
        learned = {a + b for a, b in merges}
        if len(learned) >= n_learned or len(merges) < n_learned + extra:
            break
    kept = []
    for a, b in merges:
        if len(vocab) == 2 + 256 + n_learned:
            break
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
        kept.append((a, b))
    if len(vocab) < 2 + 256 + n_learned:
        sys.exit(f"gen_tokenizer.py: {args.corpus} is too small for --vocab-size "
                 f"{args.vocab_size} (only {len(vocab) + len(ADDED)} tokens)")

    added = [
        {"id": 0, "content": BOS, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True},
        {"id": 1, "content": EOS, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True},
    ]
    for k, content in enumerate(ADDED):
        added.append({"id": len(vocab) + k, "content": content, "single_word": False,
                      "lstrip": False, "rstrip": False, "normalized": True, "special": False})

    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": []},
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": p}, "behavior": "Isolated", "invert": False}
                for p in V3_PATTERNS
            ] + [{"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                  "use_regex": False}],
        },
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "vocab": vocab,
            "merges": [f"{a} {b}" if args.merge_format == "string" else [a, b] for a, b in kept],
        },
    }

    def added_token(content):
        return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True,
                "rstrip": False, "single_word": False}

    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": added_token(BOS),
        "clean_up_tokenization_spaces": False,
        "eos_token": added_token(EOS),
        "legacy": True,
        "model_max_length": 131072,
        "pad_token": added_token(EOS),
        "sp_model_kwargs": {},
        "unk_token": None,
        "tokenizer_class": "LlamaTokenizerFast",
        "chat_template": chat_template(),
    }

    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False, indent=2)
        f.write("\n")
    with open(os.path.join(args.out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=2)
        f.write("\n")
    print(f"gen_tokenizer.py: wrote {args.out_dir}/tokenizer.json ({args.vocab_size} tokens, "
          f"{len(kept)} merges) and tokenizer_config.json")


if __name__ == "__main__":
    main()
