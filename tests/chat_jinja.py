#!/usr/bin/env python3
"""chat_jinja.py — model/text/chat renders every known template byte-identically to jinja2.

Helper of tests/test_chat_jinja.sh. Builds conversations (every role sequence of up to 5
messages from system/user/assistant/tool, contents with and without "</think>", several
system prompts, non-ASCII text), renders each with build/chat_tool (the C renderer) and with
Python jinja2 the way Hugging Face's apply_chat_template does (ImmutableSandboxedEnvironment,
trim_blocks, lstrip_blocks, loopcontrols; messages, bos_token, add_generation_prompt and, when
set, thinking), for each template, generation prompt on/off and thinking default/off/on, and
requires equal bytes, or an error where the template has no such thinking switch.
Also checks that the templates compiled into the C code are the files in model/text/templates.
Usage: chat_jinja.py CHAT_TOOL. Exit 0 pass, 1 mismatch.
"""
import itertools, json, os, subprocess, sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = ["deepseek-v3.jinja", "deepseek-r1.jinja", "deepseek-v3.1.jinja"]
BOS = "<｜begin▁of▁sentence｜>"
CONTENT = {
    "system": ["You are helpful.", "Réponds en français. 日本語も"],
    "user": ["Hi", "What is 2+2?\nThink step by step."],
    "assistant": ["Hello!", "<think>\nadd</think>\n\n4", "a</think>b</think>c", ""],
    "tool": ["{\"t\": 21}", "ok"],
}


def conversations():
    roles = ["system", "user", "assistant", "tool"]
    for n in range(0, 6):
        for seq in itertools.product(roles, repeat=n):
            if n == 5 and seq.count("system") > 1:
                continue
            idx = {r: 0 for r in roles}
            msgs = []
            for r in seq:
                opts = CONTENT[r]
                msgs.append({"role": r, "content": opts[idx[r] % len(opts)]})
                idx[r] += 1
            yield msgs
    # each assistant content after a user turn
    for a in CONTENT["assistant"]:
        yield [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
               {"role": "assistant", "content": a}, {"role": "user", "content": "U2"}]


def main():
    tool = sys.argv[1]
    cases = []
    for msgs in conversations():
        for kind in range(3):
            for gen in (0, 1):
                for think in (-1, 0, 1):
                    cases.append({"kind": kind, "think": think, "gen": gen, "bos": BOS,
                                  "messages": msgs})
    p = subprocess.run([tool], input=json.dumps(cases).encode(), capture_output=True)
    if p.returncode != 0:
        print("chat_tool failed:", p.stderr.decode())
        return 1
    res = json.loads(p.stdout)
    bad = 0
    for kind, fname in enumerate(FILES):
        with open(os.path.join(ROOT, "model/text/templates", fname), encoding="utf-8") as f:
            if f.read() != res["templates"][kind]:
                print("FAIL: the C text of %s differs from the file" % fname)
                bad += 1
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    tmpls = [env.from_string(t) for t in res["templates"]]
    n_err = 0
    for c, got in zip(cases, res["out"]):
        kind, think = c["kind"], c["think"]
        no_switch = (kind == 0 and think == 1) or (kind == 1 and think == 0)
        if no_switch:
            if not (isinstance(got, dict) and "thinking switch" in got["error"]):
                print("FAIL: %s think=%d: expected the no-switch error, got %r"
                      % (FILES[kind], think, got))
                bad += 1
            n_err += 1
            continue
        kw = {"messages": c["messages"], "bos_token": c["bos"],
              "add_generation_prompt": bool(c["gen"])}
        if think >= 0 and kind == 2:
            kw["thinking"] = bool(think)
        want = tmpls[kind].render(**kw)
        if got != want:
            bad += 1
            if bad <= 5:
                print("FAIL: %s gen=%d think=%d messages=%s\n  C:     %r\n  jinja: %r"
                      % (FILES[kind], c["gen"], think, json.dumps(c["messages"],
                         ensure_ascii=False), got, want))
    print("chat templates: %d cases (%d refused as having no such thinking switch), "
          "%d mismatches" % (len(cases), n_err, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
