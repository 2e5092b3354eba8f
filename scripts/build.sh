#!/usr/bin/env bash
# Configures and builds dsv3 into build/ (Release) — or into $1 with extra cmake args after it.
set -eu
cd "$(dirname "$0")/.."
dir=${1:-build}; shift || true
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
