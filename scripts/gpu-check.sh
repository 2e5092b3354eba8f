#!/usr/bin/env bash
# gpu-check.sh — the one script a session with a lent GPU runs (issue 16; docs/ARCHITECTURE.md,
# "CUDA backend"). Nothing is downloaded: everything it needs is in the working tree.
#
#   bash scripts/gpu-check.sh             on the GPU machine (16 cores, one H100/H200, no network):
#       1. C libraries: when pkg-config lacks the build's libraries and .gpu-deps/*.deb exist
#          (see --prepare), they are unpacked under /tmp/dsv3-deps and used from there;
#       2. configure and build (-j16) with -DDSV3_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a into
#          build-gpu/ (only the targets below);
#       3. build-gpu/test_cuda: cuda against fast on the tiny variants (must pass, not skip);
#       4. compute-sanitizer memcheck on test_cuda's decode-step test (a tiny-model forward);
#       5. decode and prefill of the bench model (scripts/gen_model.py --preset bench), cuda vs fast;
#       6. a table of every step, printed last.
#     Logs and the table go to $OUT (the device tool's folder) or /tmp/dsv3-gpu-check.
#     Exit status 0 only when every step passed. Budget: under 9 minutes (each step has a timeout).
#   bash scripts/gpu-check.sh --prepare   here, with network: fetches the build's C libraries
#       (cJSON, PCRE2, Lua 5.4, readline, ZeroMQ, libsodium and what they need) as .deb files into
#       .gpu-deps/ (ignored by git via .git/info/exclude), for the device call to carry
#       (carry: [".gpu-deps"]).
set -u
cd "$(dirname "$0")/.."
root=$PWD

DEBS="libcjson-dev libcjson1 libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3
      liblua5.4-dev liblua5.4-0 libreadline-dev libreadline8 libncurses-dev libtinfo6 libncursesw6
      libzmq3-dev libzmq5 libsodium-dev libsodium23 libpgm-dev libpgm-5.3-0 libnorm-dev libnorm1
      libgssapi-krb5-2 libkrb5-dev libbsd0 libbsd-dev libmd0 libmd-dev libcomerr2 comerr-dev"

if [ "${1:-}" = "--prepare" ]; then
    mkdir -p .gpu-deps
    ex=$(git rev-parse --git-path info/exclude)
    grep -qx '/.gpu-deps/' "$ex" 2>/dev/null || echo '/.gpu-deps/' >> "$ex"
    (cd .gpu-deps && for p in $DEBS; do apt-get download "$p" >/dev/null 2>&1 || echo "gpu-check --prepare: no package $p (skipped)"; done)
    du -sh .gpu-deps
    exit 0
fi

OUTDIR=${OUT:-/tmp/dsv3-gpu-check}
mkdir -p "$OUTDIR"
JOBS=${DSV3_JOBS:-16}
T0=$(date +%s)
rows=()
fail=0
# row STEP STATUS SECONDS NOTE
row() { rows+=("$(printf '%-28s %-8s %6s  %s' "$1" "$2" "$3" "$4")"); [ "$2" = PASS ] || [ "$2" = INFO ] || fail=1; }
step() { # step NAME TIMEOUT LOG CMD... -> runs it, records PASS/FAIL/TIMEOUT
    local name=$1 limit=$2 log=$3; shift 3
    local t=$(date +%s) rc
    timeout "$limit" "$@" > "$log" 2>&1; rc=$?
    local dt=$(( $(date +%s) - t )) st=PASS
    [ $rc = 0 ] || st=FAIL
    [ $rc = 124 ] && st=TIMEOUT
    row "$name" "$st" "$dt" "rc $rc, log $(basename "$log")"
    return $rc
}
finish() {
    {
        echo
        echo "== gpu-check: $(date -u +%Y-%m-%dT%H:%MZ), $(( $(date +%s) - T0 )) s in all"
        echo "device: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'nvidia-smi unavailable')"
        printf '%-28s %-8s %6s  %s\n' step status s note
        printf '%s\n' "${rows[@]}"
        [ -f "$OUTDIR/bench.csv" ] && { echo; echo "bench (tokens/s; same machine, same run):"; cat "$OUTDIR/bench.csv"; }
        echo "result: $([ $fail = 0 ] && echo PASS || echo FAIL)"
    } | tee "$OUTDIR/table.txt"
    exit $fail
}

# ---- 1. the build's C libraries
need="libcjson libpcre2-8 lua5.4 readline libzmq libsodium"
missing=""
for m in $need; do pkg-config --exists "$m" 2>/dev/null || missing="$missing $m"; done
if [ -n "$missing" ] && ls .gpu-deps/*.deb >/dev/null 2>&1; then
    d=/tmp/dsv3-deps
    mkdir -p $d
    for f in .gpu-deps/*.deb; do dpkg -x "$f" $d; done
    multi=$d/usr/lib/x86_64-linux-gnu
    # the .pc files name /usr: the sysroot points them at $d
    export PKG_CONFIG_SYSROOT_DIR=$d
    export PKG_CONFIG_PATH=$multi/pkgconfig:$d/usr/share/pkgconfig:$d/usr/lib/pkgconfig
    export LD_LIBRARY_PATH=$multi${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export LIBRARY_PATH=$multi${LIBRARY_PATH:+:$LIBRARY_PATH}
    export CPATH=$d/usr/include${CPATH:+:$CPATH}
    missing=""
    for m in $need; do pkg-config --exists "$m" 2>/dev/null || missing="$missing $m"; done
    row "libraries from .gpu-deps" "$([ -z "$missing" ] && echo PASS || echo FAIL)" 0 "unpacked into $d${missing:+; still missing:$missing}"
else
    row "libraries" "$([ -z "$missing" ] && echo PASS || echo FAIL)" 0 "${missing:+missing:$missing (run --prepare where there is network and carry .gpu-deps)}"
fi
[ -z "$missing" ] || finish

# ---- 2. build
gen=""
command -v ninja >/dev/null && gen="-G Ninja"
step "configure (CUDA on, sm_90a)" 120 "$OUTDIR/configure.log" \
    cmake -S . -B build-gpu $gen -DCMAKE_BUILD_TYPE=Release -DDSV3_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a || finish
step "build -j$JOBS" 300 "$OUTDIR/build.log" \
    cmake --build build-gpu -j"$JOBS" --target dsv3_cli test_cuda dsv3-bench-decode dsv3-bench-forward || finish
export DSV3_BIN=$root/build-gpu/dsv3 DSV3_BUILD=$root/build-gpu

# ---- 3. the CUDA tests (a skip here is a failure: a GPU was expected)
step "test_cuda" 240 "$OUTDIR/test_cuda.log" build-gpu/test_cuda
grep -E "logits|decode step|FAIL|skipped" "$OUTDIR/test_cuda.log" | head -20 | sed 's/^/    /' > "$OUTDIR/test_cuda.summary"

# ---- 4. compute-sanitizer memcheck on a tiny-model forward + decode step
if command -v compute-sanitizer >/dev/null; then
    step "compute-sanitizer memcheck" 150 "$OUTDIR/sanitizer.log" \
        compute-sanitizer --tool memcheck --error-exitcode 9 build-gpu/test_cuda test_cuda_transfers
else
    row "compute-sanitizer memcheck" FAIL 0 "compute-sanitizer not on PATH"
fi

# ---- 5. benchmarks: the bench model, cuda vs fast (same machine, same run)
b=/tmp/dsv3-bench-bf16
PY=/usr/bin/python3; [ -x $PY ] || PY=$(command -v python3)
if [ ! -f $b/config.json ]; then
    step "gen bench model (bf16)" 150 "$OUTDIR/gen.log" \
        "$PY" scripts/gen_model.py $b --preset bench --dtype bf16 --quiet
fi
if [ -f $b/config.json ]; then
    : > "$OUTDIR/bench.csv"
    for be in fast cuda; do
        if step "decode $be" 90 "$OUTDIR/decode-$be.log" \
            build-gpu/dsv3-bench-decode $b --tokens 32 --reps 3 --mtp 0 --backend $be; then
            awk -F, -v be=$be 'NR==2 {print "decode," be ",median_tok_s=" $7 ",ms_per_token=" $9}' "$OUTDIR/decode-$be.log" >> "$OUTDIR/bench.csv"
        fi
        if step "prefill 512 $be" 90 "$OUTDIR/prefill-$be.log" \
            build-gpu/dsv3-bench-forward $b --tokens 512 --reps 3 --backend $be; then
            awk -F, -v be=$be 'NR==2 {print "prefill512," be ",median_tok_s=" $10}' "$OUTDIR/prefill-$be.log" >> "$OUTDIR/bench.csv"
        fi
    done
fi
[ -f "$OUTDIR/test_cuda.summary" ] && { echo "test_cuda:"; cat "$OUTDIR/test_cuda.summary"; }
finish
