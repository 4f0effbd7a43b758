"""QWD solved as given (complex Hermitian) against solved in its real phase gauge
(``DualSolver(phase_gauge=...)``; docs/theory.md, 'Real data, and real data in a phase gauge').

For each number of Fock levels ``n`` (``D = n^2``) the table gives the time to find the gauge
(:func:`cvxqreg.face.coupling_gauge`, once per problem), one eigendecomposition of a dual
iterate in each arithmetic (the NumPy backend's ``eigh`` and its driver choice, best of
``--repeats``), and one default solve (Newton-CG, continuation, von Neumann, tol 1e-6) at
``--eps`` each way from a fresh lowering: status, Newton iterations, dual value, wall seconds,
and the ratio. ``--eigh-levels`` adds rows with the gauge and the eigendecompositions only (no
solves: at ``n = 50`` those take 15-30 minutes, ``paper_tables_qwd50*.md``). Run on an idle
machine; both solves of a row run one after the other.

Usage:  python benchmarks/phase_gauge.py [--levels 12 19 24 32] [--eigh-levels 50] [--eps 1e-2]
            [--repeats 2] [--time-limit 900] [--out benchmarks/results/phase_gauge.md]
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
from cvxqreg.backend import blas_threads, get_backend
from cvxqreg.face import coupling_gauge

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import best_time, write_report  # noqa: E402


def _eigh_time(W: np.ndarray, repeats: int) -> float:
    """Best wall time of the NumPy backend's eigh (its driver choice) on ``W``."""
    be = get_backend("numpy")
    return best_time(lambda: be.eigh(W), repeats)


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--levels", type=int, nargs="+", default=[12, 19, 24, 32])
    ap.add_argument("--eigh-levels", type=int, nargs="*", default=[50])
    ap.add_argument("--eps", type=float, default=1e-2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--time-limit", type=float, default=900.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    cmd = " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        "# QWD: complex as given against real in its phase gauge\n",
        f"Command: `python benchmarks/phase_gauge.py {cmd}`  ",
        f"Machine: {platform.machine()} {platform.system()}, Python "
        f"{platform.python_version()}, numpy {np.__version__}, BLAS threads "
        f"{blas_threads()}; default DualSolver (NumPy), eps = {args.eps:g}, tol 1e-6, "
        f"time limit {args.time_limit:g} s per solve.\n",
        "| n | D | find gauge [s] | eigh complex [s] | eigh real [s] | gauged: status | it. | "
        "dual value | wall [s] | as given: status | it. | dual value | wall [s] | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for n in list(args.levels) + list(args.eigh_levels):
        lp = cvxqreg.lower(problems.wasserstein(n).problem)
        t0 = time.perf_counter()
        gauge = coupling_gauge(lp)
        t_gauge = time.perf_counter() - t0
        if gauge is None:
            raise SystemExit(f"QWD n = {n}: no phase gauge found")
        alpha = np.random.default_rng(0).standard_normal(lp.n_rows)
        W = np.asarray(lp.A.adjoint(alpha)) - np.asarray(lp.H)
        W = 0.5 * (W + W.conj().T)
        t_c, t_r = _eigh_time(W, args.repeats), _eigh_time(gauge.restrict(W).real, args.repeats)
        if n not in args.levels:
            row = f"| {n} | {n * n} | {t_gauge:.3f} | {t_c:.3g} | {t_r:.3g} |" + " - |" * 9
            print(row, flush=True)
            lines.append(row)
            continue
        cells = []
        for on in (True, False):
            prob = cvxqreg.lower(problems.wasserstein(n).problem)  # afresh: no shared caches
            solver = cvxqreg.DualSolver(backend="numpy", phase_gauge=on, time_limit=args.time_limit)
            w0 = time.perf_counter()
            r = solver(prob, args.eps)
            wall = time.perf_counter() - w0
            cells.append((r.status, r.iterations, r.dual_value, wall))
        (s1, i1, d1, w1), (s2, i2, d2, w2) = cells
        row = (
            f"| {n} | {n * n} | {t_gauge:.3f} | {t_c:.3g} | {t_r:.3g} | {s1} | {i1} | {d1:.10g} | "
            f"{w1:.2f} | {s2} | {i2} | {d2:.10g} | {w2:.2f} | {w2 / w1:.2f} |"
        )
        print(row, flush=True)
        lines.append(row)
    return write_report(lines, args.out)


if __name__ == "__main__":
    main()
