"""Time per solve and peak memory against the dimension D, with the log-log slope.

Tomography (QT3, n qubits, D = 2^n, 2D Pauli rows) and quantum Wasserstein (n Fock levels,
D = n^2, two marginals; every n up to 10, odd n above), default solver, eps and tol as given.
Peak memory is the largest ``tracemalloc`` reading during a second solve of a fresh lowering:
NumPy's arrays, not LAPACK's workspace inside the eigendecomposition (``--no-memory`` skips it).
The time is that of the first solve, untraced: tracing every allocation slowed the
Python-heavy solves at small D by 1.5-3x (QWD, D = 64: 0.65 s traced, 0.22 s untraced).
Lowering is done before the measurement. The slope is a least-squares fit of log(time) on
log(D).

Usage:  python benchmarks/scaling.py [--eps 1e-2] [--tol 1e-6] [--max-dim 1024]
            [--min-dim 32] [--families wasserstein] [--every-size] [--regularizer von_neumann]
            [--time-limit 300] [--backend numpy] [--out benchmarks/results/scaling.md]

``--families``, ``--min-dim``/``--max-dim`` choose a subset of cells; ``--time-limit`` caps each
solve (a capped cell is reported with its status and left out of the slope).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import tracemalloc

import numpy as np

import cvxqreg
from cvxqreg import DualSolver, problems
from cvxqreg.backend import blas_threads


def measure(make, solver, eps, memory=True):
    """``(result, seconds, peak bytes)``: a timed, untraced solve of ``make()``, then (with
    ``memory``) a traced solve of a fresh ``make()`` for the peak (``nan`` without)."""
    t0 = time.perf_counter()
    r = solver(make(), eps, return_state=False)
    dt = time.perf_counter() - t0
    peak = float("nan")
    if memory:
        lp = make()
        tracemalloc.start()
        solver(lp, eps, return_state=False)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return r, dt, peak


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--eps", type=float, default=1e-2)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--max-dim", type=int, default=256)
    ap.add_argument("--min-dim", type=int, default=1)
    ap.add_argument(
        "--every-size", action="store_true", help="Wasserstein: even n above 10 too (D = 1024)"
    )
    ap.add_argument("--families", nargs="+", default=["tomography", "wasserstein"])
    ap.add_argument(
        "--levels",
        type=int,
        nargs="+",
        default=None,
        help="Fock levels of the wasserstein family to run (default: every odd n above D = 100)",
    )
    ap.add_argument("--regularizer", default="von_neumann")
    ap.add_argument("--time-limit", type=float, default=None, help="seconds per solve")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--no-memory", action="store_true", help="skip the traced solve")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    families = {
        "tomography QT3": [
            (2**n, lambda n=n: problems.tomography("QT3", n_qubits=n)) for n in range(3, 11)
        ],
        "wasserstein": [(n * n, lambda n=n: problems.wasserstein(n)) for n in range(3, 33)],
    }
    families = {k: v for k, v in families.items() if k.split()[0] in args.families}
    solver = DualSolver(
        args.regularizer, tol=args.tol, time_limit=args.time_limit, backend=args.backend
    )
    lines = [
        "# Scaling with D\n",
        f"Command: `python benchmarks/scaling.py {' '.join(argv or sys.argv[1:])}`  ",
        f"Machine: {platform.machine()}, numpy {np.__version__}, backend {solver.backend.name}; "
        f"default solver ({solver.regularizer.name}); BLAS threads: {blas_threads()}\n",
        "| family | D | m | status | iterations | time [s] | peak memory [MB] |",
        "|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    slopes = []
    for name, sizes in families.items():
        dims, times = [], []
        for D, make in sizes:
            odd_only = (
                not args.every_size and name == "wasserstein" and int(D**0.5) % 2 == 0 and D > 100
            )
            if name == "wasserstein" and args.levels is not None:
                odd_only = int(round(D**0.5)) not in args.levels
            if D > args.max_dim or D < args.min_dim or odd_only:
                continue
            lp = cvxqreg.lower(make().problem)
            lowered = [lp]  # the first solve takes this lowering, the traced one a fresh one

            def fresh(make=make, lowered=lowered):
                return lowered.pop() if lowered else cvxqreg.lower(make().problem)

            r, dt, peak = measure(fresh, solver, args.eps, memory=not args.no_memory)
            if r.converged or r.status == "precision_limit":
                dims.append(D)
                times.append(dt)
            lines.append(
                f"| {name} | {D} | {lp.n_rows} | {r.status} | {r.iterations} | {dt:.3f} | "
                f"{peak / 2**20:.1f} |"
            )
            print(lines[-1], flush=True)
        if len(dims) >= 3:
            big = [i for i, d in enumerate(dims) if d >= 32] or list(range(len(dims)))
            s = np.polyfit(np.log([dims[i] for i in big]), np.log([times[i] for i in big]), 1)[0]
            slopes.append(f"{name}: log-log slope of time vs D (D >= 32) = {s:.2f}")
    lines.append("")
    lines += slopes
    print("\n".join(slopes))
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
