#!/usr/bin/env bash
# Self-checks of the numpy reference and the generator (FP8/BF16 encoding, file layout, routing,
# both attention formulations, sharding, causality) — the reference must itself be right.
/usr/bin/python3 -c 'import numpy' 2>/dev/null || { echo "skip: no numpy"; exit 77; }
exec /usr/bin/python3 tests/reference/selftest.py
