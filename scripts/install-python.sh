#!/usr/bin/env bash
# Installs the dsv3 Python module (build/python/dsv3.cpython-*.so) into the user site-packages
# of Debian's /usr/bin/python3, so that `import dsv3` works from any folder and in any Jupyter
# notebook with the standard Python kernel (docs/PYTHON.md).
#   bash scripts/install-python.sh [BUILD_DIR]          build (if needed) and install
#   bash scripts/install-python.sh --uninstall          remove it again
# $PYTHON picks another interpreter (it must be the one the module was built for);
# PYTHONUSERBASE moves the user site as usual. The module is copied: rebuild, then run this
# again. load() without a directory keeps opening this source tree's examples/demo.
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
site=$("$PY" -m site --user-site)
if [ "${1:-}" = --uninstall ]; then
    rm -f "$site"/dsv3.cpython-*.so "$site"/dsv3.*.so
    echo "removed dsv3 from $site"
    exit 0
fi
dir=${1:-build}
if ! ls "$dir"/python/dsv3.*.so >/dev/null 2>&1; then
    [ -f "$dir/CMakeCache.txt" ] || bash scripts/build.sh "$dir"
    cmake --build "$dir" -j"$(nproc)" --target dsv3_python
fi
so=$(ls "$dir"/python/dsv3.*.so 2>/dev/null | head -1)
[ -n "$so" ] || { echo "install-python: no $dir/python/dsv3.*.so (are python3-dev and python3-numpy installed? bash scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$site"
rm -f "$site"/dsv3.*.so
cp "$so" "$site/"
# check it from a folder outside the tree
(cd / && "$PY" -c 'import dsv3, sys; m = dsv3.load(); sys.stdout.write("dsv3 installed: %s\n" % dsv3.__file__)')
