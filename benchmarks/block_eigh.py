"""Per-evaluation cost with several PSD variables: k blocks of size d against one of size k d.

A state-discrimination model with ``k`` POVM elements on ``C^d`` lowers to one block-diagonal
variable of size ``D = k d``. The dual oracle decomposes ``W = A*(alpha) - H`` block by block
(``LoweredProblem.blocks``); without the blocks it would decompose the whole ``D x D`` matrix.
Both oracles are timed on the same problem and the same ``alpha`` in one run (median of
``--repeats``); the flop ratio of the eigendecompositions is ``k^2``.

Usage:  python benchmarks/block_eigh.py [--cases 4x32 8x32 4x64] [--repeats 5]
            [--out benchmarks/results/block_eigh.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

import cvxqreg
from cvxqreg import problems
from cvxqreg.backend import blas_threads
from cvxqreg.regularizers import get_regularizer
from cvxqreg.solvers.dual import DualOracle

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import write_report  # noqa: E402


def timed(oracle, alpha, repeats):
    oracle.evaluate(alpha, want_state=False)  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        oracle.evaluate(alpha, want_state=False)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=["4x32", "8x32", "4x64", "8x64"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    reg = get_regularizer("von_neumann")
    lines = [
        "# Dual evaluation with k PSD blocks: per-block eigh vs one eigh of size k d",
        "",
        f"Command: `python benchmarks/block_eigh.py {' '.join(argv or sys.argv[1:])}`; "
        f"BLAS threads: {blas_threads()}; median of {args.repeats}. Timings from a shared, busy "
        "machine.",
        "",
        "| k | d | D | blocks (ms) | one eigh (ms) | speed-up | k^2 |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = []
    for case in args.cases:
        k, d = (int(x) for x in case.split("x"))
        inst = problems.state_discrimination(k, d, seed=0)
        L = cvxqreg.lower(inst.problem)
        flat = cvxqreg.LoweredProblem(H=L.H, A=L.A, q=L.q, offset=L.offset, sense=L.sense)
        alpha = np.random.default_rng(0).normal(size=L.n_rows) * 0.1
        tb = timed(DualOracle(L, 1e-2, reg, "numpy"), alpha, args.repeats)
        tf = timed(DualOracle(flat, 1e-2, reg, "numpy"), alpha, args.repeats)
        rows.append({"k": k, "d": d, "blocks": tb, "full": tf})
        lines.append(
            f"| {k} | {d} | {k * d} | {1e3 * tb:.2f} | {1e3 * tf:.2f} | {tf / tb:.1f} | {k * k} |"
        )
    print(write_report(lines, args.out))
    return rows


if __name__ == "__main__":
    main()
