#!/usr/bin/env bash
# The main job: set up, build, make the demo model if needed, and start the REPL on it.
set -eu
cd "$(dirname "$0")/.."
[ -n "${DSV3_NO_SETUP:-}" ] || bash scripts/setup.sh
bash scripts/build.sh build
[ -f models/tiny/tokenizer.json ] || /usr/bin/python3 scripts/gen_model.py models/tiny --quiet
exec build/dsv3 models/tiny "$@"
