#!/usr/bin/env python3
"""layers.py — checks that the folders of dsv3 are layers (docs/ARCHITECTURE.md, "Layers").

Usage: layers.py ROOT [OBJECT_DIR...]
  ROOT        the source tree (model/, kernels/, probes/, repl/, jupyter/, python/ under it)
  OBJECT_DIR  folders searched for the library's and front ends' .o files (e.g. the CMake
              build's CMakeFiles/dsv3.dir); with none, the link check is skipped.

Three checks, each violation printed as one line naming the file and the rule:
  1. includes: every `#include "..."` of a source file is allowed by the layer of that file
     (the table RULES below), every `#include <...>` is not a header the layer must not see
     (readline, ZeroMQ, Lua, intrinsics), and no CPU-feature test or instruction-set attribute
     appears outside kernels/;
  2. include circles: no header includes itself through others (the .c files cannot be in a
     circle of includes; their circles are calls, which check 3 finds);
  3. link circles: among the object files, no two (or more) call each other — from `nm`: A -> B
     when A uses a global symbol B defines.
Exit status 0 when everything holds, 1 otherwise.
"""
import collections
import os
import re
import subprocess
import sys

# (layer name, path test) in order: the first that matches names a file's layer.
LAYERS = [
    ("base", lambda p: p.startswith("model/base/")),
    ("text", lambda p: p.startswith("model/text/")),
    ("run", lambda p: p.startswith("model/run/")),
    ("train", lambda p: p.startswith("model/train/")),
    ("kernels", lambda p: p.startswith("kernels/")),
    ("render", lambda p: p.startswith("probes/render/")),
    ("probes", lambda p: p.startswith("probes/")),
    ("session", lambda p: p.startswith("repl/session/")),
    ("cli", lambda p: p.startswith("repl/cli/")),
    ("main", lambda p: p == "repl/main.c"),
    ("repl", lambda p: p.startswith("repl/")),
    ("jupyter", lambda p: p.startswith("jupyter/")),
    ("python", lambda p: p.startswith("python/")),
]

PRIVATE_RUN = "model/run/model_internal.h"  # the run layer's own struct layouts


def public(prefix):
    """Headers under prefix other than the run layer's private one."""
    return lambda h: h.startswith(prefix) and h != PRIVATE_RUN


def under(prefix):
    return lambda h: h.startswith(prefix)


def exact(name):
    return lambda h: h == name


# What each layer may include (quoted includes, written from the root), as predicates.
MODEL = [under("model/base/"), under("model/text/"), public("model/run/"), under("model/train/")]
RULES = {
    "base": [under("model/base/")],
    "kernels": [under("kernels/"), under("model/base/")],
    "text": [under("model/text/"), under("model/base/")],
    "run": [under("model/run/"), under("model/base/"), under("kernels/")],
    "train": [under("model/"), under("kernels/")],
    "probes": [under("probes/"), under("model/base/"), public("model/run/"), exact("kernels/backend.h"),
               exact("kernels/dtype.h")],
    "render": [under("probes/"), under("model/base/")] + MODEL[1:],
    "session": [under("repl/session/"), under("probes/"), under("kernels/")] + MODEL,
    "cli": [under("repl/cli/"), under("probes/"), under("kernels/")] + MODEL,
    "repl": [under("repl/repl"), exact("repl/session/session.h"), under("model/base/")],
    "main": [lambda h: True],
    "jupyter": [under("jupyter/"), exact("repl/session/session.h"), under("model/base/")],
    "python": [under("python/"), under("probes/"), exact("kernels/backend.h")] + MODEL,
}
WHY = {
    "base": "model/base/ depends on nothing",
    "kernels": "kernels/ depends on model/base/ only",
    "text": "model/text/ depends on model/base/ only",
    "run": "model/run/ depends on model/base/ and kernels/ only (never text or train)",
    "train": "model/train/ depends on model/ and kernels/ only",
    "probes": "probes/ depends on model/run/'s public headers, model/base/ and kernels/backend.h",
    "render": "probes/render/ depends on probes/ and public model headers only",
    "session": "the session library depends on model/, probes/ and kernels/ only",
    "cli": "repl/cli/ depends on model/, probes/ and kernels/ only (never the session or Lua)",
    "repl": "the terminal REPL depends on the session's public header and model/base/ only",
    "main": "",
    "jupyter": "jupyter/ depends on the session's public header and model/base/ only",
    "python": "python/ depends on model/'s public headers, probes/ and kernels/backend.h only "
              "(never the session, Lua, the REPL or jupyter/)",
}
# System headers a layer must not see: front-end libraries stay in their front end.
FORBIDDEN_SYS = {
    "session": ["readline/", "zmq.h", "sodium.h"],
    "cli": ["lua.h", "lauxlib.h", "lualib.h", "lua.hpp", "readline/", "zmq.h"],
    "jupyter": ["readline/", "lua.h", "lauxlib.h", "lualib.h"],
    "repl": ["zmq.h", "lua.h", "lauxlib.h", "lualib.h"],
    "python": ["readline/", "zmq.h", "sodium.h", "lua.h", "lauxlib.h", "lualib.h"],
}
for name in ("base", "text", "run", "train", "kernels", "probes", "render"):
    FORBIDDEN_SYS[name] = ["readline/", "zmq.h", "sodium.h", "lua.h", "lauxlib.h", "lualib.h"]
# Instruction sets are chosen in kernels/ alone (kernels/cpu/isa.h).
ISA = re.compile(r"__builtin_cpu_(supports|is|init)|<immintrin\.h>|<x86intrin\.h>|__attribute__\s*\(\(\s*target\s*\(")

INC = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def layer_of(path):
    for name, test in LAYERS:
        if test(path):
            return name
    return None


def sources(root):
    out = []
    for top in ("model", "kernels", "probes", "repl", "jupyter", "python"):
        for d, _, files in os.walk(os.path.join(root, top)):
            for f in files:
                if f.endswith((".c", ".h", ".cu", ".cuh")):
                    out.append(os.path.relpath(os.path.join(d, f), root))
    return sorted(out)


def check_includes(root, files):
    bad = []
    for f in files:
        layer = layer_of(f)
        if layer is None:
            bad.append("%s: not in any layer (add its folder to tests/layers.py)" % f)
            continue
        text = open(os.path.join(root, f), encoding="utf-8", errors="replace").read()
        for m in INC.finditer(text):
            kind, h = m.group(1), m.group(2)
            line = text.count("\n", 0, m.start()) + 1
            if kind == '"':
                if "/" not in h:
                    bad.append('%s:%d: #include "%s": write includes from the repository root' % (f, line, h))
                elif not any(ok(h) for ok in RULES[layer]):
                    bad.append('%s:%d: #include "%s": %s' % (f, line, h, WHY[layer]))
            elif any(h.startswith(x) for x in FORBIDDEN_SYS.get(layer, [])):
                bad.append("%s:%d: #include <%s>: not in the %s layer" % (f, line, h, layer))
        if layer != "kernels":
            for m in ISA.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                bad.append("%s:%d: %s: CPU features and instruction sets are kernels/'s business "
                           "(kernels/cpu/isa.h)" % (f, line, m.group(0)))
    return bad


def cycles(graph):
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]; counter[0] += 1
        stack.append(start); on.add(start)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]; counter[0] += 1
                    stack.append(w); on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop(); on.discard(w); comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def check_include_circles(root, files):
    graph = collections.defaultdict(set)
    for f in files:
        if not f.endswith((".h", ".cuh")):
            continue
        graph[f]
        text = open(os.path.join(root, f), encoding="utf-8", errors="replace").read()
        for m in INC.finditer(text):
            if m.group(1) == '"' and m.group(2) != f:
                graph[f].add(m.group(2))
    return ["include circle: %s" % " <-> ".join(c) for c in cycles(graph)]


def check_link_circles(root, objdirs):
    objs = []
    for d in objdirs:
        for dd, _, fs in os.walk(d):
            objs += [os.path.join(dd, f) for f in fs if f.endswith(".o")]
    defs, uses = {}, {}
    for o in sorted(objs):
        name = o
        for d in objdirs:
            if o.startswith(d):
                name = os.path.relpath(o, d)
        src = re.sub(r"\.o$", "", name)
        if not os.path.exists(os.path.join(root, src)):
            continue  # a stale object of a source that moved or went away
        name = re.sub(r"\.(c|cu)$", "", src)
        out = subprocess.run(["nm", o], capture_output=True, text=True, check=True).stdout
        defs[name], uses[name] = set(), set()
        for line in out.splitlines():
            p = line.split()
            if len(p) == 3 and p[1] in "TDBRCVW":
                defs[name].add(p[2])
            elif len(p) == 2 and p[0] == "U":
                uses[name].add(p[1])
    owner = {}
    for n, ds in defs.items():
        for s in ds:
            owner.setdefault(s, n)
    graph = {n: {owner[s] for s in us if s in owner and owner[s] != n} for n, us in uses.items()}
    return ["link circle (these objects call each other): %s" % " <-> ".join(c) for c in cycles(graph)]


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    root, objdirs = argv[1], argv[2:]
    files = sources(root)
    bad = check_includes(root, files) + check_include_circles(root, files)
    if objdirs:
        bad += check_link_circles(root, objdirs)
    for b in bad:
        print(b)
    print("layers: %d source files, %d violation%s%s" % (len(files), len(bad), "" if len(bad) == 1 else "s",
                                                        "" if objdirs else " (link check skipped)"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
