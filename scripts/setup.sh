#!/usr/bin/env bash
# Installs what dsv3 needs to build and test on Debian 12 (as root; uses sudo otherwise).
# Idempotent: skips apt when every package is already installed.
set -eu
pkgs=(build-essential cmake pkg-config libcjson-dev libpcre2-dev liblua5.4-dev libreadline-dev python3-numpy python3-pexpect
      python3-dev python3-ipykernel
      clang libclang-rt-14-dev nodejs npm libzmq3-dev libsodium-dev python3-zmq python3-jupyter-client
      python3-nbclient python3-nbformat python3-pytest python3-jupyter-kernel-test python3-jinja2 python3-matplotlib jupyter-client jupyter-console)
# python3-torch: tests/test_torch_train.sh (dsv3 train against PyTorch) and scripts/bench-train;
# large (about 800 MB installed, 75 s on the CI machine), so DSV3_NO_TORCH=1 leaves it out (the
# test then skips).
[ "${DSV3_NO_TORCH:-0}" = 1 ] || pkgs+=(python3-torch)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from elsewhere than Debian (already on PATH): don't fight it.
if command -v node >/dev/null && command -v npm >/dev/null; then
    tmp=(); for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || tmp+=("$p"); done
    missing=("${tmp[@]}")
fi
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
