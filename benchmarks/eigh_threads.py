"""One BLAS thread against the default for the eigendecomposition alone, the choice behind
``cvxqreg.backend.THREADED_EIGH_MIN_DIM``.

Below ``cvxqreg.backend.SMALL_DIM`` a solve runs with one BLAS thread (``Backend.threads_for``:
whole solves were slower with more, ``benchmarks/results/threads.md``). This measures, per size
``D``, real symmetric and complex Hermitian, the divide-and-conquer eigendecomposition
(``syevd``/``heevd``, eigenvalues and eigenvectors) and the values-only solve with one thread
and with the default count, and, for contrast, one ``D x D`` matrix product in double and in
single precision (``Backend.single``: scaled, without subnormals). Best of ``--repeats``. The
test matrices are those of ``benchmarks/eigh_driver.py`` (QWD dual iterates, ``n = sqrt(D)``
levels, and their real part) and, with ``--tomography``, the dual iterate of QT1 with
``log2(D)`` qubits at its regularized optimum (eps = 1e-2; complex) for ``D`` a power of two.

Usage:  python benchmarks/eigh_threads.py [--dims 144 256 400 529 625] [--tomography 256 512]
            [--repeats 5] [--out benchmarks/results/eigh_threads.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

import numpy as np

import cvxqreg
from cvxqreg import problems
from cvxqreg.backend import _syevd, blas_controller, blas_threads, get_backend

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import best_time, write_report  # noqa: E402
from eigh_driver import _iterate  # noqa: E402


def _tomography_iterate(n_qubits: int) -> np.ndarray:
    """``A^*(alpha) - H`` of QT1 at its von Neumann optimum, eps = 1e-2, tol 1e-3."""
    lp = cvxqreg.lower(problems.tomography("QT1", n_qubits=n_qubits).problem)
    r = cvxqreg.DualSolver("von_neumann", tol=1e-3)(lp, 1e-2)
    W = np.asarray(lp.A.adjoint(r.alpha)) - np.asarray(lp.H)
    return 0.5 * (W + W.conj().T)


def _row(label: str, A: np.ndarray, repeats: int, default: int) -> str:
    ctl = blas_controller()
    single = get_backend("numpy").single(A)[0]  # scaled, no subnormals, as the solver does
    ops = {
        "eigh": lambda: _syevd(A, True),
        "eigvalsh": lambda: _syevd(A, False),
        "product": lambda: A @ A,
        "single product": lambda: single @ single,
    }
    cells = []
    for op in ops.values():
        times = {}
        for threads in (1, default):
            with ctl.limit(limits=threads, user_api="blas"):
                times[threads] = best_time(op, repeats, warm=True)
        ratio = times[default] / times[1]
        cells.append(f"{1e3 * times[1]:.3g} | {1e3 * times[default]:.3g} | {ratio:.2f}")
    return f"| {label} | {A.shape[0]} | " + " | ".join(cells) + " |"


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dims", type=int, nargs="+", default=[144, 256, 400, 529, 625])
    ap.add_argument("--tomography", type=int, nargs="*", default=[256, 512])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    default = max(
        (i["num_threads"] for i in blas_controller().info() if i["user_api"] == "blas"),
        default=1,
    )
    cmd = "python benchmarks/eigh_threads.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    lines = [
        "# The eigendecomposition with one BLAS thread against the default",
        "",
        f"Command: `{cmd.strip()}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}; "
        f"BLAS: {blas_threads()}; default count {default}; best of {args.repeats}; "
        "times in ms, ratio = default / one thread",
        "",
        "| matrix | D | eigh 1 | eigh default | ratio | eigvalsh 1 | eigvalsh default | ratio "
        "| product 1 | product default | ratio | single product 1 | single product default "
        "| ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for D in args.dims:
        n = round(D**0.5)
        W = _iterate(n)
        lines.append(_row("QWD, complex", W, args.repeats, default))
        lines.append(_row("QWD real part", np.ascontiguousarray(W.real), args.repeats, default))
    for D in args.tomography:
        lines.append(
            _row("QT1, complex", _tomography_iterate(round(np.log2(D))), args.repeats, default)
        )
    text = write_report(lines, args.out)
    print(text)
    return text


if __name__ == "__main__":
    main()
