"""Call overhead at small D: SciPy's ``eigh`` and ``cho_factor``/``cho_solve`` against the same
LAPACK routines called through ``scipy.linalg.lapack`` directly (what cvxqreg does since this
benchmark), and the small paper tables' 120 cells solved both ways.

At D = 16 the decomposition itself takes tens of microseconds, so argument checking, the workspace
query and array-API dispatch in the high-level wrappers are a visible share of every Newton step
(one ``eigh`` per evaluation, one Cholesky per dense Newton step).

The whole-solve rows run the package as it is ("direct") and with the two high-level wrappers
patched back in ("wrappers", the code before this change), alternating, each ``--repeats`` times;
the table gives the smallest and the median CPU time (``time.process_time``) of the 120 cells,
which on a shared machine are steadier than wall time. Operation counts are equal both ways (the
same LAPACK routines; the table lists the Newton iterations of each).

Usage:  python benchmarks/small_overhead.py [--repeats 5]
            [--out benchmarks/results/small_overhead.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import timeit

import numpy as np
import scipy
import scipy.linalg

import cvxqreg
from cvxqreg import DualSolver, backend, problems
from cvxqreg.backend import blas_threads
from cvxqreg.solvers import newton

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import write_report  # noqa: E402

EPS = (1e4, 1e3, 1e1, 1e-2, 1e-6, 1e-9)
TOLS = (1e-3, 1e-6)


def _micro(f, number):
    return min(timeit.repeat(f, number=number, repeat=5)) / number * 1e6


def eigh_rows(rng, sizes):
    rows = []
    for D in sizes:
        for cplx in (False, True):
            A = rng.standard_normal((D, D))
            if cplx:
                A = A + 1j * rng.standard_normal((D, D))
            A = A + A.conj().T
            n = max(20, 20000 // D)
            old = _micro(
                lambda A=A: scipy.linalg.eigh(
                    A, overwrite_a=False, check_finite=False, driver="evd"
                ),
                n,
            )
            new = _micro(lambda A=A: backend._syevd(A, True), n)
            w0, V0 = scipy.linalg.eigh(A, driver="evd")
            w1, V1 = backend._syevd(A, True)
            err = float(np.max(np.abs(w0 - w1)) / np.max(np.abs(w0)))
            kind = "complex" if cplx else "real"
            rows.append(
                f"| eigh | {D} ({kind}) | {old:.1f} | {new:.1f} | {old / new:.2f} | {err:.1e} |"
            )
    return rows


def cholesky_rows(rng, sizes):
    rows = []
    for m in sizes:
        B = rng.standard_normal((m, m))
        H = B @ B.T + np.eye(m)
        b = rng.standard_normal(m)
        n = max(20, 5000 * 33 * 33 // (m * m))
        old = _micro(
            lambda H=H, b=b: scipy.linalg.cho_solve(
                scipy.linalg.cho_factor(H, check_finite=False), b
            ),
            n,
        )
        new = _micro(lambda H=H, b=b: newton._dense_step(H, b, 0.0), n)
        x0 = scipy.linalg.cho_solve(scipy.linalg.cho_factor(H), b)
        err = float(np.linalg.norm(newton._dense_step(H, b, 0.0) - x0) / np.linalg.norm(x0))
        rows.append(
            f"| Cholesky solve | m = {m} | {old:.1f} | {new:.1f} | {old / new:.2f} | {err:.1e} |"
        )
    return rows


def _old_syevd(a, vectors):
    if vectors:
        return scipy.linalg.eigh(a, overwrite_a=False, check_finite=False, driver="evd")
    return (scipy.linalg.eigh(a, eigvals_only=True, check_finite=False, driver="evd"),)


def _old_dense_step(Hm, b, mu):
    A = Hm + mu * np.eye(b.size) if mu > 0 else Hm
    try:
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(A, check_finite=False), b)
    except np.linalg.LinAlgError:
        return _new_dense_step(Hm, b, mu)


_new_syevd, _new_dense_step = backend._syevd, newton._dense_step


def grid(lps):
    """CPU seconds and total Newton iterations of the 120 small cells."""
    c0, its = time.process_time(), 0
    for lp in lps.values():
        for reg in ("von_neumann", "quadratic"):
            for tol in TOLS:
                solver = DualSolver(reg, tol=tol)
                for eps in EPS:
                    its += solver(lp, eps, return_state=False).iterations
    return time.process_time() - c0, its


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 25, 64, 256], help="eigh D")
    ap.add_argument("--rows", type=int, nargs="+", default=[33, 49, 200], help="Cholesky m")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    lines = [
        "| call | size | SciPy wrapper [us] | direct LAPACK [us] | ratio | max. rel. difference |",
        "|---|---|---|---|---|---|",
    ]
    lines += eigh_rows(rng, args.sizes) + cholesky_rows(rng, args.rows)
    lps = {
        "QT1": problems.tomography("QT1", 4),
        "QT2": problems.tomography("QT2", 4),
        "QT3": problems.tomography("QT3", 4),
        "QWD": problems.wasserstein(5),
        "IM": problems.ising(2),
    }
    lps = {k: cvxqreg.lower(v.problem) for k, v in lps.items()}
    times = {"wrappers": [], "direct": []}
    its = {}
    grid(lps)  # warm-up: imports, caches
    try:
        for _ in range(args.repeats):
            for name in ("wrappers", "direct"):
                backend._syevd = _old_syevd if name == "wrappers" else _new_syevd
                newton._dense_step = _old_dense_step if name == "wrappers" else _new_dense_step
                t, k = grid(lps)
                times[name].append(t)
                its[name] = k
    finally:
        backend._syevd, newton._dense_step = _new_syevd, _new_dense_step
    lines += [
        "",
        f"Small paper tables (QT1-3 n = 4, QWD n = 5, IM N = 2; both regularizers, tol 1e-3 and "
        f"1e-6, eps {', '.join(f'{e:g}' for e in EPS)}: 120 cells), {args.repeats} alternating "
        "repeats:",
        "",
        "| calls | min CPU [s] | median CPU [s] | Newton iterations |",
        "|---|---|---|---|",
    ]
    for name, ts in times.items():
        lines.append(f"| {name} | {min(ts):.3f} | {np.median(ts):.3f} | {its[name]} |")
    lines.append("")
    lines.append(
        f"Ratio wrappers / direct: {min(times['wrappers']) / min(times['direct']):.2f} (min), "
        f"{np.median(times['wrappers']) / np.median(times['direct']):.2f} (median)."
    )
    head = [
        "# Call overhead at small D: SciPy's high-level wrappers against direct LAPACK calls",
        "",
        f"Command: `python benchmarks/small_overhead.py {' '.join(argv or sys.argv[1:])}`  ",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, "
        f"numpy {np.__version__}, scipy {scipy.__version__}; BLAS threads: {blas_threads()}; "
        "micro-benchmarks: best of 5",
        "",
    ]
    text = write_report(head + lines, args.out)
    print(text)
    return text


if __name__ == "__main__":
    main()
