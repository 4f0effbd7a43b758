"""Bound-constrained dual (models with inequalities): projected Newton against SciPy's L-BFGS-B.

For confidence-interval tomography (``problems.tomography_intervals``, informationally complete
Pauli strings, two inequalities each, worst-case fidelity objective) at several eps, both drivers
run with the default continuation; the table reports the status, optimizer iterations, dual
evaluations (one eigendecomposition each; operation counts, not timings, are the comparison),
the KKT residual ``||projected grad||_2`` and ``|Tr[H X_eps] - F_0|`` against the exact (SCS) value.

Usage:  python benchmarks/bounded_dual.py [--qubits 2 3] [--eps 1e-2 1e-3 1e-4 1e-5]
            [--out benchmarks/results/bounded_dual.md]
"""

from __future__ import annotations

import argparse
import os
import sys

import cvxqreg
from cvxqreg import problems
from cvxqreg.backend import blas_threads
from cvxqreg.solvers.regularized import DualSolver

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import write_report  # noqa: E402


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--qubits", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--eps", type=float, nargs="+", default=[1e-2, 1e-3, 1e-4, 1e-5])
    ap.add_argument("--shots", type=int, default=10_000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    lines = [
        "# Bound-constrained dual: projected Newton vs L-BFGS-B",
        "",
        f"Command: `python benchmarks/bounded_dual.py {' '.join(argv or sys.argv[1:])}`; "
        f"BLAS threads: {blas_threads()}. Operation counts (evaluations = eigendecompositions).",
        "",
        "| instance | m (ineq) | eps | optimizer | status | iterations | evaluations | "
        "||pg|| | energy - F_0 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for n in args.qubits:
        inst = problems.tomography_intervals(n, n_measurements=4**n - 1, shots=args.shots)
        L = cvxqreg.lower(inst.problem)
        exact = cvxqreg.solve_exact(L)
        for eps in args.eps:
            for opt in ("newton", "scipy"):
                r = DualSolver(optimizer=opt, backend="numpy")(L, eps)
                row = {
                    "instance": f"QTI n={n}",
                    "m": L.n_rows,
                    "ineq": int(L.inequality.sum()),
                    "eps": eps,
                    "optimizer": opt,
                    "status": r.status,
                    "iterations": r.iterations,
                    "evals": r.n_evals,
                    "pg": r.grad_norm,
                    "err": r.energy - exact.value,
                }
                rows.append(row)
                lines.append(
                    f"| {row['instance']} | {row['m']} ({row['ineq']}) | {eps:g} | {opt} | "
                    f"{r.status} | {r.iterations} | {r.n_evals} | {r.grad_norm:.1e} | "
                    f"{row['err']:.1e} |"
                )
    print(write_report(lines, args.out))
    return rows


if __name__ == "__main__":
    main()
