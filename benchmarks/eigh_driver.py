"""LAPACK's eigensolver drivers on the host: divide and conquer (``heevd``) against MRRR
(``heevr``), the choice behind ``cvxqreg.backend.EVR_MIN_DIM``.

For each size ``D`` and each of real symmetric and complex Hermitian, times a full
eigendecomposition (eigenvalues and eigenvectors) with both drivers through
``scipy.linalg.eigh`` (best of ``--repeats``), and reports the accuracy of each:
``max_ij |U^* U - I|_ij`` (orthogonality) and ``max_j ||A u_j - w_j u_j|| / ||A||_2``
(residual). The test matrices are the dual iterates cvxqreg diagonalizes:
``(A^*(alpha) - H) / eps`` of QWD with ``n = sqrt(D)`` Fock levels (degenerate cost,
``eps = 1e-2``, a random ``alpha``; complex), and its real part (real symmetric).

Usage:  python benchmarks/eigh_driver.py [--dims 256 512 1024 1200 1600 2000 2500]
            [--repeats 2] [--out benchmarks/results/eigh_driver.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
import scipy.linalg

import cvxqreg
from cvxqreg import backend as backend_module
from cvxqreg import problems
from cvxqreg.backend import blas_threads

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import write_report  # noqa: E402


def _iterate(n: int, seed: int = 0) -> np.ndarray:
    """``(A^*(alpha) - H) / 1e-2`` of QWD with ``n`` levels at a random ``alpha``."""
    lp = cvxqreg.lower(problems.wasserstein(n).problem)
    alpha = np.random.default_rng(seed).standard_normal(lp.n_rows)
    H = lp.H.toarray() if hasattr(lp.H, "toarray") else np.asarray(lp.H)
    W = (np.asarray(lp.A.adjoint(alpha)) - H) / 1e-2
    return 0.5 * (W + W.conj().T)


def _measure(A: np.ndarray, driver: str, repeats: int) -> tuple[float, float, float]:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        w, U = scipy.linalg.eigh(A, check_finite=False, driver=driver)
        best = min(best, time.perf_counter() - t0)
    orth = float(np.max(np.abs(U.conj().T @ U - np.eye(w.size))))
    res = float(np.max(np.linalg.norm(A @ U - U * w, axis=0))) / float(np.max(np.abs(w)))
    return best, orth, res


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dims", type=int, nargs="+", default=[256, 512, 1024, 1200, 1600, 2000, 2500])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    lines = [
        "# eigh drivers: divide and conquer (evd) against MRRR (evr)\n",
        f"Command: `python benchmarks/eigh_driver.py {' '.join(argv or sys.argv[1:])}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, scipy "
        f"{scipy.__version__}; BLAS: {blas_threads()}; best of {args.repeats}; cvxqreg uses evr "
        f"for complex D >= {backend_module.EVR_MIN_DIM}\n",
        "| D | field | evd [s] | evr [s] | evd / evr | orth. evd | orth. evr | resid. evd "
        "| resid. evr |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for D in args.dims:
        n = int(round(np.sqrt(D)))
        Wc = _iterate(n)
        for field, A in (("real", np.ascontiguousarray(Wc.real)), ("complex", Wc)):
            td, od, rd = _measure(A, "evd", args.repeats)
            tr, orr, rr = _measure(A, "evr", args.repeats)
            lines.append(
                f"| {n * n} | {field} | {td:.4f} | {tr:.4f} | {td / tr:.2f} | {od:.1e} | "
                f"{orr:.1e} | {rd:.1e} | {rr:.1e} |"
            )
            print(lines[-1], flush=True)
    return write_report(lines, args.out)


if __name__ == "__main__":
    main()
