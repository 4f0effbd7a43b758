"""One BLAS thread or all of them: wall time of default solves against D.

``Backend.threads_for`` runs host BLAS single-threaded below ``SMALL_DIM`` (cvxqreg/backend.py):
there the per-call wake-up of a multithreaded OpenBLAS costs more than the arithmetic. This script
measures where the crossover lies on this machine: each QWD instance (``n`` Fock levels,
``D = n^2``, von Neumann, eps = 1e-2, tol 1e-6) and each random bipartite transport instance of
``benchmarks/certify.py`` is solved with BLAS limited to one thread and with the machine's
default, ``SMALL_DIM`` lowered to 1 for the duration so that the setting applies at every size.
Best of ``--repeats`` runs each.

Usage:  python benchmarks/threads.py [--levels 10 12 14 16 18 20 23] [--repeats 2]
            [--out benchmarks/results/threads.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

import cvxqreg
from cvxqreg import backend as backend_module
from cvxqreg import problems
from cvxqreg.backend import blas_controller, blas_threads

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import write_report  # noqa: E402


def _time(lp, threads: int | None, repeats: int) -> tuple[float, str]:
    solver = cvxqreg.DualSolver(backend="numpy", tol=1e-6)
    best, status = float("inf"), ""
    for _ in range(repeats):
        if threads is None:
            t0 = time.perf_counter()
            r = solver(lp, 1e-2)
        else:
            with blas_controller().limit(limits=threads, user_api="blas"):
                t0 = time.perf_counter()
                r = solver(lp, 1e-2)
        best, status = min(best, time.perf_counter() - t0), r.status
    return best, status


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--levels", type=int, nargs="+", default=[10, 12, 14, 16, 18, 20, 23])
    ap.add_argument("--transport", type=int, nargs="*", default=[10, 12, 16])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    from certify import transport_model

    cases = [(f"QWD n = {n}", lambda n=n: problems.wasserstein(n).problem) for n in args.levels]
    cases += [(f"transport n = {n}", lambda n=n: transport_model(n)) for n in args.transport]
    lines = [
        "# One BLAS thread against the default\n",
        f"Command: `python benchmarks/threads.py {' '.join(argv or sys.argv[1:])}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}; BLAS "
        f"default: {blas_threads()}; von Neumann, eps = 1e-2, tol 1e-6, best of {args.repeats}\n",
        "| instance | D | status | 1 thread [s] | default threads [s] | default / 1 thread |",
        "|---|---|---|---|---|---|",
    ]
    saved = backend_module.SMALL_DIM
    backend_module.SMALL_DIM = 1  # threads_for never intervenes: the setting below holds
    try:
        for name, make in cases:
            lp = cvxqreg.lower(make())
            cvxqreg.DualSolver(backend="numpy", tol=1e-3)(lp, 1.0)  # warm the lazy caches
            one, st1 = _time(lp, 1, args.repeats)
            many, st2 = _time(lp, None, args.repeats)
            status = st1 if st1 == st2 else f"{st1} / {st2}"
            lines.append(
                f"| {name} | {lp.dim} | {status} | {one:.3f} | {many:.3f} | {many / one:.2f} |"
            )
            print(lines[-1], flush=True)
    finally:
        backend_module.SMALL_DIM = saved
    return write_report(lines, args.out)


if __name__ == "__main__":
    main()
