#!/usr/bin/python3
"""Soak: many cells in one dsv3-kernel, many lines in one REPL, with memory flat.

Usage: soak.py DSV3_BIN KERNEL_BIN MODEL_DIR CELLS LINES [MAX_GROWTH_KB]

Runs CELLS execute_requests in one kernel (through jupyter_client, a mix: arithmetic, printing,
tokenize, logits, a short greedy gen, route (rich display), a failing cell, info, loading the
model again in place of the last one) and LINES
lines through one REPL reading stdin (the same mix), and reads the process's VmRSS after the
first tenth (warm) and at the end. Prints one line per front end ("kernel: 1000 cells, RSS
12345 kB after 100, 12400 kB after 1000 (+55 kB)") and exits 1 if either grew by more than
MAX_GROWTH_KB (default 4096) or any cell got an unexpected reply. tests/test_soak.sh runs it at
CI size; scripts/soak runs the full 10,000.
"""
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time

DSV3, KERNEL, MODEL = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
CELLS, LINES = int(sys.argv[4]), int(sys.argv[5])
MAX_GROWTH = int(sys.argv[6]) if len(sys.argv) > 6 else 4096

# (code, expected reply status)
MIX = [
    ("x = (x or 0) + 1", "ok"),
    ('print("line " .. tostring(x))', "ok"),
    ('tokenize("hello world")', "ok"),
    ("logits({1, 2, 3}):top(-1, 3)", "ok"),
    ('gen("ab", {n = 2, greedy = true})', "ok"),
    ('route("ab")', "ok"),
    ('error("boom")', "error"),
    ("info()", "ok"),
    ('m2 = load("%s"); use(m2)' % MODEL, "ok"),  # the previous m2 is freed by the next load
]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def soak_kernel(tmp):
    import jupyter_client

    os.environ["JUPYTER_PATH"] = os.path.join(tmp, "share", "jupyter")
    os.environ["JUPYTER_RUNTIME_DIR"] = os.path.join(tmp, "runtime")
    os.environ["JUPYTER_DATA_DIR"] = os.path.join(tmp, "data")
    os.environ["DSV3_MODEL"] = MODEL
    r = subprocess.run([DSV3, "kernel", "install", "--prefix", tmp, "--kernel", KERNEL],
                       capture_output=True, text=True)
    if r.returncode:
        return "kernel install failed: " + r.stderr
    km = jupyter_client.KernelManager(kernel_name="dsv3")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=30)
        pid = km.provisioner.process.pid
        kc.execute('load("%s")' % MODEL, reply=True, timeout=30)
        warm_at, warm = max(1, CELLS // 10), None
        t0 = time.time()
        for i in range(1, CELLS + 1):
            code, want = MIX[i % len(MIX)]
            rep = kc.execute(code, reply=True, timeout=30, stop_on_error=False)
            if rep["content"]["status"] != want:
                return "kernel: cell %d (%s): status %s, expected %s" % (
                    i, code, rep["content"]["status"], want)
            while True:  # drain iopub so the client's queue does not grow
                try:
                    kc.get_iopub_msg(timeout=0)
                except queue.Empty:
                    break
            if i == warm_at:
                warm = rss_kb(pid)
        end = rss_kb(pid)
        growth = end - warm
        print("kernel: %d cells in %.1f s, RSS %d kB after %d, %d kB after %d (%+d kB)"
              % (CELLS, time.time() - t0, warm, warm_at, end, CELLS, growth))
        return None if growth <= MAX_GROWTH else "kernel RSS grew by %d kB" % growth
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def soak_repl(tmp):
    warm_at = max(1, LINES // 10)
    lines = ['function rss() for l in io.lines("/proc/self/status") do '
             'local v = l:match("^VmRSS:%s+(%d+)") if v then return tonumber(v) end end end']
    for i in range(1, LINES + 1):
        lines.append(MIX[i % len(MIX)][0])
        if i == warm_at:
            lines.append('collectgarbage(); warm = rss()')
    lines.append('collectgarbage(); print(string.format("RSS %d %d", warm, rss()))')
    t0 = time.time()
    r = subprocess.run([DSV3, MODEL], input="\n".join(lines) + "\n", capture_output=True,
                       text=True, timeout=3600, env=dict(os.environ, NO_COLOR="1"))
    out = [l for l in r.stdout.splitlines() if l.startswith("RSS ")]
    if not out:
        return "repl: no RSS line (exit %d): %s" % (r.returncode, r.stderr[-500:])
    warm, end = map(int, out[-1].split()[1:3])
    errors = r.stderr.count("boom")
    print("repl: %d lines in %.1f s, RSS %d kB after %d, %d kB after %d (%+d kB), %d errors shown"
          % (LINES, time.time() - t0, warm, warm_at, end, LINES, end - warm, errors))
    if errors + r.stdout.count("boom") < LINES // len(MIX):
        return "repl: the failing lines did not all report their error"
    return None if end - warm <= MAX_GROWTH else "repl RSS grew by %d kB" % (end - warm)


def main():
    tmp = tempfile.mkdtemp()
    try:
        bad = [e for e in (soak_kernel(tmp) if CELLS else None,
                           soak_repl(tmp) if LINES else None) if e]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for e in bad:
        print("FAIL " + e)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
