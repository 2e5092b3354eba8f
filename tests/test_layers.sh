#!/usr/bin/env bash
# test_layers.sh — the folders are layers (docs/ARCHITECTURE.md, "Layers"): tests/layers.py over
# this tree and the build's objects must find nothing; then each kind of violation is planted
# in a scratch copy of the sources and must be found, named by file and rule.
. "$(dirname "$0")/lib.sh"
command -v nm >/dev/null || { echo "skip: no nm (binutils)"; exit 77; }
B=${DSV3_BUILD:-build}
objdirs=()
for t in dsv3 dsv3session dsv3_cli dsv3_kernel; do
    [ -d "$B/CMakeFiles/$t.dir" ] && objdirs+=("$B/CMakeFiles/$t.dir")
done
[ ${#objdirs[@]} -eq 4 ] || { echo "skip: no objects under $B/CMakeFiles (build first)"; exit 77; }
# the Python module, when this build has one (python3-dev and numpy present)
[ -d "$B/CMakeFiles/dsv3_python.dir" ] && objdirs+=("$B/CMakeFiles/dsv3_python.dir")

# 1. the tree holds
if $PY tests/layers.py . "${objdirs[@]}" > "$work/out"; then ok; else bad "the tree breaks the layer rules"; cat "$work/out"; fi

# 2. planted violations are found: plant FILE LINE NEEDLE — appends LINE to FILE in a fresh
# copy and wants layers.py to fail naming NEEDLE.
fresh() {
    rm -rf "$work/t"; mkdir -p "$work/t"
    cp -r model kernels probes repl jupyter python "$work/t/"
}
expect() { # expect NAME NEEDLE [OBJDIR]
    if $PY tests/layers.py "$work/t" ${3:+"$3"} > "$work/out"; then bad "$1: not found"
    elif grep -qF -- "$2" "$work/out"; then ok
    else bad "$1: message lacks '$2'"; cat "$work/out"; fi
}
plant() { # plant NAME FILE LINE NEEDLE
    fresh; printf '%s\n' "$3" >> "$work/t/$2"; expect "$1" "$4"
}
plant "run sees text" model/run/forward.c '#include "model/text/tokenizer.h"' \
    'model/run/forward.c:'
plant "run sees train" model/run/moe.c '#include "model/train/trainer.h"' 'never text or train'
plant "base sees kernels" model/base/npy.c '#include "kernels/dtype.h"' 'model/base/ depends on nothing'
plant "kernels see run" kernels/pool.c '#include "model/run/model.h"' 'kernels/ depends on model/base/ only'
plant "text sees run" model/text/chat.c '#include "model/run/config.h"' 'model/text/ depends on model/base/ only'
plant "probes see run internals" probes/routing.c '#include "model/run/model_internal.h"' \
    "probes/ depends on model/run/'s public headers"
plant "session sees readline" repl/session/session.c '#include <readline/readline.h>' \
    'repl/session/session.c:'
plant "session sees jupyter" repl/session/session.c '#include "jupyter/wire.h"' \
    'the session library depends on'
plant "cli sees Lua" repl/cli/route.c '#include <lua.h>' 'not in the cli layer'
plant "cli sees the session" repl/cli/route.c '#include "repl/session/session.h"' \
    'never the session or Lua'
plant "jupyter sees the session's insides" jupyter/server.c '#include "repl/session/session_internal.h"' \
    "jupyter/ depends on the session's public header"
plant "repl sees the cli" repl/repl.c '#include "repl/cli/cli.h"' 'the terminal REPL depends on'
plant "python sees the session" python/pyx.c '#include "repl/session/session.h"' \
    'python/ depends on'
plant "python sees jupyter" python/py_model.c '#include "jupyter/wire.h"' 'never the session, Lua'
plant "python sees run internals" python/py_probes.c '#include "model/run/model_internal.h"' \
    'python/py_probes.c:'
plant "python sees Lua" python/dsv3module.c '#include <lua.h>' 'not in the python layer'
plant "relative include" model/base/npy.c '#include "status.h"' 'write includes from the repository root'
plant "intrinsics outside kernels" model/run/mla.c '#include <immintrin.h>' "kernels/'s business"
plant "CPU test outside kernels" model/train/data.c 'static int f(void) { return __builtin_cpu_supports("avx2"); }' \
    "kernels/'s business"
plant "a file outside every layer" model/stray.c '/* stray */' 'not in any layer'

fresh   # a header circle: a.h -> b.h -> a.h
printf '#include "model/base/b_circle.h"\n' > "$work/t/model/base/a_circle.h"
printf '#include "model/base/a_circle.h"\n' > "$work/t/model/base/b_circle.h"
expect "header circle" "include circle: model/base/a_circle.h <-> model/base/b_circle.h"

fresh   # a link circle: two objects that call each other
mkdir -p "$work/obj/model/base"
printf 'int dsv3_circle_b(int);\nint dsv3_circle_a(int x) { return x ? dsv3_circle_b(x - 1) : 0; }\n' \
    > "$work/t/model/base/circle_a.c"
printf 'int dsv3_circle_a(int);\nint dsv3_circle_b(int x) { return x ? dsv3_circle_a(x - 1) : 1; }\n' \
    > "$work/t/model/base/circle_b.c"
cc -c "$work/t/model/base/circle_a.c" -o "$work/obj/model/base/circle_a.c.o" &&
    cc -c "$work/t/model/base/circle_b.c" -o "$work/obj/model/base/circle_b.c.o" || bad "cc"
expect "link circle" "link circle (these objects call each other): model/base/circle_a <-> model/base/circle_b" \
    "$work/obj"

finish
