"""Couplings with singular marginals, solved on their face against the full space.

The IM instances (:func:`cvxqreg.problems.ising`) couple the two reduced states of an Ising
eigenvector, whose Schmidt rank is far below ``2^N``: every feasible state lives on
``supp(rho) (x) supp(sigma)`` (docs/bounds.md, 'Singular marginals: the face of the couplings').
In the full space the dual optimum lies at infinity along the marginals' kernels; on the face it is
attained. Each row solves one instance with the default solver (``facial_reduction=True``) and
with ``facial_reduction=False``, both judged on the data as given: status, Newton iterations,
``||q - A(X)||``, the value, the certified bracket and the wall time.

Usage:  python benchmarks/face.py [--n 3 4 5] [--eps 1e-2 1e-6] [--regularizers von_neumann
            quadratic] [--tol 1e-6] [--time-limit 120] [--out benchmarks/results/face.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

import cvxqreg
from cvxqreg import problems
from cvxqreg.backend import blas_threads
from cvxqreg.face import coupling_face

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import write_report  # noqa: E402


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[3, 4, 5], help="qubits per side")
    ap.add_argument("--eps", type=float, nargs="+", default=[1e-2, 1e-6])
    ap.add_argument("--regularizers", nargs="+", default=["von_neumann", "quadratic"])
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--time-limit", type=float, default=120.0, help="seconds per solve")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    lines = [
        "# Singular marginals: the face against the full space\n",
        f"Command: `python benchmarks/face.py {' '.join(argv or sys.argv[1:])}`  ",
        f"Machine: {platform.machine()}, numpy {np.__version__}, cvxqreg {cvxqreg.__version__}, "
        f"backend numpy; BLAS threads: {blas_threads()}; tol {args.tol:g}, time limit "
        f"{args.time_limit:g} s per solve\n",
    ]
    rows = [
        "| instance | D | face | reg. | eps | solve | status | iters | ||q - A(X)|| | value | "
        "L | U | time [s] |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in args.n:
        lp = cvxqreg.lower(problems.ising(n).problem)
        face = coupling_face(lp)
        fdim = "-" if face is None else f"{face.problem.dim}"
        for reg in args.regularizers:
            for eps in args.eps:
                for on in (True, False):
                    solver = cvxqreg.DualSolver(
                        reg,
                        backend="numpy",
                        tol=args.tol,
                        time_limit=args.time_limit,
                        facial_reduction=on,
                    )
                    t0 = time.perf_counter()
                    r = solver(lp, eps)
                    dt = time.perf_counter() - t0
                    lo, hi = r.bracket
                    rows.append(
                        f"| IM N = {n} | {lp.dim} | {fdim} | {reg} | {eps:.0e} | "
                        f"{'face' if on else 'full space'} | {r.status} | {r.iterations} | "
                        f"{r.grad_norm:.1e} | {r.value:.9f} | {lo:.9f} | {hi:.6g} | {dt:.2f} |"
                    )
                    print(rows[-1], flush=True)
    note = (
        "'||q - A(X)||' is the gradient norm on the data as given (for the face solve: of the "
        "lifted state). L is rigorous for the data as given; U for the marginals with the "
        "eigenvalues below the face's cut set to zero (docs/bounds.md)."
    )
    return write_report([*lines, *rows, "", note], args.out)


if __name__ == "__main__":
    main()
