"""Which optimizer should be the default?  Newton + continuation against L-BFGS, one run.

For each instance, regularizer and eps: status, iterations and time of
``DualSolver(optimizer="lbfgs", continuation=False)`` (the paper's method with our line search),
of Newton-CG with plain continuation (``hessian="cg", regularization=0, predictor=False``: the
default before the regularized Newton), and of the default ``DualSolver()`` (regularized Newton,
dense Hessian where it fits, continuation with the secant predictor); tol 1e-6, time limit per
solve as given.

Usage:  python benchmarks/optimizers.py [--instances QWD8 QT3-6 IM3] [--eps 1 1e-2 1e-4]
            [--time-limit 60] [--out benchmarks/results/optimizers.md]
"""

from __future__ import annotations

import argparse
import platform
import sys
import warnings

import numpy as np

import cvxqreg
from cvxqreg import DualSolver, problems

INSTANCES = {
    "QWD8": lambda: problems.wasserstein(8),
    "QWD10": lambda: problems.wasserstein(10),
    "QWD15": lambda: problems.wasserstein(15),
    "QT3-6": lambda: problems.tomography("QT3", n_qubits=6),
    "IM3": lambda: problems.ising(3),
    "QWD": lambda: problems.wasserstein(5),
    "IM": lambda: problems.ising(2),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--instances", nargs="+", default=["QWD8", "QT3-6", "IM3"])
    ap.add_argument("--regularizers", nargs="+", default=["von_neumann", "quadratic"])
    ap.add_argument("--eps", type=float, nargs="+", default=[1.0, 1e-2, 1e-4])
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    configs = {
        "L-BFGS": dict(optimizer="lbfgs", continuation=False),
        "Newton-CG+continuation (previous default)": dict(
            hessian="cg", regularization=0.0, predictor=False
        ),
        "default": dict(),
    }
    lines = [
        "# Optimizers compared\n",
        "Command: `python benchmarks/optimizers.py "
        + " ".join(sys.argv[1:] if argv is None else argv)
        + "`  ",
        f"Machine: {platform.machine()}, numpy {np.__version__}; tol 1e-6, time limit "
        f"{args.time_limit:g} s per solve\n",
        "| instance | D | reg | eps | "
        + " | ".join(f"{c}: status, iters, time [s]" for c in configs)
        + " |",
        "|---|---|---|---|" + "---|" * len(configs),
    ]
    print("\n".join(lines), flush=True)
    for name in args.instances:
        lp = cvxqreg.lower(INSTANCES[name]().problem)
        for reg in args.regularizers:
            for eps in args.eps:
                cells = []
                for kw in configs.values():
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        r = DualSolver(reg, time_limit=args.time_limit, **kw)(
                            lp, eps, return_state=False
                        )
                    cells.append(f"{r.status}, {r.iterations}, {r.time:.2f}")
                lines.append(f"| {name} | {lp.dim} | {reg} | {eps:g} | " + " | ".join(cells) + " |")
                print(lines[-1], flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
