"""The dense low-rank Hessian against one low-rank Hessian-vector product, in time, next to the
estimate Newton uses to choose between them (``DualOracle.low_rank_dense_cost``).

For QWD with ``n`` Fock levels, solved in its phase gauge (real arithmetic, the rows without a
real part dropped from the matrix), at ``eps = 1e-2`` and a random dual point, times
``low_rank_hessian_matrix(ev, r)`` and one product of ``_low_rank_product(ev, r)`` for each
block size ``r`` (best of ``--repeats``), and prints their ratio (the matrix in products' time)
beside the estimate of ``low_rank_dense_cost`` at that ``r`` (``m`` rows in the update) and the
same formula with the ``k`` rows that are formed. Newton forms the matrix when the last step's
conjugate gradients took at least the estimate in products (docs/theory.md, 'The dense
low-rank Hessian and when Newton forms it').

Usage:  python benchmarks/dense_hessian_cost.py [--levels 16 24 32] [--ranks 16 48 128]
            [--regularizer quadratic] [--repeats 3] [--out benchmarks/results/dense_hessian_cost.md]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys

import numpy as np

import cvxqreg
from cvxqreg import problems
from cvxqreg.backend import blas_threads
from cvxqreg.face import coupling_gauge
from cvxqreg.regularizers import get_regularizer
from cvxqreg.solvers.dual import DualOracle

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import best_time, write_report  # noqa: E402


def _estimate(oracle: DualOracle, r: int, rows: int) -> float:
    """``low_rank_dense_cost``'s formula (real arithmetic) with ``rows`` rows in the update."""
    D = oracle.problem.dim
    nnz = oracle._row_entries()[0].size
    n_products = sum(mr.n for mr in oracle._marginal_rows())
    dense = 2.0 * n_products * r * D * D + 1.0 * rows * rows * r * D
    return dense / (10.0 * r * D * D + 2.0 * nnz)


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--levels", type=int, nargs="+", default=[16, 24, 32])
    ap.add_argument("--ranks", type=int, nargs="+", default=[16, 48, 128])
    ap.add_argument("--regularizer", default="quadratic")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    lines = [
        "# The dense low-rank Hessian against one low-rank product (QWD, phase gauge)\n",
        f"Command: `python benchmarks/dense_hessian_cost.py {' '.join(argv or sys.argv[1:])}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}; BLAS: "
        f"{blas_threads()}; best of {args.repeats}; eps = 1e-2, {args.regularizer}, a random "
        "dual point\n",
        "| n | D | m | k formed | r | product [ms] | matrix [ms] | matrix / product "
        "| estimate (m rows) | estimate (k rows) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    reg = get_regularizer(args.regularizer)
    for n in args.levels:
        face = coupling_gauge(cvxqreg.lower(problems.wasserstein(n).problem))
        P = face.problem
        oracle = DualOracle(P, 1e-2, reg, "numpy")
        if oracle._marginal_rows() is None or not oracle.real:
            raise RuntimeError("expected partial-trace rows in real arithmetic")
        rng = np.random.default_rng(0)
        ev = oracle.evaluate(rng.normal(size=P.n_rows))
        v = rng.normal(size=P.n_rows)
        k = oracle._entering_rows().size
        for r in args.ranks:
            if r > P.dim:
                continue
            product = oracle._low_rank_product(ev, r)
            tp = best_time(functools.partial(product, v), 5 * args.repeats)
            td = best_time(functools.partial(oracle.low_rank_hessian_matrix, ev, r), args.repeats)
            lines.append(
                f"| {n} | {P.dim} | {P.n_rows} | {k} | {r} | {tp * 1e3:.2f} | {td * 1e3:.1f} | "
                f"{td / tp:.0f} | {_estimate(oracle, r, P.n_rows):.0f} | "
                f"{_estimate(oracle, r, k):.0f} |"
            )
            print(lines[-1], flush=True)
    return write_report(lines, args.out)


if __name__ == "__main__":
    main()
