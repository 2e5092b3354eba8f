#!/usr/bin/env bash
# The main job: set up, build, and start the REPL on the bundled demo model (examples/demo;
# a random tiny model is generated instead if the demo model is missing).
set -eu
cd "$(dirname "$0")/.."
[ -n "${DSV3_NO_SETUP:-}" ] || bash scripts/setup.sh
bash scripts/build.sh build
model=examples/demo
if [ ! -f "$model/config.json" ]; then
    model=models/tiny
    [ -f "$model/tokenizer.json" ] || /usr/bin/python3 scripts/gen_model.py "$model" --quiet
fi
exec build/dsv3 "$model" "$@"
