"""Does normalization elimination (docs/theory.md, 'Normalization elimination') help?
Same solver, same problems, with and
without eliminating the trace multiplier; iterations, oracle calls and time, in one run.

Usage:  python benchmarks/elimination.py [--eps 1 1e-1 1e-2] [--optimizer lbfgs|scipy|newton]
            [--out benchmarks/results/elimination.md]
"""

from __future__ import annotations

import argparse
import platform
import sys
import warnings

import numpy as np

import cvxqreg
from cvxqreg import DualSolver, problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--eps", type=float, nargs="+", default=[1.0, 1e-1, 1e-2])
    ap.add_argument("--optimizer", default="lbfgs")
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    insts = {
        "QT1 (n=4)": problems.tomography("QT1", n_qubits=4),
        "QT3 (n=4)": problems.tomography("QT3", n_qubits=4),
        "QWD (n=5)": problems.wasserstein(5),
        "IM (N=2)": problems.ising(2),
    }
    lines = [
        "# Normalization elimination on/off\n",
        f"Command: `python benchmarks/elimination.py {' '.join(argv or sys.argv[1:])}`  ",
        f"Machine: {platform.machine()}, numpy {np.__version__}; optimizer {args.optimizer}, "
        f"tol {args.tol:g}, max_iter 10000\n",
        "| instance | reg | eps | elim: status | iters | evals | time [s] | plain: status | iters "
        "| evals | time [s] | time ratio plain/elim |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines))
    for name, inst in insts.items():
        lp = cvxqreg.lower(inst.problem)
        for reg in ("von_neumann", "quadratic"):
            for eps in args.eps:
                cells = [name, reg, f"{eps:g}"]
                times = []
                for elim in (True, False):
                    s = DualSolver(reg, tol=args.tol, optimizer=args.optimizer, eliminate=elim)
                    with warnings.catch_warnings(), np.errstate(all="ignore"):
                        warnings.simplefilter("ignore")
                        r = s(lp, eps, return_state=False)
                    cells += [r.status, str(r.iterations), str(r.n_evals), f"{r.time:.3f}"]
                    times.append(r.time)
                cells.append(f"{times[1] / times[0]:.2f}")
                line = "| " + " | ".join(cells) + " |"
                print(line, flush=True)
                lines.append(line)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
