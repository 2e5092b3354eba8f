#!/usr/bin/python3
"""test_jupyter.py — dsv3-kernel driven by Debian's real Jupyter clients.

jupyter_client's KernelManager starts build/dsv3-kernel from a kernelspec that
`dsv3 kernel install --prefix TMP` wrote (found through JUPYTER_PATH), and each test checks one
behaviour of docs/ARCHITECTURE.md "Jupyter kernel protocol": kernel_info, execute (results as
text/plain + text/html + application/json, print as stream, the iopub order, execution_count,
errors with a traceback, stop_on_error aborting queued requests), complete in code points, inspect, is_complete,
history, comm_info, display/update_display, interrupts in both modes (latency < 200 ms during
a generation), input_request, badly signed / replayed / garbage messages dropped, heartbeat
and control answering while a cell runs, shutdown with restart, `jupyter kernelspec list`, and
nbclient running examples/tour.ipynb.

Usage: test_jupyter.py DSV3_BIN KERNEL_BIN MODEL_DIR [NAME_SUBSTRING]
Prints one PASS/FAIL line per test and "N passed, M failed"; exit 1 on failure.
"""
import re
import hashlib
import hmac
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import jupyter_client
import zmq

DSV3, KERNEL, MODEL = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
ONLY = sys.argv[4] if len(sys.argv) > 4 else None
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TMP = tempfile.mkdtemp(prefix="dsv3_jupyter.")
os.environ["JUPYTER_PATH"] = os.path.join(TMP, "share", "jupyter")
os.environ["JUPYTER_RUNTIME_DIR"] = os.path.join(TMP, "runtime")
os.environ["JUPYTER_DATA_DIR"] = os.path.join(TMP, "data")
os.environ["DSV3_MODEL"] = MODEL
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

TIMEOUT = 10  # seconds for any single reply
LATENCY_LIMIT = 0.200
measured = {}


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


# ------------------------------------------------------------------ client helpers


class Kernel:
    """A started kernel with its manager and blocking client."""

    def __init__(self, name="dsv3"):
        self.km = jupyter_client.KernelManager(kernel_name=name)
        self.km.start_kernel()
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=30)

    def stop(self):
        try:
            self.kc.stop_channels()
        finally:
            if self.km.is_alive():
                self.km.shutdown_kernel(now=False)


def reply_to(kc, msg_id, channel="shell", timeout=TIMEOUT):
    """The reply whose parent is msg_id (stray replies, e.g. kernel_info retries, skipped)."""
    deadline = time.time() + timeout
    while True:
        left = deadline - time.time()
        check(left > 0, "no %s reply to %s within %ss" % (channel, msg_id, timeout))
        try:
            if channel == "shell":
                m = kc.get_shell_msg(timeout=left)
            else:
                m = kc.get_stdin_msg(timeout=left)
        except queue.Empty:
            continue
        if m["parent_header"].get("msg_id") == msg_id:
            return m


def iopub_for(kc, msg_id, timeout=TIMEOUT):
    """iopub messages whose parent is msg_id, up to and including status idle."""
    out, deadline = [], time.time() + timeout
    while True:
        left = deadline - time.time()
        check(left > 0, "no idle for %s within %ss; got %s" % (msg_id, timeout, [m["msg_type"] for m in out]))
        try:
            m = kc.get_iopub_msg(timeout=left)
        except queue.Empty:
            continue
        if m["parent_header"].get("msg_id") != msg_id:
            continue
        m["_t"] = time.time()
        out.append(m)
        if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            return out


def execute(kc, code, **kw):
    """(reply, iopub messages) of one execute."""
    msg_id = kc.execute(code, **kw)
    reply = reply_to(kc, msg_id)
    return reply, iopub_for(kc, msg_id)


def types(msgs):
    return [m["msg_type"] if m["msg_type"] != "status" else m["content"]["execution_state"] for m in msgs]


def result_data(msgs):
    r = [m for m in msgs if m["msg_type"] == "execute_result"]
    check(len(r) == 1, "one execute_result, got %s" % types(msgs))
    return r[0]["content"]["data"]


def control_request(kc, msg_type, content=None):
    msg = kc.session.msg(msg_type, content or {})
    kc.control_channel.send(msg)
    return kc._recv_reply(msg["header"]["msg_id"], timeout=TIMEOUT, channel="control")


def conn_info(kernel):
    info = kernel.km.get_connection_info()
    key = info["key"]
    return info, key if isinstance(key, bytes) else key.encode()


def raw_frames(key, msg_type, content, sig=None, session="rawsess"):
    header = json.dumps({"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "username": "t",
                         "session": session, "date": "2024-01-01T00:00:00.000000Z",
                         "version": "5.3"}).encode()
    parts = [header, b"{}", b"{}", json.dumps(content).encode()]
    if sig is None:
        sig = hmac.new(key, b"".join(parts), hashlib.sha256).hexdigest().encode()
    return [b"<IDS|MSG>", sig] + parts, json.loads(header)["msg_id"]


def raw_dealer(ctx, info, port_key):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect("tcp://%s:%d" % (info["ip"], info[port_key]))
    return s


def quiet_for(kc, msg_id, seconds):
    """1 if no iopub message with parent msg_id arrives within seconds."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            m = kc.get_iopub_msg(timeout=max(0.01, deadline - time.time()))
        except queue.Empty:
            continue
        if m["parent_header"].get("msg_id") == msg_id:
            return False
    return True


# ------------------------------------------------------------------ tests on one kernel

K = None  # the shared kernel


def test_kernel_info_on_shell_and_control():
    msg_id = K.kc.kernel_info()
    r = reply_to(K.kc, msg_id)["content"]
    check(r["status"] == "ok" and r["protocol_version"] == "5.3", "status/protocol_version: %s" % r)
    check(r["implementation"] == "dsv3" and r["language_info"]["name"] == "lua", "implementation/language")
    check(r["language_info"]["file_extension"] == ".lua" and r["banner"], "file_extension/banner")
    busy = iopub_for(K.kc, msg_id)
    check(types(busy) == ["busy", "idle"], "busy/idle around kernel_info: %s" % types(busy))
    rc = control_request(K.kc, "kernel_info_request")
    check(rc["content"]["protocol_version"] == "5.3", "kernel_info on control")


def test_load_model():
    reply, msgs = execute(K.kc, 'm = load(os.getenv("DSV3_MODEL"))\nreturn m')
    check(reply["content"]["status"] == "ok", "load failed: %s" % reply["content"])
    check("layers" in result_data(msgs)["text/plain"], "model summary")


def test_expression_gives_execute_result():
    reply, msgs = execute(K.kc, "1+1")
    check(result_data(msgs) == {"text/plain": "2"}, "1+1 -> %s" % result_data(msgs))
    reply, msgs = execute(K.kc, "info()")
    d = result_data(msgs)
    check("vocab_size" in d["text/plain"], "info text/plain")
    check("<table" in d.get("text/html", "") and "vocab_size" in d["text/html"], "info text/html table")
    check(isinstance(d.get("application/json"), dict) and d["application/json"]["vocab_size"] > 0,
          "info application/json object")
    reply, msgs = execute(K.kc, 'logits("hello world")')
    check("<table" in result_data(msgs).get("text/html", ""), "logits html table")
    reply, msgs = execute(K.kc, 'logits("hello world"):top(-1, 3)')
    d = result_data(msgs)
    check("<th>prob</th>" in d.get("text/html", ""), "top-k html table: %s" % d.get("text/html"))
    check(len(d.get("application/json", [])) == 3, "top-k json array")
    reply, msgs = execute(K.kc, 'return "<b>&</b>"')
    check(result_data(msgs) == {"text/plain": "<b>&</b>"}, "a string is text only")


def test_last_expression_after_statements_is_shown():
    reply, msgs = execute(K.kc, 'r = route("hello world")\nr')
    check(reply["content"]["status"] == "ok", "trailing expression: %s" % reply["content"])
    check("image/svg+xml" in result_data(msgs), "r is shown after r = route(...)")
    reply, msgs = execute(K.kc, "a = 20; a + 22")
    check(result_data(msgs)["text/plain"] == "42", "a = 20; a + 22")
    reply, msgs = execute(K.kc, "b = 1\nc = b + 1")
    check(reply["content"]["status"] == "ok", "statements")
    check(not [m for m in msgs if m["msg_type"] == "execute_result"], "statements show nothing")
    r = reply_to(K.kc, K.kc.is_complete("x = 1\nx"))["content"]
    check(r["status"] == "complete", "is_complete of a trailing expression: %s" % r)


def test_plain_tables_render_as_tables():
    for code in ("r = route('hello world')\nr:token(2)", "r:layer(1)", "r:cooc(1)", "bias(1)",
                 "capture('hi')", "r:changed()", "r:load(1).push", "info().params"):
        reply, msgs = execute(K.kc, code)
        check(reply["content"]["status"] == "ok", "%s: %s" % (code, reply["content"]))
        d = result_data(msgs)
        check("table: 0x" not in d["text/plain"], "%s text/plain: %r" % (code, d["text/plain"][:300]))
        check("<table" in d.get("text/html", "") and "table: 0x" not in d["text/html"],
              "%s text/html: %r" % (code, d.get("text/html", "")[:300]))
        if code != "capture('hi')":
            check("application/json" in d, "%s application/json" % code)
    reply, msgs = execute(K.kc, "r:token(2)")
    html = result_data(msgs)["text/html"]
    check("<th style=\"text-align:left\">experts</th>" in html and "{" in html, "r:token(2) columns: %r" % html[:400])
    reply, msgs = execute(K.kc, "io.write('x')")
    check(not [m for m in msgs if m["msg_type"] == "execute_result"], "io.write shows no file value")


def test_print_goes_to_stream():
    reply, msgs = execute(K.kc, 'print("hi", 1)')
    streams = [m["content"] for m in msgs if m["msg_type"] == "stream"]
    check(streams == [{"name": "stdout", "text": "hi\t1\n"}], "stream: %s" % streams)
    check(not [m for m in msgs if m["msg_type"] == "execute_result"], "no result for a statement")


def test_io_write_and_read_use_the_notebook():
    reply, msgs = execute(K.kc, 'io.write("a", 1, "b") io.write("\\n")')
    streams = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")
    check(streams == "a1b\n", "io.write goes to the stream: %r" % streams)
    msg_id = K.kc.execute('local n = io.read("n") local l = io.read() return n * 2, l', allow_stdin=True)
    for value in ("21", "rest of line"):
        req = reply_to(K.kc, msg_id, channel="stdin")
        check(req["msg_type"] == "input_request", "io.read asks the front end")
        K.kc.input(value)
    reply_to(K.kc, msg_id)
    check(result_data(iopub_for(K.kc, msg_id))["text/plain"] == "42\trest of line", "io.read values")


def test_probe_values_render_as_svg():
    reply, msgs = execute(K.kc, 'route("hello world")')
    check(reply["content"]["status"] == "ok", "route: %s" % reply["content"])
    d = result_data(msgs)
    check(d.get("image/svg+xml", "").lstrip().startswith("<svg") or "<svg" in d.get("image/svg+xml", ""),
          "a value with __svg gets image/svg+xml: %s" % list(d))


def svg_width(svg):
    return int(re.search(r'<svg[^>]* width="(\d+)"', svg).group(1))


def test_figures_are_readable():
    """Routing: every MoE layer as a panel, token labels as text (no byte-BPE glyphs), expert
    ticks, a colour bar, hover titles with the decision; the width fits the content; text/html
    carries the same SVG inline; r:heatmap(L, "svg") is a figure value; attention has token
    labels on both axes and a real title."""
    reply, msgs = execute(K.kc, 'r = route("hello world\\n 12")\nr')
    d = result_data(msgs)
    svg = d.get("image/svg+xml", "")
    check(svg.count("font-weight=\"bold\">layer ") >= 2, "one panel per MoE layer: %r" % svg[:300])
    check("␣world" in svg or "␣" in svg, "token labels readable")
    check("Ġ" not in svg and "Ċ" not in svg, "no byte-level glyphs")
    check("&lt;bos&gt;" in svg, "BOS label")
    check("linearGradient" in svg, "colour bar")
    check(re.search(r"<title>layer \d+, pos \d+ .*expert \d+ \(group \d+.*\): score [0-9.]+, biased [-0-9.]+; "
                    r"(chosen #\d, weight [0-9.]+|not chosen)</title>", svg), "hover titles with the decision")
    check(">15</text>" in svg or ">8</text>" in svg, "expert ticks")
    w = svg_width(svg)
    xs = [int(x) for x in re.findall(r'<rect x="(\d+)"', svg)]
    title = re.search(r'<text x="4" y="15" font-size="12">([^<]*)</text>', svg).group(1)
    check(max(xs) < w <= max(max(xs) + 200, 8 * len(title) + 20),
          "width %d fits the content (last cell at %d, title %d chars)" % (w, max(xs), len(title)))
    html = d.get("text/html", "")
    check("<svg" in html and "dsv3-figure" in html, "text/html rendition with the SVG inline")
    reply, msgs = execute(K.kc, 'r:heatmap(2, "svg")')
    d = result_data(msgs)
    check("image/svg+xml" in d and d["text/plain"].startswith("<figure"), "heatmap(L, 'svg') is a figure: %s" % d["text/plain"][:80])
    reply, msgs = execute(K.kc, 'attn("The capital of France", 1, 0)')
    svg = result_data(msgs).get("image/svg+xml", "")
    check("attention, layer 1 head 0" in svg, "attention title: %r" % svg[:300])
    check(svg.count("rotate(-60)") >= 4, "key labels on the top axis")
    check('text-anchor="end">&lt;bos&gt;' in svg, "query labels on the left axis")


def test_display_ids_are_unique_per_run():
    code = 'a = display(1)\nb = display(2)\nreturn a ~= b and a:match("^dsv3%-%d+%-%d+$") ~= nil'
    reply, msgs = execute(K.kc, code)
    check(result_data(msgs).get("text/plain") == "true", "fresh ids: %s" % result_data(msgs))
    ids = []
    for _ in range(2):  # a second GRPO run after grpo_reset() must not update the first one's chart
        reply, msgs = execute(K.kc, 'grpo{task = "add", steps = 1, max_tokens = 4, group = 2, batch = 1,'
                                    ' quiet = true}\ngrpo_reset()')
        check(reply["content"]["status"] == "ok", "grpo: %s" % reply["content"])
        ids += [m["content"]["transient"]["display_id"] for m in msgs if m["msg_type"] == "display_data"]
    check(len(ids) == 2 and ids[0] != ids[1], "each run its own chart: %s" % ids)


def test_outputs_are_not_shown_twice():
    reply, msgs = execute(K.kc, 'gen("hello", {max_tokens = 6, greedy = true})')
    streamed = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")
    d = result_data(msgs)
    text = streamed.strip()
    check(text and text not in d.get("text/html", ""), "streamed text not repeated in Out: %r / %r"
          % (streamed, d.get("text/html", "")[:200]))
    check("tokens" in d.get("text/plain", ""), "Out keeps the stats: %s" % d)
    reply, msgs = execute(K.kc, 'display(info())')
    check(types(msgs).count("display_data") == 1 and "execute_result" not in types(msgs),
          "display() as the last line shows the value once, not its id: %s" % types(msgs))
    reply, msgs = execute(K.kc, 'id = display(1)')
    reply, msgs = execute(K.kc, 'id')
    check("dsv3-" in result_data(msgs).get("text/plain", ""), "the id is still there when asked for")
    code = ('tr = train{steps = 2, text = string.rep("the cat sat on the mat. ", 40), seq_len = 16, batch = 2}\n'
            'tr')
    reply, msgs = execute(K.kc, code)
    execute(K.kc, 'train_reset()')
    check(reply["content"]["status"] == "ok", "train: %s" % reply["content"])
    check("execute_result" not in types(msgs), "train{} chart shown once: %s" % types(msgs))


def test_iopub_order():
    msg_id = K.kc.execute('print("a")\nreturn 7')
    reply = reply_to(K.kc, msg_id)
    msgs = iopub_for(K.kc, msg_id)
    check(types(msgs) == ["busy", "execute_input", "stream", "execute_result", "idle"], "order: %s" % types(msgs))
    n = reply["content"]["execution_count"]
    check(msgs[1]["content"]["execution_count"] == n and msgs[3]["content"]["execution_count"] == n,
          "execution_count agrees")
    check(reply["header"]["date"] <= msgs[-1]["header"]["date"], "reply sent before idle")


def test_execution_count_increments():
    a, _ = execute(K.kc, "1")
    b, _ = execute(K.kc, "2")
    c, msgs = execute(K.kc, "3", silent=True)
    d, _ = execute(K.kc, "4")
    na, nb, nc, nd = (x["content"]["execution_count"] for x in (a, b, c, d))
    check(nb == na + 1 and nc == nb and nd == nb + 1, "counts %d %d %d %d" % (na, nb, nc, nd))
    check(types(msgs) == ["busy", "idle"], "silent publishes only status: %s" % types(msgs))


def test_error_has_traceback():
    reply, msgs = execute(K.kc, 'local function f() error("boom") end\nf()', stop_on_error=False)
    r = reply["content"]
    check(r["status"] == "error" and r["ename"] == "LuaError" and "boom" in r["evalue"], "reply: %s" % r)
    errs = [m["content"] for m in msgs if m["msg_type"] == "error"]
    check(len(errs) == 1 and errs[0]["ename"] == "LuaError", "one iopub error")
    tb = "\n".join(errs[0]["traceback"])
    check("stack traceback" in tb and "in local 'f'" in tb and "boom" in errs[0]["traceback"][-1],
          "traceback names the frames, message last: %s" % errs[0]["traceback"])
    reply, _ = execute(K.kc, "x = = 1", stop_on_error=False)
    check(reply["content"]["ename"] == "SyntaxError", "syntax error: %s" % reply["content"]["ename"])
    reply, _ = execute(K.kc, "1+1")
    check(reply["content"]["status"] == "ok", "kernel fine after errors")


def test_stop_on_error_aborts_queued():
    slow_fail = "local t = os.clock() while os.clock() - t < 0.3 do end error('late boom')"
    a = K.kc.execute(slow_fail)
    b = K.kc.execute("return 42")
    ra, rb = reply_to(K.kc, a), reply_to(K.kc, b)
    check(ra["content"]["status"] == "error", "first fails")
    check(rb["content"]["status"] == "aborted", "queued one aborted: %s" % rb["content"])
    iopub_for(K.kc, a)
    mb = iopub_for(K.kc, b)
    check(types(mb) == ["busy", "idle"], "aborted request publishes no execute_input: %s" % types(mb))
    reply, msgs = execute(K.kc, "return 43")
    check(result_data(msgs)["text/plain"] == "43", "later requests run")
    # with stop_on_error=False nothing is aborted
    a = K.kc.execute(slow_fail, stop_on_error=False)
    b = K.kc.execute("return 44")
    check(reply_to(K.kc, a)["content"]["status"] == "error", "fails")
    check(reply_to(K.kc, b)["content"]["status"] == "ok", "not aborted without stop_on_error")
    iopub_for(K.kc, a)
    iopub_for(K.kc, b)


def test_complete_in_code_points():
    code = 'x = "héllo → 😀" .. string.fo'
    r = reply_to(K.kc, K.kc.complete(code, len(code)))["content"]
    check(r["status"] == "ok" and "format" in r["matches"], "matches: %s" % r["matches"])
    check(r["cursor_end"] == len(code) and r["cursor_start"] == len(code) - 2,
          "cursor %d..%d, expected %d..%d" % (r["cursor_start"], r["cursor_end"], len(code) - 2, len(code)))
    # cursor in the middle of a line with non-ASCII text before it
    code = 'é = 1; ge ; print("→")'
    r = reply_to(K.kc, K.kc.complete(code, 9))["content"]
    check("gen" in r["matches"] and r["cursor_start"] == 7 and r["cursor_end"] == 9, "mid-line: %s" % r)
    r = reply_to(K.kc, K.kc.complete("zzqq", 4))["content"]
    check(r["matches"] == [] and r["cursor_start"] == 4, "no match: %s" % r)


def test_inspect():
    r = reply_to(K.kc, K.kc.inspect("x = gen", 6))["content"]
    check(r["status"] == "ok" and r["found"] and "gen(prompt" in r["data"]["text/plain"], "gen: %s" % r)
    r = reply_to(K.kc, K.kc.inspect("string.format(1)", 9))["content"]
    check(r["found"] and "function" in r["data"]["text/plain"], "string.format: %s" % r)
    r = reply_to(K.kc, K.kc.inspect("display", 3))["content"]
    check(r["found"] and "update" in r["data"]["text/plain"], "display: %s" % r)
    code = 'gen("hello", {max_tokens = 4, '
    r = reply_to(K.kc, K.kc.inspect(code, len(code)))["content"]
    check(r["found"] and "gen(prompt" in r["data"]["text/plain"], "Shift-Tab inside gen(...): %s" % r)
    code = 'x = route("a b")'
    r = reply_to(K.kc, K.kc.inspect(code, len(code) - 3))["content"]
    check(r["found"] and "route(" in r["data"]["text/plain"], "Shift-Tab inside a string argument: %s" % r)
    r = reply_to(K.kc, K.kc.inspect("no_such_name", 3))["content"]
    check(r["status"] == "ok" and not r["found"] and r["data"] == {}, "unknown: %s" % r)


def test_is_complete():
    def st(code):
        return reply_to(K.kc, K.kc.is_complete(code))["content"]

    r = st("for i = 1, 3 do")
    check(r["status"] == "incomplete" and "indent" in r, "open block: %s" % r)
    check(st("x = [[ long")["status"] == "incomplete", "open long string")
    check(st("x = 1")["status"] == "complete", "statement")
    check(st("1 + 1")["status"] == "complete", "expression")
    check(st("x = = 1")["status"] == "invalid", "syntax error")


def test_history():
    execute(K.kc, "hist_a = 1")
    execute(K.kc, "hist_b = 2")
    r = reply_to(K.kc, K.kc.history(hist_access_type="tail", n=2, output=False, raw=True))["content"]
    codes = [h[2] for h in r["history"]]
    check(r["status"] == "ok" and codes == ["hist_a = 1", "hist_b = 2"], "tail: %s" % r["history"])
    r = reply_to(K.kc, K.kc.history(hist_access_type="search", pattern="hist_a*", n=5))["content"]
    check([h[2] for h in r["history"]] == ["hist_a = 1"], "search: %s" % r["history"])


def test_comm_info():
    r = reply_to(K.kc, K.kc.comm_info())["content"]
    check(r == {"status": "ok", "comms": {}}, "comm_info: %s" % r)


def test_display_and_update_in_place():
    code = ('local id = display(progress(0, 3, "steps"))\n'
            'for i = 1, 3 do display(progress(i, 3, "steps"), {id = id, update = true}) end\n'
            'display(info())')
    reply, msgs = execute(K.kc, code)
    shown = [m for m in msgs if m["msg_type"] in ("display_data", "update_display_data")]
    check([m["msg_type"] for m in shown] == ["display_data"] + ["update_display_data"] * 3 + ["display_data"],
          "display sequence: %s" % types(msgs))
    ids = {m["content"]["transient"]["display_id"] for m in shown[:4]}
    check(len(ids) == 1, "updates share the display id: %s" % ids)
    last = shown[3]["content"]["data"]
    check("<progress" in last["text/html"] and "3/3" in last["text/plain"], "progress renderings: %s" % last)
    check("<table" in shown[4]["content"]["data"]["text/html"], "display(info()) is a table")


def test_training_chart_updates_in_place():
    code = ('local r = train{steps = 3, text = string.rep("the cat sat on the mat. ", 40), seq_len = 16, batch = 2}\n'
            'train_reset()\nreturn #r.steps')
    reply, msgs = execute(K.kc, code)
    check(reply["content"]["status"] == "ok", "train failed: %s" % reply["content"])
    shown = [m for m in msgs if m["msg_type"] in ("display_data", "update_display_data")]
    check([m["msg_type"] for m in shown] == ["display_data"] + ["update_display_data"] * 2,
          "one chart, updated after each step: %s" % types(msgs))
    check(len({m["content"]["transient"]["display_id"] for m in shown}) == 1, "one display id")
    svg = shown[-1]["content"]["data"].get("image/svg+xml", "")
    check(svg.count("<polyline") == 4 and "maxvio" in svg, "loss/ce/mtp/maxvio curves: %s" % svg[:200])
    check(result_data(msgs) == {"text/plain": "3"}, "three steps")


def test_generation_streams_while_running():
    # enough work to last well past the first tokens even with the fast kernels
    code = 'for i = 1, 60 do gen("Once upon a time", {n = 200, seed = i}) end'
    msg_id = K.kc.execute(code)
    t0 = time.time()
    msgs = iopub_for(K.kc, msg_id, timeout=60)
    reply_to(K.kc, msg_id)
    streams = [m for m in msgs if m["msg_type"] == "stream"]
    check(len(streams) >= 3, "text arrives in several stream messages, got %d" % len(streams))
    first, idle = streams[0]["_t"] - t0, msgs[-1]["_t"] - t0
    check(idle - first > 0.1, "first tokens %.3fs before the end (at %.3fs)" % (idle - first, idle))


def _interrupt_latency(how):
    """Starts an endless generation, interrupts it; returns seconds until the reply."""
    msg_id = K.kc.execute('while true do gen("Once upon a time", {n = 200}) end')
    deadline, seen = time.time() + 3 * TIMEOUT, []  # a loaded machine may start slowly
    while True:  # wait until tokens flow
        check(time.time() < deadline, "generation did not start: %s" % seen)
        try:
            m = K.kc.get_iopub_msg(timeout=max(0.01, deadline - time.time()))
        except queue.Empty:
            continue
        if m["parent_header"].get("msg_id") != msg_id:
            continue
        seen.append((m["msg_type"], str(m["content"])[:200]))
        if m["msg_type"] == "stream":
            break
    time.sleep(0.1)
    t0 = time.time()
    if how == "signal":
        K.km.interrupt_kernel()
    else:
        r = control_request(K.kc, "interrupt_request")
        check(r["content"]["status"] == "ok", "interrupt_reply ok")
    reply = reply_to(K.kc, msg_id)
    dt = time.time() - t0
    iopub_for(K.kc, msg_id)
    r = reply["content"]
    check(r["status"] == "error" and r["ename"] == "Interrupted", "interrupted reply: %s" % r)
    return dt


def test_interrupt_signal_mode():
    worst = max(_interrupt_latency("signal") for _ in range(3))
    measured["interrupt latency, SIGINT (worst of 3)"] = worst
    check(worst < LATENCY_LIMIT, "latency %.3fs" % worst)
    reply, msgs = execute(K.kc, "1+1")
    check(result_data(msgs)["text/plain"] == "2", "kernel answers after the interrupt")


def test_interrupt_message_mode():
    worst = max(_interrupt_latency("message") for _ in range(3))
    measured["interrupt latency, interrupt_request (worst of 3)"] = worst
    check(worst < LATENCY_LIMIT, "latency %.3fs" % worst)
    reply, msgs = execute(K.kc, "1+1")
    check(result_data(msgs)["text/plain"] == "2", "kernel answers after the interrupt")


def test_interrupt_while_idle_is_harmless():
    K.km.interrupt_kernel()
    time.sleep(0.2)
    reply, msgs = execute(K.kc, "1+1")
    check(reply["content"]["status"] == "ok", "a SIGINT while idle does not break the next cell")


def test_input_request():
    msg_id = K.kc.execute('name = input("Name? ")\nreturn "hello " .. name', allow_stdin=True)
    req = reply_to(K.kc, msg_id, channel="stdin")
    check(req["msg_type"] == "input_request" and req["content"]["prompt"] == "Name? ", "input_request: %s" % req)
    K.kc.input("bob ☃")
    reply = reply_to(K.kc, msg_id)
    msgs = iopub_for(K.kc, msg_id)
    check(reply["content"]["status"] == "ok", "reply ok")
    check(result_data(msgs)["text/plain"] == "hello bob ☃", "value: %s" % result_data(msgs))
    reply, _ = execute(K.kc, 'input("x")', allow_stdin=False, stop_on_error=False)
    check(reply["content"]["status"] == "error" and "allow_stdin" in reply["content"]["evalue"],
          "allow_stdin=false fails at once: %s" % reply["content"])
    # an interrupt while waiting for input ends the cell
    msg_id = K.kc.execute('input("wait: ")', allow_stdin=True)
    reply_to(K.kc, msg_id, channel="stdin")
    K.km.interrupt_kernel()
    check(reply_to(K.kc, msg_id)["content"]["ename"] == "Interrupted", "interrupted input")


def test_badly_signed_message_dropped():
    info, key = conn_info(K)
    ctx = zmq.Context.instance()
    s = raw_dealer(ctx, info, "shell_port")
    try:
        frames, bad_id = raw_frames(key, "execute_request", {"code": "pwned = 1", "silent": False},
                                    sig=b"0" * 64)
        s.send_multipart(frames)
        frames2, unsigned_id = raw_frames(key, "execute_request", {"code": "pwned = 2"}, sig=b"")
        s.send_multipart(frames2)
        check(s.poll(600) == 0, "no reply to a forged message")
        check(quiet_for(K.kc, bad_id, 0.2) and quiet_for(K.kc, unsigned_id, 0.1), "no busy/idle for it")
        # the same socket with a correct signature is answered: the test itself is sound
        good, good_id = raw_frames(key, "kernel_info_request", {})
        s.send_multipart(good)
        check(s.poll(TIMEOUT * 1000), "signed message answered")
        reply = s.recv_multipart()
        check(json.loads(reply[3])["msg_id"] == good_id, "reply to the signed request")
        # a replay of that exact message is dropped
        s.send_multipart(good)
        check(s.poll(500) == 0, "replayed message dropped")
    finally:
        s.close()
    reply, msgs = execute(K.kc, "return pwned")
    check(result_data(msgs)["text/plain"] == "nil", "forged code never ran")


def test_garbage_does_not_kill_kernel():
    info, key = conn_info(K)
    ctx = zmq.Context.instance()
    s = raw_dealer(ctx, info, "shell_port")
    c = raw_dealer(ctx, info, "control_port")
    try:
        good, _ = raw_frames(key, "execute_request", {"code": "1"})
        garbage = [
            [b"\xff"],
            [b"<IDS|MSG>"],
            [b"<IDS|MSG>", b"sig"],
            good[:4],
            good[:-1],
            [b"<IDS|MSG>", good[1], b"{not json", b"{}", b"{}", b"{}"],
            [b"x"] * 300,
            [b"<IDS|MSG>", b"", b"", b"", b"", b""],
        ]
        signed_bad = []
        for parts in ([b"[1,2]", b"{}", b"{}", b"{}"],
                      [b'{"msg_type": 5, "msg_id": "a"}', b"{}", b"{}", b"{}"],
                      [b'{"msg_type": "execute_request", "msg_id": "a"}', b"{}", b"{}", b'{"code": 5}'],
                      [b'{"msg_type": "\xff", "msg_id": "a"}', b"{}", b"{}", b"{}"]):
            sig = hmac.new(key, b"".join(parts), hashlib.sha256).hexdigest().encode()
            signed_bad.append([b"<IDS|MSG>", sig] + parts)
        for g in garbage + signed_bad:
            s.send_multipart(g)
            c.send_multipart(g)
        time.sleep(0.3)
        # the signed execute with code = 5 is valid JSON: it runs with the default code ""
        while s.poll(200):
            s.recv_multipart()
    finally:
        s.close()
        c.close()
    check(K.km.is_alive(), "kernel process alive")
    reply, msgs = execute(K.kc, "return 5 * 5")
    check(result_data(msgs)["text/plain"] == "25", "kernel still works")
    check(K.kc.is_alive(), "heartbeat answers")


def test_heartbeat_and_control_while_busy():
    info, _ = conn_info(K)
    ctx = zmq.Context.instance()
    hb = ctx.socket(zmq.REQ)
    hb.setsockopt(zmq.LINGER, 0)
    hb.connect("tcp://%s:%d" % (info["ip"], info["hb_port"]))
    try:
        msg_id = K.kc.execute("local t = os.clock() while os.clock() - t < 1.0 do end return 1")
        time.sleep(0.2)
        t0 = time.time()
        hb.send(b"ping")
        check(hb.poll(500), "heartbeat answers while a cell runs")
        check(hb.recv() == b"ping", "echo")
        hb_dt = time.time() - t0
        t0 = time.time()
        r = control_request(K.kc, "kernel_info_request")
        ctl_dt = time.time() - t0
        check(r["content"]["status"] == "ok", "control answers while a cell runs")
        reply = reply_to(K.kc, msg_id)
        check(time.time() - t0 > 0.3, "the cell was still running when control answered")
        check(reply["content"]["status"] == "ok", "the cell finished")
        iopub_for(K.kc, msg_id)
        measured["heartbeat echo while busy"] = hb_dt
        measured["control kernel_info while busy"] = ctl_dt
    finally:
        hb.close()


# ------------------------------------------------------------------ tests with their own kernel


def test_shutdown_with_restart():
    k = Kernel()
    try:
        reply, _ = execute(k.kc, "restart_marker = 1")
        session_before = reply["header"]["session"]
        pid_before = k.km.provisioner.process.pid
        k.km.restart_kernel(now=False)
        k.kc.wait_for_ready(timeout=30)
        reply, msgs = execute(k.kc, "return restart_marker")
        check(reply["header"]["session"] != session_before, "a new session after restart")
        check(k.km.provisioner.process.pid != pid_before, "a new process")
        check(result_data(msgs)["text/plain"] == "nil", "fresh state")
        check(reply["content"]["execution_count"] == 1, "count starts over")
        # shutdown_request with restart=true is answered with the flag and the process exits
        msg = k.kc.session.msg("shutdown_request", {"restart": True})
        k.kc.control_channel.send(msg)
        r = k.kc._recv_reply(msg["header"]["msg_id"], timeout=TIMEOUT, channel="control")
        check(r["content"] == {"status": "ok", "restart": True}, "shutdown_reply: %s" % r["content"])
        t0 = time.time()
        while k.km.is_alive() and time.time() - t0 < 3:
            time.sleep(0.02)
        check(not k.km.is_alive(), "process exits after shutdown_request")
        measured["exit after shutdown_request"] = time.time() - t0
    finally:
        k.stop()


def test_clean_shutdown_by_manager():
    k = Kernel()
    k.kc.stop_channels()
    t0 = time.time()
    k.km.shutdown_kernel(now=False)  # interrupt, then shutdown_request, then wait
    dt = time.time() - t0
    measured["KernelManager.shutdown_kernel"] = dt
    check(dt < 2.0, "clean shutdown (no SIGTERM/SIGKILL) took %.2fs" % dt)


def test_empty_key_means_no_signing():
    km = jupyter_client.KernelManager(kernel_name="dsv3")
    km.session.key = b""
    km.start_kernel()
    kc = km.client()
    try:
        kc.start_channels()
        kc.wait_for_ready(timeout=30)
        check(km.get_connection_info()["key"] in (b"", ""), "connection file has an empty key")
        reply, msgs = execute(kc, "return 6 * 7")
        check(result_data(msgs)["text/plain"] == "42", "unsigned messages run when the key is empty")
        check(reply["header"] and True, "reply parsed by an unsigned session")
    finally:
        kc.stop_channels()
        km.shutdown_kernel()


def test_message_mode_kernelspec():
    r = subprocess.run([DSV3, "kernel", "install", "--prefix", TMP, "--kernel", KERNEL, "--name", "dsv3-msg",
                        "--interrupt-mode", "message"], capture_output=True, text=True)
    check(r.returncode == 0, "install --interrupt-mode message: %s" % r.stderr)
    k = Kernel("dsv3-msg")
    try:
        check(k.km.kernel_spec.interrupt_mode == "message", "spec says message")
        msg_id = k.kc.execute('load(os.getenv("DSV3_MODEL")) while true do gen("x", {n = 50}) end')
        time.sleep(0.3)
        t0 = time.time()
        k.km.interrupt_kernel()  # sends interrupt_request on control
        reply = reply_to(k.kc, msg_id)
        measured["interrupt latency, KernelManager in message mode"] = time.time() - t0
        check(reply["content"].get("ename") == "Interrupted", "interrupted: %s" % reply["content"])
    finally:
        k.stop()


def test_stderr_reaches_the_notebook_in_order():
    """io.stderr, Lua's C-level warnings and a child process's stderr become stderr stream
    messages, in the order of the writes among stdout's; none of it reaches the kernel's own
    stderr (its terminal)."""
    log = open(os.path.join(TMP, "kernel-stderr.log"), "w+")
    km = jupyter_client.KernelManager(kernel_name="dsv3")
    km.start_kernel(stderr=log)
    kc = km.client()
    try:
        kc.start_channels()
        kc.wait_for_ready(timeout=30)
        code = ('print("a") io.stderr:write("oops\\n") print("b") warn("@on") warn("careful")\n'
                'io.write("c\\n") os.execute("echo child >&2") print("d")')
        reply, msgs = execute(kc, code)
        check(reply["content"]["status"] == "ok", "ran: %s" % reply["content"])
        parts = [(m["content"]["name"], m["content"]["text"]) for m in msgs if m["msg_type"] == "stream"]
        check(parts == [("stdout", "a\n"), ("stderr", "oops\n"), ("stdout", "b\n"),
                        ("stderr", "Lua warning: careful\n"), ("stdout", "c\n"), ("stderr", "child\n"),
                        ("stdout", "d\n")], "streams in order: %s" % parts)
        reply, msgs = execute(kc, 'io.stderr:write("last words")')
        parts = [(m["content"]["name"], m["content"]["text"]) for m in msgs if m["msg_type"] == "stream"]
        check(parts == [("stderr", "last words")], "stderr at the end of a cell: %s" % parts)
        check(not [m for m in msgs if m["msg_type"] == "execute_result"], "io.stderr:write shows no file")
    finally:
        kc.stop_channels()
        km.shutdown_kernel()
    log.seek(0)
    text = log.read()
    check("oops" not in text and "careful" not in text and "child" not in text,
          "nothing of a cell on the kernel's stderr: %r" % text[-500:])


def test_kernelspec_and_logos():
    d = os.path.join(TMP, "share", "jupyter", "kernels", "dsv3")
    spec = json.load(open(os.path.join(d, "kernel.json")))
    check(os.path.isabs(spec["argv"][0]) and spec["argv"][1:] == ["-f", "{connection_file}"], "argv")
    check(spec["language"] == "lua" and spec["interrupt_mode"] == "signal" and spec["display_name"], "fields")
    for size in (32, 64):
        png = open(os.path.join(d, "logo-%dx%d.png" % (size, size)), "rb").read()
        check(png[:8] == b"\x89PNG\r\n\x1a\n", "PNG signature")
        w, h = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        check((w, h) == (size, size), "logo size %dx%d" % (w, h))
    if shutil.which("jupyter"):
        out = subprocess.run(["jupyter", "kernelspec", "list", "--json"], capture_output=True, text=True,
                             timeout=30).stdout
        check("dsv3" in json.loads(out)["kernelspecs"], "jupyter kernelspec list shows dsv3")


def test_jupyter_console():
    if not shutil.which("jupyter-console"):
        return "skipped (no jupyter-console)"
    p = subprocess.run(["jupyter-console", "--kernel", "dsv3", "--simple-prompt", "--no-confirm-exit"],
                       input="print('from console')\n6*7\n", capture_output=True, text=True, timeout=20)
    check("from console" in p.stdout and "42" in p.stdout, "console output: %r %r" % (p.stdout[-500:], p.stderr[-500:]))


def test_nbclient_runs_tour():
    import nbclient
    import nbformat
    nb = nbformat.read(os.path.join(REPO, "examples", "tour.ipynb"), as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="dsv3", timeout=60, startup_timeout=30,
                                     resources={"metadata": {"path": os.path.join(REPO, "examples")}})
    client.execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    check(not errors, "errors: %s" % errors)
    check(all(c.outputs for c in code), "every code cell has output")
    kinds = {o.output_type for c in code for o in c.outputs}
    check({"stream", "execute_result", "display_data"} <= kinds, "output kinds %s" % kinds)
    html = [o for c in code for o in c.outputs if "text/html" in o.get("data", {})]
    check(len(html) >= 4, "HTML tables in the notebook")
    check(nb.metadata.language_info.name == "lua", "language_info copied from kernel_info")
    progress = [o for c in code for o in c.outputs if o.output_type == "display_data"]
    check(progress and "4/4" in progress[-1]["data"]["text/plain"], "progress updated in place")


def test_nbclient_runs_grpo():
    """examples/grpo.ipynb on the tiny model, 2 steps: the live plot is one display updated in
    place (its last state shows every step), and the run value renders as SVG."""
    import nbclient
    import nbformat
    nb = nbformat.read(os.path.join(REPO, "examples", "grpo.ipynb"), as_version=4)
    os.environ["DSV3_GRPO_STEPS"] = "2"
    try:
        client = nbclient.NotebookClient(nb, kernel_name="dsv3", timeout=120, startup_timeout=30,
                                         resources={"metadata": {"path": os.path.join(REPO, "examples")}})
        client.execute()
    finally:
        del os.environ["DSV3_GRPO_STEPS"]
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    check(not errors, "errors: %s" % errors)
    run_cell = [c for c in code if "grpo{task" in c.source][0]
    plots = [o for o in run_cell.outputs if o.output_type == "display_data"]
    check(len(plots) == 1, "one live plot, got %d displays" % len(plots))
    svg = plots[0]["data"].get("image/svg+xml", "")
    check("step 1..2" in svg and svg.count("<polyline") == 3, "the plot shows both steps: %r" % svg[-200:])
    lines = "".join(o.get("text", "") for o in run_cell.outputs if o.output_type == "stream")
    check(lines.count("step ") >= 2 and "reward" in lines, "step lines: %r" % lines)
    shown = [o for c in code for o in c.outputs if o.output_type == "execute_result"
             and "image/svg+xml" in o.get("data", {}) and "GRPO" in o["data"]["image/svg+xml"]]
    check(len(shown) == 1, "the run value renders as SVG where no live chart showed it (%d)" % len(shown))
    last = code[-2]  # r2 = grpo{...} return r2: its live chart, not the chart again as Out
    kinds = [o.output_type for o in last.outputs if o.output_type != "stream"]
    check(kinds == ["display_data"], "r2's chart once: %s" % kinds)


def run_notebook(path, timeout=120):
    """Executes the notebook at path as Jupyter does (the kernel's working directory is the
    notebook's folder); returns it with its outputs."""
    import nbclient
    import nbformat
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="dsv3", timeout=timeout, startup_timeout=30,
                                     resources={"metadata": {"path": os.path.dirname(path)}})
    client.execute()
    return nb


def bad_outputs(nb):
    """Error outputs and stderr text of every code cell, as (cell source, output) pairs."""
    return [(c.source[:60], o) for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == "error" or (o.output_type == "stream" and o.name == "stderr")]


def test_every_notebook_runs_from_its_folder_on_the_demo_model():
    """Every examples/*.ipynb, as Jupyter runs it, with DSV3_MODEL unset: load() finds the
    bundled demo model from the notebook's folder; no cell has an error or stderr output."""
    env = {k: os.environ.pop(k, None) for k in ("DSV3_MODEL",)}
    os.environ["DSV3_GRPO_STEPS"] = "2"
    try:
        books = sorted(f for f in os.listdir(os.path.join(REPO, "examples")) if f.endswith(".ipynb"))
        check(len(books) >= 3, "notebooks found: %s" % books)
        for name in books:
            nb = run_notebook(os.path.join(REPO, "examples", name))
            bad = bad_outputs(nb)
            check(not bad, "%s: %s" % (name, bad[:3]))
            shown = "".join(json.dumps(o.get("data", {})) + o.get("text", "")
                            for c in nb.cells if c.cell_type == "code" for o in c.outputs)
            check("examples/demo" in shown or name == "grpo.ipynb", "%s used the demo model" % name)
    finally:
        del os.environ["DSV3_GRPO_STEPS"]
        for k, v in env.items():
            if v is not None:
                os.environ[k] = v


def test_every_example_script_runs_from_root_and_from_examples():
    """Every examples/*.lua run as `build/dsv3 run examples/X.lua` from the repository root and
    as `dsv3 run X.lua` from examples/, on the default model: exit 0, nothing on stderr."""
    env = dict(os.environ)
    env.pop("DSV3_MODEL", None)
    scripts = sorted(f for f in os.listdir(os.path.join(REPO, "examples")) if f.endswith(".lua"))
    check(len(scripts) >= 3, "scripts found: %s" % scripts)
    for name in scripts:
        for cwd, path in ((REPO, os.path.join("examples", name)), (os.path.join(REPO, "examples"), name)):
            p = subprocess.run([DSV3, "run", path], cwd=cwd, env=env, capture_output=True, text=True,
                               timeout=300)
            check(p.returncode == 0 and p.stderr == "",
                  "%s from %s: exit %d, stderr %r" % (name, cwd, p.returncode, p.stderr[-500:]))
            check("examples/demo" in p.stdout, "%s from %s: the demo model" % (name, cwd))


# ------------------------------------------------------------------ runner

SHARED = [
    test_kernel_info_on_shell_and_control, test_load_model, test_expression_gives_execute_result,
    test_last_expression_after_statements_is_shown, test_plain_tables_render_as_tables,
    test_print_goes_to_stream, test_io_write_and_read_use_the_notebook, test_probe_values_render_as_svg,
    test_figures_are_readable, test_display_ids_are_unique_per_run, test_outputs_are_not_shown_twice,
    test_iopub_order, test_execution_count_increments, test_error_has_traceback,
    test_stop_on_error_aborts_queued, test_complete_in_code_points, test_inspect, test_is_complete,
    test_history, test_comm_info, test_display_and_update_in_place, test_training_chart_updates_in_place,
    test_generation_streams_while_running,
    test_interrupt_signal_mode, test_interrupt_message_mode, test_interrupt_while_idle_is_harmless,
    test_input_request, test_badly_signed_message_dropped, test_garbage_does_not_kill_kernel,
    test_heartbeat_and_control_while_busy,
]
OWN = [test_kernelspec_and_logos, test_stderr_reaches_the_notebook_in_order, test_shutdown_with_restart, test_clean_shutdown_by_manager,
       test_empty_key_means_no_signing, test_message_mode_kernelspec,
       test_jupyter_console, test_nbclient_runs_tour, test_nbclient_runs_grpo,
       test_every_notebook_runs_from_its_folder_on_the_demo_model,
       test_every_example_script_runs_from_root_and_from_examples]


def run(fn, counts):
    name = fn.__name__
    if ONLY and ONLY not in name and fn is not test_load_model:
        return
    t0 = time.time()
    try:
        note = fn()
        print("%s PASS (%.2fs)%s" % (name, time.time() - t0, " " + note if note else ""), flush=True)
        counts[0] += 1
    except Exception as e:  # a failed check or a client error: report and go on
        print("%s FAIL (%.2fs): %s: %s" % (name, time.time() - t0, type(e).__name__, e), flush=True)
        counts[1] += 1


def main():
    global K
    counts = [0, 0]
    r = subprocess.run([DSV3, "kernel", "install", "--prefix", TMP, "--kernel", KERNEL],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print("dsv3 kernel install failed: %s" % r.stderr)
        return 1
    try:
        K = Kernel()
        for fn in SHARED:
            run(fn, counts)
    finally:
        if K:
            K.stop()
    for fn in OWN:
        run(fn, counts)
    for k, v in measured.items():
        print("measured: %s = %.1f ms" % (k, 1000 * v))
    shutil.rmtree(TMP, ignore_errors=True)
    print("%d passed, %d failed" % (counts[0], counts[1]))
    return 1 if counts[1] else 0


if __name__ == "__main__":
    sys.exit(main())
