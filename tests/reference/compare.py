#!/usr/bin/python3
"""Compare two .npy arrays: relative max error against the reference B.

Usage:
  /usr/bin/python3 tests/reference/compare.py A.npy B.npy [--tol 1e-5] [--name LABEL]

Prints `LABEL: max|a-b|/max|b| = X` and exits 1 if the shapes differ, any value is
non-finite, or X > tol. (Two empty arrays of equal shape give X = 0.)
"""
import argparse
import sys

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b", help="reference")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--name", default=None)
    args = ap.parse_args(argv)
    label = args.name or "%s vs %s" % (args.a, args.b)
    a = np.load(args.a).astype(np.float64)
    b = np.load(args.b).astype(np.float64)
    if a.shape != b.shape:
        print("%s: shape mismatch %s vs %s (reference)" % (label, a.shape, b.shape))
        return 1
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        print("%s: non-finite values (a: %d, b: %d)"
              % (label, (~np.isfinite(a)).sum(), (~np.isfinite(b)).sum()))
        return 1
    if a.size == 0:
        x = 0.0
    else:
        den = np.abs(b).max()
        num = np.abs(a - b).max()
        x = 0.0 if num == 0 else (num / den if den > 0 else float("inf"))
    print("%s: max|a-b|/max|b| = %.3e" % (label, x))
    return 1 if x > args.tol else 0


if __name__ == "__main__":
    sys.exit(main())
